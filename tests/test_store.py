"""The store: migrations, one owner of the database, clean close."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store import Database, DatabaseLockedError, Store
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
            await Database.open(path)
        # A second process too (the lock is the kernel's, not this process's).
        code = (
            "import asyncio, sys\n"
            "from bot.store import Database, DatabaseLockedError\n"
            "async def main():\n"
            f"    try: await Database.open({path!r})\n"
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
