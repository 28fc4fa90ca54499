"""Stories: the seen set, the digest windows, and the unit of work of one feed check.

`CheckUnit` is one transaction with the few operations a feed check needs: insert the
batch's entries if absent (one INSERT … ON CONFLICT DO NOTHING RETURNING per chunk decides
what is new), refresh the presence of the rest, update the feed row, and write one outbox
row per alert owed. The rules that decide what is news and who gets it live above, in
bot/feeds/record.py; here is only how it is stored. A crash before COMMIT leaves nothing;
after it, the outbox holds every message owed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.feeds.freshness import FeedRate
from bot.models import Entry, NewStory, Recipient, Story
from bot.store.db import Connection, Database
from bot.store.feeds import RATE_COLUMNS, FeedUpdate, Written, apply_success, feed_rate
from bot.store.outbox import outbox_rows_coming

# SQLite allows 32,766 bound parameters per statement; 11 columns × 1,000 rows stays below.
CHUNK = 1000
# Columns a story is matched on across feeds (bot/feeds/record.py, cross-feed duplicates).
DUPLICATE_KEYS = ("link_key", "title_key")

# The digest window (bot/digests/render.py, DigestWindow), on the stories table as `st`: first seen
# in [seen_from, seen_until), half-open so that a story first seen at the very millisecond
# one digest falls due is in the next digest only, and published at or after
# published_from. This is the one place the rule runs; both digest reads use it, with
# _window_bounds for its three parameters.
IN_DIGEST_WINDOW = "st.first_seen_at >= ? AND st.first_seen_at < ? AND st.timestamp_id >= ?"


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a check needs to know of its feed before deciding what is news."""

    primed_at: int | None  # the first successful check; None: this one primes the feed
    newest_timestamp_id: int | None  # newest story seen so far (the archive window's anchor)
    rate: FeedRate | None = None  # its publishing rate so far; None: no record yet


@dataclass(frozen=True, slots=True)
class QueuedAlert:
    """One outbox row for an alert."""

    chat_id: int
    thread_id: int | None
    story_id: int
    keyword: str | None


class CheckUnit:
    """One feed check's transaction. Get one from `StoryStore.check_unit(feed_id)`."""

    def __init__(self, conn: Connection, feed_id: int) -> None:
        self._conn = conn
        self.feed_id = feed_id

    async def feed_state(self) -> FeedState:
        # On PostgreSQL two checks of one feed (the poller's, a /subscribe's) may run at
        # once: the row lock makes the second wait for the first's commit. SQLite runs one
        # transaction at a time anyway.
        lock = " FOR UPDATE" if self._conn.dialect == "postgresql" else ""
        row = await self._conn.fetchone(
            f"SELECT primed_at, newest_timestamp_id, {RATE_COLUMNS} FROM feeds WHERE id = ?{lock}",
            (self.feed_id,),
        )
        assert row is not None, f"feed {self.feed_id} does not exist"
        return FeedState(row[0], row[1], feed_rate(*row[2:5]))

    async def insert_new(
        self, entries: Sequence[Entry], summaries: dict[str, str], now_ms: int
    ) -> list[NewStory]:
        """Record the entries not seen before; returns them as stories (in no set order)."""
        by_identity = {entry.identity: entry for entry in entries}
        inserted: list[NewStory] = []
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            params: list[object] = []
            for e in chunk:
                summary = summaries.get(e.identity, "")
                params += [self.feed_id, e.identity, e.timestamp_id, e.title, e.link, summary]
                params += [e.link_key, e.title_key, e.image_url, now_ms, now_ms]
            rows = await self._conn.fetchall(
                "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary,"
                " link_key, title_key, image_url, first_seen_at, last_present_at)"
                f" VALUES {values}"
                " ON CONFLICT (feed_id, identity) DO NOTHING RETURNING id, identity",
                params,
            )
            for story_id, identity in rows:
                inserted.append(
                    NewStory(story_id, by_identity[identity], summaries.get(identity, ""))
                )
        return inserted

    async def mark_present(self, identities: Sequence[str], now_ms: int) -> None:
        """The feed still lists these stories (they are not forgotten while it does)."""
        for start in range(0, len(identities), CHUNK):
            chunk = identities[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            await self._conn.execute(
                "UPDATE stories SET last_present_at = ? WHERE feed_id = ?"
                f" AND identity IN ({marks}) AND last_present_at < ?",
                (now_ms, self.feed_id, *chunk, now_ms),
            )

    async def record_success(
        self,
        update: FeedUpdate,
        *,
        primed_at: int,
        newest_timestamp_id: int | None,
        rate: FeedRate,
    ) -> Written:
        """Write the feed row, unless the check's lease passed to another instance
        (bot/store/feeds.py): the new owner's state is then left as it is, while the
        stories this unit inserted and the alerts it queues are kept (exactly once: the
        seen set and the outbox refuse a second copy whichever check comes second). The
        rate is written for a pushed body too: a hub's stories are the feed's publishing."""
        written = await apply_success(self._conn, self.feed_id, update)
        if written is not Written.NOT_OWNER:
            await self._conn.execute(
                "UPDATE feeds SET primed_at = ?, newest_timestamp_id = ?, rate_stories = ?,"
                " rate_watched_hours = ?, rate_at = ? WHERE id = ?",
                (
                    primed_at,
                    newest_timestamp_id,
                    rate.stories,
                    rate.watched_hours,
                    rate.at_ms,
                    self.feed_id,
                ),
            )
        return written

    async def instant_recipients(self) -> list[Recipient]:
        """Active chats following the feed in instant mode, in subscription order."""
        rows = await self._conn.fetchall(
            "SELECT s.chat_id, s.thread_id, s.mode FROM subscriptions s JOIN chats c"
            " ON c.id = s.chat_id WHERE s.feed_id = ? AND c.status = 'active'"
            " AND s.mode = 'instant' ORDER BY s.id",
            (self.feed_id,),
        )
        return [Recipient(*row) for row in rows]

    async def chats_alerted(
        self, column: str, keys: set[str], since_ms: int
    ) -> dict[str, set[int]]:
        """For each key of `column` (one of DUPLICATE_KEYS), the chats with an alert, pending
        or sent, for a story of another feed first seen since `since_ms` with that key.
        Spelled "key IN (…) AND key != ''" so the partial index is used."""
        assert column in DUPLICATE_KEYS
        ordered = sorted(keys - {""})
        found: dict[str, set[int]] = {}
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self._conn.fetchall(
                f"SELECT DISTINCT s.{column}, o.chat_id FROM stories s"
                " JOIN outbox o ON o.story_id = s.id"
                f" WHERE s.{column} IN ({marks}) AND s.{column} != '' AND s.feed_id != ?"
                " AND s.first_seen_at >= ? AND o.kind = 'alert'"
                " AND o.status IN ('pending', 'sent')",
                (*chunk, self.feed_id, since_ms),
            )
            for key, chat_id in rows:
                found.setdefault(key, set()).add(chat_id)
        return found

    async def enqueue_alerts(self, alerts: Sequence[QueuedAlert], now_ms: int) -> None:
        """One outbox row per alert (a chat never gets the same story twice: ON CONFLICT)."""
        if not alerts:
            return
        await outbox_rows_coming(self._conn)
        await self._conn.executemany(
            "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before,"
            " created_at) VALUES (?, ?, 'alert', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(a.chat_id, a.thread_id, a.story_id, a.keyword, now_ms, now_ms) for a in alerts],
        )


class StoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def known_identities(self, feed_id: int, identities: Sequence[str]) -> set[str]:
        """Which of these identities the feed has already seen (to summarize only the rest)."""
        known: set[str] = set()
        async with self.db.read() as conn:
            for start in range(0, len(identities), CHUNK):
                chunk = list(identities[start : start + CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = await conn.fetchall(
                    f"SELECT identity FROM stories WHERE feed_id = ? AND identity IN ({marks})",
                    (feed_id, *chunk),
                )
                known.update(row[0] for row in rows)
        return known

    @asynccontextmanager
    async def check_unit(self, feed_id: int) -> AsyncIterator[CheckUnit]:
        """One feed check's unit of work: all of it commits, or none of it."""
        async with self.db.transaction() as conn:
            yield CheckUnit(conn, feed_id)

    async def in_window(
        self, *, seen_from: int, seen_until: int, published_from: int
    ) -> dict[int, list[Story]]:
        """Stories of every feed first seen in [seen_from, seen_until) and published at or
        after published_from, newest first, by feed id (digests: one query for many chats).
        """
        rows = await self.db.fetchall(
            "SELECT st.id, st.feed_id, COALESCE(NULLIF(f.title, ''), f.url), st.timestamp_id,"
            " st.title, st.link, st.summary FROM stories st JOIN feeds f ON f.id = st.feed_id"
            f" WHERE {IN_DIGEST_WINDOW} ORDER BY st.timestamp_id DESC, st.id DESC",
            _window_bounds(seen_from, seen_until, published_from),
        )
        by_feed: dict[int, list[Story]] = {}
        for row in rows:
            story = Story(*row)
            by_feed.setdefault(story.feed_id, []).append(story)
        return by_feed

    async def window(
        self, chat_id: int, *, seen_from: int, seen_until: int, published_from: int
    ) -> list[Story]:
        """The stories of one chat's subscriptions (any mode) in a digest window."""
        rows = await self.db.fetchall(
            "SELECT st.id, st.feed_id, COALESCE(NULLIF(f.title, ''), f.url), st.timestamp_id,"
            " st.title, st.link, st.summary FROM subscriptions s"
            " JOIN stories st ON st.feed_id = s.feed_id JOIN feeds f ON f.id = s.feed_id"
            f" WHERE s.chat_id = ? AND {IN_DIGEST_WINDOW}"
            " ORDER BY st.timestamp_id DESC, st.id DESC",
            (chat_id, *_window_bounds(seen_from, seen_until, published_from)),
        )
        return [Story(*row) for row in rows]

    async def purge(self, *, older_than_ms: int) -> int:
        """Forget stories that left their feed long ago (never one still in its feed)."""
        return await self.db.execute(
            "DELETE FROM stories WHERE last_present_at < ?"
            " AND id NOT IN (SELECT story_id FROM outbox WHERE status = 'pending'"
            " AND story_id IS NOT NULL)",
            (older_than_ms,),
        )


def _window_bounds(seen_from: int, seen_until: int, published_from: int) -> tuple[int, int, int]:
    """The parameters of IN_DIGEST_WINDOW, in its order."""
    return seen_from, seen_until, published_from
