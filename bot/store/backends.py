"""Which database a location names: a postgresql:// (or postgres://) URL, else a SQLite file."""

from __future__ import annotations

from bot.store.db import Database, is_postgresql
from bot.store.postgres import PostgresDatabase
from bot.store.sqlite import SqliteDatabase


async def open_database(
    location: str, *, exclusive: bool = True, shared: bool = False, read_only: bool = False
) -> Database:
    """Open the database at `location` (a file path or a postgresql:// URL), migrated.

    exclusive=False skips the instance lock (the healthcheck reads beside a running bot);
    shared: one of several bots on one PostgreSQL database (`news-notifier run`), where
    exclusive alone refuses any other (import-opml, migrate-db); SQLite is always one
    bot's. read_only opens without migrating or writing.
    """
    if is_postgresql(location):
        return await PostgresDatabase.open(
            location, exclusive=exclusive, shared=shared, read_only=read_only
        )
    return await SqliteDatabase.open(
        location, exclusive=exclusive, shared=shared, read_only=read_only
    )
