"""Chats, their subscriptions, keyword filters and digest schedules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import FeedFailure
from bot.filters import Keyword
from bot.store.changes import tell_keywords_changed
from bot.store.db import Database, Row
from bot.store.outbox import outbox_rows_coming


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    kind: str
    title: str
    language: str
    status: str
    timezone: str | None
    digest_hour: int | None
    digest_minute: int | None
    digest_thread_id: int | None
    digest_set_at: int | None
    last_digest_at: int | None
    next_digest_at: int | None
    # Its /settings choices (migrations 0006, 0008).
    pictures: bool = True
    link_preview: bool | None = None  # None: never chosen (telegram.link_preview decides)
    silent: bool = False
    language_choice: str = ""  # "en", "zh"; "": automatic (`language` follows the users)

    @classmethod
    def from_row(cls, row: Row) -> Chat:
        *fields, pictures, link_preview, silent, language_choice = row
        preview = None if link_preview is None else bool(link_preview)
        return cls(*fields, bool(pictures), preview, bool(silent), language_choice)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    chat_id: int
    feed_id: int
    thread_id: int | None
    mode: str
    feed_url: str
    feed_title: str
    feed_status: str
    feed_failures: int
    feed_error: str | None
    given_url: str  # the address typed at /subscribe ("" before migration 0002)

    @property
    def feed_failure(self) -> FeedFailure | None:
        """Why the feed's last check failed, when it did."""
        return FeedFailure.from_code(self.feed_error) if self.feed_error else None


@dataclass(frozen=True, slots=True)
class Paused:
    """What pausing a chat did."""

    changed: bool  # False: the chat was paused already
    dropped: int  # its queued messages, dropped


@dataclass(frozen=True, slots=True)
class DailyDigest:
    """A daily digest ready to queue: its messages, and the chat's schedule after it."""

    chat_id: int
    thread_id: int | None
    due_ms: int
    next_due_ms: int
    texts: list[str]
    # next_digest_at as read when the digest was made. A schedule changed meanwhile
    # (/digest at, /digest off while 10,000 digests render) keeps its new value.
    scheduled_ms: int
    # last_digest_at as read when the digest was made: the claim. Whichever instance moves
    # it from this value to due_ms first queues the digest; any other finds it moved.
    last_ms: int | None = None


_CHAT_COLUMNS = (
    "id, kind, title, language, status, timezone, digest_hour, digest_minute,"
    " digest_thread_id, digest_set_at, last_digest_at, next_digest_at,"
    " pictures, link_preview, silent, language_choice"
)
# The /settings choices that are on/off flags, by their column (ChatStore.set_flag).
FLAG_COLUMNS = frozenset({"pictures", "link_preview", "silent"})


class ChatStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(
        self, chat_id: int, *, kind: str, title: str, language: str | None, now_ms: int
    ) -> tuple[str, bool]:
        """Remember the chat; the language follows whoever last spoke to the bot there,
        unless the chat chose one in /settings. Returns its language and whether it was
        chosen."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "INSERT INTO chats (id, kind, title, language, created_at)"
                " VALUES (?, ?, ?, COALESCE(?, 'en'), ?)"
                " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, title = excluded.title,"
                " language = CASE WHEN chats.language_choice = ''"
                " THEN COALESCE(?, chats.language) ELSE chats.language END"
                " RETURNING language, language_choice",
                (chat_id, kind, title, language, now_ms, language),
            )
        assert row is not None  # an upsert always returns its row
        return row[0], row[1] != ""

    async def get(self, chat_id: int) -> Chat | None:
        row = await self.db.fetchone(f"SELECT {_CHAT_COLUMNS} FROM chats WHERE id = ?", (chat_id,))
        return Chat.from_row(row) if row else None

    async def set_flag(self, chat_id: int, name: str, value: bool) -> None:
        """One on/off choice of /settings (a name of FLAG_COLUMNS)."""
        if name not in FLAG_COLUMNS:
            raise ValueError(f"not a chat flag: {name}")
        await self.db.execute(f"UPDATE chats SET {name} = ? WHERE id = ?", (int(value), chat_id))

    async def choose_language(self, chat_id: int, choice: str, language: str) -> None:
        """The language chosen in /settings ("" automatic) and the one the chat now uses."""
        await self.db.execute(
            "UPDATE chats SET language_choice = ?, language = ? WHERE id = ?",
            (choice, language, chat_id),
        )

    async def resume(self, chat_id: int) -> bool:
        """The chat can be reached again. True when it had been paused."""
        changed = await self.db.execute(
            "UPDATE chats SET status = 'active' WHERE id = ? AND status != 'active'", (chat_id,)
        )
        return changed > 0

    async def pause(self, chat_id: int) -> Paused:
        """The chat can no longer be reached (blocked, removed): pause it and drop the
        messages queued for it, in one transaction. The status is written first: nothing
        queues for a paused chat (routing, digests and notices read active chats only), so
        once this commits no message for it can be left pending. Rows queued before it
        was paused are dropped even when it was paused already."""
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE chats SET status = 'paused' WHERE id = ? AND status != 'paused'",
                (chat_id,),
            )
            dropped = await conn.execute(
                "UPDATE outbox SET status = 'dropped', last_error = 'chat unreachable'"
                " WHERE chat_id = ? AND status = 'pending'",
                (chat_id,),
            )
        return Paused(changed > 0, dropped)

    async def migrate(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: everything of the old id moves to the new one.

        But an unfinished import's row (bot/store/imports.py): its progress message is in
        the old group, which no edit reaches after the upgrade, and the new group's message
        of the same number is another one (the next start would overwrite it).
        """
        async with self.db.transaction() as conn:
            if await conn.fetchone("SELECT 1 FROM chats WHERE id = ?", (new_id,)):
                # The new id already exists (a message from the supergroup arrived first):
                # move what it lacks, then drop the old chat.
                # (What the new id has already stays; what would clash with it is left on
                # the old chat and goes with it.)
                await conn.execute(
                    "UPDATE subscriptions SET chat_id = ? WHERE chat_id = ? AND feed_id NOT IN"
                    " (SELECT feed_id FROM subscriptions WHERE chat_id = ?)",
                    (new_id, old_id, new_id),
                )
                await conn.execute(
                    "UPDATE keywords SET chat_id = ? WHERE chat_id = ? AND position NOT IN"
                    " (SELECT position FROM keywords WHERE chat_id = ?)",
                    (new_id, old_id, new_id),
                )
                await conn.execute("DELETE FROM chats WHERE id = ?", (old_id,))
            else:
                await conn.execute(
                    "UPDATE chats SET id = ?, kind = 'supergroup' WHERE id = ?", (new_id, old_id)
                )
            await tell_keywords_changed(conn, [old_id, new_id])  # the keywords moved
            # An alert the new id already has (outbox_alert_once) stays with the old id.
            await conn.execute(
                "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND NOT (kind = 'alert'"
                " AND story_id IS NOT NULL AND story_id IN (SELECT story_id FROM outbox"
                " WHERE chat_id = ? AND kind = 'alert' AND story_id IS NOT NULL))",
                (new_id, old_id, new_id),
            )

    # --- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self,
        chat_id: int,
        feed_id: int,
        *,
        thread_id: int | None,
        now_ms: int,
        given_url: str = "",
    ) -> bool:
        """True when the subscription is new, False when the chat already had it."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "INSERT INTO subscriptions (chat_id, feed_id, thread_id, created_at, given_url)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (chat_id, feed_id) DO NOTHING RETURNING id",
                (chat_id, feed_id, thread_id, now_ms, given_url),
            )
            return row is not None

    async def subscriptions(self, chat_id: int) -> list[Subscription]:
        """The chat's subscriptions in /list order (oldest first; numbers start at 1)."""
        rows = await self.db.fetchall(
            "SELECT s.id, s.chat_id, s.feed_id, s.thread_id, s.mode, f.url, f.title, f.status,"
            " f.consecutive_failures, f.last_error, s.given_url FROM subscriptions s"
            " JOIN feeds f ON f.id = s.feed_id WHERE s.chat_id = ? ORDER BY s.id",
            (chat_id,),
        )
        return [Subscription(*row) for row in rows]

    async def unsubscribe(self, chat_id: int, subscription_id: int) -> bool:
        changed = await self.db.execute(
            "DELETE FROM subscriptions WHERE id = ? AND chat_id = ?", (subscription_id, chat_id)
        )
        return changed > 0

    async def set_mode(self, chat_id: int, subscription_id: int, mode: str) -> bool:
        changed = await self.db.execute(
            "UPDATE subscriptions SET mode = ? WHERE id = ? AND chat_id = ?",
            (mode, subscription_id, chat_id),
        )
        return changed > 0

    async def count_subscriptions(self, chat_id: int) -> int:
        row = await self.db.fetchone(
            "SELECT COUNT(*) FROM subscriptions WHERE chat_id = ?", (chat_id,)
        )
        return int(row[0]) if row else 0

    # --- keywords ----------------------------------------------------------------------

    async def keywords(self, chat_id: int) -> list[Keyword]:
        """The chat's keyword filter, in the order it was written."""
        rows = await self.db.fetchall(
            "SELECT text, exclude FROM keywords WHERE chat_id = ? ORDER BY position", (chat_id,)
        )
        return [Keyword(row[0], bool(row[1])) for row in rows]

    async def all_keywords(self) -> dict[int, list[Keyword]]:
        """Every chat's keyword filter (chats without one are absent)."""
        rows = await self.db.fetchall(
            "SELECT chat_id, text, exclude FROM keywords ORDER BY chat_id, position"
        )
        return _keywords_by_chat(rows)

    async def set_keywords(self, chat_id: int, keywords: Sequence[Keyword]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM keywords WHERE chat_id = ?", (chat_id,))
            await tell_keywords_changed(conn, [chat_id])
            await conn.executemany(
                "INSERT INTO keywords (chat_id, position, text, exclude) VALUES (?, ?, ?, ?)",
                [(chat_id, i, text, bool(ex)) for i, (text, ex) in enumerate(keywords)],
            )

    # --- digest ------------------------------------------------------------------------

    async def set_digest(
        self,
        chat_id: int,
        *,
        hour: int | None,
        minute: int | None,
        timezone: str | None,
        thread_id: int | None,
        now_ms: int,
        next_due_ms: int | None,
    ) -> None:
        """Set (or, with hour None, turn off) the chat's daily digest."""
        await self.db.execute(
            "UPDATE chats SET digest_hour = ?, digest_minute = ?,"
            " timezone = COALESCE(?, timezone), digest_thread_id = ?, digest_set_at = ?,"
            " next_digest_at = ? WHERE id = ?",
            (hour, minute, timezone, thread_id, now_ms, next_due_ms, chat_id),
        )

    async def digests_due(self, now_ms: int) -> list[Chat]:
        """Active chats whose daily digest is due (next_digest_at reached)."""
        rows = await self.db.fetchall(
            f"SELECT {_CHAT_COLUMNS} FROM chats WHERE digest_hour IS NOT NULL"
            " AND status = 'active' AND next_digest_at <= ? ORDER BY next_digest_at",
            (now_ms,),
        )
        return [Chat.from_row(row) for row in rows]

    async def subscribed_feeds(self, chat_ids: list[int]) -> dict[int, dict[int, str]]:
        """Feed ids each chat follows, with the subscription's mode, for many chats at once."""
        result: dict[int, dict[int, str]] = {chat_id: {} for chat_id in chat_ids}
        for start in range(0, len(chat_ids), 900):
            chunk = chat_ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                f"SELECT chat_id, feed_id, mode FROM subscriptions WHERE chat_id IN ({marks})",
                chunk,
            )
            for chat_id, feed_id, mode in rows:
                result[chat_id][feed_id] = mode
        return result

    async def keywords_of(self, chat_ids: list[int]) -> dict[int, list[Keyword]]:
        """Keyword filters of many chats at once (chats without one are absent)."""
        rows: list[Row] = []
        for start in range(0, len(chat_ids), 900):
            chunk = chat_ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            rows += await self.db.fetchall(
                f"SELECT chat_id, text, exclude FROM keywords WHERE chat_id IN ({marks})"
                " ORDER BY chat_id, position",
                chunk,
            )
        return _keywords_by_chat(rows)

    async def record_daily_digests(
        self, digests: Sequence[DailyDigest], now_ms: int
    ) -> list[DailyDigest]:
        """Claim each chat's digest and queue the claimed ones, in one transaction: a crash
        leaves both (the outbox sends them later) or neither (made again). Returns the
        digests queued.

        Several instances may tick at once and make the same chat's digest; only the one
        whose compare-and-set moves the schedule on from the values it read queues it
        (on PostgreSQL the loser's UPDATE waits for the winner's commit, then finds the row
        changed: READ COMMITTED re-checks its WHERE). The claim is on last_digest_at (the
        digest window's start, which only a queued digest moves), not on next_digest_at:
        a `/digest at` answered while digests render moves next_digest_at, and the digest
        that was due must still go out once (next_digest_at then keeps its new value).
        """
        same = "IS NOT DISTINCT FROM" if self.db.dialect == "postgresql" else "IS"
        async with self.db.transaction() as conn:
            claimed = [
                d
                for d in digests
                if await conn.execute(
                    "UPDATE chats SET last_digest_at = ?, next_digest_at = CASE"
                    " WHEN next_digest_at = ? THEN ? ELSE next_digest_at END"
                    f" WHERE id = ? AND last_digest_at {same} ?",
                    (d.due_ms, d.scheduled_ms, d.next_due_ms, d.chat_id, d.last_ms),
                )
            ]
            await outbox_rows_coming(conn)
            await conn.executemany(
                "INSERT INTO outbox (chat_id, thread_id, kind, text, not_before, created_at)"
                " VALUES (?, ?, 'digest', ?, ?, ?)",
                [
                    (d.chat_id, d.thread_id, text, now_ms, now_ms)
                    for d in claimed
                    for text in d.texts
                ],
            )
        return claimed

    async def move_digest(self, chat_id: int, next_due_ms: int, *, scheduled_ms: int) -> None:
        """Skip to the next due time (a digest missed beyond the grace period), unless the
        schedule was changed since `scheduled_ms` was read."""
        await self.db.execute(
            "UPDATE chats SET next_digest_at = ? WHERE id = ? AND next_digest_at = ?",
            (next_due_ms, chat_id, scheduled_ms),
        )


def _keywords_by_chat(rows: Sequence[Row]) -> dict[int, list[Keyword]]:
    """(chat_id, text, exclude) rows, in position order, as each chat's keywords."""
    result: dict[int, list[Keyword]] = {}
    for chat_id, text, exclude in rows:
        result.setdefault(chat_id, []).append(Keyword(text, bool(exclude)))
    return result
