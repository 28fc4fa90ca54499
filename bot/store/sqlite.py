"""SQLite, the embedded default: the one owner of the connection: open, lock, migrate,
serialize, close.

aiosqlite runs one connection on one thread. Coroutines that shared it freely could
interleave their statements inside each other's transactions, so every use goes through
`transaction()` or `read()`, which take one asyncio lock. A second process on the same
database is refused with an exclusive lock on a side file (fcntl), released by the kernel
even after kill -9.

An open SQLite file that is deleted or replaced keeps working through its descriptor, so a
bot would go on accepting writes nobody can ever read back. The file's identity (device,
inode) is recorded at open and checked before every commit and by `check_file()` (the run
loop calls it periodically); a deleted or replaced file, a folder that can no longer be
written, or a write refused as read-only makes the database lost: reported once, and
every later use raises DatabaseLostError.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import aiosqlite

from bot.errors import DatabaseLockedError
from bot.store.db import Dialect, LossReport, Params, Row, apply_migrations

log = logging.getLogger(__name__)

# Primary SQLite result codes of a write that storage refused (extended codes carry these
# in their low byte). SQLITE_FULL is not one of them: a full disk heals once space is freed.
SQLITE_READONLY = 8
SQLITE_IOERR = 10


class SqliteConnection:
    """bot.store.db.Connection on aiosqlite."""

    __slots__ = ("_conn",)
    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._conn.execute(sql, params)
        return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        cursor = await self._conn.execute(sql, params)
        return await cursor.fetchone()

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)


class SqliteDatabase(LossReport):
    """Open with `await SqliteDatabase.open(path)`; always `await db.close()`."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str, lock_file: IO[bytes] | None):
        self._conn = conn
        self._wrapped = SqliteConnection(conn)
        self.path = path
        LossReport.__init__(self, path)
        self._lock_file = lock_file
        self._lock = asyncio.Lock()
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of a writable file
        # One bot per file (the process lock): it is the leader, for as long as it runs.
        self.leading = False
        self.on_leadership_lost: Callable[[], None] | None = None
        self.on_outbox_rows: Callable[[], None] | None = None  # never: rows wake in-process

    @classmethod
    async def open(
        cls, path: str, *, exclusive: bool = True, shared: bool = False, read_only: bool = False
    ) -> SqliteDatabase:
        """Open (creating the file and its folder), take the process lock, run migrations.

        exclusive=False skips the process lock (the healthcheck reads beside a running bot).
        shared (one of several bots) is the same as exclusive here: SQLite is one bot's file.
        """
        lock_file = None
        if path != ":memory:":
            if not read_only:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                lock_file = _take_process_lock(path)
        try:
            if read_only:
                conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
            else:
                conn = await aiosqlite.connect(path, isolation_level=None)
        except BaseException:
            if lock_file:
                lock_file.close()
            raise
        db = cls(conn, path, lock_file)
        try:
            if path != ":memory:" and not read_only:
                db._identity = _identity(os.stat(path))
            await db._configure(read_only)
            if not read_only:
                await db._migrate()
        except BaseException:
            await db.close()
            raise
        return db

    async def _configure(self, read_only: bool) -> None:
        conn = self._conn
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA foreign_keys = ON")
        if not read_only:
            # WAL: readers (healthcheck, backups) never block the bot; NORMAL sync is
            # durable across a process kill, which is the crash this bot must survive.
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")

    async def _migrate(self) -> None:
        async with self.transaction() as conn:
            for name in await apply_migrations(conn):
                log.info("event=migration name=%s", name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteConnection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error).

        Cancellation-safe: aiosqlite runs a statement on its thread even when the awaiting
        task is cancelled, so a cancelled BEGIN may still open a transaction. Whatever
        interrupts us, a ROLLBACK is queued behind it (statements run in order), and the
        COMMIT or ROLLBACK is shielded so no transaction is ever left open.
        """
        async with self._lock:
            self.raise_if_lost()
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._wrapped
                # The last moment to refuse: committed into a deleted file, it is lost.
                self._check_identity()
            except BaseException as error:
                await asyncio.shield(self._rollback())
                self._raise_if_storage_failed(error)
                raise
            try:
                await asyncio.shield(self._conn.execute("COMMIT"))
            except sqlite3.Error as error:
                self._raise_if_storage_failed(error)
                raise

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError:  # BEGIN never ran, or failed: nothing to undo
            pass

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteConnection]:
        """Reads that must not run inside another coroutine's open transaction."""
        async with self._lock:
            self.raise_if_lost()  # a lost file's answers describe a database nobody has
            yield self._wrapped

    # --- a database file that went away -------------------------------------------------

    async def lead(self) -> bool:
        """The one bot on this file leads (the process lock keeps any other out)."""
        self.raise_if_lost()
        self.leading = True
        return True

    async def still_leading(self) -> bool:
        return self.leading and self.lost is None

    async def resign(self) -> None:
        self.leading = False

    async def live_instances(self) -> int:
        return 1

    async def check(self) -> None:
        """Raise DatabaseLostError when the file was deleted or replaced, or its folder can
        no longer be written (a remount read-only). A few system calls: cheap to call often.
        """
        self.check_file()

    async def size_bytes(self) -> int:
        """Size on disk of the file and its WAL (which holds recent writes until a
        checkpoint)."""
        return _size_on_disk(self.path)

    def check_file(self) -> None:
        """check(), for callers without an event loop at hand."""
        self.raise_if_lost()
        self._check_identity()
        folder = os.path.dirname(os.path.abspath(self.path))
        if self._identity is not None and not os.access(folder, os.W_OK):
            raise self.lose(f"its folder {folder} can no longer be written")

    def _check_identity(self) -> None:
        if self._identity is None:
            return
        try:
            found = _identity(os.stat(self.path))
        except FileNotFoundError:
            raise self.lose("the file was deleted or moved away while the bot ran") from None
        except OSError as error:
            raise self.lose(f"the file cannot be reached ({error.strerror})") from None
        if found != self._identity:
            raise self.lose("the file was replaced by another one while the bot ran")

    def _raise_if_storage_failed(self, error: BaseException) -> None:
        """A write refused as read-only always means the storage is gone; a disk I/O error
        does when the file or its folder shows why, else it may pass (and is raised as is).
        """
        if not isinstance(error, sqlite3.Error):
            return
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        if code not in (SQLITE_READONLY, SQLITE_IOERR) or self._identity is None:
            return
        self.check_file()
        if code == SQLITE_READONLY:
            raise self.lose(f"it can no longer be written ({error})") from error

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.read() as conn:
            return await conn.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        async with self.read() as conn:
            return await conn.fetchone(sql, params)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as conn:
            return await conn.execute(sql, params)

    async def close(self) -> None:
        """Close the connection (its thread too, so the process can exit) and the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._conn.close()
        finally:
            if self._lock_file:
                self._lock_file.close()

    async def __aenter__(self) -> SqliteDatabase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _size_on_disk(path: str) -> int:
    total = 0
    for name in (path, f"{path}-wal"):
        with contextlib.suppress(OSError):  # no WAL right after a checkpoint; ":memory:"
            total += os.path.getsize(name)
    return total


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _take_process_lock(path: str) -> IO[bytes]:
    lock_path = f"{path}.lock"
    handle = open(lock_path, "a+b")  # noqa: SIM115 - held open for the process's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().decode(errors="replace").strip() or "another process"
        handle.close()
        raise DatabaseLockedError(
            f"database {path} is in use by another news-notifier ({owner}); "
            "stop it first, or give this one its own NEWS_NOTIFIER_DATABASE"
        ) from None
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}".encode())
    handle.flush()
    return handle
