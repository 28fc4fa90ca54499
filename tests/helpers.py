"""Small helpers tests share (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.clock import DAY_MS, HOUR_MS
from bot.feeds.fetch import FetchResult
from bot.feeds.parse import FeedDocument
from bot.feeds.record import CheckReport, DedupeRules, record_check
from bot.models import Delivery, Entry, NewStory, Recipient
from bot.routing import Router
from bot.store import FeedUpdate, Store

RULES = DedupeRules(archive_window_ms=7 * DAY_MS, duplicate_window_ms=48 * HOUR_MS)


def alert_nobody(story: NewStory, recipients: Sequence[Recipient]) -> list[Delivery]:
    return []


async def record_entries(
    store: Store,
    feed_id: int,
    entries: Sequence[Entry] = (),
    summaries: dict[str, str] | None = None,
    *,
    now_ms: int,
    next_check_at: int | None = None,
    rules: DedupeRules = RULES,
    router: Router = alert_nobody,
) -> CheckReport:
    """Record a check that listed `entries` (by default routing nobody): with none, it
    primes the feed (what it lists next is news), as a first check that saw an empty feed
    would."""
    update = FeedUpdate(
        now_ms=now_ms, next_check_at=now_ms if next_check_at is None else next_check_at
    )
    async with store.stories.check_unit(feed_id) as unit:
        return await record_check(unit, entries, summaries or {}, update, rules, router)


def at(zone: str, *fields: int, fold: int = 0) -> int:
    """Epoch ms of a local wall-clock time in `zone`."""
    return int(datetime(*fields, tzinfo=ZoneInfo(zone), fold=fold).timestamp() * 1000)


def fetch_result(url: str, links: tuple[str, ...] = ()) -> FetchResult:
    """A 200 the fetcher could have returned for `url`, with these Link header values."""
    return FetchResult(
        url=url,
        not_modified=False,
        body=b"",
        content_type=None,
        etag=None,
        last_modified=None,
        body_hash=None,
        permanent_redirect=None,
        max_age=None,
        links=links,
    )


def feed_document(hubs: tuple[str, ...] = (), self_url: str = "") -> FeedDocument:
    """A parsed feed with no entries that announces these WebSub links."""
    return FeedDocument("t", "", [], hubs=hubs, self_url=self_url)


def free_port() -> int:
    """A loopback port nothing listens on now (for a listener a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
