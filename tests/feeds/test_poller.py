"""The poller's concurrency bounds, through the real Poller, Fetcher and local feed hosts.

PRODUCT.md: "Feeds are fetched politely (... bounded concurrency per host ...), a failing
feed never stalls the others." A check waits for its host's slot before it takes one of the
global ones, so a slow host with a long queue (a self-hosted RSSHub serving a hundred feeds)
never fills the global slots with checks that cannot run, and a feed on another host is
checked at once. Both bounds stay exact, and stop() leaves no check waiting on a slot.

Timings are only compared with each other (which check ended first), never with tight
limits, so a loaded machine slows the tests down without failing them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from bot.clock import FakeClock
from bot.config import Settings
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Feed, Store
from tests.fakes.feed_server import FeedItem, FeedServer

CHAT = 1


class SlowServer(FeedServer):
    """A feed host that answers every request after `delay` seconds and counts how many
    requests it is answering at once (`peak`)."""

    def __init__(self, host: str, delay: float = 0.0) -> None:
        super().__init__(host)
        self.delay = delay
        self.requests = 0
        self.active = 0
        self.peak = 0
        self._released = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.delay:
                try:  # stop() ends the wait, so shutdown never waits on a sleeping answer
                    await asyncio.wait_for(self._released.wait(), self.delay)
                except TimeoutError:
                    pass
            return await super()._handle(request)
        finally:
            self.active -= 1

    async def stop(self) -> None:
        self._released.set()
        await super().stop()


class Rig:
    """The ingestion half of the bot (checker and poller as the app wires them), with every
    check timed and counted around the real Poller.check."""

    def __init__(self, store: Store, settings: Settings, clock: FakeClock, fetcher: Fetcher):
        self.store = store
        self.clock = clock
        router = make_router(KeywordIndex())
        self.pipeline = FeedPipeline(store, fetcher, settings, clock, router, seed=7)
        self.poller = Poller(store, self.pipeline, settings, clock)
        self.started_at: dict[int, float] = {}
        self.done_at: dict[int, float] = {}
        self.running = 0
        self.peak = 0
        self.running_by_host: Counter[str] = Counter()
        self.peak_by_host: Counter[str] = Counter()
        self.started = asyncio.Condition()  # notified as each check starts
        check = self.pipeline.check

        async def counted_check(feed: Feed) -> Any:
            host = urlsplit(feed.url).hostname or ""
            self.started_at[feed.id] = time.perf_counter()
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.running_by_host[host] += 1
            self.peak_by_host[host] = max(self.peak_by_host[host], self.running_by_host[host])
            async with self.started:
                self.started.notify_all()
            try:
                return await check(feed)
            finally:
                self.running -= 1
                self.running_by_host[host] -= 1
                self.done_at[feed.id] = time.perf_counter()

        self.pipeline.check = counted_check  # type: ignore[method-assign]

    async def add_feed(self, server: FeedServer, path: str) -> int:
        server.publish(path, [FeedItem(f"Story of {path}", f"https://feeds.test{path}", path)])
        now = self.clock.now_ms()
        await self.store.chats.upsert(CHAT, kind="private", title="", language="en", now_ms=now)
        feed_id = await self.store.feeds.add(server.url(path), title="", site_url="", now_ms=now)
        await self.store.chats.subscribe(CHAT, feed_id, thread_id=None, now_ms=now)
        return feed_id

    async def cycle(self) -> int:
        started = await self.poller.tick()
        async with asyncio.timeout(60):
            await self.poller.wait_idle()
        return started


def bounded(settings: Settings, concurrency: int, per_host: int | None = None) -> Settings:
    poll = replace(settings.poll, concurrency=concurrency)
    if per_host is not None:
        poll = replace(poll, per_host_concurrency=per_host)
    return replace(settings, poll=poll)


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, SlowServer]]:
    """Three feed hosts (127.0.0.1-3: distinct host names to the poller); tests set delays."""
    async with AsyncExitStack() as stack:
        hosts = {}
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            hosts[host] = await stack.enter_async_context(SlowServer(host))
        yield hosts


# --- a slow host's queue does not hold back other hosts -------------------------------------

SLOW = 0.4  # seconds the slow host takes to answer each request
SLOW_FEEDS = 8


async def test_feed_on_a_fast_host_is_not_held_back_by_a_slow_hosts_queue(
    store: Store, settings: Settings, clock: FakeClock, servers: dict[str, SlowServer]
) -> None:
    """The audit's case: 4 global slots, 1 per host, a slow host with 8 feeds. Before the
    fix, the slow host's checks took all 4 global slots while waiting for its one host slot,
    and the other host's feed waited for 4 of them to finish (about 2 s)."""
    settings = bounded(settings, concurrency=4, per_host=1)
    slow, fast = servers["127.0.0.1"], servers["127.0.0.2"]
    slow.delay = SLOW
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        slow_feeds = [await rig.add_feed(slow, f"/slow-{i}.xml") for i in range(SLOW_FEEDS)]
        clock.advance(1)  # the fast host's feed is the least overdue: started last
        fast_feed = await rig.add_feed(fast, "/fast.xml")
        clock.advance(1)

        began = time.perf_counter()
        assert await rig.cycle() == SLOW_FEEDS + 1

    slow_ends = sorted(rig.done_at[feed_id] for feed_id in slow_feeds)
    fast_took = rig.done_at[fast_feed] - began
    # Checked within about its own response time: long before the slow host's queue (its
    # checks end one by one, SLOW apart), not after some of it.
    assert rig.done_at[fast_feed] < slow_ends[2], (
        f"fast host's feed took {fast_took:.2f} s; slow host's checks ended at "
        + ", ".join(f"{end - began:.2f}" for end in slow_ends)
    )
    # The slow host was still held to its bound, and every feed was fetched once.
    assert rig.peak_by_host["127.0.0.1"] == 1 and slow.peak == 1
    assert slow_ends[-1] - began >= SLOW * SLOW_FEEDS * 0.9
    assert [slow.hits(f"/slow-{i}.xml") for i in range(SLOW_FEEDS)] == [1] * SLOW_FEEDS
    assert fast.hits("/fast.xml") == 1


# --- both bounds hold ------------------------------------------------------------------------

FEEDS_PER_HOST = 5


@pytest.mark.parametrize(
    "concurrency",
    [
        pytest.param(3, id="global bound binds"),
        pytest.param(None, id="per-host bound binds"),  # the default (64)
    ],
)
async def test_global_and_per_host_bounds_are_never_exceeded(
    concurrency: int | None,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    servers: dict[str, SlowServer],
) -> None:
    assert settings.poll.per_host_concurrency == 2  # config/default.toml
    if concurrency is not None:
        settings = bounded(settings, concurrency=concurrency)
    limit, per_host = settings.poll.concurrency, settings.poll.per_host_concurrency
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        paths = [f"/feed-{i}.xml" for i in range(FEEDS_PER_HOST)]
        for server in servers.values():
            server.delay = 0.2
            for path in paths:
                await rig.add_feed(server, path)
        feeds = len(servers) * FEEDS_PER_HOST
        assert await rig.cycle() == feeds

    assert len(rig.done_at) == feeds  # every feed checked, none twice
    assert all(server.hits(path) == 1 for server in servers.values() for path in paths)
    # Never above either bound, and each reached: the bounds are exact, not just upper ones.
    assert rig.peak == min(limit, per_host * len(servers)), (rig.peak, limit)
    assert max(rig.peak_by_host.values()) == per_host, rig.peak_by_host
    for host, server in servers.items():
        assert rig.peak_by_host[host] <= per_host, (host, rig.peak_by_host)
        assert server.peak <= per_host, (host, server.peak)  # as the host saw it


# --- stop() with many checks waiting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "grace"),
    [
        # The running checks end within the grace: stop waits for them, and no waiting
        # check starts meanwhile (before, they took the freed slots for the whole grace).
        pytest.param(0.5, 10.0, id="running checks finish"),
        # The running checks outlast the grace: cancelled, with everything waiting.
        pytest.param(30.0, 0.3, id="running checks cancelled"),
    ],
)
async def test_stop_during_a_tick_with_many_waiting_checks(
    delay: float,
    grace: float,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    servers: dict[str, SlowServer],
) -> None:
    settings = bounded(settings, concurrency=2, per_host=1)
    one, two = servers["127.0.0.1"], servers["127.0.0.2"]
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        feeds = []
        for i in range(12):  # alternating hosts: one check per host runs, 22 wait
            for server in (one, two):
                server.delay = delay
                feeds.append(await rig.add_feed(server, f"/feed-{i}.xml"))
        assert await rig.poller.tick() == len(feeds)
        async with asyncio.timeout(10), rig.started:
            await rig.started.wait_for(lambda: rig.running >= 2)
        running = set(rig.started_at)
        assert len(running) == 2

        began = time.perf_counter()
        await rig.poller.stop(grace)
        took = time.perf_counter() - began

        # Prompt: as long as the running checks (or the grace) take, not the queue.
        assert took < min(grace, delay) + 2.5, f"stop took {took:.2f} s"
        # Nothing started after stop(), nothing left pending or waiting on a slot.
        assert set(rig.started_at) == running
        assert one.requests + two.requests == 2
        left = [
            task
            for task in asyncio.all_tasks()
            if task.get_name().startswith("check-feed-") and not task.done()
        ]
        assert left == []
        async with asyncio.timeout(1):
            await rig.poller.wait_idle()
        assert rig.pipeline.stats.checks == 2
        # Every slot given back (a leaked slot would stall checks after a restart in-process).
        poller_all = rig.poller._all
        assert not poller_all.locked() and poller_all._value == settings.poll.concurrency
        assert all(not sem.locked() for sem in rig.poller._hosts.values())
        assert await rig.poller.tick() == 0  # stopped: starts nothing

        # Nothing lost: every feed not checked to the end is still due.
        due = {feed.id for feed in await store.feeds.due(clock.now_ms(), 100)}
        finished = set(feeds) - due
        assert finished <= running
        assert len(finished) == (2 if delay < grace else 0)
