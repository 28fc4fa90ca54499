"""PostgreSQL's migrations (bot/store/migrations/postgresql/) kept in step with SQLite's.

The schema test needs the PostgreSQL server every machine that tests this project runs
(127.0.0.1:5432, or NEWS_NOTIFIER_TEST_POSTGRES): it fails, never skips, without one. It
creates a scratch database and drops it after.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.store.db import migrations, statements

ADMIN_DSN = os.environ.get(
    "NEWS_NOTIFIER_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres"
)
POSTGRESQL = "postgresql"

# SQLite INTEGER columns that stay INTEGER on PostgreSQL: small counts and clock fields.
# Every other one holds epoch milliseconds, a Telegram id or a row id: BIGINT.
INTEGER_COLUMNS = {
    ("feeds", "hint_seconds"),
    ("feeds", "consecutive_failures"),
    ("chats", "digest_hour"),
    ("chats", "digest_minute"),
    ("keywords", "position"),
    ("outbox", "attempts"),
    ("outbox", "unanswered"),
    ("counters", "count"),
    ("imports", "total"),
    ("chats", "pictures"),  # 0/1 flags compared as numbers by the shared SQL
    ("outbox", "photo_refused"),
    ("feeds", "hub_push"),
    ("websub_subscriptions", "lease_seconds"),
    ("websub_subscriptions", "attempts"),
    ("chats", "link_preview"),  # /settings choices: 0/1 flags like pictures
    ("chats", "silent"),
}
# REAL in SQLite: an 8-byte float on both (the decayed rate sums of adaptive polling).
FLOAT_COLUMNS = {("feeds", "rate_stories"), ("feeds", "rate_watched_hours")}
# 0/1 in SQLite, read as a bool by the store (which must bind a Python bool).
BOOLEAN_COLUMNS = {("keywords", "exclude")}
# Indexes PostgreSQL has and SQLite lacks, each for a hot query (bench/README.md).
POSTGRESQL_ONLY_INDEXES = {"stories_first_seen"}


def test_postgresql_has_the_migrations_sqlite_has() -> None:
    sqlite_names = [name for _, name, _ in migrations()]
    postgresql_names = [name for _, name, _ in migrations(POSTGRESQL)]
    assert postgresql_names == sqlite_names


@pytest.fixture
async def scratch() -> AsyncIterator[asyncpg.Connection]:
    """A connection to an empty database of its own, dropped after the test."""
    name = f"test_schema_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        head = ADMIN_DSN.rsplit("/", 1)[0]
        conn = await asyncpg.connect(f"{head}/{name}")
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def sqlite_schema() -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    """(table: [(column, declared type)], index names) of SQLite's migrations applied."""
    conn = sqlite3.connect(":memory:")
    try:
        for _, _, sql in migrations():
            for statement in statements(sql):
                conn.execute(statement)
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        columns = {
            table: [(row[1], row[2]) for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables
        }
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
                " AND name NOT LIKE 'sqlite_autoindex_%'"
            )
        }
    finally:
        conn.close()
    return columns, indexes


async def test_postgresql_schema_applies_and_matches_sqlite(scratch: asyncpg.Connection) -> None:
    async with scratch.transaction():
        for _, _, sql in migrations(POSTGRESQL):
            for statement in statements(sql):
                await scratch.execute(statement)

    sqlite_columns, sqlite_indexes = sqlite_schema()
    rows = await scratch.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    postgresql_columns: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        postgresql_columns.setdefault(row[0], []).append((row[1], row[2]))
    assert sorted(postgresql_columns) == sorted(sqlite_columns)
    for table, columns in sqlite_columns.items():
        assert [c for c, _ in postgresql_columns[table]] == [c for c, _ in columns], table
        types = dict(postgresql_columns[table])
        for column, declared in columns:
            if declared == "TEXT":
                expected = "text"
            elif declared == "REAL":
                assert (table, column) in FLOAT_COLUMNS, f"{table}.{column}"
                expected = "double precision"
            elif (table, column) in BOOLEAN_COLUMNS:
                expected = "boolean"
            elif (table, column) in INTEGER_COLUMNS:
                expected = "integer"
            else:
                expected = "bigint"
            assert types[column] == expected, f"{table}.{column}"

    # Created by CREATE INDEX, not by a PRIMARY KEY or UNIQUE constraint (SQLite's autoindexes).
    indexes = {
        row[0]
        for row in await scratch.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'i' AND n.nspname = 'public'"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)"
        )
    }
    assert indexes == sqlite_indexes | POSTGRESQL_ONLY_INDEXES


async def test_postgresql_schema_takes_what_sqlite_takes(scratch: asyncpg.Connection) -> None:
    """Telegram ids beyond 32 bits, ids copied as they are (migrate-db), the partial unique
    index that makes a story reach a chat once, and a bare ON CONFLICT DO NOTHING on it."""
    for _, _, sql in migrations(POSTGRESQL):
        for statement in statements(sql):
            await scratch.execute(statement)
    group = -1_001_234_567_890
    await scratch.execute(
        "INSERT INTO chats (id, kind, created_at) VALUES ($1, 'supergroup', $2)",
        group,
        1_790_000_000_000,
    )
    await scratch.execute(
        "INSERT INTO feeds (id, url, created_at) VALUES (41, 'https://a.example/feed', 0)"
    )
    await scratch.execute(
        "INSERT INTO stories (id, feed_id, identity, timestamp_id, title, first_seen_at,"
        " last_present_at) VALUES (7, 41, 'x', 0, 't', 0, 0)"
    )
    alert = (
        "INSERT INTO outbox (chat_id, thread_id, kind, story_id, keyword, not_before,"
        " created_at) VALUES ($1, 3000000000, 'alert', 7, NULL, 0, 0) ON CONFLICT DO NOTHING"
    )
    assert await scratch.execute(alert, group) == "INSERT 0 1"
    assert await scratch.execute(alert, group) == "INSERT 0 0"
    await scratch.execute("SELECT setval(pg_get_serial_sequence('feeds', 'id'), 41)")
    new_id = await scratch.fetchval(
        "INSERT INTO feeds (url, created_at) VALUES ('https://b.example/feed', 0) RETURNING id"
    )
    assert new_id == 42
    await scratch.execute(
        "INSERT INTO keywords (chat_id, position, text, exclude) VALUES ($1, 0, 'a', $2)",
        group,
        True,
    )
    assert await scratch.fetchval("SELECT exclude FROM keywords") is True


async def test_outbox_texts_are_stored_uncompressed(scratch: asyncpg.Connection) -> None:
    """Digest parts are written by the ten thousand, sent once and purged: PostgreSQL's
    compression of them cost more server CPU than anything else in a digest (migration
    0011)."""
    for _, _, sql in migrations("postgresql"):
        for statement in statements(sql):
            await scratch.execute(statement)
    storage = await scratch.fetchval(
        "SELECT attstorage FROM pg_attribute"
        " WHERE attrelid = 'outbox'::regclass AND attname = 'text'"
    )
    assert storage == b"e"  # EXTERNAL: out of line, never compressed
