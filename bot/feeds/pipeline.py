"""One feed check, end to end: fetch → parse → normalize → summarize → record → wake.

`FeedPipeline` is the one unit that checks a feed now. The poller calls `check` for a
feed that fell due; /subscribe and /import call `check_new` for an address someone typed,
which also creates the feed. Both sequence the same stages (miniflux's reader/handler
does the same with RefreshFeed and CreateFeed):

    Fetcher.fetch → parse_and_normalize (worker thread) → summarize the unknown entries
    (worker thread) → record_check in one CheckUnit → wake the sender

The check that records the stories also updates the feed's publishing rate and schedules
its next check from it (bot/feeds/schedule.py, at the budget factor in `budget`, which the
poller keeps current), in the same transaction.

A WebSub hub's push enters at `check_delivered`, after the fetch: the body it carries goes
through the same parse → summarize → record_check as a fetched one.

CPU-bound stages run on a worker thread so the event loop keeps answering commands and
sending messages while a large feed is parsed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from bot.clock import DAY_MS, HOUR_MS, Clock
from bot.config import Settings
from bot.errors import FailureKind, FeedError, FeedFailure, NotAFeedError
from bot.feeds.discover import DEFAULT_BUDGET, discover_feeds
from bot.feeds.entry import normalize_entry
from bot.feeds.fetch import Fetcher, FetchResult
from bot.feeds.freshness import FeedRate
from bot.feeds.parse import FeedDocument, parse_feed
from bot.feeds.record import CheckReport, DedupeRules, NextCheck, record_check
from bot.feeds.schedule import PollBudget, failure_delay, safety_net_delay, success_delay
from bot.metrics import Metrics
from bot.models import Entry
from bot.routing import Router
from bot.store import Feed, FeedUpdate, Store, Written
from bot.summary import summarize

log = logging.getLogger(__name__)

# Told when a feed is paused or gone (True) or answers again after a pause (False).
FeedHealthListener = Callable[[Feed, bool], Awaitable[None]]
# Told after alerts were queued, so the sender wakes at once.
QueuedListener = Callable[[], None]
# Awaited by check_new between the check and its first write (an import keeps file order).
BeforeWrite = Callable[[], Awaitable[None]]
# Told of every fetched and parsed document after it was recorded (WebSub discovery reads
# its hub links); 304s and identical bodies are not told.
FetchedListener = Callable[[Feed, FetchResult, FeedDocument], Awaitable[None]]


@dataclass
class CheckStats:
    """Counts since start, for benchmarks, tests and metrics."""

    checks: int = 0
    not_modified: int = 0
    failures: int = 0
    new_stories: int = 0
    queued: int = 0
    deliveries: int = 0  # bodies pushed by WebSub hubs (check_delivered)
    by_error: dict[str, int] = field(default_factory=dict)  # failure code → count


@dataclass(frozen=True, slots=True)
class NormalizedFeed:
    """A parsed document and its entries, normalized."""

    document: FeedDocument
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class NewFeedCheck:
    """A feed checked for someone who typed its address: stored, and its entries seen."""

    feed: Feed
    title: str
    url: str  # where it lives now (after permanent redirects)
    entries: int  # entries in the feed now (recorded as seen, never sent to a new subscriber)
    page_url: str | None = None  # the web page whose address led to this feed, if one did


def parse_and_normalize(
    body: bytes, *, url: str, content_type: str | None, feed_id: int, now_ms: int
) -> NormalizedFeed:
    """Pure and CPU-bound: run it on a worker thread.

    The entries come out one per identity: when a document lists two items under one guid,
    the first listed is the story and the other is dropped here, before anything is made
    of it, so that an alert's title, link and summary all come from the same item (the
    summaries are keyed by identity).
    """
    document = parse_feed(body, url=url, content_type=content_type)
    entries: dict[str, Entry] = {}
    for raw in document.entries:
        try:
            entry = normalize_entry(raw, feed_id=feed_id, feed_url=url, now_ms=now_ms)
        except Exception:  # one odd entry must not cost the feed's other stories
            log.exception("event=entry_skipped feed=%d", feed_id)
            continue
        entries.setdefault(entry.identity, entry)
    return NormalizedFeed(document, list(entries.values()))


def summarize_all(entries: Sequence[Entry], settings: Settings) -> dict[str, str]:
    limits = settings.summary
    return {
        e.identity: summarize(
            e.lead_html, max_chars=limits.max_chars, max_chars_cjk=limits.max_chars_cjk
        )
        for e in entries
    }


def fetched_update(update: FeedUpdate, result: FetchResult, document: FeedDocument) -> FeedUpdate:
    """A fetched body's feed row: its validators for the next conditional GET, and the
    feed's title and site as it names them now."""
    return replace(
        update,
        etag=result.etag,
        last_modified=result.last_modified,
        body_hash=result.body_hash,
        title=document.title or None,
        site_url=document.site_url or None,
        new_body=True,
    )


def dedupe_rules(settings: Settings) -> DedupeRules:
    return DedupeRules(
        archive_window_ms=int(settings.dedupe.archive_window_days * DAY_MS),
        duplicate_window_ms=int(settings.delivery.duplicate_title_hours * HOUR_MS),
    )


class FeedPipeline:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        settings: Settings,
        clock: Clock,
        router: Router,
        executor: ThreadPoolExecutor | None = None,
        *,
        on_queued: QueuedListener | None = None,
        on_health: FeedHealthListener | None = None,
        on_fetched: FetchedListener | None = None,
        seed: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        self.clock = clock
        self.router = router
        self.executor = executor
        self.on_queued = on_queued
        self.on_health = on_health
        self.on_fetched = on_fetched
        self.rules = dedupe_rules(settings)
        self.discovery_budget = DEFAULT_BUDGET  # finding a web page's feed (tests lower it)
        self.rng = random.Random(seed)
        self.stats = CheckStats()
        self.budget = PollBudget()  # kept current by the poller (Poller.refresh_budget)
        self.metrics = metrics or Metrics()

    # --- the two use cases ---------------------------------------------------------------

    async def check(self, feed: Feed) -> CheckReport | None:
        """Check a stored feed now and record the result, success or failure.

        Returns what the check found; None when it failed or the feed had not changed.
        """
        self.stats.checks += 1
        self.metrics.feed_checks.inc()
        try:
            result = await self.fetcher.fetch(
                feed.url, etag=feed.etag, last_modified=feed.last_modified, body_hash=feed.body_hash
            )
            content = None if result.not_modified else await self._parse_fetched(result, feed.id)
        except FeedError as error:
            await self.record_failure(feed, error.failure, error.retry_after)
            return None
        except Exception as error:  # a parser crash on hostile bytes: the feed's fault
            await self.record_failure(
                feed, FeedFailure(FailureKind.INTERNAL, detail=type(error).__name__)
            )
            return None
        await self._follow_permanent_redirect(feed, result)
        hint = max(
            filter(None, [result.max_age, content.document.ttl_seconds if content else None]),
            default=None,
        )
        report = await self._record(
            feed, result, content, hint or feed.hint_seconds, hint, lease_owner=feed.lease_owner
        )
        if content is None:
            self.stats.not_modified += 1
        else:
            await self._tell_fetched(feed, result, content.document)
        self._count(feed, report, "poll")
        return report

    async def check_delivered(
        self, feed: Feed, body: bytes, content_type: str | None
    ) -> CheckReport:
        """Record a body that a WebSub hub pushed for `feed`.

        The same stages as `check` after its fetch (parse and normalize on a worker thread,
        summarize the unknown entries, `record_check` in one CheckUnit, wake the sender), so
        a pushed story meets the same dedupe, archive rule and outbox as a polled one. The
        feed's fetch state (validators, next check, failures) belongs to its polling and is
        left as it was. Raises FeedError (NotAFeedError) when the body is not a feed.
        """
        self.stats.deliveries += 1
        content = await self._parse(body, url=feed.url, content_type=content_type, feed_id=feed.id)
        update = FeedUpdate(
            now_ms=self.clock.now_ms(), next_check_at=feed.next_check_at, fetched=False
        )
        report = await self._record_entries(feed, content, update)
        await self._wake(feed, report)
        self._count(feed, report, "push")
        return report

    async def _follow_permanent_redirect(self, feed: Feed, result: FetchResult) -> None:
        if result.permanent_redirect and result.permanent_redirect != feed.url:
            moved = await self.store.feeds.change_url(feed.id, result.permanent_redirect)
            log.info(
                "event=feed_moved feed=%d from=%s to=%s applied=%s",
                feed.id,
                feed.url,
                result.permanent_redirect,
                moved,
            )

    async def _tell_fetched(self, feed: Feed, result: FetchResult, document: FeedDocument) -> None:
        """Hand a fetched document to on_fetched (WebSub discovery); its failure is not the
        check's: the check is recorded already and polling goes on."""
        if self.on_fetched is None:
            return
        try:
            await self.on_fetched(feed, result, document)
        except Exception:
            log.exception("event=on_fetched_failed feed=%d", feed.id)

    def _count(self, feed: Feed, report: CheckReport | None, source: str) -> None:
        if report is None:
            return
        self.stats.new_stories += report.fresh
        self.stats.queued += report.queued
        if report.fresh:
            log.info(
                "event=feed_checked feed=%d source=%s entries=%d new=%d queued=%d dup_skipped=%d",
                feed.id,
                source,
                report.entries,
                report.fresh,
                report.queued,
                report.duplicates_skipped,
            )

    async def check_new(
        self, url: str, *, before_write: BeforeWrite | None = None, discover: bool = True
    ) -> NewFeedCheck:
        """Check an address someone typed; store the feed (once) and record its entries.

        The entries in the feed now are recorded as seen: for a feed new to the bot this
        first check primes it; for a feed others follow, any story this check finds new
        goes to them. Raises FeedError when the address gives no usable feed.

        An address that gives a web page (with `discover`) leads to the page's feed
        (bot/feeds/discover.py): the one feed found is checked as if typed; several raise
        SeveralFeedsError (someone must choose), a failed feed link FeedLinkError.
        """
        result = await self.fetcher.fetch(url)
        if result.body is None:  # cannot happen without validators; be safe
            raise NotAFeedError("empty")
        existing = await self._stored_feed(url, result)
        try:
            content = await self._parse_fetched(result, existing.id if existing else 0)
        except NotAFeedError as error:
            if not discover or error.failure.what != "html":
                raise
            return await self._check_found(url, result, before_write)
        return await self._add_checked(url, result, existing, content, before_write)

    async def _check_found(
        self, page_url: str, page: FetchResult, before_write: BeforeWrite | None
    ) -> NewFeedCheck:
        """The feed a web page leads to, checked with the bytes its search fetched (the
        page itself is not fetched again, nor is the feed)."""
        discovery = await discover_feeds(
            self.fetcher, page, executor=self.executor, budget=self.discovery_budget
        )
        found = discovery.only_feed()
        existing = await self._stored_feed(found.url, found.result)
        content = await self._parse_fetched(found.result, existing.id if existing else 0)
        checked = await self._add_checked(found.url, found.result, existing, content, before_write)
        return replace(checked, page_url=page_url)

    async def _stored_feed(self, url: str, result: FetchResult) -> Feed | None:
        """The feed already stored at the address asked for, or where it moved for good."""
        existing = await self.store.feeds.by_url(url)
        final_url = result.permanent_redirect or url
        if existing is None and final_url != url:
            existing = await self.store.feeds.by_url(final_url)
        return existing

    async def _add_checked(
        self,
        url: str,
        result: FetchResult,
        existing: Feed | None,
        content: NormalizedFeed,
        before_write: BeforeWrite | None,
    ) -> NewFeedCheck:
        """Store a feed checked for someone (unless stored already) and record its entries."""
        if before_write is not None:
            await before_write()
        now = self.clock.now_ms()
        document = content.document
        final_url = result.permanent_redirect or url
        if existing is None:
            feed_id = await self.store.feeds.add(
                final_url, title=document.title, site_url=document.site_url, now_ms=now
            )
            content = replace(
                content, entries=[replace(e, feed_id=feed_id) for e in content.entries]
            )
        else:
            feed_id = existing.id
        feed = await self.store.feeds.get(feed_id)
        assert feed is not None
        if feed.status != "active":
            await self.store.feeds.resume(feed_id, now_ms=now)
        await self._record(feed, result, content, document.ttl_seconds, document.ttl_seconds)
        await self._tell_fetched(feed, result, document)
        title = document.title or feed.title or final_url
        return NewFeedCheck(feed, title, final_url, len(content.entries))

    # --- stages ------------------------------------------------------------------------

    async def _parse_fetched(self, result: FetchResult, feed_id: int) -> NormalizedFeed:
        return await self._parse(
            result.body or b"", url=result.url, content_type=result.content_type, feed_id=feed_id
        )

    async def _parse(
        self, body: bytes, *, url: str, content_type: str | None, feed_id: int
    ) -> NormalizedFeed:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor,
            lambda: parse_and_normalize(
                body,
                url=url,
                content_type=content_type,
                feed_id=feed_id,
                now_ms=self.clock.now_ms(),
            ),
        )

    async def _record(
        self,
        feed: Feed,
        result: FetchResult,
        content: NormalizedFeed | None,
        schedule_hint: int | None,
        hint_seconds: int | None,
        *,
        lease_owner: str | None = None,
    ) -> CheckReport | None:
        """Write what one successful fetch found, then wake whoever must act on it. A polled
        feed's check writes under its lease (`lease_owner`, bot/store/feeds.py)."""
        now = self.clock.now_ms()

        def next_check(rate: FeedRate) -> int:
            return now + int(self._next_check_delay(feed, rate, now, schedule_hint) * 1000)

        if content is None:
            # Nothing new (a 304 or the same body): the rate stands as the feed row has it.
            update = FeedUpdate(
                now_ms=now,
                next_check_at=next_check(feed.rate or FeedRate.new(now)),
                hint_seconds=hint_seconds,
                lease_owner=lease_owner,
            )
            written = await self.store.feeds.record_success(feed.id, update)
            recovered = written is Written.RECOVERED
            report = CheckReport(0, 0, 0, 0, 0, recovered) if recovered else None
            lease_lost = written is Written.NOT_OWNER
        else:
            update = FeedUpdate(
                now_ms=now, next_check_at=now, hint_seconds=hint_seconds, lease_owner=lease_owner
            )
            update = fetched_update(update, result, content.document)
            report = await self._record_entries(feed, content, update, next_check)
            lease_lost = report.lease_lost
        if lease_lost:
            log.warning(
                "event=lease_lost feed=%d owner=%s action=%r",
                feed.id,
                lease_owner,
                "another instance holds the feed: its state kept, this check's stories kept once",
            )
        if report is not None:
            await self._wake(feed, report)
        return report

    async def _wake(self, feed: Feed, report: CheckReport) -> None:
        """Tell whoever must act on what was recorded: the sender of queued alerts, the
        subscribers of a feed that answers again."""
        if report.queued and self.on_queued:
            self.on_queued()
        if report.recovered and self.on_health:
            await self.on_health(feed, False)

    def _next_check_delay(
        self, feed: Feed, rate: FeedRate, now_ms: int, schedule_hint: int | None
    ) -> float:
        """Seconds to the feed's next check: its adaptive interval (the hint a floor), or
        the slow safety net when a WebSub hub pushes its stories."""
        delay = success_delay(
            rate, self.budget.factor, self.settings, now_ms, schedule_hint, self.rng
        )
        return safety_net_delay(delay, pushed=feed.hub_push, settings=self.settings, rng=self.rng)

    async def _record_entries(
        self,
        feed: Feed,
        content: NormalizedFeed,
        update: FeedUpdate,
        next_check: NextCheck | None = None,
    ) -> CheckReport:
        """Summarize the entries the feed has not seen, then record them all and queue the
        alerts they owe in one CheckUnit (polled and pushed bodies alike)."""
        entries = content.entries
        known = await self.store.stories.known_identities(feed.id, [e.identity for e in entries])
        unknown = [e for e in entries if e.identity not in known]
        loop = asyncio.get_running_loop()
        summaries = (
            await loop.run_in_executor(self.executor, summarize_all, unknown, self.settings)
            if unknown
            else {}
        )
        async with self.store.stories.check_unit(feed.id) as unit:
            report = await record_check(
                unit, entries, summaries, update, self.rules, self.router, next_check
            )
        # Counted once committed: polled, pushed and first checks of a typed address alike.
        self.metrics.stories_found.inc(report.fresh)
        self.metrics.alerts_queued.inc(report.queued)
        return report

    async def record_failure(
        self, feed: Feed, failure: FeedFailure, retry_after: float | None = None
    ) -> None:
        """Record a failed check: back off, and pause the feed when it kept failing."""
        self.stats.failures += 1
        self.stats.by_error[failure.code] = self.stats.by_error.get(failure.code, 0) + 1
        self.metrics.feed_failed(failure.kind)
        now = self.clock.now_ms()
        if failure.kind is FailureKind.GONE:
            await self.store.feeds.mark_gone(feed.id, now_ms=now, lease_owner=feed.lease_owner)
            log.warning("event=feed_gone feed=%d url=%s", feed.id, feed.url)
            if self.on_health:
                await self.on_health(feed, True)
            return
        failures = feed.consecutive_failures + 1
        delay = failure_delay(self.settings.poll, failures, retry_after, self.rng)
        paused = await self.store.feeds.record_failure(
            feed.id,
            failure,
            now_ms=now,
            next_check_at=now + int(delay * 1000),
            pause_after_ms=int(self.settings.poll.pause_after_days * DAY_MS),
            lease_owner=feed.lease_owner,
        )
        log.warning(
            "event=feed_failed feed=%d url=%s error=%s failures=%d retry_in=%.0fs",
            feed.id,
            feed.url,
            failure.code,
            failures,
            delay,
        )
        if paused:
            log.warning("event=feed_paused feed=%d url=%s", feed.id, feed.url)
            if self.on_health:
                await self.on_health(feed, True)
