"""Which PostgreSQL driver: asyncpg or psycopg 3 (async), measured on the store's hot paths.

    .venv/bin/pip install -e ".[bench-postgresql]"      # asyncpg, psycopg[binary], psycopg_pool
    .venv/bin/python bench/pg_drivers.py                # the recorded run (about 6 minutes)
    .venv/bin/python bench/pg_drivers.py --feeds 1000 --chats 10000 --stories 50000 \\
        --outbox 20000 --runs 3                         # a quick look

Every driver runs the SAME statements the store runs today (bot/store/*.py), written with
`?` placeholders as the store's Connection surface takes them and translated per driver
(`$1…` for asyncpg, `%s` for psycopg; the translation is cached and its cost is inside the
figures). Where today's SQL does not run on PostgreSQL as written (named parameters, scalar
MAX, `? IS NULL`), the bench uses the portable rewrite listed in bench/README.md, on SQLite
too. The operations:

(a) check: record a check that finds 50 new entries (the document lists 100: 50 seen
    before) for a feed with 200 subscribers, in one transaction, as StoryStore.record_check:
    read the feed, INSERT … ON CONFLICT (feed_id, identity) DO NOTHING RETURNING, mark the
    rest present, apply_success, move newest_timestamp_id, read the instant recipients, the
    two cross-feed duplicate lookups (300 alerts skipped), then 9,700 outbox rows, written
    four ways: executemany (the store today), multi-row VALUES in chunks of 1,000 rows
    (portable), INSERT … SELECT FROM UNNEST(arrays) and COPY (PostgreSQL only).
(b) refill: the sender's refill, OutboxStore.pending_after(0, 5000) (5,000 pending rows with
    their chat) plus OutboxStore.stories for the stories they name; then mark: the 5,000
    rows marked sent in 100 transactions of 50 ids, three ways: executemany of
    `UPDATE … WHERE id = ?` (the store today), `WHERE id IN (?, …)` (portable) and
    `WHERE id = ANY(?)` with one array (PostgreSQL only).
(c) digest: StoryStore.in_window over the last 24 hours (about 5,000 of 500,000 stories).
(d) point reads: 1,000 × OutboxStore.text (one row by primary key, outside a transaction),
    the shape where prepared statements should pay most.

Variants, each in its own process: SQLite through bot.store's own code (the bot today), SQLite
through the Connection adapter (the reference for the drivers), asyncpg (prepared-statement
cache on, its default, and off), psycopg with its C implementation (psycopg[binary]; prepared
after 5 runs, its default, and never) and psycopg's pure-Python implementation. PostgreSQL
drivers use a pool of 4 connections (asyncpg.create_pool, psycopg_pool.AsyncConnectionPool)
with a 30 s statement timeout.

Each operation runs --warmup + --runs times on the same data (what one run writes is undone
untimed before the next); the figures are medians of wall time and of this process's CPU
time (time.process_time: the event loop, the driver, and for SQLite its engine on aiosqlite's
thread). For PostgreSQL the server's share is read from /proc/<pid>/stat of the pool's
backends (10 ms ticks, so given as the mean over the timed runs). Between variants the
tables are VACUUM ANALYZEd (untimed).

Data (seeded, the same on both backends): --feeds 10,000, --chats 100,000 (ids beyond 32
bits, groups negative), 500,000 subscriptions, --stories 500,000 over 100 days,
--outbox 200,000 (the newest 20,000 pending, 1 in 20 a digest with 3 KB of text). Then
EXPLAIN (ANALYZE, BUFFERS) of every hot query on PostgreSQL, with the custom plan and with
the generic plan a prepared statement settles on, and EXPLAIN QUERY PLAN on SQLite.

Exits non-zero when a correctness check fails: a wrong row count in any run, backends that
disagree, or a hot query whose PostgreSQL plan reads a big table sequentially. The scratch
PostgreSQL database (--admin-dsn's server, named bench_pg_drivers_<pid>) is dropped at the
end. Results go to stdout and bench/out/pg_drivers.json (--json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Verdicts
from bot.feeds import record
from bot.models import Delivery, Entry
from bot.store import Store
from bot.store.db import migrations, statements
from bot.store.feeds import FeedUpdate
from bot.store.sqlite import SqliteDatabase as Database

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
NOW = 1_790_000_000_000  # a fixed "now" (2026-09-21): every run sees the same windows
POOL_SIZE = 4
# Set on every PostgreSQL connection of the pools. random_page_cost 1.1 (the server's
# default, 4, is priced for spinning disks) keeps the refill a nested loop over the chats'
# primary key where 4 makes it hash all 100,000 chats (the EXPLAIN section shows both).
SERVER_SETTINGS = {"statement_timeout": "30s", "random_page_cost": "1.1"}
HOT_FEED = 1
HOT_SUBSCRIBERS = 200
DOCUMENT_SEEN = 50  # entries of the checked document already stored
DOCUMENT_NEW = 50
LINK_DUPLICATES = 10  # new entries whose link another feed brought within the window...
TITLE_DUPLICATES = 5  # ...or whose title it did
DUPLICATE_CHATS = 20  # of the hot feed's subscribers, alerted of each such story already
DUPLICATE_WINDOW_MS = 2 * DAY_MS
EXPECTED_SKIPPED = (LINK_DUPLICATES + TITLE_DUPLICATES) * DUPLICATE_CHATS
EXPECTED_QUEUED = DOCUMENT_NEW * HOT_SUBSCRIBERS - EXPECTED_SKIPPED
REFILL = 5000  # bot/delivery/sender.py REFILL_BATCH
MARK_BATCH = 50
POINT_READS = 1000
CHUNK = 1000  # bot/store/stories.py CHUNK: rows per multi-row VALUES
PENDING_SHARE = 10  # 1 outbox row in 10 is pending (the newest)
DIGEST_EVERY = 20  # 1 outbox row in 20 is a digest part with text
# Tables a hot query must not read whole. feeds (10,000 short rows) is not one: hashing it
# for a join is the planner's fair choice.
BIG_TABLES = ("stories", "outbox", "subscriptions", "chats")

# --------------------------------------------------------------------------------------------
# The statements: the store's, with `?` placeholders (bot/store/*.py). "portable" marks a
# rewrite of a statement that does not run on PostgreSQL as written (bench/README.md lists
# them all).

FEED_STATE = "SELECT primed_at, newest_timestamp_id FROM feeds WHERE id = ?"  # record_check
FEED_STATUS = "SELECT status FROM feeds WHERE id = ?"  # apply_success
STORIES_INSERT_HEAD = (  # _insert_if_absent, with one "(?, …)" per entry
    "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary,"
    " link_key, title_key, first_seen_at, last_present_at) VALUES "
)
STORIES_INSERT_TAIL = " ON CONFLICT (feed_id, identity) DO NOTHING RETURNING id, identity"
MARK_PRESENT = (  # _mark_present, with {marks}
    "UPDATE stories SET last_present_at = ? WHERE feed_id = ? AND identity IN ({marks})"
    " AND last_present_at < ?"
)
# apply_success, portable: positional, and `:title IS NOT NULL AND :title != ''` (a
# parameter of no type for PostgreSQL) as NULLIF.
APPLY_SUCCESS = (
    "UPDATE feeds SET last_checked_at = ?, last_success_at = ?,"
    " next_check_at = ?, hint_seconds = ?, consecutive_failures = 0,"
    " failing_since = NULL, last_error = NULL,"
    " status = CASE WHEN status = 'paused' THEN 'active' ELSE status END,"
    " etag = CASE WHEN ? THEN ? ELSE etag END,"
    " last_modified = CASE WHEN ? THEN ? ELSE last_modified END,"
    " body_hash = CASE WHEN ? THEN ? ELSE body_hash END,"
    " title = COALESCE(NULLIF(?, ''), title),"
    " site_url = COALESCE(?, site_url)"
    " WHERE id = ?"
)
# record_check's feed update, portable: scalar MAX(a, b) is SQLite's (GREATEST is
# PostgreSQL's), and `? IS NULL` has no type. `x >= NULL` is NULL, so a NULL batch keeps x.
FEED_NEWEST = (
    "UPDATE feeds SET primed_at = COALESCE(primed_at, ?), newest_timestamp_id ="
    " CASE WHEN newest_timestamp_id >= ? THEN newest_timestamp_id"
    " ELSE COALESCE(?, newest_timestamp_id) END WHERE id = ?"
)
INSTANT_RECIPIENTS = (  # _instant_recipients
    "SELECT s.chat_id, s.thread_id, s.mode FROM subscriptions s JOIN chats c"
    " ON c.id = s.chat_id WHERE s.feed_id = ? AND c.status = 'active'"
    " AND s.mode = 'instant' ORDER BY s.id"
)
ALERTED_BY_KEY = (  # _chats_alerted_by_key, with {column} and {marks}
    "SELECT DISTINCT s.{column}, o.chat_id FROM stories s"
    " JOIN outbox o ON o.story_id = s.id"
    " WHERE s.{column} IN ({marks}) AND s.{column} != '' AND s.feed_id != ?"
    " AND s.first_seen_at >= ? AND o.kind = 'alert' AND o.status IN ('pending', 'sent')"
)
OUTBOX_COLUMNS = ("chat_id", "thread_id", "kind", "story_id", "keyword", "not_before", "created_at")
ALERT_INSERT = (  # _enqueue_alerts (executemany)
    "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before, created_at)"
    " VALUES (?, ?, 'alert', ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
ALERT_INSERT_HEAD = (  # the same, one "(?, …)" per row
    "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before, created_at)"
    " VALUES "
)
ALERT_INSERT_UNNEST = (  # PostgreSQL only: one statement, seven parameters, any row count
    "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before, created_at)"
    " SELECT c, t, 'alert', s, k, ?, ? FROM UNNEST(CAST(? AS BIGINT[]), CAST(? AS BIGINT[]),"
    " CAST(? AS BIGINT[]), CAST(? AS TEXT[])) AS u (c, t, s, k) ON CONFLICT DO NOTHING"
)
_ITEM = (  # OutboxStore._ITEM
    "o.id, o.chat_id, o.thread_id, o.kind, o.story_id, o.keyword, o.text IS NOT NULL,"
    " o.attempts,"
    " o.created_at, o.not_before, COALESCE(c.kind, 'private'), COALESCE(c.language, 'en'),"
    " c.timezone, o.unanswered"
)
PENDING_AFTER = (  # OutboxStore.pending_after
    f"SELECT {_ITEM} FROM outbox o LEFT JOIN chats c ON c.id = o.chat_id"
    " WHERE o.status = 'pending' AND o.id > ? ORDER BY o.id LIMIT ?"
)
STORY_TEXTS = (  # OutboxStore.stories, with {marks}
    "SELECT s.id, s.title, s.link, s.summary, COALESCE(NULLIF(f.title, ''), f.url),"
    " s.timestamp_id FROM stories s JOIN feeds f ON f.id = s.feed_id WHERE s.id IN ({marks})"
)
MARK_SENT = (  # OutboxStore.mark_sent (executemany)
    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
    " WHERE id = ? AND status = 'pending'"
)
MARK_SENT_IN = (
    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
    " WHERE id IN ({marks}) AND status = 'pending'"
)
MARK_SENT_ANY = (  # PostgreSQL only
    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
    " WHERE id = ANY(?) AND status = 'pending'"
)
IN_WINDOW = (  # StoryStore.in_window, positional (IN_DIGEST_WINDOW uses :names today)
    "SELECT st.id, st.feed_id, COALESCE(NULLIF(f.title, ''), f.url), st.timestamp_id,"
    " st.title, st.link, st.summary FROM stories st JOIN feeds f ON f.id = st.feed_id"
    " WHERE st.first_seen_at >= ? AND st.first_seen_at < ? AND st.timestamp_id >= ?"
    " ORDER BY st.timestamp_id DESC, st.id DESC"
)
OUTBOX_TEXT = "SELECT text FROM outbox WHERE id = ?"  # OutboxStore.text


def marks(count: int) -> str:
    return ",".join("?" * count)


def rows_marks(rows: int, columns: int) -> str:
    one = "(" + marks(columns) + ")"
    return ",".join([one] * rows)


# --------------------------------------------------------------------------------------------
# `?` to the driver's placeholders, cached: the store's SQL is a few hundred distinct strings
# (IN lists of every length included), each translated once.

_LITERAL = re.compile(r"('(?:[^']|'')*')")


def _translate(sql: str, placeholder: Callable[[int], str], percent: str) -> str:
    """A `?` outside string literals is a parameter; every `%` becomes `percent` (psycopg
    reads % as its own even inside literals, as in LIKE 'new-%')."""
    parts = _LITERAL.split(sql.replace("%", percent))
    count = 0
    for index in range(0, len(parts), 2):  # even parts are outside string literals
        pieces = parts[index].split("?")
        out = [pieces[0]]
        for piece in pieces[1:]:
            count += 1
            out.append(placeholder(count))
            out.append(piece)
        parts[index] = "".join(out)
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def to_numbered(sql: str) -> str:
    """asyncpg: ? → $1, $2, …"""
    return _translate(sql, lambda n: f"${n}", "%")


@functools.lru_cache(maxsize=4096)
def to_format(sql: str) -> str:
    """psycopg: ? → %s, and a literal % → %%."""
    return _translate(sql, lambda n: "%s", "%%")


# --------------------------------------------------------------------------------------------
# The Connection surface (issue 12's store interface) on each driver


class Connection(Protocol):
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]: ...
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None: ...
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Backend(Protocol):
    name: str
    postgres: bool

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...
    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...
    async def copy(
        self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple]
    ) -> None: ...
    def server_cpu(self) -> float: ...
    async def tidy(self, tables: str) -> None: ...
    async def close(self) -> None: ...


class SqliteBackend:
    """The bot's own Database (WAL, synchronous NORMAL, one lock) behind the surface."""

    postgres = False

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name

    # The bot's own connections (bot/store/sqlite.py) are already this surface.
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self.db.transaction()

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self.db.read()

    async def copy(
        self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple]
    ) -> None:
        raise NotImplementedError("COPY is PostgreSQL's")

    def server_cpu(self) -> float:
        return 0.0  # the engine runs in this process: process_time() has it

    async def tidy(self, tables: str) -> None:
        pass  # SQLite updates in place

    async def close(self) -> None:
        await self.db.close()


def _rowcount(status: str) -> int:
    """asyncpg's command tag ("UPDATE 3", "INSERT 0 5") → the number of rows."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class AsyncpgConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return await self._conn.fetch(to_numbered(sql), *params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        return await self._conn.fetchrow(to_numbered(sql), *params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _rowcount(await self._conn.execute(to_numbered(sql), *params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(to_numbered(sql), rows)


def backend_cpu(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) the server processes have used so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


async def rollback_if_open(conn: Any) -> None:
    """asyncpg's pool resets every connection it takes back (advisory locks released,
    settings reset, LISTENs dropped: one more round trip, about 60 µs of CPU a use). The
    store uses none of them, so only an open transaction needs undoing. (The one-instance
    advisory lock must therefore live on a connection of its own, outside the pool.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def vacuum_after_undo(backend: Backend, tables: str) -> None:
    """A run and its undo leave two dead versions of every row they touched, where the bot
    leaves one until autovacuum: VACUUM (untimed) so that every run starts alike."""
    async with backend.connection() as conn:
        await conn.execute(f"VACUUM {tables}")


class AsyncpgBackend:
    postgres = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.pool: Any = None
        self.pids: list[int] = []

    async def open(self, dsn: str, *, statement_cache_size: int) -> AsyncpgBackend:
        import asyncpg

        async def remember(conn: Any) -> None:
            self.pids.append(conn.get_server_pid())

        self.pool = await asyncpg.create_pool(
            dsn,
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            statement_cache_size=statement_cache_size,
            server_settings=SERVER_SETTINGS,
            init=remember,
            reset=rollback_if_open,
        )
        return self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield AsyncpgConnection(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn:
            yield AsyncpgConnection(conn)

    async def copy(
        self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple]
    ) -> None:
        assert isinstance(conn, AsyncpgConnection)
        await conn._conn.copy_records_to_table(table, records=rows, columns=list(columns))

    def server_cpu(self) -> float:
        return backend_cpu(self.pids)

    async def tidy(self, tables: str) -> None:
        await vacuum_after_undo(self, tables)

    async def close(self) -> None:
        await self.pool.close()


class PsycopgConnection:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        cursor = await self._conn.execute(to_format(sql), params)
        return await cursor.fetchall()

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Sequence[Any] | None:
        cursor = await self._conn.execute(to_format(sql), params)
        return await cursor.fetchone()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(to_format(sql), params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._conn.cursor() as cursor:
            await cursor.executemany(to_format(sql), rows)  # pipelined by psycopg ≥ 3.1


class PsycopgBackend:
    postgres = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.pool: Any = None
        self.pids: list[int] = []

    async def open(self, dsn: str, *, prepare_threshold: int | None) -> PsycopgBackend:
        from psycopg_pool import AsyncConnectionPool

        async def remember(conn: Any) -> None:
            self.pids.append(conn.info.backend_pid)

        self.pool = AsyncConnectionPool(
            dsn,
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            kwargs={
                # Reads outside a transaction need no BEGIN/COMMIT round trips.
                "autocommit": True,
                "prepare_threshold": prepare_threshold,
                "options": " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items()),
            },
            configure=remember,
            open=False,
        )
        await self.pool.open(wait=True)
        return self

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.connection() as conn, conn.transaction():
            yield PsycopgConnection(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.connection() as conn:
            yield PsycopgConnection(conn)

    async def copy(
        self, conn: Connection, table: str, columns: Sequence[str], rows: list[tuple]
    ) -> None:
        assert isinstance(conn, PsycopgConnection)
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        async with conn._conn.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                await copy.write_row(row)

    def server_cpu(self) -> float:
        return backend_cpu(self.pids)

    async def tidy(self, tables: str) -> None:
        await vacuum_after_undo(self, tables)

    async def close(self) -> None:
        await self.pool.close()


# --------------------------------------------------------------------------------------------
# The data, seeded: each table a generator, so that both backends load the same rows


@dataclasses.dataclass(frozen=True)
class Sizes:
    feeds: int
    chats: int
    stories: int
    outbox: int
    seed: int


REALISTIC = Sizes(feeds=10_000, chats=100_000, stories=500_000, outbox=200_000, seed=1)


VOCABULARY = (
    "market election storm minister court climate energy vote budget league final health"
    " police trade talks city river school bank strike rail airport virus study museum"
    " festival record border summit water price ruling launch bridge fire tax harbour"
)
WORDS = VOCABULARY.split()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize()


def chat_id(index: int) -> int:
    """The index-th chat's Telegram id: 80% private (beyond 32 bits), 20% supergroups."""
    if index % 5:
        return 1_000_000_000 + index * 37_501
    return -1_000_000_000_000 - index


def feed_rows(sizes: Sizes) -> Iterator[tuple]:
    rng = random.Random(sizes.seed * 10 + 1)
    for feed in range(1, sizes.feeds + 1):
        roll = rng.random()
        status = "gone" if roll < 0.01 else "paused" if roll < 0.03 else "active"
        if feed == HOT_FEED:
            status = "active"
        yield (
            feed,
            f"https://news{feed}.example/feed.xml",
            f"News {feed}",
            f"https://news{feed}.example/",
            status,
            f'"etag-{feed}"',
            NOW - 2 * HOUR_MS + rng.randrange(4 * HOUR_MS),  # next_check_at
            NOW - 40 * DAY_MS,  # primed_at
            NOW - HOUR_MS,  # newest_timestamp_id
            NOW - 100 * DAY_MS,  # created_at
        )


FEED_COLUMNS = (
    "id, url, title, site_url, status, etag, next_check_at, primed_at, newest_timestamp_id,"
    " created_at"
)


def chat_rows(sizes: Sizes) -> Iterator[tuple]:
    rng = random.Random(sizes.seed * 10 + 2)
    zones = ("Europe/Berlin", "Asia/Shanghai", "America/New_York", None)
    for index in range(sizes.chats):
        digest = rng.random() < 0.1
        paused = index >= HOT_SUBSCRIBERS and rng.random() < 0.05
        yield (
            chat_id(index),
            "private" if index % 5 else "supergroup",
            f"Chat {index}",
            "zh" if index % 4 == 0 else "en",
            "paused" if paused else "active",
            rng.choice(zones),
            8 if digest else None,
            0 if digest else None,
            NOW + rng.randrange(DAY_MS) if digest else None,  # next_digest_at
            NOW - 50 * DAY_MS,
        )


CHAT_COLUMNS = (
    "id, kind, title, language, status, timezone, digest_hour, digest_minute,"
    " next_digest_at, created_at"
)


def subscription_rows(sizes: Sizes) -> Iterator[tuple]:
    """The first 200 chats follow the hot feed (instant); every chat 1-9 other feeds,
    popular feeds (low ids) followed more."""
    rng = random.Random(sizes.seed * 10 + 3)
    row_id = 0
    for index in range(sizes.chats):
        feeds: set[int] = set()
        if index < HOT_SUBSCRIBERS:
            feeds.add(HOT_FEED)
        for _ in range(rng.randint(1, 9)):
            feeds.add(2 + int((sizes.feeds - 1) * rng.random() ** 2) % (sizes.feeds - 1))
        for feed in sorted(feeds):
            row_id += 1
            mode = "instant" if feed == HOT_FEED or rng.random() < 0.9 else "digest"
            yield (row_id, chat_id(index), feed, None, mode, NOW - 50 * DAY_MS)


SUBSCRIPTION_COLUMNS = "id, chat_id, feed_id, thread_id, mode, created_at"


def identity(story: int) -> str:
    return hashlib.sha1(f"story-{story}".encode()).hexdigest()


def story_link_key(story: int) -> str:
    return f"news{story}.example/2026/story-{story}"


def story_title_key(story: int) -> str:
    return f"title of story {story}"


def duplicate_sources() -> tuple[range, range]:
    """Stories of other feeds, first seen an hour ago, whose link (first range) or title
    (second) the new entries repeat; their alerts went to 20 of the hot feed's chats."""
    first = DOCUMENT_SEEN + 1
    return (
        range(first, first + LINK_DUPLICATES),
        range(first + LINK_DUPLICATES, first + LINK_DUPLICATES + TITLE_DUPLICATES),
    )


def story_rows(sizes: Sizes) -> Iterator[tuple]:
    """Stories 1-50 are the hot feed's (still in its document); the rest spread over the
    other feeds, first seen over the last 100 days (about 5,000 a day) in id order, as a
    store that grows in time writes them."""
    rng = random.Random(sizes.seed * 10 + 4)
    by_link, by_title = duplicate_sources()
    for story in range(1, sizes.stories + 1):
        if story <= DOCUMENT_SEEN:
            feed = HOT_FEED
            first_seen = NOW - 10 * DAY_MS + story * HOUR_MS
        else:
            feed = 2 + story % (sizes.feeds - 1)
            first_seen = NOW - 100 * DAY_MS + story * (100 * DAY_MS // sizes.stories)
        if story in by_link or story in by_title:
            first_seen = NOW - HOUR_MS
        timestamp = first_seen - rng.randrange(6 * HOUR_MS)
        title = _sentence(rng, 10)
        yield (
            story,
            feed,
            identity(story),
            timestamp,
            title,
            f"https://{story_link_key(story)}",
            _sentence(rng, 28)[:200],
            story_link_key(story),
            story_title_key(story),
            first_seen,
            first_seen if story > DOCUMENT_SEEN else NOW - DAY_MS,
        )


STORY_COLUMNS = (
    "id, feed_id, identity, timestamp_id, title, link, summary, link_key, title_key,"
    " first_seen_at, last_present_at"
)
DIGEST_TEXT = ("<b>Digest</b> " + "A story title and its summary, and a link. " * 80)[:3000]


def outbox_rows(sizes: Sizes) -> Iterator[tuple]:
    """The duplicate sources' alerts first, then fan-outs of the newest stories (each to
    40 chats), every 20th row a digest part; the newest 1 in 10 rows are pending, the rest
    sent."""
    by_link, by_title = duplicate_sources()
    row_id = 0
    for offset, stories in ((0, by_link), (DUPLICATE_CHATS, by_title)):
        for story in stories:
            for index in range(offset, offset + DUPLICATE_CHATS):
                row_id += 1
                yield _outbox_row(row_id, chat_id(index), "alert", story, None, "sent", sizes)
    first_story = max(
        DOCUMENT_SEEN + LINK_DUPLICATES + TITLE_DUPLICATES + 1,
        sizes.stories - sizes.outbox // 40 - 1,
    )
    k = 0
    while row_id < sizes.outbox:
        row_id += 1
        k += 1
        status = "pending" if row_id > sizes.outbox - sizes.outbox // PENDING_SHARE else "sent"
        chat = chat_id((k * 7919) % sizes.chats)
        if k % DIGEST_EVERY == 0:
            yield _outbox_row(row_id, chat, "digest", None, DIGEST_TEXT, status, sizes)
        else:
            story = first_story + (k // 40) % (sizes.stories + 1 - first_story)
            yield _outbox_row(row_id, chat, "alert", story, None, status, sizes)


def _outbox_row(
    row_id: int,
    chat: int,
    kind: str,
    story: int | None,
    text: str | None,
    status: str,
    sizes: Sizes,
) -> tuple:
    created = NOW - DAY_MS + row_id * (DAY_MS // max(sizes.outbox, 1)) // 2
    sent_at = created + 1000 if status == "sent" else None
    return (row_id, chat, None, kind, story, None, text, status, 0, created, created, sent_at)


OUTBOX_COLUMN_LIST = (
    "id, chat_id, thread_id, kind, story_id, keyword, text, status, attempts, not_before,"
    " created_at, sent_at"
)
LOADS: tuple[tuple[str, str, Callable[[Sizes], Iterator[tuple]]], ...] = (
    ("feeds", FEED_COLUMNS, feed_rows),
    ("chats", CHAT_COLUMNS, chat_rows),
    ("subscriptions", SUBSCRIPTION_COLUMNS, subscription_rows),
    ("stories", STORY_COLUMNS, story_rows),
    ("outbox", OUTBOX_COLUMN_LIST, outbox_rows),
)


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load_sqlite(db: Database, sizes: Sizes) -> dict[str, int]:
    counts = {}
    for table, columns, rows in LOADS:
        n = 0
        for batch in _batches(rows(sizes), 50_000):
            async with db.transaction() as conn:
                await conn.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks(columns.count(',') + 1)})",
                    batch,
                )
            n += len(batch)
        counts[table] = n
    async with db.transaction() as conn:
        await conn.execute("ANALYZE")
    return counts


async def postgres_migrate(conn: Any) -> list[str]:
    """Apply bot/store/migrations/postgresql/ as the PostgreSQL backend will: in one
    transaction, split as bot.store.db splits SQLite's, recorded in schema_migrations."""
    applied = []
    async with conn.transaction():
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        current = await conn.fetchval("SELECT COALESCE(MAX(number), 0) FROM schema_migrations")
        for number, name, sql in migrations("postgresql"):
            if number <= current:
                continue
            for statement in statements(sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (number, name, applied_at) VALUES ($1, $2, $3)",
                number,
                name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            )
            applied.append(name)
    return applied


async def load_postgres(conn: Any, sizes: Sizes) -> dict[str, int]:
    counts = {}
    for table, columns, rows in LOADS:
        n = 0
        names = [c.strip() for c in columns.split(",")]
        for batch in _batches(rows(sizes), 50_000):
            await conn.copy_records_to_table(table, records=batch, columns=names)
            n += len(batch)
        counts[table] = n
    for table in ("feeds", "subscriptions", "stories", "outbox"):
        # Rows copied with their ids: move each identity past them (migrate-db must too).
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table}"
        )
    await conn.execute("VACUUM ANALYZE")
    return counts


# --------------------------------------------------------------------------------------------
# The operations, on the Connection surface


@dataclasses.dataclass(frozen=True)
class Document:
    entries: list[Entry]
    summaries: dict[str, str]


def document() -> Document:
    """The checked feed's document: 50 entries seen before (stories 1-50), 50 new, newest
    first; the first 10 new repeat another feed's link, the next 5 another feed's title."""
    rng = random.Random(7)
    by_link, by_title = duplicate_sources()
    entries = []
    for j in range(DOCUMENT_NEW):
        link_key = story_link_key(by_link[j]) if j < LINK_DUPLICATES else f"hot.example/new-{j}"
        title_key = (
            story_title_key(by_title[j - LINK_DUPLICATES])
            if LINK_DUPLICATES <= j < LINK_DUPLICATES + TITLE_DUPLICATES
            else f"hot new story {j}"
        )
        entries.append(
            Entry(
                feed_id=HOT_FEED,
                timestamp_id=NOW - j * 60_000,
                identity=f"new-{j}",
                title=_sentence(rng, 10),
                link=f"https://{link_key}",
                lead_html="",
                link_key=link_key,
                title_key=title_key,
            )
        )
    for story in range(1, DOCUMENT_SEEN + 1):
        entries.append(
            Entry(
                feed_id=HOT_FEED,
                timestamp_id=NOW - 10 * DAY_MS + story * HOUR_MS,
                identity=identity(story),
                title=_sentence(rng, 10),
                link=f"https://{story_link_key(story)}",
                lead_html="",
                link_key=story_link_key(story),
                title_key=story_title_key(story),
            )
        )
    summaries = {e.identity: _sentence(rng, 28)[:200] for e in entries}
    return Document(entries, summaries)


FEED_CHECK = FeedUpdate(
    now_ms=NOW,
    next_check_at=NOW + 15 * 60_000,
    hint_seconds=None,
    etag='"etag-new"',
    last_modified=None,
    body_hash="abc",
    title="News 1",
    site_url=None,
    new_body=True,
)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    inserted: int
    fresh: int
    queued: int
    skipped: int


OutboxWriter = Callable[[Backend, Connection, list[tuple]], Awaitable[None]]


async def write_executemany(backend: Backend, conn: Connection, rows: list[tuple]) -> None:
    await conn.executemany(ALERT_INSERT, rows)


async def write_values(backend: Backend, conn: Connection, rows: list[tuple]) -> None:
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        params = [value for row in chunk for value in row]
        sql = (
            ALERT_INSERT_HEAD
            + ",".join(["(?, ?, 'alert', ?, ?, ?, ?)"] * len(chunk))
            + " ON CONFLICT DO NOTHING"
        )
        await conn.execute(sql, params)


async def write_unnest(backend: Backend, conn: Connection, rows: list[tuple]) -> None:
    chats, threads, stories, keywords = (
        list(column) for column in zip(*[r[:4] for r in rows], strict=True)
    )
    await conn.execute(ALERT_INSERT_UNNEST, (NOW, NOW, chats, threads, stories, keywords))


async def write_copy(backend: Backend, conn: Connection, rows: list[tuple]) -> None:
    # No ON CONFLICT: safe here only because the stories were inserted by this transaction,
    # so no outbox row can name them yet.
    records = [(c, t, "alert", s, k, n, created) for c, t, s, k, n, created in rows]
    await backend.copy(conn, "outbox", OUTBOX_COLUMNS, records)


WRITERS: dict[str, OutboxWriter] = {
    "executemany": write_executemany,
    "values": write_values,
    "unnest": write_unnest,
    "copy": write_copy,
}


async def record_check(backend: Backend, doc: Document, writer: OutboxWriter) -> CheckResult:
    """StoryStore.record_check on the Connection surface (every recipient alerted)."""
    now = NOW
    entries = doc.entries
    async with backend.transaction() as conn:
        state = await conn.fetchone(FEED_STATE, (HOT_FEED,))
        assert state is not None
        primed_at, newest = state
        values: list[Any] = []
        for e in entries:
            values += [
                HOT_FEED,
                e.identity,
                e.timestamp_id,
                e.title,
                e.link,
                doc.summaries.get(e.identity, ""),
                e.link_key,
                e.title_key,
                now,
                now,
            ]
        sql = STORIES_INSERT_HEAD + rows_marks(len(entries), 10) + STORIES_INSERT_TAIL
        by_identity = {e.identity: e for e in entries}
        inserted = [(row[0], by_identity[row[1]]) for row in await conn.fetchall(sql, values)]
        identities = [e.identity for e in entries]
        await conn.execute(
            MARK_PRESENT.format(marks=marks(len(identities))), (now, HOT_FEED, *identities, now)
        )
        fresh = [
            (story_id, entry)
            for story_id, entry in inserted
            if primed_at is not None and (newest is None or entry.timestamp_id >= newest - DAY_MS)
        ]
        fresh.sort(key=lambda item: item[1].timestamp_id)
        batch_newest = max(e.timestamp_id for e in entries)
        status = await conn.fetchone(FEED_STATUS, (HOT_FEED,))
        assert status is not None
        check = FEED_CHECK
        await conn.execute(
            APPLY_SUCCESS,
            (
                check.now_ms,
                check.now_ms,
                check.next_check_at,
                check.hint_seconds,
                check.new_body,
                check.etag,
                check.new_body,
                check.last_modified,
                check.new_body,
                check.body_hash,
                check.title,
                check.site_url,
                HOT_FEED,
            ),
        )
        await conn.execute(FEED_NEWEST, (now, batch_newest, batch_newest, HOT_FEED))
        recipients = await conn.fetchall(INSTANT_RECIPIENTS, (HOT_FEED,))
        routed = [
            (story_id, entry, [Delivery(r[0], r[1], None) for r in recipients])
            for story_id, entry in fresh
        ]
        had: dict[str, dict[str, set[int]]] = {}
        for column in ("link_key", "title_key"):
            keys = sorted({getattr(entry, column) for _, entry, _ in routed} - {""})
            found: dict[str, set[int]] = {}
            rows = await conn.fetchall(
                ALERTED_BY_KEY.format(column=column, marks=marks(len(keys))),
                (*keys, HOT_FEED, now - DUPLICATE_WINDOW_MS),
            )
            for key, chat in rows:
                found.setdefault(key, set()).add(chat)
            had[column] = found
        alerts = []
        skipped = 0
        for story_id, entry, deliveries in routed:
            already = had["link_key"].get(entry.link_key, set()) | had["title_key"].get(
                entry.title_key, set()
            )
            for d in deliveries:
                if d.chat_id in already:
                    skipped += 1
                else:
                    alerts.append((d.chat_id, d.thread_id, story_id, d.keyword, now, now))
        await writer(backend, conn, alerts)
    return CheckResult(len(inserted), len(fresh), len(alerts), skipped)


async def undo_check(backend: Backend) -> None:
    async with backend.transaction() as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE story_id IN"
            " (SELECT id FROM stories WHERE feed_id = ? AND identity LIKE 'new-%')",
            (HOT_FEED,),
        )
        await conn.execute(
            "DELETE FROM stories WHERE feed_id = ? AND identity LIKE 'new-%'", (HOT_FEED,)
        )
        await conn.execute(
            "UPDATE stories SET last_present_at = ? WHERE feed_id = ?", (NOW - DAY_MS, HOT_FEED)
        )
        await conn.execute(
            "UPDATE feeds SET newest_timestamp_id = ?, etag = '\"etag-1\"' WHERE id = ?",
            (NOW - HOUR_MS, HOT_FEED),
        )
    await backend.tidy("outbox, stories, feeds")


async def outbox_of_new_stories(backend: Backend) -> int:
    async with backend.connection() as conn:
        row = await conn.fetchone(
            "SELECT COUNT(*) FROM outbox o JOIN stories s ON s.id = o.story_id"
            " WHERE s.feed_id = ? AND s.identity LIKE 'new-%'",
            (HOT_FEED,),
        )
    return int(row[0]) if row else -1


@dataclasses.dataclass(frozen=True)
class Refill:
    rows: int
    first_id: int
    last_id: int
    with_text: int
    stories: int


async def refill(backend: Backend) -> Refill:
    """The sender's refill: pending_after(0, 5000) and the texts of the stories named."""
    async with backend.connection() as conn:
        rows = await conn.fetchall(PENDING_AFTER, (0, REFILL))
    missing = sorted({row[4] for row in rows if row[4]})
    texts = 0
    for start in range(0, len(missing), 900):
        chunk = missing[start : start + 900]
        async with backend.connection() as conn:
            texts += len(await conn.fetchall(STORY_TEXTS.format(marks=marks(len(chunk))), chunk))
    return Refill(len(rows), rows[0][0], rows[-1][0], sum(1 for r in rows if r[6]), texts)


MarkWay = Callable[[Connection, list[int]], Awaitable[None]]


async def mark_executemany(conn: Connection, ids: list[int]) -> None:
    await conn.executemany(MARK_SENT, [(NOW, i) for i in ids])


async def mark_in(conn: Connection, ids: list[int]) -> None:
    await conn.execute(MARK_SENT_IN.format(marks=marks(len(ids))), (NOW, *ids))


async def mark_any(conn: Connection, ids: list[int]) -> None:
    await conn.execute(MARK_SENT_ANY, (NOW, ids))


MARKERS: dict[str, MarkWay] = {"executemany": mark_executemany, "in": mark_in, "any": mark_any}


def pending_ids(sizes: Sizes) -> list[int]:
    """The rows one refill loads: the first 5,000 pending (fewer in a small run)."""
    pending = sizes.outbox // PENDING_SHARE
    first = sizes.outbox - pending + 1
    return list(range(first, first + min(REFILL, pending)))


async def mark_sent(backend: Backend, ids: list[int], way: MarkWay) -> None:
    for start in range(0, len(ids), MARK_BATCH):
        async with backend.transaction() as conn:
            await way(conn, ids[start : start + MARK_BATCH])


async def count_sent(backend: Backend, ids: list[int]) -> int:
    async with backend.connection() as conn:
        row = await conn.fetchone(
            "SELECT COUNT(*) FROM outbox WHERE id >= ? AND id <= ? AND status = 'sent'"
            " AND sent_at = ?",
            (ids[0], ids[-1], NOW),
        )
    return int(row[0]) if row else -1


async def undo_mark(backend: Backend, ids: list[int]) -> None:
    async with backend.transaction() as conn:
        await conn.execute(
            "UPDATE outbox SET status = 'pending', sent_at = NULL, attempts = 0"
            " WHERE id >= ? AND id <= ?",
            (ids[0], ids[-1]),
        )
    await backend.tidy("outbox")


def digest_bounds() -> tuple[int, int, int]:
    """A daily digest due now after yesterday's: seen in the last 24 h, published up to a
    day before that (bot/digest.py daily_window)."""
    return NOW - DAY_MS, NOW, NOW - 2 * DAY_MS


async def digest_window(backend: Backend) -> tuple[int, int]:
    async with backend.connection() as conn:
        rows = await conn.fetchall(IN_WINDOW, digest_bounds())
    return len(rows), sum(row[0] for row in rows)


async def point_reads(backend: Backend, ids: list[int]) -> int:
    found = 0
    for item_id in ids:
        async with backend.connection() as conn:
            row = await conn.fetchone(OUTBOX_TEXT, (item_id,))
        found += bool(row and row[0])
    return found


def digest_row_ids(sizes: Sizes) -> list[int]:
    """Ids of pending digest parts (their text is what OutboxStore.text reads)."""
    first = sizes.outbox - sizes.outbox // PENDING_SHARE + 1
    offset = LINK_DUPLICATES * DUPLICATE_CHATS + TITLE_DUPLICATES * DUPLICATE_CHATS
    ids = [i for i in range(first, sizes.outbox + 1) if (i - offset) % DIGEST_EVERY == 0]
    return (ids * (POINT_READS // max(len(ids), 1) + 1))[:POINT_READS]


# --------------------------------------------------------------------------------------------
# The bot's own store code on SQLite: the reference for what the replica must do


async def store_record_check(store: Store, doc: Document) -> CheckResult:
    async with store.stories.check_unit(HOT_FEED) as unit:
        report = await record.record_check(
            unit,
            doc.entries,
            doc.summaries,
            FEED_CHECK,
            record.DedupeRules(archive_window_ms=DAY_MS, duplicate_window_ms=DUPLICATE_WINDOW_MS),
            router=lambda story, recipients: [
                Delivery(r.chat_id, r.thread_id, None) for r in recipients
            ],
        )
    return CheckResult(report.inserted, report.fresh, report.queued, report.duplicates_skipped)


async def store_refill(store: Store) -> Refill:
    items = await store.outbox.pending_after(0, REFILL)
    missing = sorted({i.story_id for i in items if i.story_id})
    texts = await store.outbox.stories(missing)
    return Refill(len(items), items[0].id, items[-1].id, sum(i.has_text for i in items), len(texts))


async def store_mark(store: Store, ids: list[int]) -> None:
    for start in range(0, len(ids), MARK_BATCH):
        await store.outbox.mark_sent(ids[start : start + MARK_BATCH], NOW)


async def store_digest(store: Store) -> tuple[int, int]:
    seen_from, seen_until, published_from = digest_bounds()
    by_feed = await store.stories.in_window(
        seen_from=seen_from, seen_until=seen_until, published_from=published_from
    )
    return sum(len(v) for v in by_feed.values()), sum(s.id for v in by_feed.values() for s in v)


async def store_point_reads(store: Store, ids: list[int]) -> int:
    found = 0
    for item_id in ids:
        found += bool(await store.outbox.text(item_id))
    return found


# --------------------------------------------------------------------------------------------
# Timing


@dataclasses.dataclass
class Timing:
    wall_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_ms: list[float] = dataclasses.field(default_factory=list)
    server_ms: list[float] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "wall_ms": statistics.median(self.wall_ms),
            "cpu_ms": statistics.median(self.cpu_ms),
            "server_cpu_ms": statistics.fmean(self.server_ms),
            "wall_ms_min": min(self.wall_ms),
            "runs": len(self.wall_ms),
        }


class Failures(list[str]):
    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.append(what)
            print(f"  CHECK FAILED: {what}", flush=True)


async def timed(
    backend: Backend,
    runs: int,
    warmup: int,
    op: Callable[[], Awaitable[Any]],
    after: Callable[[Any], Awaitable[None]],
) -> Timing:
    """Run op warmup + runs times; `after` checks each result and undoes what op wrote."""
    timing = Timing()
    for run in range(warmup + runs):
        gc.collect()
        server0 = backend.server_cpu()
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        result = await op()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        server = backend.server_cpu() - server0
        await after(result)
        if run >= warmup:
            timing.wall_ms.append(wall * 1000)
            timing.cpu_ms.append(cpu * 1000)
            timing.server_ms.append(server * 1000)
    return timing


async def run_operations(
    backend: Backend, sizes: Sizes, runs: int, warmup: int, failures: Failures, *, all_ops: bool
) -> dict[str, Any]:
    """Every operation (all_ops False: the check alone)."""
    doc = document()
    results: dict[str, Any] = {}
    writers = list(WRITERS) if backend.postgres else ["executemany", "values"]
    for way in writers:

        async def check_and_undo(result: CheckResult, way: str = way) -> None:
            expected = CheckResult(DOCUMENT_NEW, DOCUMENT_NEW, EXPECTED_QUEUED, EXPECTED_SKIPPED)
            failures.check(result == expected, f"{backend.name} check/{way}: {result}")
            written = await outbox_of_new_stories(backend)
            failures.check(
                written == EXPECTED_QUEUED, f"{backend.name} check/{way}: {written} rows"
            )
            await undo_check(backend)

        timing = await timed(
            backend,
            runs,
            warmup,
            functools.partial(record_check, backend, doc, WRITERS[way]),
            check_and_undo,
        )
        results[f"check/{way}"] = timing.summary()
        print(f"  check/{way}: {fmt(results[f'check/{way}'])}", flush=True)
    if not all_ops:
        return results

    async def check_refill(result: Refill) -> None:
        ids = pending_ids(sizes)
        ok = result.rows == len(ids) and (result.first_id, result.last_id) == (ids[0], ids[-1])
        failures.check(ok and result.stories > 0, f"{backend.name} refill: {result}")
        results["refill_rows"] = dataclasses.asdict(result)

    timing = await timed(backend, runs, warmup, functools.partial(refill, backend), check_refill)
    results["refill"] = timing.summary()
    print(f"  refill: {fmt(results['refill'])}", flush=True)

    ids = pending_ids(sizes)
    markers = list(MARKERS) if backend.postgres else ["executemany", "in"]
    for way in markers:

        async def check_mark(result: None, way: str = way) -> None:
            sent = await count_sent(backend, ids)
            failures.check(sent == len(ids), f"{backend.name} mark/{way}: {sent} marked sent")
            await undo_mark(backend, ids)

        timing = await timed(
            backend,
            runs,
            warmup,
            functools.partial(mark_sent, backend, ids, MARKERS[way]),
            check_mark,
        )
        results[f"mark/{way}"] = timing.summary()
        print(f"  mark/{way}: {fmt(results[f'mark/{way}'])}", flush=True)

    async def check_digest(result: tuple[int, int]) -> None:
        results["digest_rows"] = list(result)
        failures.check(result[0] > 0, f"{backend.name} digest: no rows")

    timing = await timed(
        backend, runs, warmup, functools.partial(digest_window, backend), check_digest
    )
    results["digest"] = timing.summary()
    print(f"  digest: {fmt(results['digest'])} ({results['digest_rows'][0]} rows)", flush=True)

    reads = digest_row_ids(sizes)

    async def check_reads(found: int) -> None:
        failures.check(found == len(reads), f"{backend.name} point reads: {found} found")

    timing = await timed(
        backend, runs, warmup, functools.partial(point_reads, backend, reads), check_reads
    )
    results["point_reads"] = timing.summary()
    print(f"  point reads: {fmt(results['point_reads'])}", flush=True)
    return results


async def run_store_operations(
    store: Store, backend: Backend, sizes: Sizes, runs: int, warmup: int, failures: Failures
) -> dict[str, Any]:
    """The same operations through bot.store's own methods (SQLite, the bot today)."""
    doc = document()
    results: dict[str, Any] = {}
    name = backend.name

    async def check_and_undo(result: CheckResult) -> None:
        expected = CheckResult(DOCUMENT_NEW, DOCUMENT_NEW, EXPECTED_QUEUED, EXPECTED_SKIPPED)
        failures.check(result == expected, f"{name} check: {result}")
        written = await outbox_of_new_stories(backend)
        failures.check(written == EXPECTED_QUEUED, f"{name} check: {written} rows")
        await undo_check(backend)

    timing = await timed(
        backend, runs, warmup, functools.partial(store_record_check, store, doc), check_and_undo
    )
    results["check/executemany"] = timing.summary()
    print(f"  check/executemany: {fmt(results['check/executemany'])}", flush=True)

    async def check_refill(result: Refill) -> None:
        failures.check(result.rows == len(pending_ids(sizes)), f"{name} refill: {result}")
        results["refill_rows"] = dataclasses.asdict(result)

    timing = await timed(
        backend, runs, warmup, functools.partial(store_refill, store), check_refill
    )
    results["refill"] = timing.summary()
    print(f"  refill: {fmt(results['refill'])}", flush=True)

    ids = pending_ids(sizes)

    async def check_mark(result: None) -> None:
        sent = await count_sent(backend, ids)
        failures.check(sent == len(ids), f"{name} mark: {sent} marked sent")
        await undo_mark(backend, ids)

    timing = await timed(
        backend, runs, warmup, functools.partial(store_mark, store, ids), check_mark
    )
    results["mark/executemany"] = timing.summary()
    print(f"  mark/executemany: {fmt(results['mark/executemany'])}", flush=True)

    async def check_digest(result: tuple[int, int]) -> None:
        results["digest_rows"] = list(result)

    timing = await timed(
        backend, runs, warmup, functools.partial(store_digest, store), check_digest
    )
    results["digest"] = timing.summary()
    print(f"  digest: {fmt(results['digest'])}", flush=True)

    reads = digest_row_ids(sizes)

    async def check_reads(found: int) -> None:
        failures.check(found == len(reads), f"{name} point reads: {found} found")

    timing = await timed(
        backend, runs, warmup, functools.partial(store_point_reads, store, reads), check_reads
    )
    results["point_reads"] = timing.summary()
    print(f"  point reads: {fmt(results['point_reads'])}", flush=True)
    return results


def fmt(summary: dict[str, float]) -> str:
    return (
        f"wall {summary['wall_ms']:.1f} ms, cpu {summary['cpu_ms']:.1f} ms,"
        f" server cpu {summary['server_cpu_ms']:.1f} ms"
    )


# --------------------------------------------------------------------------------------------
# Variants, one process each (psycopg picks its implementation at import)

VARIANTS: dict[str, dict[str, Any]] = {
    "sqlite-store": {"label": "SQLite, bot.store code (today)", "driver": "sqlite"},
    "sqlite": {"label": "SQLite, Connection adapter", "driver": "sqlite"},
    "asyncpg": {"label": "asyncpg (statement cache 100)", "driver": "asyncpg", "cache": 100},
    "asyncpg-nocache": {"label": "asyncpg, no statement cache", "driver": "asyncpg", "cache": 0},
    "psycopg-c": {
        "label": "psycopg[binary] (prepare_threshold 5)",
        "driver": "psycopg",
        "impl": "binary",
        "prepare": 5,
    },
    "psycopg-c-unprepared": {
        "label": "psycopg[binary], never prepared",
        "driver": "psycopg",
        "impl": "binary",
        "prepare": None,
    },
    "asyncpg-no-fk": {
        "label": "asyncpg, outbox.story_id without its foreign key",
        "driver": "asyncpg",
        "cache": 100,
        "drop_fk": True,
    },
    "psycopg-python": {
        "label": "psycopg pure Python (prepare_threshold 5)",
        "driver": "psycopg",
        "impl": "python",
        "prepare": 5,
    },
}


async def worker(args: argparse.Namespace) -> int:
    variant = VARIANTS[args.worker]
    sizes = Sizes(args.feeds, args.chats, args.stories, args.outbox, args.seed)
    failures = Failures()
    backend: Any
    versions: dict[str, str] = {}
    if variant["driver"] == "sqlite":
        import aiosqlite

        db = await Database.open(args.sqlite)
        backend = SqliteBackend(db, args.worker)
        versions = {"aiosqlite": aiosqlite.__version__, "sqlite": aiosqlite.sqlite_version}
    elif variant["driver"] == "asyncpg":
        import asyncpg

        backend = await AsyncpgBackend(args.worker).open(
            args.pg_dsn, statement_cache_size=variant["cache"]
        )
        versions = {"asyncpg": asyncpg.__version__}
    else:
        import psycopg
        import psycopg_pool

        backend = await PsycopgBackend(args.worker).open(
            args.pg_dsn, prepare_threshold=variant["prepare"]
        )
        versions = {
            "psycopg": psycopg.__version__,
            "psycopg_pool": psycopg_pool.__version__,
            "implementation": psycopg.pq.__impl__,
            "libpq": str(psycopg.pq.version()),
        }
        failures.check(
            psycopg.pq.__impl__ == variant["impl"],
            f"{args.worker}: psycopg runs its {psycopg.pq.__impl__} implementation",
        )
    try:
        if args.worker == "sqlite-store":
            results = await run_store_operations(
                Store(backend.db), backend, sizes, args.runs, args.warmup, failures
            )
        elif variant.get("drop_fk"):
            # What PostgreSQL's per-row foreign-key trigger costs the check: the key is dropped
            # for this run and put back after.
            async with backend.transaction() as conn:
                await conn.execute(f"ALTER TABLE outbox DROP CONSTRAINT {STORY_FK}")
            try:
                results = await run_operations(
                    backend, sizes, args.runs, args.warmup, failures, all_ops=False
                )
            finally:
                async with backend.transaction() as conn:
                    await conn.execute(
                        f"ALTER TABLE outbox ADD CONSTRAINT {STORY_FK} FOREIGN KEY (story_id)"
                        " REFERENCES stories (id) ON DELETE SET NULL"
                    )
        else:
            results = await run_operations(
                backend, sizes, args.runs, args.warmup, failures, all_ops=True
            )
    finally:
        await backend.close()
    results["versions"] = versions
    results["translation_us"] = translation_cost() if backend.postgres else {}
    results["failures"] = list(failures)
    Path(args.result).write_text(json.dumps(results))  # noqa: ASYNC240 - once, at the end
    return 1 if failures else 0


STORY_FK = "outbox_story_id_fkey"


def translation_cost() -> dict[str, float]:
    """µs to translate a statement the first time (uncached) and then (cached)."""
    sql = STORIES_INSERT_HEAD + rows_marks(100, 10) + STORIES_INSERT_TAIL
    cost = {}
    for name, function in (("asyncpg", to_numbered), ("psycopg", to_format)):
        start = time.perf_counter()
        for _ in range(100):
            function.__wrapped__(sql)
        cost[f"{name}_uncached_1000_params"] = (time.perf_counter() - start) / 100 * 1e6
        start = time.perf_counter()
        for _ in range(10_000):
            function(sql)
        cost[f"{name}_cached"] = (time.perf_counter() - start) / 10_000 * 1e6
    return cost


# --------------------------------------------------------------------------------------------
# EXPLAIN: the hot queries use indexes at this size


def explained_queries(sizes: Sizes) -> list[tuple[str, str, tuple, bool]]:
    """(name, SQL with ?, parameters, must use indexes only). Writes run in a transaction
    that is rolled back."""
    doc = document()
    identities = [e.identity for e in doc.entries]
    link_keys = sorted({e.link_key for e in doc.entries[:DOCUMENT_NEW]})
    ids = pending_ids(sizes)
    some_chats = [chat_id(i) for i in range(0, 900 * 37, 37)]
    story_ids = list(range(sizes.stories - 125, sizes.stories))  # what fan-outs name
    seen_from, seen_until, published_from = digest_bounds()
    due = (
        "SELECT id FROM feeds WHERE status = 'active' AND next_check_at <= ?"
        " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
        " ORDER BY next_check_at LIMIT ?"
    )
    return [
        (
            "known identities (StoryStore.known_identities)",
            f"SELECT identity FROM stories WHERE feed_id = ? AND identity IN ({marks(100)})",
            (HOT_FEED, *identities),
            True,
        ),
        (
            "mark present (_mark_present)",
            MARK_PRESENT.format(marks=marks(100)),
            (NOW, HOT_FEED, *identities, NOW),
            True,
        ),
        ("instant recipients (_instant_recipients)", INSTANT_RECIPIENTS, (HOT_FEED,), True),
        (
            "duplicates by link (_chats_alerted_by_key)",
            ALERTED_BY_KEY.format(column="link_key", marks=marks(len(link_keys))),
            (*link_keys, HOT_FEED, NOW - DUPLICATE_WINDOW_MS),
            True,
        ),
        ("due feeds (FeedStore.due)", due, (NOW, 200), True),
        ("refill (OutboxStore.pending_after)", PENDING_AFTER, (0, REFILL), True),
        (
            "refill later (pending_after, half-way)",
            PENDING_AFTER,
            (ids[-1], REFILL),
            True,
        ),
        (
            "story texts (OutboxStore.stories)",
            STORY_TEXTS.format(marks=marks(len(story_ids))),
            story_ids,
            True,
        ),
        ("mark sent (= ANY)", MARK_SENT_ANY, (NOW, ids[:MARK_BATCH]), True),
        ("mark sent (IN)", MARK_SENT_IN.format(marks=marks(MARK_BATCH)), (NOW, *ids[:50]), True),
        ("outbox text (OutboxStore.text)", OUTBOX_TEXT, (ids[0],), True),
        ("digest window (StoryStore.in_window)", IN_WINDOW, digest_bounds(), True),
        (
            "chat's window (StoryStore.window)",
            "SELECT st.id, st.feed_id, COALESCE(NULLIF(f.title, ''), f.url), st.timestamp_id,"
            " st.title, st.link, st.summary FROM subscriptions s"
            " JOIN stories st ON st.feed_id = s.feed_id JOIN feeds f ON f.id = s.feed_id"
            " WHERE s.chat_id = ? AND st.first_seen_at >= ? AND st.first_seen_at < ?"
            " AND st.timestamp_id >= ? ORDER BY st.timestamp_id DESC, st.id DESC",
            (chat_id(1), seen_from, seen_until, published_from),
            True,
        ),
        (
            "digests due (ChatStore.digests_due)",
            "SELECT id FROM chats WHERE digest_hour IS NOT NULL"
            " AND status = 'active' AND next_digest_at <= ? ORDER BY next_digest_at",
            (NOW + HOUR_MS,),
            True,
        ),
        (
            "subscribed feeds (ChatStore.subscribed_feeds)",
            f"SELECT chat_id, feed_id, mode FROM subscriptions WHERE chat_id IN ({marks(900)})",
            some_chats,
            True,
        ),
        (
            "alerts written (_enqueue_alerts, 9,700 rows by UNNEST)",
            ALERT_INSERT_UNNEST,
            (NOW, NOW, *alert_arrays()),
            False,
        ),
        (
            "stories today (/stats)",
            "SELECT COUNT(*) FROM stories WHERE first_seen_at >= ?",
            (NOW - NOW % DAY_MS,),
            True,
        ),
        (
            "outbox depth (OutboxStore.depth)",
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
            (),
            True,
        ),
        (
            "purge stories (StoryStore.purge, hourly)",
            "DELETE FROM stories WHERE last_present_at < ?"
            " AND id NOT IN (SELECT story_id FROM outbox WHERE status = 'pending'"
            " AND story_id IS NOT NULL)",
            # Retention 90 days (bot/default.toml): the oldest day's stories, about 5,000.
            (NOW - 99 * DAY_MS,),
            False,
        ),
        (
            "purge outbox (OutboxStore.purge, hourly)",
            "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?",
            (NOW - 7 * DAY_MS,),  # bot/telegram/app.py housekeeping keeps 7 days
            False,
        ),
    ]


def alert_arrays() -> list[list[Any]]:
    """UNNEST's four arrays for the hot feed's stored stories (1-50) × 194 chats: the size
    of one check's fan-out, on stories no outbox row names yet."""
    pairs = [
        (chat_id(index), story)
        for story in range(1, DOCUMENT_NEW + 1)
        for index in range(HOT_SUBSCRIBERS - EXPECTED_SKIPPED // DOCUMENT_NEW)
    ]
    return [[c for c, _ in pairs], [None] * len(pairs), [s for _, s in pairs], [None] * len(pairs)]


SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


def literal(value: Any) -> str:
    """A parameter spelled in SQL (EXECUTE takes no bound parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]::BIGINT[]"
    return "'" + str(value).replace("'", "''") + "'"


EXPLAIN_MODES = {
    # mode: (plan_cache_mode, connection settings)
    "custom": ("force_custom_plan", SERVER_SETTINGS),
    "generic": ("force_generic_plan", SERVER_SETTINGS),
    "server_costs": ("force_custom_plan", {"random_page_cost": "4"}),
}


async def explain_postgres(
    dsn: str, sizes: Sizes, failures: Failures, *, strict: bool
) -> list[dict[str, Any]]:
    """Every hot query's plans; with strict (realistic sizes), a sequential read of a big
    table by one of them is a failure."""
    import asyncpg

    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    found = []
    try:
        for name, sql, params, must_use_indexes in explained_queries(sizes):
            entry: dict[str, Any] = {"query": name}
            # PREPARE + EXPLAIN EXECUTE: the plan a prepared statement runs, with the
            # parameters' values (custom) or without them (generic, what PostgreSQL may
            # settle on after five runs of a prepared statement).
            await conn.execute(f"PREPARE hot AS {to_numbered(sql)}")
            arguments = ", ".join(literal(value) for value in params)
            execute = f"EXECUTE hot({arguments})" if params else "EXECUTE hot"
            for mode, (plan_cache_mode, settings) in EXPLAIN_MODES.items():
                # Once to warm the cache (time the plan, not the disk), then explained; each
                # in a transaction rolled back, so that writes find what they would.
                for statement in (execute, f"EXPLAIN (ANALYZE, BUFFERS) {execute}"):
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
                        for setting, value in settings.items():
                            await conn.execute(f"SET LOCAL {setting} = '{value}'")
                        rows = await conn.fetch(statement)
                    finally:
                        await tx.rollback()
                plan = "\n".join(row[0] for row in rows)
                entry[mode] = plan
                scans = sorted(set(SEQ_SCAN.findall(plan)) & set(BIG_TABLES))
                entry[f"{mode}_seq_scans"] = scans
                if strict and must_use_indexes and mode != "server_costs":
                    failures.check(not scans, f"EXPLAIN {name} ({mode} plan): Seq Scan on {scans}")
            await conn.execute("DEALLOCATE hot")
            found.append(entry)
    finally:
        await conn.close()
    return found


def explain_sqlite(path: str, sizes: Sizes) -> dict[str, str]:
    import sqlite3

    conn = sqlite3.connect(path)
    plans = {}
    try:
        for name, sql, params, _ in explained_queries(sizes):
            try:
                rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            except (sqlite3.Error, sqlite3.ProgrammingError):  # = ANY(?) is PostgreSQL's
                plans[name] = "(PostgreSQL only)"
                continue
            plans[name] = "; ".join(row[-1] for row in rows)
    finally:
        conn.close()
    return plans


def plan_summary(plan: str) -> str:
    """The plan's scan nodes and its execution time, on one line."""
    nodes = re.findall(
        r"((?:Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan|Hash Join|Hash Left Join)"
        r"[^(]*?)\s+\(",
        plan,
    )
    triggers = re.findall(r"Trigger for constraint (\w+): time=([\d.]+)", plan)
    time_ms = re.search(r"Execution Time: ([\d.]+) ms", plan)
    joined = "; ".join(dict.fromkeys(n.strip() for n in nodes))
    joined += "".join(f"; trigger {name} {ms} ms" for name, ms in triggers)
    return f"{joined} [{time_ms.group(1) if time_ms else '?'} ms]"


# --------------------------------------------------------------------------------------------
# The parent: build, run every variant, compare, explain, report


def with_database(dsn: str, name: str) -> str:
    head, _, tail = dsn.rpartition("/")
    query = ""
    if "?" in tail:
        tail, query = tail.split("?", 1)
        query = "?" + query
    return f"{head}/{name}{query}"


async def build(args: argparse.Namespace, sizes: Sizes, pg_dsn: str, sqlite_path: str) -> dict:
    import asyncpg

    admin = await asyncpg.connect(args.admin_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {pg_dsn.rsplit('/', 1)[1]}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        started = time.perf_counter()
        applied = await postgres_migrate(conn)
        again = await postgres_migrate(conn)
        pg_counts = await load_postgres(conn, sizes)
        pg_seconds = time.perf_counter() - started
        schema = {
            row[0]: row[1]
            for row in await conn.fetch(
                "SELECT table_name, COUNT(*) FROM information_schema.columns"
                " WHERE table_schema = 'public' GROUP BY table_name"
            )
        }
    finally:
        await conn.close()
    started = time.perf_counter()
    db = await Database.open(sqlite_path)
    try:
        sqlite_counts = await load_sqlite(db, sizes)
    finally:
        await db.close()
    sqlite_seconds = time.perf_counter() - started
    return {
        "migrations_applied": applied,
        "migrations_applied_again": again,
        "postgres_rows": pg_counts,
        "sqlite_rows": sqlite_counts,
        "postgres_load_s": pg_seconds,
        "sqlite_load_s": sqlite_seconds,
        "postgres_columns": schema,
    }


async def vacuum(pg_dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("VACUUM ANALYZE stories, outbox, feeds")
    finally:
        await conn.close()


async def drop(admin_dsn: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def run_worker(
    name: str, args: argparse.Namespace, pg_dsn: str, sqlite_path: str, folder: str
) -> dict:
    result = os.path.join(folder, f"{name}.json")
    env = dict(os.environ)
    impl = VARIANTS[name].get("impl")
    env.pop("PSYCOPG_IMPL", None)
    if impl:
        env["PSYCOPG_IMPL"] = impl
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--pg-dsn",
        pg_dsn,
        "--sqlite",
        sqlite_path,
        "--result",
        result,
        *(
            f"--{key}={getattr(args, key)}"
            for key in ("feeds", "chats", "stories", "outbox", "seed", "runs", "warmup")
        ),
    ]
    code = subprocess.run(command, env=env, check=False).returncode
    if not os.path.exists(result):
        return {"failures": [f"{name}: worker exited {code} without a result"]}
    found = json.loads(Path(result).read_text())
    if code and not found["failures"]:
        found["failures"] = [f"{name}: worker exited {code}"]
    return found


OPERATIONS = (
    ("check/executemany", "(a) check, outbox by executemany"),
    ("check/values", "(a) check, outbox by multi-row VALUES"),
    ("check/unnest", "(a) check, outbox by UNNEST arrays"),
    ("check/copy", "(a) check, outbox by COPY"),
    ("refill", "(b) refill 5,000 rows + their stories"),
    ("mark/executemany", "(b) mark 5,000 sent (100 × 50), executemany"),
    ("mark/in", "(b) mark sent, IN (?, …)"),
    ("mark/any", "(b) mark sent, = ANY(?)"),
    ("digest", "(c) digest window"),
    ("point_reads", "(d) 1,000 point reads"),
)


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per operation, one column per variant, wall / CPU (+ server CPU)."""
    names = [name for name in VARIANTS if name in results]
    lines = [
        "| operation | " + " | ".join(VARIANTS[n]["label"] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in OPERATIONS:
        cells = []
        for name in names:
            found = results[name].get(key)
            if not found:
                cells.append("–")
                continue
            cell = f"{found['wall_ms']:.1f} / {found['cpu_ms']:.1f}"
            if VARIANTS[name]["driver"] != "sqlite":
                cell += f" + {found['server_cpu_ms']:.0f}"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def parent(args: argparse.Namespace) -> int:
    sizes = Sizes(args.feeds, args.chats, args.stories, args.outbox, args.seed)
    failures = Failures()
    name = f"bench_pg_drivers_{os.getpid()}"
    pg_dsn = with_database(args.admin_dsn, name)
    folder = tempfile.mkdtemp(prefix="pg_drivers_")
    sqlite_path = os.path.join(folder, "bench.sqlite3")
    report: dict[str, Any] = {
        "machine": machine(),
        "sizes": dataclasses.asdict(sizes),
        "runs": args.runs,
        "warmup": args.warmup,
    }
    try:
        print(f"building {sizes} in {name} and {sqlite_path}", flush=True)
        report["build"] = await build(args, sizes, pg_dsn, sqlite_path)
        build_info = report["build"]
        print(
            f"  loaded in {build_info['postgres_load_s']:.0f} s (PostgreSQL),"
            f" {build_info['sqlite_load_s']:.0f} s (SQLite)",
            flush=True,
        )
        failures.check(
            build_info["migrations_applied"] == [n for _, n, _ in migrations()],
            f"PostgreSQL migrations {build_info['migrations_applied']} differ from SQLite's",
        )
        failures.check(not build_info["migrations_applied_again"], "migrations applied twice")
        failures.check(
            build_info["postgres_rows"] == build_info["sqlite_rows"], "row counts differ"
        )
        results: dict[str, dict[str, Any]] = {}
        for variant in args.variants:
            print(f"{variant}: {VARIANTS[variant]['label']}", flush=True)
            if VARIANTS[variant]["driver"] != "sqlite":
                await vacuum(pg_dsn)
            results[variant] = run_worker(variant, args, pg_dsn, sqlite_path, folder)
            for failure in results[variant]["failures"]:
                failures.check(False, failure)
        digests = {v: tuple(r["digest_rows"]) for v, r in results.items() if "digest_rows" in r}
        failures.check(len(set(digests.values())) <= 1, f"digest windows differ: {digests}")
        refills = {v: r["refill_rows"]["stories"] for v, r in results.items() if "refill_rows" in r}
        failures.check(len(set(refills.values())) <= 1, f"refills differ: {refills}")
        report["results"] = results
        if not args.no_explain:
            print("EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL", flush=True)
            # Below the realistic sizes the planner rightly reads small tables whole.
            strict = all(
                getattr(sizes, field) >= getattr(REALISTIC, field)
                for field in ("feeds", "chats", "stories", "outbox")
            )
            report["explain_postgres"] = await explain_postgres(
                pg_dsn, sizes, failures, strict=strict
            )
            report["explain_sqlite"] = explain_sqlite(sqlite_path, sizes)
            for entry in report["explain_postgres"]:
                print(f"  {entry['query']}", flush=True)
                print(f"    custom:  {plan_summary(entry['custom'])}", flush=True)
                print(f"    generic: {plan_summary(entry['generic'])}", flush=True)
                print(f"    server costs: {plan_summary(entry['server_costs'])}", flush=True)
                print(f"    SQLite:  {report['explain_sqlite'][entry['query']]}", flush=True)
        print()
        print(
            "Medians in ms, wall / this process's CPU (+ PostgreSQL server CPU, mean),"
            f" {args.runs} runs after {args.warmup} warm-up:"
        )
        print(table(results))
        report["table"] = table(results)
        for variant, found in results.items():
            if found.get("translation_us"):
                cost = ", ".join(f"{k} {v:.1f} µs" for k, v in found["translation_us"].items())
                print(f"translation of ? ({variant}): {cost}")
                break
    finally:
        with contextlib.suppress(Exception):
            await drop(args.admin_dsn, name)
        shutil.rmtree(folder, ignore_errors=True)
    report["failures"] = list(failures)
    write_json(args.json, report)
    print(f"results: {args.json}")
    verdicts = Verdicts()
    verdicts.check(
        "check: every variant gives the rows bot.store gives on SQLite",
        not failures,
        "; ".join(failures) if failures else "",
    )
    return verdicts.exit_code()


def write_json(path: str, report: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1))


def machine() -> str:
    from bench.common import machine_with_versions

    # psycopg is a candidate the project does not install: named when it is there.
    candidates = ("aiosqlite", "asyncpg", "psycopg", "psycopg-binary", "psycopg-pool")
    packages = [p for p in candidates if importlib.util.find_spec(p.split("-")[0]) is not None]
    return machine_with_versions(*packages) + f", {platform.platform()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get("BENCH_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/postgres"),
        help="a database on the server to create the scratch database from",
    )
    for field in ("feeds", "chats", "stories", "outbox", "seed"):
        parser.add_argument(f"--{field}", type=int, default=getattr(REALISTIC, field))
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--json", default="bench/out/pg_drivers.json")
    # A worker (one variant, started by the parent)
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--pg-dsn", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return asyncio.run(worker(args))
    return asyncio.run(parent(args))


if __name__ == "__main__":
    sys.exit(main())
