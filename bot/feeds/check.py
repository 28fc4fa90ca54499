"""One feed check: fetch → parse → normalize → summarize → dedupe, route and queue alerts.

CPU-bound stages (feedparser, summaries) run on a worker thread so the event loop keeps
answering commands and sending messages while a large feed is parsed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.feeds.entry import normalize_entry
from bot.feeds.fetch import Fetcher, FetchError, FetchErrorKind, FetchResult
from bot.feeds.parse import NotAFeedError, ParsedFeed, parse_feed
from bot.models import Entry
from bot.store import CheckOutcome, Feed, FeedCheck, Store
from bot.store.stories import Router
from bot.summary import summarize

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Parsed:
    feed: ParsedFeed
    entries: list[Entry]


def parse_and_normalize(
    body: bytes, *, url: str, content_type: str | None, feed_id: int, now_ms: int
) -> Parsed:
    """Pure and CPU-bound: run it on a worker thread.

    The entries come out one per identity: when a document lists two items under one guid,
    the first listed is the story and the other is dropped here, before anything is made
    of it, so that an alert's title, link and summary all come from the same item (the
    summaries are keyed by identity).
    """
    parsed = parse_feed(body, url=url, content_type=content_type)
    entries: dict[str, Entry] = {}
    for raw in parsed.entries:
        try:
            entry = normalize_entry(raw, feed_id=feed_id, feed_url=url, now_ms=now_ms)
        except Exception:  # one odd entry must not cost the feed's other stories
            log.exception("event=entry_skipped feed=%d", feed_id)
            continue
        entries.setdefault(entry.identity, entry)
    return Parsed(parsed, list(entries.values()))


def summarize_all(entries: Sequence[Entry], settings: Settings) -> dict[str, str]:
    limits = settings.summary
    return {
        e.identity: summarize(
            e.lead_html, max_chars=limits.max_chars, max_chars_cjk=limits.max_chars_cjk
        )
        for e in entries
    }


class FeedChecker:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        settings: Settings,
        clock: Clock,
        router: Router,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        self.clock = clock
        self.router = router
        self.executor = executor

    async def fetch(self, feed: Feed) -> FetchResult:
        return await self.fetcher.fetch(
            feed.url, etag=feed.etag, last_modified=feed.last_modified, body_hash=feed.body_hash
        )

    async def parse(self, result: FetchResult, feed_id: int) -> Parsed:
        assert result.body is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor,
            lambda: parse_and_normalize(
                result.body or b"",
                url=result.url,
                content_type=result.content_type,
                feed_id=feed_id,
                now_ms=self.clock.now_ms(),
            ),
        )

    async def record(
        self,
        feed: Feed,
        result: FetchResult,
        parsed: Parsed | None,
        next_check_at: int,
        hint_seconds: int | None,
    ) -> CheckOutcome | None:
        """Write what one successful fetch found. None when the body had not changed."""
        now = self.clock.now_ms()
        if parsed is None:
            recovered = await self.store.feeds.record_success(
                feed.id,
                FeedCheck(now_ms=now, next_check_at=next_check_at, hint_seconds=hint_seconds),
            )
            return CheckOutcome(0, 0, 0, 0, 0, recovered) if recovered else None
        entries = parsed.entries
        known = await self.store.stories.known_identities(feed.id, [e.identity for e in entries])
        unknown = [e for e in entries if e.identity not in known]
        loop = asyncio.get_running_loop()
        summaries = (
            await loop.run_in_executor(self.executor, summarize_all, unknown, self.settings)
            if unknown
            else {}
        )
        check = FeedCheck(
            now_ms=now,
            next_check_at=next_check_at,
            hint_seconds=hint_seconds,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=result.body_hash,
            title=parsed.feed.title or None,
            site_url=parsed.feed.site_url or None,
            new_body=True,
        )
        dedupe = self.settings.dedupe
        return await self.store.stories.record_check(
            feed.id,
            entries,
            summaries,
            check,
            archive_window_ms=int(dedupe.archive_window_days * DAY_MS),
            duplicate_window_ms=int(self.settings.delivery.duplicate_title_hours * 3_600_000),
            router=self.router,
        )


def describe(error: Exception) -> str:
    """Why a check failed, as a short code: logged, counted in the poller's stats, stored in
    feeds.last_error, and shown by /list and the paused notice through
    bot.telegram.i18n.check_failure_text, which translates it (so a new code needs a
    "check.<code>" text there).

    Codes: a FetchErrorKind with spaces ("connection", "too large"…), "HTTP <status>",
    "not a feed", or the class name of an unexpected exception. They are the texts older
    versions stored, so rows they wrote read the same.
    """
    if isinstance(error, FetchError):
        if error.kind is FetchErrorKind.HTTP_STATUS and error.status:
            return f"HTTP {error.status}"
        return str(error.kind.value).replace("_", " ")
    if isinstance(error, NotAFeedError):
        return "not a feed"
    return type(error).__name__
