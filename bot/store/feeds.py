"""Feeds: one row per feed URL, with its fetch state and schedule."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import FailureKind, FeedFailure
from bot.feeds.freshness import FeedRate
from bot.store.db import Connection, Database, Row

GONE = FeedFailure(FailureKind.GONE, status=410)


@dataclass(frozen=True, slots=True)
class Feed:
    id: int
    url: str
    title: str
    site_url: str
    status: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    hint_seconds: int | None
    next_check_at: int
    last_checked_at: int | None
    last_success_at: int | None
    consecutive_failures: int
    failing_since: int | None
    last_error: str | None  # a FeedFailure's code (bot/errors.py)
    primed_at: int | None
    newest_timestamp_id: int | None
    hub_push: bool = False  # a WebSub hub pushes its stories (verified, lease running)
    # Its publishing rate as learned so far (adaptive polling); None: no record yet.
    rate: FeedRate | None = None

    @property
    def display_title(self) -> str:
        return self.title or self.url

    @property
    def failure(self) -> FeedFailure | None:
        """Why the last check failed, when it did."""
        return FeedFailure.from_code(self.last_error) if self.last_error else None


# The rate as every reader takes it (Feed, FeedState, the budget): a feed with no record
# yet has one from its last check on (what it finds new was published since then).
RATE_COLUMNS = "rate_stories, rate_watched_hours, COALESCE(rate_at, last_checked_at)"
_COLUMNS = (
    "id, url, title, site_url, status, etag, last_modified, body_hash, hint_seconds,"
    " next_check_at, last_checked_at, last_success_at, consecutive_failures, failing_since,"
    f" last_error, primed_at, newest_timestamp_id, hub_push, {RATE_COLUMNS}"
)


def feed_rate(stories: float, watched_hours: float, at_ms: int | None) -> FeedRate | None:
    """The stored rate columns as a FeedRate; None when the feed has no record yet."""
    return None if at_ms is None else FeedRate(float(stories), float(watched_hours), int(at_ms))


def _feed(row: Row) -> Feed:
    return Feed(*row[:17], hub_push=bool(row[17]), rate=feed_rate(*row[18:21]))


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """What a successful check writes to its feed row."""

    now_ms: int
    next_check_at: int
    hint_seconds: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    title: str | None = None
    site_url: str | None = None
    new_body: bool = False  # False: 304 or identical body, validators kept as they were
    # False: the body was pushed by a WebSub hub, not fetched: the fetch state (validators,
    # schedule, failures) is the poller's and is left as it was.
    fetched: bool = True


async def apply_success(conn: Connection, feed_id: int, update: FeedUpdate) -> bool:
    """Write a successful check; returns True when the feed had been paused (it recovered)."""
    if not update.fetched:
        return False
    row = await conn.fetchone("SELECT status FROM feeds WHERE id = ?", (feed_id,))
    was_paused = bool(row and row[0] == "paused")
    new = 1 if update.new_body else 0  # a 304 or an identical body keeps the validators
    await conn.execute(
        "UPDATE feeds SET last_checked_at = ?, last_success_at = ?, next_check_at = ?,"
        " hint_seconds = ?, consecutive_failures = 0, failing_since = NULL, last_error = NULL,"
        " status = CASE WHEN status = 'paused' THEN 'active' ELSE status END,"
        " etag = CASE WHEN ? = 1 THEN ? ELSE etag END,"
        " last_modified = CASE WHEN ? = 1 THEN ? ELSE last_modified END,"
        " body_hash = CASE WHEN ? = 1 THEN ? ELSE body_hash END,"
        " title = COALESCE(?, title), site_url = COALESCE(?, site_url),"
        # A feed with no rate record starts one (a 304 or an identical body finds no story,
        # which changes nothing else of a record: freshness.observe).
        " rate_at = COALESCE(rate_at, last_checked_at, ?)"
        " WHERE id = ?",
        (
            update.now_ms,
            update.now_ms,
            update.next_check_at,
            update.hint_seconds,
            new,
            update.etag,
            new,
            update.last_modified,
            new,
            update.body_hash,
            update.title or None,
            update.site_url or None,
            update.now_ms,
            feed_id,
        ),
    )
    return was_paused


class FeedStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, feed_id: int) -> Feed | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM feeds WHERE id = ?", (feed_id,))
        return _feed(row) if row else None

    async def by_url(self, url: str) -> Feed | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM feeds WHERE url = ?", (url,))
        return _feed(row) if row else None

    async def add(self, url: str, *, title: str, site_url: str, now_ms: int) -> int:
        """The feed's id, creating the row when the URL is new."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "INSERT INTO feeds (url, title, site_url, next_check_at, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (url) DO NOTHING RETURNING id",
                (url, title, site_url, now_ms, now_ms),
            )
            if row is None:
                row = await conn.fetchone("SELECT id FROM feeds WHERE url = ?", (url,))
            assert row is not None
            return int(row[0])

    async def due(self, now_ms: int, limit: int) -> list[Feed]:
        """Active feeds with subscribers whose next check time has come, most overdue first."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM feeds WHERE status = 'active' AND next_check_at <= ?"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
            " ORDER BY next_check_at LIMIT ?",
            (now_ms, limit),
        )
        return [_feed(row) for row in rows]

    async def polled_rates(self, now_ms: int) -> list[FeedRate]:
        """The rates of the feeds the poll budget is shared by: active, followed, and not
        pushed by a WebSub hub (those are polled only as a slow safety net). A feed never
        checked counts as new (`FeedRate.new`): it is checked at the mean."""
        rows = await self.db.fetchall(
            f"SELECT {RATE_COLUMNS} FROM feeds WHERE status = 'active' AND hub_push = 0"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
        )
        return [feed_rate(*row) or FeedRate.new(now_ms) for row in rows]

    async def next_due_at(self) -> int | None:
        row = await self.db.fetchone(
            "SELECT MIN(next_check_at) FROM feeds WHERE status = 'active'"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
        )
        return row[0] if row else None

    async def record_success(self, feed_id: int, update: FeedUpdate) -> bool:
        """A check that answered (304, identical body, or parsed). True when it had been paused."""
        async with self.db.transaction() as conn:
            return await apply_success(conn, feed_id, update)

    async def record_failure(
        self,
        feed_id: int,
        failure: FeedFailure,
        *,
        now_ms: int,
        next_check_at: int,
        pause_after_ms: int,
    ) -> bool:
        """Count one failure. Returns True when this failure paused the feed."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "UPDATE feeds SET last_checked_at = ?, next_check_at = ?, last_error = ?,"
                " consecutive_failures = consecutive_failures + 1,"
                " failing_since = COALESCE(failing_since, ?) WHERE id = ?"
                " RETURNING failing_since, status",
                (now_ms, next_check_at, failure.code[:500], now_ms, feed_id),
            )
            if not row or row[1] != "active" or now_ms - row[0] < pause_after_ms:
                return False
            await conn.execute("UPDATE feeds SET status = 'paused' WHERE id = ?", (feed_id,))
            return True

    async def mark_gone(self, feed_id: int, *, now_ms: int) -> None:
        """The feed answered 410 Gone: it is never checked again."""
        await self.db.execute(
            "UPDATE feeds SET status = 'gone', last_checked_at = ?, last_error = ? WHERE id = ?",
            (now_ms, GONE.code, feed_id),
        )

    async def resume(self, feed_id: int, *, now_ms: int) -> bool:
        """A paused feed answered again (checked by hand or by /subscribe): make it active."""
        changed = await self.db.execute(
            "UPDATE feeds SET status = 'active', consecutive_failures = 0, failing_since = NULL,"
            " last_error = NULL, next_check_at = ? WHERE id = ? AND status != 'active'",
            (now_ms, feed_id),
        )
        return changed > 0

    async def change_url(self, feed_id: int, new_url: str) -> bool:
        """Follow a permanent redirect, unless another feed row already has that URL."""
        async with self.db.transaction() as conn:
            if await conn.fetchone("SELECT 1 FROM feeds WHERE url = ?", (new_url,)):
                return False
            await conn.execute("UPDATE feeds SET url = ? WHERE id = ?", (new_url, feed_id))
            return True

    async def paused_due_for_probe(self, now_ms: int, limit: int) -> list[Feed]:
        """Paused feeds are still probed now and then (backoff cap) to notice recovery."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM feeds WHERE status = 'paused' AND next_check_at <= ?"
            " ORDER BY next_check_at LIMIT ?",
            (now_ms, limit),
        )
        return [_feed(row) for row in rows]

    async def subscriber_languages(self, feed_id: int) -> list[tuple[int, int | None, str]]:
        rows = await self.db.fetchall(
            "SELECT c.id, s.thread_id, c.language FROM subscriptions s JOIN chats c"
            " ON c.id = s.chat_id WHERE s.feed_id = ? AND c.status = 'active'",
            (feed_id,),
        )
        return [(row[0], row[1], row[2]) for row in rows]
