"""Polling: which feed is checked when, how many at once, and what a failure costs.

Each feed has its own next check time in the database. A tick (python-telegram-bot's
JobQueue runs it every second in the bot; `run_forever` in tools) starts a check for every
due feed, bounded overall and per host, so one slow host never stalls the others. Success
schedules the next check at the interval (slowed, within bounds, by the feed's own
<ttl>/max-age hint) with jitter; failures back off exponentially up to a cap, and a feed
failing for days is paused and its subscribers told.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.config import Settings
from bot.feeds.check import DAY_MS, FeedChecker, describe
from bot.feeds.fetch import FetchError, FetchErrorKind
from bot.store import CheckOutcome, Feed, Store

log = logging.getLogger(__name__)

# Called when a feed is paused (True) or answers again after a pause (False).
FeedHealthListener = Callable[[Feed, bool], Awaitable[None]]
# Called after new alerts were queued, so the sender wakes at once.
QueuedListener = Callable[[], None]


@dataclass
class PollStats:
    checks: int = 0
    not_modified: int = 0
    failures: int = 0
    new_stories: int = 0
    queued: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


def success_delay(settings: Settings, hint_seconds: int | None, rng: random.Random) -> float:
    """Seconds until the next check of a healthy feed."""
    poll = settings.poll
    base = float(poll.interval)
    if hint_seconds:
        # A hint may slow checks (a feed that says ttl=60 minutes), never speed them up.
        base = min(max(base, float(hint_seconds)), float(max(poll.hint_max, poll.interval)))
    return base * (1 + rng.uniform(-poll.jitter, poll.jitter))


def failure_delay(
    settings: Settings, failures: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds until the next try after `failures` consecutive failures (1 = first)."""
    poll = settings.poll
    delay = min(poll.interval * 2 ** min(failures, 30), poll.backoff_max)
    delay *= 1 + rng.uniform(0, poll.jitter)  # only later, never earlier than the backoff
    if retry_after:
        delay = max(delay, min(retry_after, poll.backoff_max))
    return min(delay, poll.backoff_max * (1 + poll.jitter))


class Poller:
    def __init__(
        self,
        store: Store,
        checker: FeedChecker,
        settings: Settings,
        clock: Clock,
        *,
        on_health: FeedHealthListener | None = None,
        on_queued: QueuedListener | None = None,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.checker = checker
        self.settings = settings
        self.clock = clock
        self.on_health = on_health
        self.on_queued = on_queued
        self.rng = random.Random(seed)
        self.stats = PollStats()
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
                await self.check(feed)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one check must not stop polling
                log.exception("event=check_crashed feed=%d url=%s", feed.id, feed.url)
                await self._record_failure(feed, "internal error", None)
            finally:
                self._running.discard(feed.id)

    async def check(self, feed: Feed) -> CheckOutcome | None:
        """Check one feed now and record the result (success or failure)."""
        self.stats.checks += 1
        checker = self.checker
        try:
            result = await checker.fetch(feed)
            parsed = None if result.not_modified else await checker.parse(result, feed.id)
        except FetchError as error:
            if error.kind is FetchErrorKind.GONE:
                await self.store.feeds.mark_gone(feed.id, now_ms=self.clock.now_ms())
                log.warning("event=feed_gone feed=%d url=%s", feed.id, feed.url)
                if self.on_health:
                    await self.on_health(feed, True)
                return None
            await self._record_failure(feed, describe(error), error.retry_after)
            return None
        except Exception as error:  # NotAFeedError, or a parser crash on hostile bytes
            await self._record_failure(feed, describe(error), None)
            return None

        if result.permanent_redirect and result.permanent_redirect != feed.url:
            moved = await self.store.feeds.change_url(feed.id, result.permanent_redirect)
            log.info(
                "event=feed_moved feed=%d from=%s to=%s applied=%s",
                feed.id,
                feed.url,
                result.permanent_redirect,
                moved,
            )
        hint = max(
            filter(None, [result.max_age, parsed.feed.ttl_seconds if parsed else None]),
            default=None,
        )
        delay = success_delay(self.settings, hint or feed.hint_seconds, self.rng)
        outcome = await checker.record(
            feed, result, parsed, self.clock.now_ms() + int(delay * 1000), hint
        )
        if parsed is None:
            self.stats.not_modified += 1
        if outcome is not None:
            self.stats.new_stories += outcome.fresh
            self.stats.queued += outcome.queued
            if outcome.fresh:
                log.info(
                    "event=feed_checked feed=%d entries=%d new=%d queued=%d dup_skipped=%d",
                    feed.id,
                    outcome.entries,
                    outcome.fresh,
                    outcome.queued,
                    outcome.duplicates_skipped,
                )
            if outcome.queued and self.on_queued:
                self.on_queued()
            if outcome.recovered and self.on_health:
                await self.on_health(feed, False)
        return outcome

    async def _record_failure(self, feed: Feed, reason: str, retry_after: float | None) -> None:
        self.stats.failures += 1
        self.stats.by_error[reason] = self.stats.by_error.get(reason, 0) + 1
        now = self.clock.now_ms()
        delay = failure_delay(self.settings, feed.consecutive_failures + 1, retry_after, self.rng)
        paused = await self.store.feeds.record_failure(
            feed.id,
            error=reason,
            now_ms=now,
            next_check_at=now + int(delay * 1000),
            pause_after_ms=int(self.settings.poll.pause_after_days * DAY_MS),
        )
        log.warning(
            "event=feed_failed feed=%d url=%s error=%r failures=%d retry_in=%.0fs",
            feed.id,
            feed.url,
            reason,
            feed.consecutive_failures + 1,
            delay,
        )
        if paused:
            log.warning("event=feed_paused feed=%d url=%s", feed.id, feed.url)
            if self.on_health:
                await self.on_health(feed, True)
