"""Feeds: one row per feed URL, with its fetch state, its schedule and its lease.

Several instances may poll one PostgreSQL database. An instance takes the due feeds it will
check with a lease (`claim_due`): the feed's lease_owner is its instance id until
lease_until, and no other instance claims it meanwhile, so each feed is checked by one
instance at a time. Recording the check (a success, a failure, a 410) clears the lease, but
only while the recorder still holds it: a check that outlived its lease (its instance hung,
another took the feed over) must not write its older state over the new owner's. Its
stories are still recorded (bot/store/stories.py, CheckUnit): the seen set's INSERT … ON
CONFLICT DO NOTHING and the outbox's one-alert-per-chat index keep each exactly once
whichever check records it first. A lease that nobody clears (the instance died) runs out
and the feed is claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bot.errors import FailureKind, FeedFailure
from bot.feeds.freshness import FeedRate
from bot.store.db import Connection, Database, Row, marks

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
    # The instance checking it now (its lease), None when nobody is. A feed claimed with
    # claim_due carries the claimer's id: the check records under that lease.
    lease_owner: str | None = None

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
    f" last_error, primed_at, newest_timestamp_id, hub_push, lease_owner, {RATE_COLUMNS}"
)


def feed_rate(stories: float, watched_hours: float, at_ms: int | None) -> FeedRate | None:
    """The stored rate columns as a FeedRate; None when the feed has no record yet."""
    return None if at_ms is None else FeedRate(float(stories), float(watched_hours), int(at_ms))


def _feed(row: Row) -> Feed:
    return Feed(*row[:17], hub_push=bool(row[17]), lease_owner=row[18], rate=feed_rate(*row[19:22]))


# The feeds a poller checks (claim_due): active ones with subscribers, and paused ones
# probed now and then at their backoff's cap to notice that they answer again.
_ACTIVE_DUE = (
    "status = 'active' AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
)
_PAUSED_DUE = "status = 'paused'"


class Written(Enum):
    """What writing a check's result to its feed row did."""

    DONE = "done"
    RECOVERED = "recovered"  # done, and the feed had been paused: it answers again
    NOT_OWNER = "not_owner"  # the check's lease had passed to another instance: not written


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
    # The lease the check ran under (a polled feed): the row is written, and the lease
    # cleared, only while this instance still holds it. None: a check nobody leased
    # (/subscribe, /import), written as it is.
    lease_owner: str | None = None


def owned(sql: str, lease_owner: str | None) -> str:
    """A feed row's UPDATE (ending in "WHERE id = ?") made to apply only under the lease of
    `lease_owner`, and to clear that lease; unchanged for a check nobody leased. The
    caller adds lease_owner to the parameters after the id."""
    if lease_owner is None:
        return sql
    head, where = sql.rsplit(" WHERE ", 1)
    return f"{head}, lease_owner = NULL, lease_until = NULL WHERE {where} AND lease_owner = ?"


def _lease_param(lease_owner: str | None) -> tuple[str, ...]:
    return () if lease_owner is None else (lease_owner,)


_SUCCESS = (
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
    " WHERE id = ?"
)


async def apply_success(conn: Connection, feed_id: int, update: FeedUpdate) -> Written:
    """Write a successful check (and clear its lease), unless the lease passed to another
    instance meanwhile."""
    if not update.fetched:
        return Written.DONE
    row = await conn.fetchone("SELECT status FROM feeds WHERE id = ?", (feed_id,))
    was_paused = bool(row and row[0] == "paused")
    new = 1 if update.new_body else 0  # a 304 or an identical body keeps the validators
    changed = await conn.execute(
        owned(_SUCCESS, update.lease_owner),
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
            *_lease_param(update.lease_owner),
        ),
    )
    if not changed:
        return Written.NOT_OWNER
    return Written.RECOVERED if was_paused else Written.DONE


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
        """Active feeds with subscribers whose next check time has come, most overdue first
        (what is due, whoever checks it: reports and tools; the poller uses claim_due)."""
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

    async def claim_due(
        self, owner: str, *, now_ms: int, lease_until: int, limit: int
    ) -> list[Feed]:
        """Take up to `limit` due feeds that nobody holds (or whose lease ran out) for
        `owner`, most overdue first: active feeds with subscribers, then paused ones due for
        their probe (checked now and then to notice recovery). Each comes back leased to
        `owner` until `lease_until`.

        On PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED: instances claiming
        at the same moment pass over each other's rows instead of waiting, and a row whose
        lease another claimer took first is re-read and dropped (READ COMMITTED re-checks
        the WHERE on the locked row). SQLite has one writer at a time: a plain UPDATE.
        """
        skip_locked = " FOR UPDATE SKIP LOCKED" if self.db.dialect == "postgresql" else ""
        claimed: list[Feed] = []
        async with self.db.transaction() as conn:
            for which in (_ACTIVE_DUE, _PAUSED_DUE):
                if len(claimed) >= limit:
                    break
                rows = await conn.fetchall(
                    f"UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE id IN"
                    f" (SELECT id FROM feeds WHERE {which} AND next_check_at <= ?"
                    " AND (lease_until IS NULL OR lease_until <= ?)"
                    f" ORDER BY next_check_at LIMIT ?{skip_locked}) RETURNING {_COLUMNS}",
                    (owner, lease_until, now_ms, now_ms, limit - len(claimed)),
                )
                # RETURNING keeps no order: most overdue first, as the poller starts them.
                claimed += sorted((_feed(row) for row in rows), key=lambda f: f.next_check_at)
        return claimed

    async def renew_lease(self, feed_id: int, owner: str, *, lease_until: int) -> bool:
        """Move `owner`'s lease on a feed to `lease_until`. False when `owner` no longer
        holds it (it ran out and another instance took the feed)."""
        changed = await self.db.execute(
            "UPDATE feeds SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            (lease_until, feed_id, owner),
        )
        return changed > 0

    async def release(self, owner: str, feed_ids: Sequence[int] | None = None) -> int:
        """Hand back `owner`'s leases on `feed_ids` (all of its leases when None) without
        recording a check: the feeds stay due and any instance may claim them at once.
        A lease another instance holds now is left alone. Returns how many were released."""
        sql = "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?"
        if feed_ids is None:
            return await self.db.execute(sql, (owner,))
        released = 0
        ids = list(feed_ids)
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            released += await self.db.execute(
                f"{sql} AND id IN ({marks(len(chunk))})", (owner, *chunk)
            )
        return released

    async def next_due_at(self) -> int | None:
        row = await self.db.fetchone(
            "SELECT MIN(next_check_at) FROM feeds WHERE status = 'active'"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
        )
        return row[0] if row else None

    async def record_success(self, feed_id: int, update: FeedUpdate) -> Written:
        """A check that answered (304, identical body, or parsed): written under its lease."""
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
        lease_owner: str | None = None,
    ) -> bool:
        """Count one failure (and clear the check's lease, unless it passed to another
        instance: then nothing is written). Returns True when this failure paused the feed."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                owned(
                    "UPDATE feeds SET last_checked_at = ?, next_check_at = ?, last_error = ?,"
                    " consecutive_failures = consecutive_failures + 1,"
                    " failing_since = COALESCE(failing_since, ?) WHERE id = ?",
                    lease_owner,
                )
                + " RETURNING failing_since, status",
                (
                    now_ms,
                    next_check_at,
                    failure.code[:500],
                    now_ms,
                    feed_id,
                    *_lease_param(lease_owner),
                ),
            )
            if not row or row[1] != "active" or now_ms - row[0] < pause_after_ms:
                return False
            await conn.execute("UPDATE feeds SET status = 'paused' WHERE id = ?", (feed_id,))
            return True

    async def mark_gone(self, feed_id: int, *, now_ms: int, lease_owner: str | None = None) -> None:
        """The feed answered 410 Gone: it is never checked again (its lease cleared)."""
        await self.db.execute(
            owned(
                "UPDATE feeds SET status = 'gone', last_checked_at = ?, last_error = ?"
                " WHERE id = ?",
                lease_owner,
            ),
            (now_ms, GONE.code, feed_id, *_lease_param(lease_owner)),
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
