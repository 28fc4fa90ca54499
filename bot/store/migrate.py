"""migrate-db: the bot's SQLite database copied into an empty PostgreSQL one, all or nothing.

One transaction on the target holds everything: its schema (the PostgreSQL migrations),
every row of every table with its id as it is, each identity sequence moved past the
largest id copied, and the check that every table holds as many rows as the source's. A
refusal or a failure anywhere rolls it all back, so the target is left as it was and the
command can simply be run again.

The source is opened read-only: the SQLite file is never changed. Both ends are held with
the bot's own one-instance locks (the SQLite lock file, the PostgreSQL advisory lock), so a
running bot makes the command refuse, and no bot can start on either while it copies.

Every table is copied whole, the outbox's history (sent, dropped and failed rows) with the
pending rows: the sent alerts are what keeps a story from reaching a chat twice through
another feed (cross-feed duplicates look them up) and what /stats counts; housekeeping
purges them on its usual schedule after the move. The counters (/stats), unfinished
imports (their progress message is fixed at the next start) and WebSub subscriptions
(their callback tokens and secrets: the hubs keep pushing to the same URLs) go too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from bot.errors import DatabaseUnavailableError, MigrationError
from bot.store.db import Row, migrations, shown_location
from bot.store.postgres import PostgresConnection, PostgresDatabase, migrate_schema
from bot.store.sqlite import SqliteDatabase

# Every table of the bot, parents before children: COPY checks each foreign key as it writes.
TABLES: Final = (
    "feeds",
    "chats",
    "subscriptions",
    "keywords",
    "stories",
    "outbox",
    "counters",
    "imports",
    "websub_subscriptions",
)
# Tables of the schema that hold no data to move: which processes run on a database (the
# instances table, issue 14) belongs to that database; the target's own fills itself.
NOT_COPIED: Final = ("instances",)
# Rows read from SQLite and written with one COPY: a few MB at most, a fraction of a second.
BATCH_ROWS: Final = 5_000
# What can go wrong while reading or writing: said in one line, never a traceback.
DATABASE_ERRORS: Final = (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(frozen=True)
class TableCount:
    """One table after the copy: as many rows in PostgreSQL as in SQLite (checked)."""

    table: str
    rows: int


async def migrate_database(source: str, target: str) -> list[TableCount]:
    """Copy the SQLite database at `source` into the PostgreSQL database at `target` (a
    postgresql:// URL). Raises MigrationError (one line) when it refuses or fails, and the
    lock and connection errors of opening either database as they are; the target then
    holds nothing of the copy."""
    shown = shown_location(target)
    async with await _open_source(source) as sqlite:
        await _check_source(sqlite)
        async with await _open_target(target) as postgres:
            try:
                return await _copy_all(sqlite, postgres)
            except DATABASE_ERRORS as error:
                raise MigrationError(
                    f"copying {source} into {shown} failed, nothing was kept: {_said(error)}"
                ) from error


async def _open_source(path: str) -> SqliteDatabase:
    """Read-only (the file is never changed), with the bot's lock (a running bot refuses)."""
    try:
        return await SqliteDatabase.open(path, exclusive=True, read_only=True)
    except DATABASE_ERRORS as error:
        raise MigrationError(f"cannot open {path}: {_said(error)}") from error


async def _open_target(url: str) -> PostgresDatabase:
    """With the bot's advisory lock, and nothing written yet: the schema is made inside the
    copy's own transaction."""
    try:
        return await PostgresDatabase.open(url, exclusive=True, read_only=True)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:  # no such database, role
        raise MigrationError(
            f"database {shown_location(url)} refused the connection: {_said(error)}"
        ) from error
    except (OSError, TimeoutError) as error:  # however far the store's open lets it through
        raise DatabaseUnavailableError(shown_location(url), _said(error)) from error


async def _check_source(db: SqliteDatabase) -> None:
    """The source must be a news-notifier database at this version's schema: its columns
    are then exactly the ones the PostgreSQL migrations make."""
    known = len(migrations("sqlite"))
    try:
        row = await db.fetchone("SELECT MAX(number) FROM schema_migrations")
        rows = await db.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations'"
        )
    except sqlite3.Error as error:
        raise MigrationError(
            f"{db.path} is not a news-notifier database ({_said(error)})"
        ) from error
    at = int(row[0]) if row and row[0] is not None else 0
    if at < known:
        raise MigrationError(
            f"{db.path} is at schema migration {at} of {known}: start this version of the bot "
            "on it once (it upgrades the file), stop it, then run migrate-db again"
        )
    if at > known:
        raise MigrationError(
            f"{db.path} was made by a newer news-notifier (schema migration {at}; this one "
            f"knows {known}): run migrate-db of that version"
        )
    unknown = sorted({str(r[0]) for r in rows} - set(TABLES) - set(NOT_COPIED))
    if unknown:
        raise MigrationError(f"{db.path} has tables migrate-db does not know: {unknown}")


async def _copy_all(sqlite: SqliteDatabase, postgres: PostgresDatabase) -> list[TableCount]:
    async with postgres.transaction() as conn:
        await _refuse_unless_empty(conn, postgres.location)
        await migrate_schema(conn)
        counts = [await _copy_table(sqlite, conn, table) for table in TABLES]
        await _move_identities(conn)
        return counts  # committed as the block ends


async def _refuse_unless_empty(conn: PostgresConnection, location: str) -> None:
    """Any row in one of the bot's tables: this is somebody's data, never overwritten or
    mixed with the copy. The tables themselves may exist (a bot started on it, then
    stopped)."""
    for table in TABLES:
        [found] = await conn.fetchone("SELECT to_regclass(?) IS NOT NULL", (table,)) or [False]
        if found and await conn.fetchone(f"SELECT 1 FROM {table} LIMIT 1"):
            raise MigrationError(
                f"database {location} already holds data (table {table} has rows): "
                "migrate-db copies only into an empty database"
            )


async def _copy_table(sqlite: SqliteDatabase, conn: PostgresConnection, table: str) -> TableCount:
    """The table in batches by rowid (chats' rowid is the chat id: negative for groups), then
    its count checked against the source's."""
    columns = await _columns(sqlite, conn, table)
    convert = _converters(await _column_types(conn, table), columns)
    select = f"SELECT rowid, {', '.join(columns)} FROM {table}"
    [expected] = await sqlite.fetchone(f"SELECT COUNT(*) FROM {table}") or [0]
    after: int | None = None
    while True:
        where, params = ("", ()) if after is None else (" WHERE rowid > ?", (after,))
        batch = await sqlite.fetchall(f"{select}{where} ORDER BY rowid LIMIT {BATCH_ROWS}", params)
        if not batch:
            break
        await conn.copy_rows(table, columns, [convert(row[1:]) for row in batch])
        after = int(batch[-1][0])
    [copied] = await conn.fetchone(f"SELECT COUNT(*) FROM {table}") or [0]
    if copied != expected:
        raise MigrationError(
            f"table {table}: {expected} rows in SQLite but {copied} in PostgreSQL; nothing was kept"
        )
    return TableCount(table, int(copied))


async def _columns(sqlite: SqliteDatabase, conn: PostgresConnection, table: str) -> list[str]:
    """The source's columns, which the target must have exactly (same migrations)."""
    names = [str(row[1]) for row in await sqlite.fetchall(f"PRAGMA table_info({table})")]
    target = set(await _column_types(conn, table))
    if set(names) != target:
        raise MigrationError(
            f"table {table} differs between the databases: only in SQLite "
            f"{sorted(set(names) - target)}, only in PostgreSQL {sorted(target - set(names))}"
        )
    return names


async def _column_types(conn: PostgresConnection, table: str) -> dict[str, str]:
    rows = await conn.fetchall(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return {str(name): str(kind) for name, kind in rows}


def _converters(types: dict[str, str], columns: Sequence[str]) -> Callable[[Row], Row]:
    """Values as COPY's binary format takes them. SQLite hands back what its columns hold:
    int and str are right as they are; a BOOLEAN column (keywords.exclude) holds 0/1 there."""
    flags = [i for i, name in enumerate(columns) if types[name] == "boolean"]
    if not flags:
        return tuple

    def convert(row: Row) -> Row:
        values: list[Any] = list(row)
        for i in flags:
            if values[i] is not None:
                values[i] = bool(values[i])
        return values

    return convert


async def _move_identities(conn: PostgresConnection) -> None:
    """Ids were copied as they are, past the identities' sequences: the next row the bot
    inserts must get the id after the largest."""
    rows = await conn.fetchall(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    )
    for table, column in rows:
        await conn.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({column}), 0) + 1,"
            f" false) FROM {table}",
            (table, column),
        )


def _said(error: BaseException) -> str:
    """An error as one line: its message, else its class's name."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
