"""The store: migrations, one owner of the database, clean close."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import DatabaseLockedError, DatabaseLostError, Store
from bot.store.db import migrations


def test_migrations_are_numbered_without_gaps() -> None:
    numbers = [number for number, _, _ in migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


async def test_open_creates_folder_applies_migrations_once(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "bot.sqlite3"
    async with await Store.open(str(path)) as store:
        row = await store.db.fetchone("SELECT COUNT(*) FROM schema_migrations")
        assert row is not None and row[0] == len(migrations())
        mode = await store.db.fetchone("PRAGMA journal_mode")
        assert mode is not None and mode[0] == "wal"
    async with await Store.open(str(path)) as store:  # reopening applies nothing twice
        row = await store.db.fetchone("SELECT COUNT(*) FROM schema_migrations")
        assert row is not None and row[0] == len(migrations())


async def test_a_second_owner_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = str(tmp_path / "bot.sqlite3")
    async with await Store.open(path):
        with pytest.raises(DatabaseLockedError, match="in use by another news-notifier"):
            await Store.open(path)
        # A second process too (the lock is the kernel's, not this process's).
        code = (
            "import asyncio, sys\n"
            "from bot.store import DatabaseLockedError, Store\n"
            "async def main():\n"
            f"    try: await Store.open({path!r})\n"
            "    except DatabaseLockedError: sys.exit(3)\n"
            "asyncio.run(main())\n"
        )
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        assert await asyncio.wait_for(process.wait(), 30) == 3
    async with await Store.open(path):  # released on close
        pass


async def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    async with await Store.open(str(tmp_path / "bot.sqlite3")) as store:
        with pytest.raises(RuntimeError):
            async with store.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO chats (id, kind, created_at) VALUES (1, 'private', 0)"
                )
                raise RuntimeError("crash mid-transaction")
        assert await store.chats.get(1) is None


def test_process_exits_after_close_without_hanging(tmp_path: Path) -> None:
    """An aiosqlite connection left open keeps a thread alive; close() must end it."""
    code = (
        "import asyncio\n"
        "from bot.store import Store\n"
        "async def main():\n"
        f"    store = await Store.open({str(tmp_path / 'x.sqlite3')!r})\n"
        "    await store.feeds.add('https://a.test/f', title='', site_url='', now_ms=1)\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], timeout=30, check=True)


async def test_cancelled_transactions_never_leave_one_open(tmp_path: Path) -> None:
    """A task cancelled at any point of a transaction (shutdown cancels feed checks) must
    leave the connection usable: no 'cannot start a transaction within a transaction'."""
    async with await Store.open(str(tmp_path / "bot.sqlite3")) as store:

        async def write(n: int) -> None:
            async with store.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO chats (id, kind, created_at) VALUES (?, 'private', 0)", (n,)
                )
                await asyncio.sleep(0)
                await conn.execute("UPDATE chats SET title = 'x' WHERE id = ?", (n,))

        for n in range(200):
            task = asyncio.create_task(write(n))
            for _ in range(n % 7):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await write(10_000)  # the connection still works
        row = await store.db.fetchone("SELECT COUNT(*) FROM chats WHERE title = 'x'")
        assert row is not None and row[0] >= 1


# --- a database file that goes away while the bot runs (issue 11, item 4) ---------------


async def add_chat(store: Store, chat_id: int) -> None:
    await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Store, list[DatabaseLostError]]]:
    """A store whose on_lost calls are recorded (the run loop stops on them)."""
    store = await Store.open(str(tmp_path / "bot.sqlite3"))
    reported: list[DatabaseLostError] = []
    store.db.on_lost = reported.append
    try:
        yield store, reported
    finally:
        await store.close()


async def test_a_deleted_database_file_refuses_every_write_after_it(
    watched: tuple[Store, list[DatabaseLostError]], caplog: pytest.LogCaptureFixture
) -> None:
    store, reported = watched
    await add_chat(store, 1)
    os.unlink(store.db.path)
    with pytest.raises(DatabaseLostError, match="deleted") as error:
        await add_chat(store, 2)
    assert error.value.path == store.db.path
    # Reported once, loudly, naming the file; every later use fails the same way.
    assert reported == [error.value]
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.levelno == logging.CRITICAL and store.db.path in line.getMessage()
    with pytest.raises(DatabaseLostError):
        await store.chats.get(1)
    with pytest.raises(DatabaseLostError):
        await add_chat(store, 3)
    assert len(reported) == 1


async def test_a_file_deleted_during_a_transaction_fails_that_transaction(
    watched: tuple[Store, list[DatabaseLostError]],
) -> None:
    store, reported = watched
    with pytest.raises(DatabaseLostError, match="deleted"):
        async with store.db.transaction() as conn:
            await conn.execute("INSERT INTO chats (id, kind, created_at) VALUES (7, 'private', 0)")
            os.unlink(store.db.path)  # after the statements, before COMMIT
    assert len(reported) == 1


async def test_a_replaced_database_file_is_noticed_without_any_write(
    watched: tuple[Store, list[DatabaseLostError]], tmp_path: Path
) -> None:
    store, reported = watched
    store.db.check_file()  # the periodic check: nothing wrong yet
    other = tmp_path / "restored.sqlite3"
    sqlite3.connect(other).close()
    os.replace(other, store.db.path)  # a backup restored over the live file
    with pytest.raises(DatabaseLostError, match="replaced"):
        store.db.check_file()
    assert len(reported) == 1


async def test_a_database_folder_that_can_no_longer_be_written_is_noticed(
    watched: tuple[Store, list[DatabaseLostError]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, reported = watched
    folder = os.path.dirname(store.db.path)
    real_access = os.access
    # A remount read-only (root ignores chmod, so the test stands in for the kernel).
    monkeypatch.setattr(
        "bot.store.sqlite.os.access",
        lambda path, mode: False if path == folder else real_access(path, mode),
    )
    with pytest.raises(DatabaseLostError, match="can no longer be written"):
        store.db.check_file()
    assert len(reported) == 1


async def test_a_write_refused_as_read_only_loses_the_database(
    watched: tuple[Store, list[DatabaseLostError]],
) -> None:
    store, reported = watched
    # SQLite's answer when its storage turned read-only under it: SQLITE_READONLY.
    await store.db.execute("PRAGMA query_only = ON")
    with pytest.raises(DatabaseLostError, match="can no longer be written"):
        await add_chat(store, 1)
    assert len(reported) == 1


async def test_a_full_disk_is_not_a_lost_database(
    watched: tuple[Store, list[DatabaseLostError]],
) -> None:
    store, reported = watched
    # SQLITE_FULL heals when space is freed: the write fails, the database stays usable.
    (pages,) = await store.db.fetchone("PRAGMA page_count")  # type: ignore[misc]
    await store.db.fetchone(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        await store.outbox.enqueue_text(1, None, kind="notice", texts=["x" * 100_000], now_ms=0)
    await store.db.fetchone("PRAGMA max_page_count = 1073741823")
    await add_chat(store, 1)
    assert reported == [] and await store.chats.get(1) is not None
