"""PostgreSQL, for deployments that outgrow one file: the store's SQL on asyncpg.

asyncpg was chosen by measurement over psycopg 3 (bench/pg_drivers.py, README "PostgreSQL"):
least CPU in the bot's process on every hot path, prepared statements by default (its
statement cache), a pool, and the password from the URL, PGPASSWORD or a password file
(~/.pgpass, PGPASSFILE) with no code of ours.

- The store writes `?` parameters; they become `$1, $2, …` here, translated once per
  distinct statement (cached).
- Several `news-notifier run` processes may share one database (unlike SQLite). Each holds
  the schema's "present" advisory lock in shared mode on a connection of its own outside the
  pool (the holder; the pool's connections come and go); a command that must be alone
  (import-opml, migrate-db) takes it exclusively, so it is refused while any bot runs, and a
  bot is refused while such a command runs. The keys are the schema's, so test schemas in
  one database do not collide.
- Leadership: exactly one of the bots sends (Telegram's limits belong to the bot token) and
  takes updates. The leader holds a second, exclusive advisory lock on its holder and LISTENs
  there for new outbox rows (bot/store/outbox.py NOTIFYs); the others try for the lock every
  second (bot/delivery/leadership.py). The lock lives and dies with the holder's session.
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
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg

from bot.errors import DatabaseLockedError, DatabaseRefusedError, DatabaseUnavailableError
from bot.store.db import (
    OUTBOX_CHANNEL,
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
# The holder's liveness, both ways. The leader pings it every second
# (bot/delivery/leadership.py) and takes an answer missing for HOLDER_PING_TIMEOUT as lost:
# it stops sending within 1 + 2 = 3 s of a cut. The server drops a session whose host went
# silent (power off, network cut) after its TCP keepalives: 5 s idle + 3 probes 1 s apart =
# 8 s, and a leader whose process is alive but frozen (no ping for 10 s) by
# idle_session_timeout; either way the lock goes with the session and a standby takes over
# at its next try, a second later: within about 9 s (11 s for a frozen leader). A process
# that is killed closes its socket, so its lock is free at once. 3 s < 8 s: a leader cut
# off stops before anyone else can take its lock. (idle_session_timeout needs
# PostgreSQL 14.)
HOLDER_PING_TIMEOUT = 2.0
HOLDER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
}
# Set by the leader once it holds the lock (a standby's holder may idle through a slow
# start-up; a frozen standby costs nothing).
LEADER_IDLE_TIMEOUT = "SET idle_session_timeout = 10000"
Mode = Literal["exclusive", "shared"]

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


def leader_key(schema: str) -> int:
    """The leader's advisory lock in one schema."""
    return lock_key(f"{schema}:leader")


# The sessions holding one advisory lock (a 64-bit key is kept as classid, objid).
_HOLDERS = (
    "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = $1"
)


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
        self._holder = holder  # holds the present lock (and the leader's, when leading)
        self._mode: Mode = "exclusive"
        self._key: int | None = None  # the present lock; None: opened without it
        self._leader_key = 0
        self._schema = ""
        self.leading = False
        # Told when the leader's lock went with its connection (said at once, not at the
        # next ping: the sender must stop before anyone else may take the lock).
        self.on_leadership_lost: Callable[[], None] | None = None
        self.on_outbox_rows: Callable[[], None] | None = None  # a NOTIFY, to the leader
        self._closing = False
        self._unavailable_since: float | None = None
        self._last_said = 0.0

    @classmethod
    async def open(
        cls, url: str, *, exclusive: bool = True, shared: bool = False, read_only: bool = False
    ) -> PostgresDatabase:
        """Connect, take the present lock (shared: one of several running bots; else alone),
        run the migrations not yet applied."""
        try:
            return await cls._open(url, exclusive=exclusive, shared=shared, read_only=read_only)
        except REFUSALS as error:
            raise DatabaseRefusedError(shown_location(url), str(error)) from None
        except CONNECTION_ERRORS as error:
            raise DatabaseUnavailableError(
                shown_location(url), str(error) or type(error).__name__
            ) from None

    @classmethod
    async def _open(
        cls, url: str, *, exclusive: bool, shared: bool, read_only: bool
    ) -> PostgresDatabase:
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
                db._mode = "shared" if shared else "exclusive"
                await db._take_lock()
            if not read_only:
                await db._migrate()
        except BaseException:
            await db.close()
            raise
        return db

    async def _take_lock(self) -> None:
        holder = await self._connect_holder()
        self._schema = str(await holder.fetchval("SELECT current_schema()"))
        key = lock_key(self._schema)
        if not await self._take_present(holder, key):
            owner = await holder.fetchval(
                "SELECT string_agg(application_name || ' pid ' || pid, ', ') FROM pg_stat_activity"
                f" WHERE pid IN (SELECT l.pid {_HOLDERS})",
                key,
            )
            await holder.close()
            raise DatabaseLockedError(
                f"database {self.location} is in use by another news-notifier "
                f"({owner or 'another process'}); stop it first, or give this one its own "
                "NEWS_NOTIFIER_DATABASE"
            )
        self._holder, self._key, self._leader_key = holder, key, leader_key(self._schema)

    async def _connect_holder(self) -> asyncpg.Connection:
        holder = await asyncpg.connect(
            self.url, timeout=CONNECT_TIMEOUT, server_settings=HOLDER_SETTINGS
        )
        holder.add_termination_listener(self._holder_closed)
        return holder

    async def _take_present(self, holder: asyncpg.Connection, key: int) -> bool:
        take = "pg_try_advisory_lock_shared" if self._mode == "shared" else "pg_try_advisory_lock"
        return bool(await holder.fetchval(f"SELECT {take}($1)", key, timeout=CONNECT_TIMEOUT))

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
        """Raise DatabaseLostError once the database is no longer this bot's. The holder's
        connection is watched by the leadership loop (lead, still_leading), which takes the
        present lock again after a restart of PostgreSQL."""
        self.raise_if_lost()

    # --- leadership ---------------------------------------------------------------------

    async def lead(self) -> bool:
        """Try to become the leader, now: True when this bot holds the leader's lock.

        A holder whose connection dropped is replaced first (its present lock taken again:
        `event=database_lock_taken_again`). A bot opened without the present lock is alone.
        """
        self.raise_if_lost()
        if self._key is None:
            self.leading = True
            return True
        if self.leading:
            return await self.still_leading()
        try:
            holder = await self._live_holder()
            taken = await holder.fetchval(
                "SELECT pg_try_advisory_lock($1)", self._leader_key, timeout=HOLDER_PING_TIMEOUT
            )
            if not taken:
                return False
            await self._end_if_frozen(holder)
            await holder.add_listener(OUTBOX_CHANNEL, self._outbox_notified)
        except CONNECTION_ERRORS as error:
            self._drop_holder(error)
            return False
        self.leading = True
        return True

    async def _end_if_frozen(self, holder: asyncpg.Connection) -> None:
        """Let the server end the leader's session when its pings stop (a frozen process);
        PostgreSQL before 14 has no idle_session_timeout: said once, led without it."""
        try:
            await holder.execute(LEADER_IDLE_TIMEOUT, timeout=HOLDER_PING_TIMEOUT)
        except asyncpg.exceptions.UndefinedObjectError:
            log.warning(
                "event=idle_session_timeout_missing database=%s action=%r",
                self.location,
                "a frozen leader keeps its lock (PostgreSQL 14 or newer ends its session)",
            )

    async def still_leading(self) -> bool:
        """Ping the holder (within HOLDER_PING_TIMEOUT); False once the lock may be gone.
        The ping also keeps the leader's idle_session_timeout from ending its session."""
        holder = self._holder
        if self._key is None:
            return self.leading
        if holder is None or holder.is_closed():
            self.leading = False
            return False
        try:
            await holder.fetchval("SELECT 1", timeout=HOLDER_PING_TIMEOUT)
        except CONNECTION_ERRORS as error:
            self._drop_holder(error)
            return False
        return self.leading

    async def resign(self) -> None:
        """Let the leader's lock go (a clean stop): a standby takes over at its next try."""
        if not self.leading or self._key is None:
            self.leading = False
            return
        self.leading = False
        holder = self._holder
        if holder is None or holder.is_closed():
            return
        try:
            await holder.remove_listener(OUTBOX_CHANNEL, self._outbox_notified)
            await holder.fetchval(
                "SELECT pg_advisory_unlock($1)", self._leader_key, timeout=HOLDER_PING_TIMEOUT
            )
        except CONNECTION_ERRORS as error:
            self._drop_holder(error)  # the lock goes with the connection

    async def live_instances(self) -> int:
        """How many bots run on this database now: the sessions holding its present lock."""
        if self._key is None:
            return 1
        row = await self.fetchone(f"SELECT COUNT(DISTINCT l.pid) {_HOLDERS}", (self._key,))
        return max(1, int(row[0])) if row else 1

    async def _live_holder(self) -> asyncpg.Connection:
        """The holder, connected again (and its present lock taken again) if it dropped."""
        holder = self._holder
        if holder is not None and not holder.is_closed():
            return holder
        assert self._key is not None
        holder = await self._connect_holder()
        if not await self._take_present(holder, self._key):
            holder.terminate()
            raise self.lose("another news-notifier took the database while this one lost it")
        self._holder = holder
        log.info("event=database_lock_taken_again database=%s", self.location)
        return holder

    def _drop_holder(self, error: BaseException) -> None:
        """The holder failed: close it for good (its locks go with it) and say so once."""
        holder, self._holder = self._holder, None
        was_leading, self.leading = self.leading, False
        if holder is not None:
            holder.terminate()
        self._unavailable(error)
        if was_leading and self.on_leadership_lost:
            self.on_leadership_lost()

    def _holder_closed(self, holder: asyncpg.Connection) -> None:
        """asyncpg's termination listener: the holder's connection closed (PostgreSQL
        restarted, the socket reset). Said at once, before any ping would notice."""
        if holder is not self._holder or self._closing:
            return
        self._holder = None
        if self.leading:
            self.leading = False
            log.warning("event=leadership_lost database=%s reason=%r", self.location, "closed")
            if self.on_leadership_lost:
                self.on_leadership_lost()

    def _outbox_notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        """NOTIFY on the outbox channel: new rows in some schema (payload); ours wake the
        sender."""
        if payload == self._schema and self.on_outbox_rows:
            self.on_outbox_rows()

    async def size_bytes(self) -> int:
        row = await self.fetchone("SELECT pg_database_size(current_database())")
        return int(row[0]) if row else 0

    async def close(self) -> None:
        """Close the pool and the holder's connection (which releases its locks)."""
        self._closing = True
        self.leading = False
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
