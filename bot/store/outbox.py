"""The outbox: every message owed to a chat, from the moment it is owed until Telegram took it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.clock import HOUR_MS
from bot.store.db import OUTBOX_CHANNEL, Connection, Database

# The lock and the notice of outbox_rows_coming, in one round trip; keyed by the schema in
# SQL, so that nothing above needs to know it.
_ROWS_COMING = (
    "SELECT pg_advisory_xact_lock(hashtextextended('news-notifier outbox ' || current_schema(),"
    f" 0)), pg_notify('{OUTBOX_CHANNEL}', current_schema())"
)


async def outbox_rows_coming(conn: Connection) -> None:
    """Every transaction that writes outbox rows calls this just before it writes them.

    On PostgreSQL, where several bots write and one sends (the leader):
    - NOTIFY: the leader LISTENs (bot/store/postgres.py) and its sender wakes at the commit,
      which delivers the notice (a rollback drops it), whichever bot wrote the rows;
    - one transaction lock for every writer of outbox rows, held to its commit, so that they
      commit in the order of their ids: the sender reads only rows above the last id it
      loaded, which would skip a row whose transaction took its id first and committed
      last. It is taken at the last writes of each transaction (the digests' schedule
      update after it touches chat rows no other writer of outbox rows locks), so it cannot
      take part in a deadlock, and is held for the few milliseconds of the inserts.
    SQLite writes one transaction at a time, in one process whose writers wake the sender
    themselves.
    """
    if conn.dialect == "postgresql":
        await conn.fetchone(_ROWS_COMING)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    chat_id: int
    thread_id: int | None
    kind: str  # alert, digest, notice
    story_id: int | None
    keyword: str | None
    # A ready-made message (digest part, notice) rather than an alert rendered from its
    # story. Its text stays in the database until it is sent (OutboxStore.text): a due
    # minute of 10,000 digests queues about 280 MB of text.
    has_text: bool
    attempts: int
    created_at: int
    not_before: int
    chat_kind: str
    language: str
    timezone: str | None
    # Sends that went out with no answer (Telegram may have delivered them): see Sender.
    unanswered: int = 0
    pictures: bool = True  # the chat takes alerts as photos when their story has a picture
    photo_refused: bool = False  # Telegram refused this alert's photo: it goes as text
    link_preview: bool | None = None  # the chat's choice; None: telegram.link_preview
    silent: bool = False  # the chat's messages arrive without a sound


@dataclass(frozen=True, slots=True)
class StoryText:
    """What an alert shows of its story."""

    title: str
    link: str
    summary: str
    feed_title: str
    timestamp_id: int
    image_url: str = ""  # the story's picture, "" when it has none


_ITEM = (
    "o.id, o.chat_id, o.thread_id, o.kind, o.story_id, o.keyword, o.text IS NOT NULL,"
    " o.attempts,"
    " o.created_at, o.not_before, COALESCE(c.kind, 'private'), COALESCE(c.language, 'en'),"
    " c.timezone, o.unanswered, COALESCE(c.pictures, 1), o.photo_refused, c.link_preview,"
    " COALESCE(c.silent, 0)"
)


def _item(row: Sequence[Any]) -> OutboxItem:
    # The sender may hold 100,000s of rows: share the few distinct kind, chat kind,
    # language and zone strings instead of one copy of each per row (about 170 bytes).
    (
        id_,
        chat_id,
        thread_id,
        kind,
        story_id,
        keyword,
        has_text,
        attempts,
        created_at,
        not_before,
        chat_kind,
        language,
        timezone,
        unanswered,
        pictures,
        photo_refused,
        link_preview,
        silent,
    ) = row
    return OutboxItem(
        id_,
        chat_id,
        thread_id,
        sys.intern(kind),
        story_id,
        keyword,
        bool(has_text),
        attempts,
        created_at,
        not_before,
        sys.intern(chat_kind),
        sys.intern(language),
        sys.intern(timezone) if timezone else timezone,
        unanswered,
        bool(pictures),
        bool(photo_refused),
        None if link_preview is None else bool(link_preview),
        bool(silent),
    )


# /metrics counts pending rows up to this many (OutboxStore.backlog).
BACKLOG_COUNT_CAP = 100_000


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def pending_after(self, after_id: int, limit: int) -> list[OutboxItem]:
        """Pending rows with an id above `after_id`, oldest first (the sender's refill)."""
        rows = await self.db.fetchall(
            f"SELECT {_ITEM} FROM outbox o LEFT JOIN chats c ON c.id = o.chat_id"
            " WHERE o.status = 'pending' AND o.id > ? ORDER BY o.id LIMIT ?",
            (after_id, limit),
        )
        return [_item(row) for row in rows]

    async def text(self, item_id: int) -> str | None:
        """The ready-made text of one row (None if the row is gone or has none)."""
        row = await self.db.fetchone("SELECT text FROM outbox WHERE id = ?", (item_id,))
        return row[0] if row else None

    async def stories(self, story_ids: Sequence[int]) -> dict[int, StoryText]:
        result: dict[int, StoryText] = {}
        for start in range(0, len(story_ids), 900):
            chunk = list(story_ids[start : start + 900])
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                "SELECT s.id, s.title, s.link, s.summary, COALESCE(NULLIF(f.title, ''), f.url),"
                " s.timestamp_id, s.image_url FROM stories s JOIN feeds f ON f.id = s.feed_id"
                f" WHERE s.id IN ({marks})",
                chunk,
            )
            for row in rows:
                result[row[0]] = StoryText(*row[1:])
        return result

    async def mark_sent(self, ids: Sequence[int], now_ms: int) -> None:
        if not ids:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
                " WHERE id = ? AND status = 'pending'",
                [(now_ms, i) for i in ids],
            )

    async def retry_later(
        self, item_id: int, *, not_before: int, error: str, unanswered: bool = False
    ) -> None:
        """Try the row again after `not_before`; `unanswered`: this send got no answer."""
        await self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, not_before = ?, last_error = ?,"
            " unanswered = unanswered + ? WHERE id = ?",
            (not_before, error[:500], int(unanswered), item_id),
        )

    async def photo_refused(self, item_id: int, error: str) -> None:
        """Telegram refused the row's photo: from now on it is sent as text (see Sender)."""
        await self.db.execute(
            "UPDATE outbox SET photo_refused = 1, last_error = ? WHERE id = ?",
            (error[:500], item_id),
        )

    async def assume_delivered(
        self, item_id: int, *, now_ms: int, unanswered: int, error: str
    ) -> None:
        """Stop trying a row whose sends went out unanswered: count it as sent (see Sender)."""
        await self.db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
            " unanswered = ?, last_error = ? WHERE id = ? AND status = 'pending'",
            (now_ms, unanswered, error[:500], item_id),
        )

    async def give_up(self, item_id: int, *, status: str, error: str) -> None:
        """Stop trying one row: 'failed' (errors for too long) or 'dropped' (undeliverable)."""
        await self.db.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
            (status, error[:500], item_id),
        )

    async def enqueue_text(
        self, chat_id: int, thread_id: int | None, *, kind: str, texts: Sequence[str], now_ms: int
    ) -> None:
        """Queue ready-made messages (digest parts, notices) in order."""
        async with self.db.transaction() as conn:
            await outbox_rows_coming(conn)
            await conn.executemany(
                "INSERT INTO outbox (chat_id, thread_id, kind, text, not_before, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(chat_id, thread_id, kind, text, now_ms, now_ms) for text in texts],
            )

    async def depth(self) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        return int(row[0]) if row else 0

    async def backlog(self) -> tuple[int, int | None]:
        """Pending rows (at most BACKLOG_COUNT_CAP), and when the oldest of them was queued
        (None: none), for /metrics.

        Read from the partial index of pending rows alone, and one row for its time, so a
        scrape does not grow with the rows already sent. Counting is cut at the cap: past
        it a scrape would cost tens of milliseconds more per 100,000 rows (bench/README.md,
        Metrics), and the sender holds no more than that in memory anyway. The oldest is the
        lowest pending id (ids grow as rows are queued); past the cap, on SQLite (whose
        index leads with not_before), the lowest among the rows counted.
        """
        row = await self.db.fetchone(
            "SELECT p.n, (SELECT created_at FROM outbox WHERE id = p.first)"
            " FROM (SELECT COUNT(*) AS n, MIN(id) AS first FROM (SELECT id FROM outbox"
            " WHERE status = 'pending' LIMIT ?) capped) p",
            (BACKLOG_COUNT_CAP,),
        )
        if row is None:
            return 0, None
        return int(row[0]), None if row[1] is None else int(row[1])

    async def count(self, *, status: str, since_ms: int) -> int:
        row = await self.db.fetchone(
            "SELECT COUNT(*) FROM outbox WHERE status = ? AND COALESCE(sent_at, created_at) >= ?",
            (status, since_ms),
        )
        return int(row[0]) if row else 0

    async def purge(self, *, older_than_ms: int) -> int:
        """Forget delivered or abandoned rows after the duplicate window has passed."""
        return await self.db.execute(
            "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?", (older_than_ms,)
        )

    async def bump_counter(self, name: str, now_ms: int, by: int = 1) -> None:
        await self.db.execute(
            "INSERT INTO counters (name, hour, count) VALUES (?, ?, ?)"
            " ON CONFLICT (name, hour) DO UPDATE SET count = counters.count + excluded.count",
            (name, now_ms - now_ms % HOUR_MS, by),
        )

    async def counters(self, since_ms: int) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT name, SUM(count) FROM counters WHERE hour >= ? GROUP BY name",
            (since_ms - since_ms % HOUR_MS,),
        )
        return {row[0]: int(row[1]) for row in rows}
