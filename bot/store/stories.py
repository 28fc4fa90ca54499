"""Stories (the seen set) and the one transaction that turns a feed check into alerts.

`record_check` is the heart of "never lose, never repeat": in one transaction it inserts
the batch's entries if absent (one INSERT … ON CONFLICT DO NOTHING RETURNING per chunk
decides what is new), refreshes presence of the rest, updates the feed row, and writes one
outbox row per chat owed each new story. A crash before COMMIT leaves nothing; after it,
the outbox holds every message owed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from bot.models import Entry, Story
from bot.store.chats import Recipient
from bot.store.db import Database
from bot.store.feeds import FeedCheck, apply_success

# SQLite allows 32,766 bound parameters per statement; 9 columns × 1,000 rows stays below.
CHUNK = 1000

# The digest window (bot/digest.py, DigestWindow), on the stories table as `st`: first seen
# in [seen_from, seen_until), half-open so that a story first seen at the very millisecond
# one digest falls due is in the next digest only, and published at or after
# published_from. This is the one place the rule runs; both digest reads use it.
IN_DIGEST_WINDOW = (
    "st.first_seen_at >= :seen_from AND st.first_seen_at < :seen_until"
    " AND st.timestamp_id >= :published_from"
)


@dataclass(frozen=True, slots=True)
class NewStory:
    id: int
    entry: Entry
    summary: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert owed: this chat (in this topic) gets this story, because of this keyword."""

    chat_id: int
    thread_id: int | None
    keyword: str | None


# Decides, for one new story and the feed's instant-mode recipients, who is alerted.
Router = Callable[[NewStory, Sequence[Recipient]], list[Delivery]]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    entries: int  # entries in the document
    inserted: int  # entries never seen before (recorded as seen)
    fresh: int  # of those, news (not the first fetch, not archive)
    queued: int  # alerts written to the outbox
    duplicates_skipped: int  # alerts not written: the chat had the story from another feed
    recovered: bool  # the feed had been paused and answered again


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
                cursor = await conn.execute(
                    f"SELECT identity FROM stories WHERE feed_id = ? AND identity IN ({marks})",
                    (feed_id, *chunk),
                )
                known.update(row[0] for row in await cursor.fetchall())
        return known

    async def record_check(
        self,
        feed_id: int,
        entries: Sequence[Entry],
        summaries: dict[str, str],
        check: FeedCheck,
        *,
        archive_window_ms: int,
        duplicate_window_ms: int,
        router: Router,
    ) -> CheckOutcome:
        now = check.now_ms
        async with self.db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT primed_at, newest_timestamp_id FROM feeds WHERE id = ?", (feed_id,)
            )
            primed_at, newest = await cursor.fetchone()  # type: ignore[misc]
            entries = _unique(entries)
            inserted = await _insert_if_absent(conn, feed_id, entries, summaries, now)
            await _mark_present(conn, feed_id, [e.identity for e in entries], now)

            fresh = [
                story
                for story in inserted
                if primed_at is not None
                and (newest is None or story.entry.timestamp_id >= newest - archive_window_ms)
            ]
            batch_newest = max((e.timestamp_id for e in entries), default=None)
            recovered = await apply_success(conn, feed_id, check)
            await conn.execute(
                "UPDATE feeds SET primed_at = COALESCE(primed_at, ?), newest_timestamp_id ="
                " CASE WHEN ? IS NULL THEN newest_timestamp_id"
                " ELSE MAX(COALESCE(newest_timestamp_id, ?), ?) END WHERE id = ?",
                (now, batch_newest, batch_newest, batch_newest, feed_id),
            )
            queued = skipped = 0
            if fresh:
                recipients = await _instant_recipients(conn, feed_id)
                if recipients:
                    routed = [(story, router(story, recipients)) for story in fresh]
                    queued, skipped = await _enqueue_alerts(
                        conn,
                        feed_id,
                        [r for r in routed if r[1]],
                        now,
                        now - duplicate_window_ms,
                    )
            return CheckOutcome(
                entries=len(entries),
                inserted=len(inserted),
                fresh=len(fresh),
                queued=queued,
                duplicates_skipped=skipped,
                recovered=recovered,
            )

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
            f" WHERE s.chat_id = :chat_id AND {IN_DIGEST_WINDOW}"
            " ORDER BY st.timestamp_id DESC, st.id DESC",
            {"chat_id": chat_id, **_window_bounds(seen_from, seen_until, published_from)},
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


def _window_bounds(seen_from: int, seen_until: int, published_from: int) -> dict[str, int]:
    """The named parameters of IN_DIGEST_WINDOW."""
    return {"seen_from": seen_from, "seen_until": seen_until, "published_from": published_from}


def _unique(entries: Sequence[Entry]) -> list[Entry]:
    """A feed listing the same item twice (same guid) holds one story, not two."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.identity not in seen:
            seen.add(entry.identity)
            unique.append(entry)
    return unique


async def _insert_if_absent(
    conn: aiosqlite.Connection,
    feed_id: int,
    entries: Sequence[Entry],
    summaries: dict[str, str],
    now: int,
) -> list[NewStory]:
    by_identity = {entry.identity: entry for entry in entries}
    inserted: list[NewStory] = []
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start : start + CHUNK]
        values = ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        params: list[object] = []
        for e in chunk:
            params += [
                feed_id,
                e.identity,
                e.timestamp_id,
                e.title,
                e.link,
                summaries.get(e.identity, ""),
                e.link_key,
                e.title_key,
                now,
                now,
            ]
        cursor = await conn.execute(
            "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary,"
            f" link_key, title_key, first_seen_at, last_present_at) VALUES {values}"
            " ON CONFLICT (feed_id, identity) DO NOTHING RETURNING id, identity",
            params,
        )
        for story_id, identity in await cursor.fetchall():
            entry = by_identity[identity]
            inserted.append(NewStory(story_id, entry, summaries.get(identity, "")))
    # RETURNING order is unspecified; alerts go out oldest first. Stories with the same
    # timestamp keep the feed's own order, which lists the newest first.
    position = {entry.identity: index for index, entry in enumerate(entries)}
    inserted.sort(key=lambda s: (s.entry.timestamp_id, -position[s.entry.identity]))
    return inserted


async def _mark_present(
    conn: aiosqlite.Connection, feed_id: int, identities: list[str], now: int
) -> None:
    for start in range(0, len(identities), CHUNK):
        chunk = identities[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        await conn.execute(
            f"UPDATE stories SET last_present_at = ? WHERE feed_id = ? AND identity IN ({marks})"
            " AND last_present_at < ?",
            (now, feed_id, *chunk, now),
        )


async def _instant_recipients(conn: aiosqlite.Connection, feed_id: int) -> list[Recipient]:
    cursor = await conn.execute(
        "SELECT s.chat_id, s.thread_id, s.mode FROM subscriptions s JOIN chats c"
        " ON c.id = s.chat_id WHERE s.feed_id = ? AND c.status = 'active'"
        " AND s.mode = 'instant' ORDER BY s.id",
        (feed_id,),
    )
    return [Recipient(*row) for row in await cursor.fetchall()]


async def _enqueue_alerts(
    conn: aiosqlite.Connection,
    feed_id: int,
    routed: Sequence[tuple[NewStory, Sequence[Delivery]]],
    now: int,
    duplicate_since: int,
) -> tuple[int, int]:
    """Write the batch's alerts, skipping chats that got the same story from another feed
    (same normalized link, or same title within the window). Returns (queued, skipped)."""
    if not routed:
        return 0, 0
    had = {
        column: await _chats_alerted_by_key(
            conn,
            column,
            {getattr(story.entry, column) for story, _ in routed},
            feed_id,
            duplicate_since,
        )
        for column in ("link_key", "title_key")
    }
    rows = []
    skipped = 0
    for story, deliveries in routed:
        entry = story.entry
        already = had["link_key"].get(entry.link_key, set()) | had["title_key"].get(
            entry.title_key, set()
        )
        for d in deliveries:
            if d.chat_id in already:
                skipped += 1
            else:
                rows.append((d.chat_id, d.thread_id, story.id, d.keyword, now, now))
    await conn.executemany(
        "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before, created_at)"
        " VALUES (?, ?, 'alert', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        rows,
    )
    return len(rows), skipped


async def _chats_alerted_by_key(
    conn: aiosqlite.Connection, column: str, keys: set[str], feed_id: int, since: int
) -> dict[str, set[int]]:
    """For each key, the chats that already have an alert for a story of another feed
    with that key. Spelled "key IN (…) AND key != ''" so the partial index is used."""
    keys.discard("")
    found: dict[str, set[int]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        cursor = await conn.execute(
            f"SELECT DISTINCT s.{column}, o.chat_id FROM stories s"
            " JOIN outbox o ON o.story_id = s.id"
            f" WHERE s.{column} IN ({marks}) AND s.{column} != '' AND s.feed_id != ?"
            " AND s.first_seen_at >= ? AND o.kind = 'alert' AND o.status IN ('pending', 'sent')",
            (*chunk, feed_id, since),
        )
        for key, chat_id in await cursor.fetchall():
            found.setdefault(key, set()).add(chat_id)
    return found
