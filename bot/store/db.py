"""The database behind the store, whichever it is: SQLite (bot/store/sqlite.py, the embedded
default) or PostgreSQL (bot/store/postgres.py). Nothing above the store knows which.

Both speak the same small surface: a `Connection` runs plain SQL with `?` parameters and
returns rows as sequences; a `Database` hands out one connection for a transaction or a
read. The store's SQL sticks to what both accept; the few places where they differ are
spelled per backend through `Connection.dialect`, inside bot/store/ only.

`open_database` (bot/store/backends.py) picks the backend from NEWS_NOTIFIER_DATABASE: a
`postgresql://` (or `postgres://`) URL, else a file path. Each backend keeps its numbered
migrations in bot/store/migrations/<dialect>/, in step with the other's (same numbers and
names).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from bot.errors import DatabaseLostError

Params = Sequence[Any]
Row = Sequence[Any]
Dialect = Literal["sqlite", "postgresql"]

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")
# PostgreSQL: the NOTIFY channel of new outbox rows; its payload is the schema they are in
# (a channel is per database, and schemas share one in the tests).
OUTBOX_CHANNEL = "news_notifier_outbox"

log = logging.getLogger("bot.store")


class Connection(Protocol):
    """The few calls the store makes inside a transaction or a read."""

    dialect: Dialect

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...


class Database(Protocol):
    """One database, open: `transaction()` for writes (all or nothing), `read()` for reads
    that must see a consistent state. Close with `close()`."""

    dialect: Dialect
    location: str  # the file, or the URL without its password: for messages and logs
    lost: DatabaseLostError | None
    on_lost: Callable[[DatabaseLostError], None] | None  # told once when it is lost

    def transaction(self) -> AbstractAsyncContextManager[Connection]: ...

    def read(self) -> AbstractAsyncContextManager[Connection]: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def check(self) -> None:
        """Raise DatabaseLostError when the storage is no longer this bot's to write (the
        SQLite file deleted or replaced; on PostgreSQL, a command that must be alone took the
        database while this bot's connection to it was lost)."""
        ...

    async def size_bytes(self) -> int: ...

    async def close(self) -> None: ...

    # Leadership (bot/delivery/leadership.py): one bot per database sends and takes updates.
    # SQLite runs one bot per file, which is always the leader; PostgreSQL elects one of
    # several with an advisory lock.
    leading: bool
    on_leadership_lost: Callable[[], None] | None  # told at once when the lock went
    on_outbox_rows: Callable[[], None] | None  # the leader told of rows another bot wrote

    async def lead(self) -> bool:
        """Try to become the leader now (a leader: still one); True when leading."""
        ...

    async def still_leading(self) -> bool:
        """Whether the leader's lock is still held (a short check on its connection)."""
        ...

    async def resign(self) -> None:
        """Let the leader's lock go, for a standby to take."""
        ...

    async def live_instances(self) -> int:
        """How many bots run on this database now (1 on SQLite)."""
        ...


class LossReport:
    """A database's one report that it is lost, shared by both backends: the first problem
    found is logged once at CRITICAL and told to `on_lost` (the run loop stops on it); every
    later use raises a new DatabaseLostError (one error re-raised everywhere would pile up
    tracebacks)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.lost: DatabaseLostError | None = None
        self.on_lost: Callable[[DatabaseLostError], None] | None = None

    def raise_if_lost(self) -> None:
        if self.lost is not None:
            raise DatabaseLostError(self.lost.path, self.lost.problem)

    def lose(self, problem: str) -> DatabaseLostError:
        """Mark the database lost (once: report it, tell on_lost) and return the error."""
        if self.lost is None:
            self.lost = DatabaseLostError(self.location, problem)
            log.critical(
                "event=database_lost database=%s problem=%r action=%r",
                self.location,
                problem,
                "stopping: nothing more can be stored",
            )
            if self.on_lost:
                self.on_lost(self.lost)
        return self.lost


def is_postgresql(location: str) -> bool:
    return location.startswith(POSTGRESQL_SCHEMES)


def shown_location(location: str) -> str:
    """The location for messages and logs: a path as it is, a URL without its password."""
    if not is_postgresql(location):
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def missing(location: str) -> bool:
    """A SQLite database whose file does not exist (a reader must not create it); a
    PostgreSQL database is never missing in this sense: opening it says what is wrong."""
    return not is_postgresql(location) and not Path(location).is_file()


def migrations(dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped for `dialect`, in order."""
    found = []
    for item in resources.files("bot.store").joinpath("migrations", dialect).iterdir():
        match = MIGRATION_NAME.match(item.name)
        if match:
            found.append((int(match.group(1)), item.name, item.read_text(encoding="utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, … without gaps: {numbers}")
    return found


async def apply_migrations(conn: Connection) -> list[str]:
    """Run, in one transaction the caller holds, the migrations not yet applied; returns
    their names. A failed one changes nothing: the caller's transaction rolls back."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    row = await conn.fetchone("SELECT COALESCE(MAX(number), 0) FROM schema_migrations")
    current = int(row[0]) if row else 0
    applied = []
    for number, name, sql in migrations(conn.dialect):
        if number <= current:
            continue
        for statement in statements(sql):
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO schema_migrations (number, name, applied_at) VALUES (?, ?, ?)",
            (number, name, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())),
        )
        applied.append(name)
    return applied


def statements(sql: str) -> list[str]:
    """Split a migration file into statements (no triggers with inner ';' are used)."""
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return [part.strip() for part in without_comments.split(";") if part.strip()]


def marks(count: int) -> str:
    """`count` parameters for an IN list: "?,?,?"."""
    return ",".join("?" * count)
