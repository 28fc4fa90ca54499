"""Read-only reports over the whole store: the operators' /stats, a chat's OPML export and
the healthcheck's question (are feeds being checked?)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import DAY_MS, HOUR_MS
from bot.store.db import Database


@dataclass(frozen=True, slots=True)
class Stats:
    chats_active: int
    chats_paused: int
    subscriptions: int  # of active chats
    feeds_healthy: int  # feeds with subscribers only: the others are not checked
    feeds_failing: int
    feeds_paused: int
    feeds_gone: int
    stories_today: int  # first seen since 00:00 UTC
    outbox_pending: int
    sent_last_hour: int
    # flood_wait, error.<kind>, unanswered, assumed_delivered… over `counters_hours`
    counters: dict[str, int]
    counters_hours: int
    database_bytes: int  # SQLite: the file and its write-ahead log; PostgreSQL: the database
    database_dialect: str  # sqlite or postgresql


@dataclass(frozen=True, slots=True)
class ExportedFeed:
    url: str
    title: str
    site_url: str


_CHATS = "SELECT status, COUNT(*) FROM chats GROUP BY status"
_SUBSCRIPTIONS = (
    "SELECT COUNT(*) FROM subscriptions s JOIN chats c ON c.id = s.chat_id"
    " WHERE c.status = 'active'"
)
_FEEDS = (
    "SELECT CASE WHEN status != 'active' THEN status"
    " WHEN consecutive_failures > 0 THEN 'failing' ELSE 'healthy' END, COUNT(*)"
    " FROM feeds f WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = f.id)"
    " GROUP BY 1"
)
_STORIES_SINCE = "SELECT COUNT(*) FROM stories WHERE first_seen_at >= ?"
_PENDING = "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"
_SENT_SINCE = "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND sent_at >= ?"
_COUNTERS_SINCE = "SELECT name, SUM(count) FROM counters WHERE hour >= ? GROUP BY name"


@dataclass(frozen=True, slots=True)
class CheckActivity:
    """The feeds the poller checks (active, with subscribers), its latest check, and the
    earliest time one of them is due."""

    feeds: int
    last_checked_ms: int | None  # None: none of them checked yet
    first_due_ms: int | None = None  # None: no feeds


class StatsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def gather(self, *, now_ms: int, counters_hours: int = 24) -> Stats:
        """Everything /stats shows, read under one hold of the connection."""
        since_counters = now_ms - now_ms % HOUR_MS - (counters_hours - 1) * HOUR_MS
        async with self.db.read() as conn:
            chats = {row[0]: row[1] for row in await conn.fetchall(_CHATS)}
            feeds = {row[0]: row[1] for row in await conn.fetchall(_FEEDS)}
            scalars = []
            for sql, params in (
                (_SUBSCRIPTIONS, ()),
                (_STORIES_SINCE, (now_ms - now_ms % DAY_MS,)),
                (_PENDING, ()),
                (_SENT_SINCE, (now_ms - HOUR_MS,)),
            ):
                row = await conn.fetchone(sql, params)
                scalars.append(int(row[0]) if row else 0)
            counter_rows = await conn.fetchall(_COUNTERS_SINCE, (since_counters,))
        subscriptions, stories_today, pending, sent = scalars
        return Stats(
            chats_active=chats.get("active", 0),
            chats_paused=chats.get("paused", 0),
            subscriptions=subscriptions,
            feeds_healthy=feeds.get("healthy", 0),
            feeds_failing=feeds.get("failing", 0),
            feeds_paused=feeds.get("paused", 0),
            feeds_gone=feeds.get("gone", 0),
            stories_today=stories_today,
            outbox_pending=pending,
            sent_last_hour=sent,
            counters={name: int(count) for name, count in counter_rows},
            counters_hours=counters_hours,
            database_bytes=await self.db.size_bytes(),
            database_dialect=self.db.dialect,
        )

    async def exported_feeds(self, chat_id: int) -> list[ExportedFeed]:
        """A chat's subscribed feeds in /list order, with what an OPML outline carries."""
        rows = await self.db.fetchall(
            "SELECT f.url, f.title, f.site_url FROM subscriptions s"
            " JOIN feeds f ON f.id = s.feed_id WHERE s.chat_id = ? ORDER BY s.id",
            (chat_id,),
        )
        return [ExportedFeed(*row) for row in rows]

    async def chat_title(self, chat_id: int) -> str | None:
        """The chat's stored title ('' when it has none), None when the bot never met it."""
        row = await self.db.fetchone("SELECT title FROM chats WHERE id = ?", (chat_id,))
        return None if row is None else str(row[0])

    async def check_activity(self) -> CheckActivity:
        """For the healthcheck: how many feeds are checked, and when the last one was."""
        row = await self.db.fetchone(
            "SELECT COUNT(*), MAX(last_checked_at), MIN(next_check_at) FROM feeds f"
            " WHERE status = 'active'"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = f.id)"
        )
        return CheckActivity(row[0], row[1], row[2]) if row else CheckActivity(0, None)
