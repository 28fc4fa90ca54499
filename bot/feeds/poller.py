"""Polling: which feed is checked when, and how many at once.

Each feed has its own next check time in the database. A tick (python-telegram-bot's
JobQueue runs it every second in the bot; `run_cycle` in tools) starts a check for every
due feed, bounded overall and per host, so one slow host never stalls the others. The
check itself, and the next check time it sets (bot/feeds/schedule.py), belong to
FeedPipeline.

The tick also keeps the pipeline's budget factor current (about once a minute, one query
reading every polled feed's rate): the factor at which all feeds together make as many
requests as if each were checked every poll.interval (bot/feeds/freshness.py).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.config import Settings
from bot.errors import DatabaseUnavailableError, FailureKind, FeedFailure
from bot.feeds.freshness import budget_factor
from bot.feeds.pipeline import FeedPipeline
from bot.store import Feed, Store

log = logging.getLogger(__name__)


class Poller:
    def __init__(
        self, store: Store, pipeline: FeedPipeline, settings: Settings, clock: Clock
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        self._all = asyncio.Semaphore(settings.poll.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # Feeds whose check holds its slots and runs; the rest of _in_flight still waits.
        self._running: set[int] = set()
        self._stopping = False

    async def tick(self) -> int:
        """Start checks for every due feed not already being checked. Returns how many."""
        if self._stopping:
            return 0
        now = self.clock.now_ms()
        if self.pipeline.budget.stale(now):
            await self.refresh_budget(now)
        # Checks wait on the concurrency bounds, so starting more than run at once is
        # cheap; a tick that started only `concurrency` would stretch a cycle of many due
        # feeds over many ticks.
        limit = self.settings.poll.concurrency * 16
        # A check that ends while the queries below run has its new due time written but
        # may still be in the due list read before it: skip what was in flight before.
        busy = set(self._in_flight)
        due = await self.store.feeds.due(now, limit)
        due += await self.store.feeds.paused_due_for_probe(now, limit)
        if self._stopping:  # stop() came while the queries ran: start nothing
            return 0
        started = 0
        for feed in due:
            if feed.id in busy or feed.id in self._in_flight:
                continue
            task = asyncio.create_task(self._check_bounded(feed), name=f"check-feed-{feed.id}")
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

    async def run_cycle(self) -> None:
        """Check every due feed once and wait for all of them (benchmarks, tools)."""
        await self.tick()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Start nothing new; give checks in flight `grace` seconds, then cancel them.

        Checks still waiting for a slot are cancelled at once: they have not started, and
        letting them take the slots freed during the grace would start new fetches while
        shutting down. A cancelled check loses nothing: its transaction never committed,
        and the feed is still due, so the next start checks it again.
        """
        self._stopping = True
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        running = []
        for feed_id, task in list(self._in_flight.items()):
            if feed_id in self._running:
                running.append(task)
            else:
                task.cancel()
        if running:
            _done, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _check_bounded(self, feed: Feed) -> None:
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
                await self.pipeline.check(feed)
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailableError:
                # Nothing of the check was kept (its transaction never committed) and the
                # feed is still due: the next tick after the database is back checks it.
                pass
            except Exception:  # a bug in one check must not stop polling
                log.exception("event=check_crashed feed=%d url=%s", feed.id, feed.url)
                await self.pipeline.record_failure(feed, FeedFailure(FailureKind.INTERNAL))
            finally:
                self._running.discard(feed.id)
