"""Polling: which feed is checked when, and how many at once.

Each feed has its own next check time in the database. A tick (python-telegram-bot's
JobQueue runs it every second in the bot; `run_cycle` in tools) claims due feeds and starts
a check for each, bounded overall and per host, so one slow host never stalls the others.
The check itself, and the next check time it sets (bot/feeds/schedule.py), belong to
FeedPipeline.

The tick also keeps the pipeline's budget factor current (about once a minute, one query
reading every polled feed's rate): the factor at which all feeds together make as many
requests as if each were checked every poll.interval (bot/feeds/freshness.py).
Several instances may poll one PostgreSQL database: a tick takes its feeds with a lease
(FeedStore.claim_due), so each feed is checked by one instance at a time, and recording
the check hands the lease back. The lease lasts longer than the longest check (`lease_ms`);
an instance that dies leaves its leases to run out, and the others then take its feeds.
The in-memory set of checks in flight stays as this instance's own guard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.config import Settings
from bot.errors import DatabaseUnavailableError, FailureKind, FeedFailure
from bot.feeds.freshness import budget_factor
from bot.feeds.pipeline import FeedPipeline
from bot.store import Feed, Store
from bot.usecases.instances import process_instance

log = logging.getLogger(__name__)

# What a check may take after its fetch: parsing and summarizing a body of the largest size
# allowed (fetch.max_body_bytes, 5 MB: a few seconds on a busy core) and recording it (each
# statement is cut at the store's statement timeout, 30 s on PostgreSQL; a record takes
# milliseconds). With the fetch's own bound (fetch.total_timeout, 60 s) this is the longest
# a check runs, so a lease of that length is never outlived by a live instance's check but
# in a stall (a hung event loop, a suspended VM); such a check writes nothing over the
# feed's new owner (bot/store/feeds.py).
CHECK_AFTER_FETCH_SECONDS = 60.0
# A claimed feed may wait for its slots (hosts and overall bounds) before its check starts:
# its lease covers that wait too, at least QUEUE_SECONDS, more when this instance's recent
# rate says the claim will take longer to work through (a 10,000-feed backlog on a loaded
# machine), at most MAX_QUEUE_SECONDS; a check that waited longer still renews its lease as
# it starts. (A killed instance's leases do not wait for this: the next instance's
# heartbeat finds it dead and hands them back, bot/store/instances.py.)
QUEUE_SECONDS = 60.0
MAX_QUEUE_SECONDS = 900.0
RATE_WINDOW_SECONDS = 60.0  # the checks finished in this window give the rate


def lease_ms(settings: Settings) -> int:
    """How long one check may last: the fetch's bound, then parse, summarize and record."""
    return int((settings.fetch.total_timeout + CHECK_AFTER_FETCH_SECONDS) * 1000)


class Poller:
    def __init__(
        self,
        store: Store,
        pipeline: FeedPipeline,
        settings: Settings,
        clock: Clock,
        *,
        instance_id: str | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        # The owner of this poller's leases: this process's instance id, unless given.
        self.instance_id = instance_id or process_instance().id
        self.lease_ms = lease_ms(settings)
        self._all = asyncio.Semaphore(settings.poll.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # Feeds whose check holds its slots and runs; the rest of _in_flight still waits.
        self._running: set[int] = set()
        self._stopping = False
        # Checks that could not be recorded (the database did not answer) and were handed
        # back: their feeds are fetched again by whoever claims them next (benchmarks).
        self.handed_back = 0
        # When recent checks finished (monotonic seconds): this instance's rate.
        self._finished: deque[float] = deque(maxlen=settings.poll.concurrency * 64)

    async def tick(self) -> int:
        """Claim due feeds and start their checks. Returns how many were started."""
        if self._stopping:
            return 0
        now = self.clock.now_ms()
        if self.pipeline.budget.stale(now):
            await self.refresh_budget(now)
        # Checks wait on the concurrency bounds, so starting more than run at once is
        # cheap; a tick that started only `concurrency` would stretch a cycle of many due
        # feeds over many ticks. Yet an instance claims no more than it holds room for, so
        # a backlog is shared out among the instances instead of leased to the first.
        room = self.settings.poll.concurrency * 16 - len(self._in_flight)
        if room <= 0:
            return 0
        lease_until = now + self.lease_ms + int(self._queue_seconds(room) * 1000)
        due = await self.store.feeds.claim_due(
            self.instance_id, now_ms=now, lease_until=lease_until, limit=room
        )
        if self._stopping:  # stop() came while the claim ran: start nothing, hand them back
            await self._release([feed.id for feed in due])
            return 0
        started = 0
        for feed in due:
            if feed.id in self._in_flight:
                # Its check ended while the claim ran (its lease cleared, then claimed
                # again): one check of a feed at a time here too; the next tick takes it.
                await self._release([feed.id])
                continue
            task = asyncio.create_task(
                self._check_bounded(feed, lease_until), name=f"check-feed-{feed.id}"
            )
            self._in_flight[feed.id] = task
            task.add_done_callback(lambda _t, fid=feed.id: self._in_flight.pop(fid, None))
            started += 1
        return started

    async def refresh_budget(self, now_ms: int) -> float:
        """Recompute the budget factor over every polled feed's rate, and keep it for the
        checks that follow. A failure keeps the last factor (tried again in a minute)."""
        budget = self.pipeline.budget
        budget.computed_at_ms = now_ms
        try:
            rates = await self.store.feeds.polled_rates(now_ms)
        except DatabaseUnavailableError:
            return budget.factor  # the due query says so too; the next minute tries again
        previous = budget.factor
        loop = asyncio.get_running_loop()
        # 10-20 ms for 10,000 feeds (freshness.py): off the event loop.
        budget.factor = await loop.run_in_executor(
            self.pipeline.executor,
            lambda: budget_factor(rates, self.settings, now_ms, previous),
        )
        log.debug("event=poll_budget feeds=%d factor=%.4g", len(rates), budget.factor)
        return budget.factor

    def _queue_seconds(self, claiming: int) -> float:
        """How long the last of `claiming` more feeds may wait for its slots, at the rate
        this instance has been checking (QUEUE_SECONDS while it has no rate yet)."""
        now = time.monotonic()
        recent = [t for t in self._finished if now - t <= RATE_WINDOW_SECONDS]
        if len(recent) < 2:
            return QUEUE_SECONDS
        rate = len(recent) / max(now - recent[0], 1.0)
        wait = (len(self._in_flight) + claiming) / rate
        return min(max(QUEUE_SECONDS, 2 * wait), MAX_QUEUE_SECONDS)

    async def run_cycle(self) -> None:
        """Check every due feed once and wait for all of them (benchmarks, tools)."""
        await self.tick()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Start nothing new; give checks in flight `grace` seconds, then cancel them, and
        hand back the leases of every check that did not finish.

        Checks still waiting for a slot are cancelled at once and their leases handed back
        at once, so another instance checks those feeds while this one finishes its own:
        they have not started, and letting them take the slots freed during the grace would
        start new fetches while shutting down. A cancelled check loses nothing: its
        transaction never committed, and the feed is still due.
        """
        self._stopping = True
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        running, waiting = [], []
        for feed_id, task in list(self._in_flight.items()):
            if feed_id in self._running:
                running.append(task)
            else:
                task.cancel()
                waiting.append(feed_id)
        await self._release(waiting)
        if running:
            _done, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # What the grace cut short: every lease still this instance's.
        await self._release(None)

    async def _release(self, feed_ids: list[int] | None) -> None:
        """Hand leases back (all of this instance's when None); a database that cannot be
        reached now leaves them to run out."""
        if feed_ids == []:
            return
        try:
            await self.store.feeds.release(self.instance_id, feed_ids)
        except DatabaseUnavailableError:
            pass

    async def _check_bounded(self, feed: Feed, lease_until: int) -> None:
        host = (urlsplit(feed.url).hostname or "").lower()
        per_host = self._hosts.setdefault(
            host, asyncio.Semaphore(self.settings.poll.per_host_concurrency)
        )
        # The host's slot first, then a global one: a check waiting for its host (a slow
        # self-hosted RSSHub serving a hundred feeds) must not hold a global slot meanwhile,
        # or that host's queue fills them all and feeds on other hosts wait for nothing.
        # Whoever waits for a global slot already holds its host's, so it runs as soon as
        # it gets one; both bounds stay exact, and no more than per_host_concurrency checks
        # of any one host queue for the global slots, so hosts share them in turn.
        async with per_host, self._all:
            if self._stopping:  # stop() came while this check waited: start nothing
                return
            self._running.add(feed.id)
            try:
                if await self._lease_holds(feed, lease_until):
                    await self.pipeline.check(feed)
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailableError:
                # Nothing of the check was kept (its transaction never committed) and the
                # feed is still due: handed back (if the database answers again by then) for
                # the next tick after the database is back, else its lease runs out.
                self.handed_back += 1
                await self._release([feed.id])
            except Exception:  # a bug in one check must not stop polling
                log.exception("event=check_crashed feed=%d url=%s", feed.id, feed.url)
                await self.pipeline.record_failure(feed, FeedFailure(FailureKind.INTERNAL))
            finally:
                self._running.discard(feed.id)
                self._finished.append(time.monotonic())

    async def _lease_holds(self, feed: Feed, lease_until: int) -> bool:
        """Before a check that waited long for its slots starts: renew its lease, so the
        whole check runs under it. False when the lease ran out meanwhile and another
        instance took the feed (this one then leaves it)."""
        now = self.clock.now_ms()
        if lease_until - now >= self.lease_ms:
            return True
        renewed = await self.store.feeds.renew_lease(
            feed.id, self.instance_id, lease_until=now + self.lease_ms
        )
        if not renewed:
            log.info("event=lease_taken_over feed=%d owner=%s", feed.id, self.instance_id)
        return renewed
