"""Polling: one full cycle over 2,000 feeds, most of them answering 304, on a local feed host.

    .venv/bin/python bench/poll.py                        # 2,000 feeds on 32 loopback addresses
    .venv/bin/python bench/poll.py --ticks                # paced by 1-s ticks, as the bot runs
    .venv/bin/python bench/poll.py --hosts 1              # every feed on one host name
    .venv/bin/python bench/poll.py --concurrency 64 --per-host 4 --cycles 5 --profile

The bot side is the real thing, wired as bot/runtime.py wires it: settings from
load_settings (NEWS_NOTIFIER_POLL_INTERVAL=1, NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS=1, a temporary
NEWS_NOTIFIER_DATABASE), Store, Fetcher, FeedPipeline with the real router over an empty
KeywordIndex and a 2-thread parse executor, and Poller. Every feed has one chat subscribed.
The feeds are served by FeedServers (tests/fakes/feed_server.py) in a child process, so the
CPU seconds measured here are the bot's alone. Each feed is an RSS document of --items stories
with an ETag; unchanged feeds answer 304 to the bot's If-None-Match.

The per-host limit keys on the URL's host name, and all of 127.0.0.0/8 is loopback on Linux,
so the feeds are spread over --hosts addresses 127.0.0.2, 127.0.0.3, …: with the defaults
(64 checks at once, 2 per host) 32 hosts let all 64 run, as they would across real sites.

A first cycle primes every feed (first fetch, stories recorded as seen). Before each measured
cycle, --changed of the feeds publish --new-items new stories (new ETag), and every feed's
next check is set to 0 in SQL so all are due. The clock is a frozen FakeClock, so a feed
checked in the cycle is not due again within it. A cycle is Poller.run_cycle() (one tick,
then wait for every check it started) repeated until no feed is due; a tick starts at most
concurrency x 4 feeds. With --ticks the cycle is paced as in the bot instead: tick() every
second (the JobQueue's interval) until nothing is due or in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# Run as a script from anywhere: the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (
    DATABASE_HELP,
    ScratchDatabases,
    Verdicts,
    backend_name,
    is_postgresql,
    machine_with_versions,
    postgresql_server_cpu,
)
from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import CheckStats, FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Store
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document

GOAL_SECONDS = 10.0
BOT_TICK_SECONDS = 1.0  # bot/telegram/jobs.py runs poll_tick every second
PARSE_THREADS = 2  # bot/runtime.py's parse executor
LEAD = (
    "<p>The city council voted on Tuesday to extend the night bus network to the northern "
    "districts, after a year of complaints from shift workers. The new lines start in "
    "spring.</p><p>Opponents said the money would be better spent on the tram.</p>"
)

# --- the feed host, in a child process ------------------------------------------------------


@dataclass(frozen=True)
class HostPlan:
    addresses: list[str]
    feeds: int
    items: int
    start_ms: int


class FeedHost:
    """The feeds, spread round-robin over one FeedServer per address."""

    def __init__(self, plan: HostPlan) -> None:
        self.plan = plan
        self.servers = [FeedServer(host=address) for address in plan.addresses]
        self.items: list[list[FeedItem]] = []
        self.versions: list[int] = []
        self.sizes: list[int] = []  # bytes of each feed's current document

    async def start(self) -> list[str]:
        for server in self.servers:
            await server.start()
        start = datetime.fromtimestamp(self.plan.start_ms / 1000, UTC)
        for feed in range(self.plan.feeds):
            self.items.append(
                [story_item(feed, n, start - timedelta(hours=n)) for n in range(self.plan.items)]
            )
            self.versions.append(0)
            self.sizes.append(0)
            self._serve(feed)
        return [self._server(feed).url(_path(feed)) for feed in range(self.plan.feeds)]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def publish(self, feeds: Sequence[int], new_items: int, when_ms: int) -> None:
        """`new_items` new stories on top of each feed, the oldest falling off the end."""
        when = datetime.fromtimestamp(when_ms / 1000, UTC)
        for feed in feeds:
            self.versions[feed] += 1
            fresh = [
                story_item(feed, f"v{self.versions[feed]}-{n}", when - timedelta(minutes=n))
                for n in range(new_items)
            ]
            self.items[feed] = (fresh + self.items[feed])[: self.plan.items]
            self._serve(feed)

    def reset_stats(self) -> None:
        for server in self.servers:
            server.reset_stats()

    def stats(self) -> dict[str, float]:
        """Requests, bodies (200s) and 304s since the last reset; CPU seconds so far."""
        requests = bodies = 0
        for feed, size in enumerate(self.sizes):
            server, path = self._server(feed), _path(feed)
            requests += server.hits(path)
            bodies += server.bytes_sent(path) // size
        return {
            "requests": requests,
            "bodies": bodies,
            "not_modified": requests - bodies,
            "cpu": time.process_time(),
        }

    def hits(self) -> list[int]:
        return [self._server(feed).hits(_path(feed)) for feed in range(self.plan.feeds)]

    def _serve(self, feed: int) -> None:
        document = rss_document(self.items[feed], title=f"Feed {feed}")
        etag = f'"feed{feed}-v{self.versions[feed]}"'
        self._server(feed).serve(_path(feed), document, etag=etag)
        self.sizes[feed] = len(document)

    def _server(self, feed: int) -> FeedServer:
        return self.servers[feed % len(self.servers)]


def _path(feed: int) -> str:
    return f"/feeds/{feed}.xml"


def story_item(feed: int, key: object, when: datetime) -> FeedItem:
    return FeedItem(
        title=f"Feed {feed}: story {key}",
        link=f"https://news{feed % 97}.test/{feed}/{key}",
        guid=f"feed-{feed}-story-{key}",
        pub_date=when,
        description=LEAD,
    )


def serve_in_process(connection: Connection, plan: HostPlan) -> None:
    asyncio.run(_serve(connection, plan))


async def _serve(connection: Connection, plan: HostPlan) -> None:
    host = FeedHost(plan)
    try:
        connection.send(await host.start())
        while True:
            command, *args = await asyncio.to_thread(receive_command, connection)
            if command == "publish":
                host.publish(*args)
                connection.send("ok")
            elif command == "reset":
                host.reset_stats()
                connection.send("ok")
            elif command == "stats":
                connection.send(host.stats())
            elif command == "hits":  # requests per feed since the last reset
                connection.send(host.hits())
            else:  # "stop", or the parent went away
                break
    finally:
        await host.stop()


def receive_command(connection: Connection) -> tuple[Any, ...]:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return ("stop",)


class FeedHostProcess:
    """The parent's handle on the feed host child (spawned: no state shared by fork)."""

    def __init__(self, plan: HostPlan) -> None:
        context = get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=serve_in_process, args=(child, plan), daemon=True)
        self.urls: list[str] = []

    def __enter__(self) -> FeedHostProcess:
        self._process.start()
        if not self._connection.poll(120):
            self.__exit__()
            raise RuntimeError("the feed host process did not start")
        self.urls = self._connection.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._connection.send(("stop",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def call(self, *command: object) -> Any:
        self._connection.send(command)
        return self._connection.recv()


# --- the bot side ---------------------------------------------------------------------------


def bench_settings(location: str, concurrency: int | None, per_host: int | None) -> Settings:
    settings = load_settings(
        None,
        {
            "NEWS_NOTIFIER_DATABASE": location,
            "NEWS_NOTIFIER_POLL_INTERVAL": "1",
            "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1",
        },
    )
    poll = dataclasses.replace(
        settings.poll,
        concurrency=concurrency or settings.poll.concurrency,
        per_host_concurrency=per_host or settings.poll.per_host_concurrency,
    )
    return dataclasses.replace(settings, poll=poll)


async def subscribe_all(store: Store, urls: Sequence[str], now_ms: int) -> None:
    """One feed row per URL, each followed by its own private chat."""
    for number, url in enumerate(urls, 1):
        feed_id = await store.feeds.add(url, title="", site_url="", now_ms=now_ms)
        await store.chats.upsert(number, kind="private", title="", language="en", now_ms=now_ms)
        await store.chats.subscribe(number, feed_id, thread_id=None, now_ms=now_ms)


async def fill_backlog(store: Store, rows: int, now_ms: int) -> None:
    """`rows` alerts already sent, as a running bot holds them for the duplicate window
    (delivery.duplicate_title_hours): stories of a feed nobody follows any more, each
    sent to one chat. The duplicate lookup of every new story searches among them."""
    if not rows:
        return
    feed_id = await store.feeds.add("http://backlog.test/", title="", site_url="", now_ms=now_ms)
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO stories (id, feed_id, identity, timestamp_id, title, link, link_key,"
            " title_key, first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    -n,  # out of the way of the ids the cycles will use
                    feed_id,
                    f"backlog-{n}",
                    now_ms - n,
                    f"Earlier story {n}",
                    f"https://earlier.test/{n}",
                    f"https://earlier.test/{n}",
                    f"earlier story {n}",
                    now_ms - n,
                    now_ms - n,
                )
                for n in range(1, rows + 1)
            ),
        )
        await conn.executemany(
            "INSERT INTO outbox (chat_id, kind, story_id, status, not_before, created_at,"
            " sent_at) VALUES (?, 'alert', ?, 'sent', ?, ?, ?)",
            ((1 + n % 1000, -n, now_ms - n, now_ms - n, now_ms - n) for n in range(1, rows + 1)),
        )


async def full_cycle(poller: Poller, store: Store, now_ms: int, *, ticks: bool) -> int:
    """Check every due feed once. Returns how many ticks it took."""
    count = 0
    if not ticks:
        while await store.feeds.due(now_ms, 1):
            await poller.run_cycle()
            count += 1
        return count
    while True:
        started = time.perf_counter()
        await poller.tick()
        count += 1
        # A feed stays due until its check is recorded, so this also waits for checks in
        # flight; wait_idle() then only collects the finished tasks.
        if not await store.feeds.due(now_ms, 1):
            await poller.wait_idle()
            return count
        # The JobQueue fires every second whatever the tick took.
        await asyncio.sleep(max(0.0, BOT_TICK_SECONDS - (time.perf_counter() - started)))


@dataclass
class Cycle:
    wall: float
    cpu: float
    ticks: int
    server: dict[str, float]
    bot: CheckStats
    database_cpu: float = 0.0  # PostgreSQL's server processes during the cycle


def stats_since(before: CheckStats, after: CheckStats) -> CheckStats:
    return CheckStats(
        checks=after.checks - before.checks,
        not_modified=after.not_modified - before.not_modified,
        failures=after.failures - before.failures,
        new_stories=after.new_stories - before.new_stories,
        queued=after.queued - before.queued,
    )


async def measure(args: argparse.Namespace) -> tuple[Settings, float, CheckStats, list[Cycle]]:
    clock = FakeClock(time.time_ns() // 1_000_000)
    addresses = [f"127.0.0.{2 + n}" for n in range(args.hosts)]
    plan = HostPlan(addresses, args.feeds, args.items, clock.now_ms())
    rng = random.Random(args.seed)
    with (
        tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp,
        ScratchDatabases(args.database, tmp) as databases,
        FeedHostProcess(plan) as host,
        ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="parse") as executor,
    ):
        settings = bench_settings(databases.new("poll"), args.concurrency, args.per_host)
        async with (
            await Store.open(settings.database.path) as store,
            Fetcher(settings.fetch) as fetcher,
        ):
            await subscribe_all(store, host.urls, clock.now_ms())
            await fill_backlog(store, args.backlog, clock.now_ms())
            router = make_router(KeywordIndex())
            pipeline = FeedPipeline(
                store, fetcher, settings, clock, router, executor, seed=args.seed
            )
            poller = Poller(store, pipeline, settings, clock)
            began = time.perf_counter()
            await full_cycle(poller, store, clock.now_ms(), ticks=False)
            priming = time.perf_counter() - began
            primed = dataclasses.replace(poller.pipeline.stats)
            cycles = []
            for number in range(args.cycles):
                profile = args.profile and number == args.cycles - 1
                cycles.append(await one_cycle(args, host, store, poller, clock, rng, profile))
            return settings, priming, primed, cycles


async def one_cycle(
    args: argparse.Namespace,
    host: FeedHostProcess,
    store: Store,
    poller: Poller,
    clock: FakeClock,
    rng: random.Random,
    profile: bool,
) -> Cycle:
    changed = rng.sample(range(args.feeds), args.changed)
    host.call("publish", changed, args.new_items, clock.now_ms())
    # Everything due now; the clock stays put, so nothing falls due twice in the cycle.
    await store.db.execute("UPDATE feeds SET next_check_at = 0")
    host.call("reset")
    server_cpu = host.call("stats")["cpu"]
    before = dataclasses.replace(poller.pipeline.stats)
    location = poller.settings.database.path
    database_cpu = postgresql_server_cpu(location) if is_postgresql(location) else 0.0
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    ticks = await full_cycle(poller, store, clock.now_ms(), ticks=args.ticks)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if is_postgresql(location):
        database_cpu = postgresql_server_cpu(location) - database_cpu
    server = host.call("stats")
    server["cpu"] -= server_cpu
    if profiler:
        print_profile(profiler, args.top)
    bot = stats_since(before, poller.pipeline.stats)
    return Cycle(wall, cpu, ticks, server, bot, database_cpu)


# --- report ---------------------------------------------------------------------------------


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(out.getvalue())


def machine() -> str:
    return machine_with_versions("aiohttp", "aiosqlite")


def print_cycles(cycles: Sequence[Cycle]) -> None:
    print(
        f"{'cycle':>6}{'wall s':>8}{'cpu s':>7}{'ticks':>6}{'checks':>8}{'304s':>6}"
        f"{'bodies':>7}{'changed':>8}{'failed':>7}{'new':>6}{'queued':>7}{'host cpu':>9}"
        f"{'db cpu':>7}"
    )
    for number, c in enumerate(cycles, 1):
        changed = c.bot.checks - c.bot.not_modified - c.bot.failures
        print(
            f"{number:>6}{c.wall:>8.2f}{c.cpu:>7.2f}{c.ticks:>6}{c.bot.checks:>8}"
            f"{c.server['not_modified']:>6.0f}{c.server['bodies']:>7.0f}{changed:>8}"
            f"{c.bot.failures:>7}{c.bot.new_stories:>6}{c.bot.queued:>7}{c.server['cpu']:>9.2f}"
            f"{c.database_cpu:>7.2f}"
        )
    walls = [c.wall for c in cycles]
    cpus = [c.cpu for c in cycles]
    print(f"{'best':>6}{min(walls):>8.2f}{min(cpus):>7.2f}")
    print(f"{'median':>6}{statistics.median(walls):>8.2f}{statistics.median(cpus):>7.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--hosts", type=int, default=32, help="loopback addresses 127.0.0.2…")
    parser.add_argument("--items", type=int, default=15, help="stories per feed document")
    parser.add_argument("--changed", type=int, default=100, help="feeds changed per cycle")
    parser.add_argument("--new-items", type=int, default=3, help="new stories per change")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles")
    parser.add_argument("--concurrency", type=int, help="poll.concurrency (default: config)")
    parser.add_argument("--per-host", type=int, help="poll.per_host_concurrency")
    parser.add_argument("--backlog", type=int, default=0, help="sent alerts already in the outbox")
    parser.add_argument("--ticks", action="store_true", help="pace by 1-s ticks like the bot")
    parser.add_argument("--profile", action="store_true", help="cProfile the last cycle")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--seed", type=int, default=20250226)
    parser.add_argument("--database", help=DATABASE_HELP)
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        parser.error("--hosts must be between 1 and 250 (127.0.0.2 … 127.0.0.251)")

    settings, priming, primed, cycles = asyncio.run(measure(args))
    poll = settings.poll
    print(f"machine: {machine()}")
    print(
        f"poll: {args.feeds:,} feeds on {args.hosts} address(es) from 127.0.0.2, "
        f"{args.items} stories each; per cycle {args.changed} feeds publish {args.new_items} "
        f"new stories; concurrency {poll.concurrency}, per host {poll.per_host_concurrency}, "
        f"{PARSE_THREADS} parse threads; "
        f"{'1-s ticks (as the bot)' if args.ticks else 'run_cycle until none due'}; "
        f"outbox backlog {args.backlog:,} sent alerts; store on {backend_name(args.database)}"
    )
    print(f"priming cycle: {priming:.1f} s for {primed.checks:,} checks ({primed.failures} failed)")
    print_cycles(cycles)
    per_check = statistics.median((c.cpu + c.database_cpu) / max(1, c.bot.checks) for c in cycles)
    print(
        f"CPU per feed check (median cycle): {per_check * 1000:.2f} ms"
        + (" (this process + PostgreSQL's)" if is_postgresql(args.database) else "")
    )
    return judge(args, primed, cycles).exit_code()


def judge(args: argparse.Namespace, primed: CheckStats, cycles: Sequence[Cycle]) -> Verdicts:
    """The goal, and what every cycle must have done: each feed checked once, none failed,
    a body for each changed feed and a 304 for the rest, each new story queued once for
    the feed's one chat."""
    verdicts = Verdicts()
    median = statistics.median(c.wall for c in cycles)
    verdicts.check(
        f"goal: full cycle < {GOAL_SECONDS:.0f} s", median < GOAL_SECONDS, f"median {median:.2f} s"
    )
    verdicts.check(
        "check: priming checked every feed, none failed",
        primed.checks == args.feeds and primed.failures == 0,
        f"{primed.checks:,} checks, {primed.failures} failed",
    )
    new = args.changed * args.new_items
    for number, c in enumerate(cycles, 1):
        verdicts.check(
            f"check: cycle {number} checked each feed once, none failed",
            c.bot.checks == args.feeds and c.bot.failures == 0,
            f"{c.bot.checks:,} checks of {args.feeds:,} feeds, {c.bot.failures} failed",
        )
        verdicts.check(
            f"check: cycle {number} 304s and bodies",
            c.server["not_modified"] == args.feeds - args.changed
            and c.server["bodies"] == args.changed,
            f"{c.server['not_modified']:.0f} 304s, {c.server['bodies']:.0f} bodies",
        )
        verdicts.check(
            f"check: cycle {number} new stories each queued once",
            c.bot.new_stories == new and c.bot.queued == new,
            f"{c.bot.new_stories} new, {c.bot.queued} queued, expected {new}",
        )
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
