"""PostgreSQL, for deployments that outgrow one file: the store's SQL on asyncpg.

asyncpg was chosen by measurement over psycopg 3 (bench/pg_drivers.py, README "PostgreSQL"):
least CPU in the bot's process on every hot path, prepared statements by default (its
statement cache), a pool, and the password from the URL, PGPASSWORD or a password file
(~/.pgpass, PGPASSFILE) with no code of ours.

- The store writes `?` parameters; they become `$1, $2, …` here, translated once per
  distinct statement (cached).
- One instance per database, as on SQLite: a session advisory lock, held on a connection
  of its own outside the pool (the pool's connections come and go). The key is the schema's,
  so test schemas in one database do not collide.
- Every connection has a statement timeout, so a stuck query cannot hold a check for ever.
- A connection that drops (PostgreSQL restarted, a network cut) fails what it was doing with
  DatabaseUnavailableError: the transaction is gone, so nothing of it was kept, and the
  caller's own retry (the poller's next tick, the sender's next flush) does it again on a
  fresh connection from the pool. One log line says so, not a traceback per failure.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import asyncpg

from bot.errors import DatabaseLockedError, DatabaseRefusedError, DatabaseUnavailableError
from bot.store.db import (
    Dialect,
    LossReport,
    Params,
    Row,
    apply_migrations,
    shown_location,
)

log = logging.getLogger(__name__)

POOL_SIZE = 8
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT = 10.0
# Errors that mean the connection, not the statement, failed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # A connection whose protocol was left mid-operation when PostgreSQL went away under
    # it ("cannot switch to state …; another operation is in progress"): unusable, not a
    # bug of the statement. Seen in a restart under load; the connection is dropped.
    asyncpg.exceptions._base.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
)
# The server answered and said no: a setting is wrong (the database's name, the role, the
# password, its rights). Opening says so in one line instead of retrying.
REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InsufficientPrivilegeError,
)
# Said at most this often while the database cannot be reached.
UNAVAILABLE_LOG_SECONDS = 30.0

_LITERAL = re.compile(r"('(?:[^']|'')*')")


@functools.lru_cache(maxsize=4096)
def numbered(sql: str) -> str:
    """`?` → `$1, $2, …`, outside string literals (the store's SQL is a few hundred distinct
    strings, IN lists of each length included: each is translated once)."""
    parts = _LITERAL.split(sql)
    count = 0
    for index in range(0, len(parts), 2):  # even parts are outside string literals
        pieces = parts[index].split("?")
        out = [pieces[0]]
        for piece in pieces[1:]:
            count += 1
            out.append(f"${count}")
            out.append(piece)
        parts[index] = "".join(out)
    return "".join(parts)


def _rowcount(status: str) -> int:
    """asyncpg's command tag ("UPDATE 3", "INSERT 0 5") → the number of rows."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def lock_key(schema: str) -> int:
    """The advisory lock of one bot's data: a signed 64-bit key from its schema's name."""
    digest = hashlib.blake2b(f"news-notifier:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    """The pool's reset: asyncpg's default also drops advisory locks, settings and LISTENs,
    one round trip more per use; the store uses none of them on pooled connections."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def migrate_schema(conn: PostgresConnection) -> list[str]:
    """Apply the migrations not yet applied, in the caller's transaction; returns their names."""
    # Two instances starting at once must not apply a migration twice.
    await conn.execute("SELECT pg_advisory_xact_lock(?)", (lock_key("migrations"),))
    return await apply_migrations(conn)


class PostgresConnection:
    """bot.store.db.Connection on one asyncpg connection."""

    __slots__ = ("_conn",)
    dialect: Dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._conn.fetch(numbered(sql), *params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        return await self._conn.fetchrow(numbered(sql), *params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _rowcount(await self._conn.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        rows = list(rows)
        if rows:
            await self._conn.executemany(numbered(sql), rows)

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> int:
        """Write rows with a binary COPY, migrate-db's fast path (many times faster than
        INSERTs); each value must already be of its column's Python type. Returns how many
        rows were written."""
        status = await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))
        return _rowcount(status)


class PostgresDatabase(LossReport):
    """Open with `await PostgresDatabase.open(url)`; always `await db.close()`."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, pool: asyncpg.Pool, holder: asyncpg.Connection | None) -> None:
        self.url = url
        LossReport.__init__(self, shown_location(url))
        self._pool = pool
        self._holder = holder  # the connection that holds the one-instance lock
        self._key: int | None = None
        self._unavailable_since: float | None = None
        self._last_said = 0.0

    @classmethod
    async def open(
        cls, url: str, *, exclusive: bool = True, read_only: bool = False
    ) -> PostgresDatabase:
        """Connect, take the one-instance lock, run the migrations not yet applied."""
        try:
            return await cls._open(url, exclusive=exclusive, read_only=read_only)
        except REFUSALS as error:
            raise DatabaseRefusedError(shown_location(url), str(error)) from None
        except CONNECTION_ERRORS as error:
            raise DatabaseUnavailableError(
                shown_location(url), str(error) or type(error).__name__
            ) from None

    @classmethod
    async def _open(cls, url: str, *, exclusive: bool, read_only: bool) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                url,
                # No floor: asyncpg would keep reconnecting to restore it in the background
                # while the server is down (a traceback each time); a connection is made
                # when the next use asks for one instead.
                min_size=0,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT,
                server_settings={"statement_timeout": str(STATEMENT_TIMEOUT_MS)},
                reset=_rollback_if_open,
            )
        except CONNECTION_ERRORS as error:
            raise DatabaseUnavailableError(
                shown_location(url), str(error) or type(error).__name__
            ) from None
        db = cls(url, pool, None)
        try:
            if exclusive:
                await db._take_lock()
            if not read_only:
                await db._migrate()
        except BaseException:
            await db.close()
            raise
        return db

    async def _take_lock(self) -> None:
        holder = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
        schema = await holder.fetchval("SELECT current_schema()")
        key = lock_key(str(schema))
        if not await holder.fetchval("SELECT pg_try_advisory_lock($1)", key):
            owner = await holder.fetchval(
                "SELECT application_name || ' pid ' || pid FROM pg_locks l"
                " JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory'"
                " AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
                key,
            )
            await holder.close()
            raise DatabaseLockedError(
                f"database {self.location} is in use by another news-notifier "
                f"({owner or 'another process'}); stop it first, or give this one its own "
                "NEWS_NOTIFIER_DATABASE"
            )
        self._holder, self._key = holder, key

    async def _migrate(self) -> None:
        async with self.transaction() as conn:
            for name in await migrate_schema(conn):
                log.info("event=migration name=%s", name)

    # --- transactions and reads ---------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        """One transaction on a pooled connection: COMMIT at the end, ROLLBACK on any error."""
        self.raise_if_lost()
        async with self._connection() as conn, conn.transaction():
            yield PostgresConnection(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresConnection]:
        """Reads that see one consistent state (a read-only REPEATABLE READ transaction)."""
        self.raise_if_lost()
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield PostgresConnection(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                try:
                    yield conn
                except CONNECTION_ERRORS:
                    conn.terminate()  # the pool replaces it rather than lend it again
                    raise
        except CONNECTION_ERRORS as error:
            raise self._unavailable(error) from error
        else:
            self._available()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._connection() as conn:
            return await PostgresConnection(conn).fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self._connection() as conn:
            return await PostgresConnection(conn).fetchone(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        self.raise_if_lost()
        async with self._connection() as conn:
            return await PostgresConnection(conn).execute(sql, params)

    # --- health -------------------------------------------------------------------------

    def _unavailable(self, error: BaseException) -> DatabaseUnavailableError:
        """The connection failed: one log line now and then, not a traceback each time."""
        now = time.monotonic()
        if self._unavailable_since is None:
            self._unavailable_since = now
        if now - self._last_said >= UNAVAILABLE_LOG_SECONDS:
            self._last_said = now
            log.warning(
                "event=database_unavailable database=%s error=%r action=%r",
                self.location,
                str(error) or type(error).__name__,
                "what failed is not kept; retried on a new connection",
            )
        return DatabaseUnavailableError(self.location, str(error) or type(error).__name__)

    def _available(self) -> None:
        if self._unavailable_since is not None:
            log.info(
                "event=database_available database=%s after=%.1fs",
                self.location,
                time.monotonic() - self._unavailable_since,
            )
            self._unavailable_since = None
            self._last_said = 0.0

    async def check(self) -> None:
        """The one-instance lock is still held: its connection may have dropped with a
        restart of PostgreSQL, which releases the lock. Take it again; when another
        instance took it meanwhile, this one must stop (DatabaseLostError)."""
        self.raise_if_lost()
        if self._key is None:
            return
        holder = self._holder
        if holder is not None and not holder.is_closed():
            with contextlib.suppress(*CONNECTION_ERRORS):
                await holder.fetchval("SELECT 1")
                return
        with contextlib.suppress(*CONNECTION_ERRORS):
            if holder is not None:
                holder.terminate()
            self._holder = None
            holder = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT)
            if await holder.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                self._holder = holder
                log.info("event=database_lock_taken_again database=%s", self.location)
                return
            await holder.close()
            raise self.lose("another news-notifier took the database while this one lost it")

    async def size_bytes(self) -> int:
        row = await self.fetchone("SELECT pg_database_size(current_database())")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        """Close the pool and the lock's connection (which releases the lock)."""
        holder, self._holder = self._holder, None
        try:
            await self._pool.close()
        finally:
            if holder is not None and not holder.is_closed():
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await holder.close()

    async def __aenter__(self) -> PostgresDatabase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
