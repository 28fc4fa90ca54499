"""Feed leases (issue 14): each feed is checked by one instance at a time.

An instance claims due feeds with a lease (FeedStore.claim_due); recording the check clears
it, only while the recorder still holds it; a lease that ran out is taken over; the
poller's stop() hands back what it did not finish. The single-instance rules run on both
backends; the races between two instances (two Store objects on one schema, as two
processes would have) run on PostgreSQL, where several instances may share a database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest
from aiohttp import web

from bot.clock import FakeClock
from bot.config import Settings
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import FeedUpdate, Store, Written
from tests.fakes.feed_server import FeedItem, FeedServer

CHATS = (1, 2)


class WatchedServer(FeedServer):
    """A feed host that counts, per path, the requests it is answering at once, and can
    hold every answer until released."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.release = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.active[path] += 1
        self.peak[path] = max(self.peak[path], self.active[path])
        try:
            if self.delay:
                try:
                    await asyncio.wait_for(self.release.wait(), self.delay)
                except TimeoutError:
                    pass
            return await super()._handle(request)
        finally:
            self.active[path] -= 1

    async def stop(self) -> None:
        self.release.set()
        await super().stop()


@pytest.fixture
async def server() -> AsyncIterator[WatchedServer]:
    async with WatchedServer() as watched:
        yield watched


async def add_feeds(store: Store, server: FeedServer, count: int, now: int) -> list[int]:
    for chat in CHATS:
        await store.chats.upsert(chat, kind="private", title="", language="en", now_ms=now)
    ids = []
    for n in range(count):
        path = f"/feed-{n}.xml"
        server.publish(path, [FeedItem(f"Story {n}", f"https://news.test/{n}", f"g{n}")])
        feed_id = await store.feeds.add(server.url(path), title="", site_url="", now_ms=now)
        for chat in CHATS:
            await store.chats.subscribe(chat, feed_id, thread_id=None, now_ms=now)
        ids.append(feed_id)
    return ids


def pipeline(store: Store, fetcher: Fetcher, settings: Settings, clock: FakeClock) -> FeedPipeline:
    return FeedPipeline(store, fetcher, settings, clock, make_router(KeywordIndex()), seed=3)


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        for _ in range(int(seconds * 100)):
            if condition():
                return
            await asyncio.sleep(0.01)


async def lease_of(store: Store, feed_id: int) -> tuple[str | None, int | None]:
    row = await store.db.fetchone(
        "SELECT lease_owner, lease_until FROM feeds WHERE id = ?", (feed_id,)
    )
    assert row is not None
    return row[0], row[1]


async def leased(store: Store) -> dict[int, str]:
    rows = await store.db.fetchall(
        "SELECT id, lease_owner FROM feeds WHERE lease_owner IS NOT NULL ORDER BY id"
    )
    return {row[0]: row[1] for row in rows}


# --- one instance (both backends) ------------------------------------------------------------


async def test_a_claim_leases_due_feeds_once_and_recording_hands_the_lease_back(
    store: Store, clock: FakeClock, server: WatchedServer
) -> None:
    now = clock.now_ms()
    ids = await add_feeds(store, server, 3, now)
    claimed = await store.feeds.claim_due("a", now_ms=now, lease_until=now + 60_000, limit=10)
    assert sorted(f.id for f in claimed) == ids
    assert {f.lease_owner for f in claimed} == {"a"}
    assert await lease_of(store, ids[0]) == ("a", now + 60_000)
    # Nobody else gets them while the lease runs, not even the same owner twice.
    assert await store.feeds.claim_due("b", now_ms=now + 1, lease_until=now + 9e4, limit=10) == []
    assert await store.feeds.claim_due("a", now_ms=now + 1, lease_until=now + 9e4, limit=10) == []

    update = FeedUpdate(now_ms=now, next_check_at=now + 300_000, lease_owner="a")
    assert await store.feeds.record_success(ids[0], update) is Written.DONE
    assert await lease_of(store, ids[0]) == (None, None)
    assert (await store.feeds.get(ids[0])).next_check_at == now + 300_000  # type: ignore[union-attr]

    # A limit is kept, most overdue first.
    await store.feeds.release("a")
    clock.advance(1)
    later = clock.now_ms()
    two = await store.feeds.claim_due("b", now_ms=later, lease_until=later + 1, limit=1)
    assert [f.id for f in two] == [ids[1]]


async def test_a_check_that_outlived_its_lease_writes_nothing_over_the_new_owner(
    store: Store, settings: Settings, clock: FakeClock, server: WatchedServer
) -> None:
    """Instance a claims the feed and stalls; its lease runs out; b takes the feed over and
    checks it. a's check then finishes: the feed row stays b's (schedule, validators,
    lease) and the story it found is recorded once, one alert per chat."""
    now = clock.now_ms()
    [feed_id] = await add_feeds(store, server, 1, now)
    async with Fetcher(settings.fetch) as fetcher:
        checker = pipeline(store, fetcher, settings, clock)
        prime = await store.feeds.get(feed_id)
        assert prime is not None
        await checker.check(prime)  # primed: the next story is news
        server.publish("/feed-0.xml", [FeedItem("Fresh", "https://news.test/fresh", "fresh")])
        clock.advance(301)
        now = clock.now_ms()
        [a_feed] = await store.feeds.claim_due("a", now_ms=now, lease_until=now + 1000, limit=5)
        clock.advance(2)  # a's lease ran out
        now = clock.now_ms()
        [b_feed] = await store.feeds.claim_due("b", now_ms=now, lease_until=now + 1e6, limit=5)
        assert b_feed.id == feed_id and b_feed.lease_owner == "b"

        late = await checker.check(a_feed)
        assert late is not None and late.lease_lost and late.queued == len(CHATS)
        assert await lease_of(store, feed_id) == ("b", now + 1_000_000)
        row = await store.feeds.get(feed_id)
        assert row is not None and row.next_check_at == b_feed.next_check_at

        on_time = await checker.check(b_feed)
        # Nothing new for b: a's check recorded the story and its alerts already.
        assert on_time is not None and (on_time.inserted, on_time.queued) == (0, 0)
        assert await lease_of(store, feed_id) == (None, None)
        row = await store.feeds.get(feed_id)
        assert row is not None and row.next_check_at > now

    stories = await store.db.fetchone("SELECT COUNT(*) FROM stories WHERE identity != ''")
    alerts = await store.db.fetchall(
        "SELECT chat_id, COUNT(*) FROM outbox WHERE kind = 'alert' GROUP BY chat_id"
    )
    assert stories is not None and stories[0] == 2  # the first story and the fresh one
    assert sorted(tuple(row) for row in alerts) == [(chat, 1) for chat in CHATS]


async def test_a_failure_recorded_after_the_lease_passed_on_is_not_written(
    store: Store, clock: FakeClock, server: WatchedServer
) -> None:
    from bot.errors import FailureKind, FeedFailure

    now = clock.now_ms()
    [feed_id] = await add_feeds(store, server, 1, now)
    await store.feeds.claim_due("a", now_ms=now, lease_until=now + 10, limit=1)
    await store.feeds.claim_due("b", now_ms=now + 20, lease_until=now + 1e6, limit=1)
    failure = FeedFailure(FailureKind.TIMEOUT)
    kwargs = {"now_ms": now + 30, "next_check_at": now + 99_000, "pause_after_ms": 10**9}
    await store.feeds.record_failure(feed_id, failure, lease_owner="a", **kwargs)
    await store.feeds.mark_gone(feed_id, now_ms=now + 30, lease_owner="a")
    row = await store.feeds.get(feed_id)
    assert row is not None and row.consecutive_failures == 0 and row.status == "active"
    await store.feeds.record_failure(feed_id, failure, lease_owner="b", **kwargs)
    row = await store.feeds.get(feed_id)
    assert row is not None and row.consecutive_failures == 1 and row.lease_owner is None


async def test_stop_hands_back_the_leases_of_checks_it_did_not_finish(
    store: Store, settings: Settings, clock: FakeClock, server: WatchedServer
) -> None:
    """One check runs (its host answers slowly), two wait for the one slot. stop() hands
    the waiting ones back at once, while the running one still has its grace, and the
    running one's lease when the grace cuts it short."""
    settings = replace(settings, poll=replace(settings.poll, concurrency=1))
    server.delay = 30.0
    ids = await add_feeds(store, server, 3, clock.now_ms())
    async with Fetcher(settings.fetch) as fetcher:
        poller = Poller(
            store, pipeline(store, fetcher, settings, clock), settings, clock, instance_id="a"
        )
        assert await poller.tick() == 3
        await eventually(lambda: sum(server.active.values()) >= 1)
        assert set((await leased(store)).values()) == {"a"} and len(await leased(store)) == 3
        stopping = asyncio.create_task(poller.stop(grace=2.0))
        for _ in range(1000):
            if len(await leased(store)) == 1:
                break
            await asyncio.sleep(0.01)
        assert len(await leased(store)) == 1
        assert not stopping.done()  # the running check still has its grace
        await stopping
    assert await leased(store) == {}
    # Handed back, the feeds are due for whoever claims next.
    now = clock.now_ms()
    again = await store.feeds.claim_due("b", now_ms=now, lease_until=now + 1, limit=10)
    assert sorted(f.id for f in again) == ids


# --- several instances on one PostgreSQL database ----------------------------------------------


@pytest.mark.postgresql_only
async def test_two_pollers_claiming_at_once_never_check_one_feed_twice(
    store: Store, second_store: Store, settings: Settings, clock: FakeClock, server: WatchedServer
) -> None:
    """Two instances (two stores, two instance ids) tick at the same instants over 120 feeds
    on one host that holds each answer a little: every feed is fetched exactly once per
    cycle, never by both at the same time, and both instances get a share of a backlog
    larger than one claim."""
    # 4 checks at once: an instance claims at most 4 × 16 = 64 feeds a tick, fewer than
    # the 120 due, so the second instance must get the rest (a backlog smaller than one
    # claim may all go to whoever ticks first).
    settings = replace(settings, poll=replace(settings.poll, concurrency=4, per_host_concurrency=4))
    server.delay = 0.05
    count = 120
    await add_feeds(store, server, count, clock.now_ms())
    async with Fetcher(settings.fetch) as fetcher_a, Fetcher(settings.fetch) as fetcher_b:
        pollers = [
            Poller(s, pipeline(s, f, settings, clock), settings, clock, instance_id=name)
            for s, f, name in ((store, fetcher_a, "a"), (second_store, fetcher_b, "b"))
        ]
        started = Counter[str]()
        for _cycle in range(2):
            # The first claims one after the other: a has room for 64 of the 120, so b must
            # find the rest (ticking at once, a loaded machine may delay b's first claim
            # until a has taken everything in later ticks: no share could be asserted).
            for poller in pollers:
                started[poller.instance_id] += await poller.tick()
            for _tick in range(3):  # then at once: ticks overlap the checks of the others
                counts = await asyncio.gather(*(p.tick() for p in pollers))
                started.update({p.instance_id: n for p, n in zip(pollers, counts, strict=True)})
                await asyncio.sleep(0.01)
            async with asyncio.timeout(60):
                await asyncio.gather(*(p.wait_idle() for p in pollers))
            clock.advance(3600)  # every feed due again
    assert max(server.peak.values()) == 1
    assert {server.hits(f"/feed-{n}.xml") for n in range(count)} == {2}
    assert started["a"] + started["b"] == 2 * count
    assert started["a"] > 0 and started["b"] > 0, started
    assert await leased(store) == {}


@pytest.mark.postgresql_only
async def test_claims_racing_in_many_transactions_hand_each_feed_to_one_instance(
    store: Store, second_store: Store, clock: FakeClock, server: WatchedServer
) -> None:
    """The claim alone, raced hard: 4 claimers (2 per store) take 10 feeds at a time until
    none is left. SKIP LOCKED lets them pass each other; no feed is handed out twice."""
    count = 300
    await add_feeds(store, server, count, clock.now_ms())
    now = clock.now_ms()
    taken: dict[str, list[int]] = {}

    async def claimer(s: Store, name: str) -> None:
        mine = taken.setdefault(name, [])
        while True:
            got = await s.feeds.claim_due(name, now_ms=now, lease_until=now + 1e6, limit=10)
            if not got:
                return
            mine += [f.id for f in got]

    await asyncio.gather(
        *(
            claimer(s, f"{s_name}{n}")
            for s_name, s in (("a", store), ("b", second_store))
            for n in range(2)
        )
    )
    every = [feed_id for ids in taken.values() for feed_id in ids]
    assert len(every) == len(set(every)) == count
    assert all(taken.values()), {name: len(ids) for name, ids in taken.items()}


@pytest.mark.postgresql_only
async def test_a_dead_instances_leases_are_taken_over_when_they_run_out(
    store: Store, second_store: Store, settings: Settings, clock: FakeClock, server: WatchedServer
) -> None:
    """Instance a claims every feed and dies (never records). b's ticks find nothing while
    the leases run; once they ran out, b checks every feed."""
    ids = await add_feeds(store, server, 5, clock.now_ms())
    async with Fetcher(settings.fetch) as fetcher:
        dead = Poller(
            store, pipeline(store, fetcher, settings, clock), settings, clock, instance_id="a"
        )
        now = clock.now_ms()
        await store.feeds.claim_due("a", now_ms=now, lease_until=now + dead.lease_ms, limit=9)
        b = Poller(
            second_store,
            pipeline(second_store, fetcher, settings, clock),
            settings,
            clock,
            instance_id="b",
        )
        assert await b.tick() == 0
        clock.advance(dead.lease_ms / 1000 - 1)
        assert await b.tick() == 0
        clock.advance(2)
        assert await b.tick() == len(ids)
        async with asyncio.timeout(30):
            await b.wait_idle()
    assert {server.hits(f"/feed-{n}.xml") for n in range(len(ids))} == {1}
    assert await leased(store) == {}
