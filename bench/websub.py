"""WebSub push: publish → alert queued, on loopback, 1,000 feeds and 10,000 chats.

    .venv/bin/python bench/websub.py                       # the figures in bench/README.md
    .venv/bin/python bench/websub.py --feeds 100 --chats 1000 --steady 50   # a quick look
    .venv/bin/python bench/websub.py --profile             # where the bot's time goes in the burst

The publisher's side runs in a spawned child process, as a remote site and hub would: one
FeedServer (tests/fakes/feed_server.py) serving every feed, each announcing the hub
(atom:link rel="hub" and rel="self"), and the fake hub (tests/fakes/websub_hub.py). The
bot's side is the real thing, wired as the runtime wires it (README, "WebSub"): Store,
Fetcher, FeedPipeline (real router over an empty KeywordIndex, a 2-thread parse executor),
WebSub and the Listener on 127.0.0.1, the hub reaching it as a reverse proxy would.

Setup: each feed is checked once with check_new (fetched, primed, its hub discovered), the
chats follow `--per-chat` feeds each, drawn at random (seeded), and the manager subscribes at
the hub, which verifies every subscription. Then:

- steady: `--steady` stories, one at a time on a random feed, `--gap` seconds apart;
- burst: every feed publishes one story at the same moment.

A publish is the publisher's ping: the hub fetches the topic and POSTs it, signed, to the
bot's callback. The bot answers only after the body went through check_delivered and its
transaction committed, so the time from the ping to the hub's answer is an upper bound of
publish → every alert of the story in the outbox (one transaction writes them all: the first
alert is queued when the last one is). Times are taken in the child, on its monotonic clock.
Sending (Telegram's pace) is not run; the outbox is checked after each run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Verdicts, machine_with_versions
from bot.clock import SystemClock
from bot.config import Settings, load_settings
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.websub import WebSub
from bot.filters import KeywordIndex
from bot.listener import Listener
from bot.routing import make_router
from bot.store import Store
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.websub_hub import FakeHub

ORIGIN = "https://bot.bench"
PARSE_THREADS = 2
GOAL_P50_SECONDS = 2.0
LEAD = (
    "<p>The city council voted on Tuesday to extend the night bus network to the northern "
    "districts, after a year of complaints from shift workers. The new lines start in "
    "spring.</p><p>Opponents said the money would be better spent on the tram.</p>"
)

# --- the publisher's side, in a child process -----------------------------------------------


@dataclass(frozen=True)
class Plan:
    feeds: int
    items: int


class Publisher:
    """The feeds and their hub."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.server = FeedServer()
        self.hub = FakeHub()
        self.items: list[list[FeedItem]] = []
        self.published = 0

    async def start(self) -> tuple[list[str], str]:
        await self.server.start()
        await self.hub.start()
        start = datetime.now(UTC)
        for feed in range(self.plan.feeds):
            self.items.append(
                [_item(feed, n, start - timedelta(hours=n + 1)) for n in range(self.plan.items)]
            )
            self._serve(feed)
        return [self.url(feed) for feed in range(self.plan.feeds)], self.hub.url

    async def stop(self) -> None:
        await self.hub.stop()
        await self.server.stop()

    def url(self, feed: int) -> str:
        return self.server.url(f"/feeds/{feed}.xml")

    def _serve(self, feed: int) -> None:
        links = [("hub", self.hub.url), ("self", self.url(feed))]
        self.server.publish(
            f"/feeds/{feed}.xml", self.items[feed], title=f"Feed {feed}", links=links
        )

    async def publish(self, feed: int) -> tuple[int, float, list[int]]:
        """A new story on `feed` and the hub's distribution of it: (feed, seconds, statuses)."""
        started = time.monotonic()
        self.published += 1
        story = _item(feed, f"new-{self.published}", datetime.now(UTC))
        self.items[feed] = [story, *self.items[feed]][: self.plan.items]
        self._serve(feed)
        statuses = await self.hub.publish(self.url(feed))
        return feed, time.monotonic() - started, statuses

    async def steady(self, count: int, gap: float, seed: int) -> list[tuple[int, float, list[int]]]:
        rng = random.Random(seed)
        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(self.publish(rng.randrange(self.plan.feeds))))
            await asyncio.sleep(gap)
        return list(await asyncio.gather(*tasks))

    async def burst(self) -> list[tuple[int, float, list[int]]]:
        return list(await asyncio.gather(*(self.publish(f) for f in range(self.plan.feeds))))


def _item(feed: int, key: object, when: datetime) -> FeedItem:
    return FeedItem(
        title=f"Feed {feed}: story {key}",
        link=f"https://news{feed % 97}.test/{feed}/{key}",
        guid=f"feed-{feed}-story-{key}",
        pub_date=when,
        description=LEAD,
    )


def publisher_process(connection: Connection, plan: Plan) -> None:
    asyncio.run(_publisher(connection, plan))


async def _publisher(connection: Connection, plan: Plan) -> None:
    publisher = Publisher(plan)
    try:
        connection.send(await publisher.start())
        while True:
            command, *args = await asyncio.to_thread(_receive, connection)
            if command == "forward":
                publisher.hub.forward = {ORIGIN: args[0]}
                connection.send("ok")
            elif command == "settled":
                await publisher.hub.settled()
                connection.send(len(publisher.hub.subscriptions))
            elif command == "steady":
                connection.send(await publisher.steady(*args))
            elif command == "burst":
                connection.send(await publisher.burst())
            elif command == "cpu":
                connection.send(time.process_time())
            else:
                break
    finally:
        await publisher.stop()


def _receive(connection: Connection) -> tuple[Any, ...]:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return ("stop",)


class PublisherProcess:
    def __init__(self, plan: Plan) -> None:
        context = get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=publisher_process, args=(child, plan), daemon=True)

    def __enter__(self) -> PublisherProcess:
        self._process.start()
        if not self._connection.poll(120):
            self.__exit__()
            raise RuntimeError("the publisher process did not start")
        self.urls, self.hub_url = self._connection.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._connection.send(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    async def call(self, *command: object) -> Any:
        self._connection.send(command)
        return await asyncio.to_thread(self._connection.recv)


# --- the bot's side -------------------------------------------------------------------------


def bench_settings(folder: Path) -> Settings:
    return load_settings(
        None,
        {
            "NEWS_NOTIFIER_DATABASE": str(folder / "bench.sqlite3"),
            "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWS_NOTIFIER_WEBHOOK_URL": ORIGIN + "/telegram",
            "NEWS_NOTIFIER_LISTEN": "127.0.0.1:0",
        },
    )


async def follow(store: Store, feed_ids: list[int], chats: int, per_chat: int, seed: int) -> int:
    """`chats` private chats, each following `per_chat` feeds drawn at random; written in
    one transaction (the bench's setup, not what it measures). Returns subscriptions."""
    rng = random.Random(seed)
    rows = [
        (chat, feed_id, 0)
        for chat in range(1, chats + 1)
        for feed_id in rng.sample(feed_ids, min(per_chat, len(feed_ids)))
    ]
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO chats (id, kind, created_at) VALUES (?, 'private', 0)",
            [(chat,) for chat in range(1, chats + 1)],
        )
        await conn.executemany(
            "INSERT INTO subscriptions (chat_id, feed_id, created_at) VALUES (?, ?, ?)", rows
        )
    return len(rows)


async def check_all(pipeline: FeedPipeline, urls: list[str]) -> list[int]:
    slots = asyncio.Semaphore(32)

    async def one(url: str) -> int:
        async with slots:
            return (await pipeline.check_new(url)).feed.id

    return list(await asyncio.gather(*(one(url) for url in urls)))


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50": statistics.median(ordered),
        "p99": p99,
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


async def outbox_alerts(store: Store) -> int:
    row = await store.db.fetchone("SELECT COUNT(*) FROM outbox WHERE kind = 'alert'")
    return int(row[0]) if row else 0


async def measure(
    name: str,
    store: Store,
    publisher: PublisherProcess,
    command: tuple[Any, ...],
    followers: list[int],
    verdicts: Verdicts,
) -> None:
    alerts_before = await outbox_alerts(store)
    cpu_before = time.process_time()
    wall_before = time.monotonic()
    results = await publisher.call(*command)
    wall = time.monotonic() - wall_before
    cpu = time.process_time() - cpu_before
    times = [seconds for _, seconds, _ in results]
    statuses = sorted({status for _, _, answered in results for status in answered})
    queued = await outbox_alerts(store) - alerts_before
    owed = sum([followers[feed] for feed, _, _ in results])
    figures = percentiles(times)
    print(
        f"{name}: {len(times)} publishes in {wall:.1f} s; publish → queued "
        f"p50 {figures['p50'] * 1000:.0f} ms, p99 {figures['p99'] * 1000:.0f} ms, "
        f"max {figures['max'] * 1000:.0f} ms, mean {figures['mean'] * 1000:.0f} ms; "
        f"alerts queued {queued:,} of {owed:,} owed; bot CPU {cpu:.1f} s "
        f"({cpu / len(times) * 1000:.1f} ms a delivery); statuses {statuses}"
    )
    if name == "steady":  # the goal is the ordinary day's; a burst finishes in turn
        verdicts.check(
            f"goal: publish -> first alert queued, p50 < {GOAL_P50_SECONDS:g} s",
            figures["p50"] < GOAL_P50_SECONDS,
            f"{figures['p50'] * 1000:.0f} ms",
        )
    verdicts.check(
        f"check: {name}: every owed alert queued once, every delivery answered 2xx",
        queued == owed and all(200 <= status < 300 for status in statuses),
        f"{queued:,} of {owed:,}; statuses {statuses}",
    )


async def run(args: argparse.Namespace, verdicts: Verdicts) -> None:
    print(machine_with_versions("aiohttp", "feedparser"))
    with (
        tempfile.TemporaryDirectory() as folder,
        PublisherProcess(Plan(args.feeds, args.items)) as publisher,
    ):
        settings = bench_settings(Path(folder))
        clock = SystemClock()
        store = await Store.open(settings.database.path)
        executor = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="parse")
        assert settings.listener.listen is not None
        try:
            async with Fetcher(settings.fetch) as fetcher:
                pipeline = FeedPipeline(
                    store, fetcher, settings, clock, make_router(KeywordIndex()), executor
                )
                websub = WebSub(store, fetcher, pipeline, settings, clock)
                pipeline.on_fetched = websub.observe
                listener = Listener(
                    settings.listener.listen, max_body_bytes=settings.fetch.max_body_bytes
                )
                listener.add_routes(websub.routes())
                await listener.start()
                try:
                    await publisher.call("forward", listener.base_url)
                    followers = await setup(args, store, pipeline, websub, publisher)
                    steady = ("steady", args.steady, args.gap, args.seed)
                    await measure("steady", store, publisher, steady, followers, verdicts)
                    profile = cProfile.Profile() if args.profile else None
                    if profile:
                        profile.enable()
                    await measure("burst", store, publisher, ("burst",), followers, verdicts)
                    if profile:
                        profile.disable()
                        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
                finally:
                    await listener.stop()
        finally:
            executor.shutdown()
            await store.close()


async def setup(
    args: argparse.Namespace,
    store: Store,
    pipeline: FeedPipeline,
    websub: WebSub,
    publisher: PublisherProcess,
) -> list[int]:
    """Feeds checked, chats following them, subscriptions verified; returns the number of
    chats following each feed (by its index in the publisher's list)."""
    started = time.monotonic()
    feed_ids = await check_all(pipeline, publisher.urls)
    subscriptions = await follow(store, feed_ids, args.chats, args.per_chat, args.seed)
    while await websub.run_due():
        pass
    held = await publisher.call("settled")
    states = await store.websub.count_by_state()
    print(
        f"setup: {len(feed_ids):,} feeds checked and primed, {args.chats:,} chats, "
        f"{subscriptions:,} subscriptions ({subscriptions / len(feed_ids):.0f} chats a feed), "
        f"hub holds {held:,} verified, bot: {states}; {time.monotonic() - started:.1f} s"
    )
    rows = await store.db.fetchall("SELECT feed_id, COUNT(*) FROM subscriptions GROUP BY feed_id")
    by_feed = {feed_id: count for feed_id, count in rows}
    return [by_feed.get(feed_id, 0) for feed_id in feed_ids]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=10000)
    parser.add_argument("--per-chat", type=int, default=5, help="feeds each chat follows")
    parser.add_argument("--items", type=int, default=20, help="stories in each feed")
    parser.add_argument("--steady", type=int, default=300, help="publishes one at a time")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between them")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="cProfile of the bot in the burst")
    verdicts = Verdicts()
    asyncio.run(run(parser.parse_args(), verdicts))
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
