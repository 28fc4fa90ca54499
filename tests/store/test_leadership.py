"""Several bots on one PostgreSQL database: the present lock (shared by running bots,
exclusive for a command that must be alone), the leader's lock and its failover, and the
NOTIFY that wakes the leader when any bot writes outbox rows."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import pytest

from bot.store import DatabaseLockedError, Store
from bot.store.postgres import PostgresDatabase
from tests.databases import POSTGRESQL_URL, Databases

pytestmark = pytest.mark.postgresql_only


async def _bots(url: str, count: int) -> list[Store]:
    return [await Store.open(url, shared=True) for _ in range(count)]


async def _holder_pid(store: Store) -> int:
    db = store.db
    assert isinstance(db, PostgresDatabase)
    holder = db._holder
    assert holder is not None
    return holder.get_server_pid()


async def _terminate(pid: int) -> None:
    """What a restart of PostgreSQL or a dead host does to one session: it ends."""
    conn = await asyncpg.connect(POSTGRESQL_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def _until(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def test_running_bots_share_a_database_a_command_that_must_be_alone_is_refused(
    databases: Databases,
) -> None:
    url = databases.new()
    first, second = await _bots(url, 2)
    try:
        assert await first.db.live_instances() == 2
        with pytest.raises(DatabaseLockedError, match="in use by another news-notifier"):
            await Store.open(url)  # import-opml, migrate-db: alone or not at all
    finally:
        await first.close()
        await second.close()
    alone = await Store.open(url)
    try:
        with pytest.raises(DatabaseLockedError, match="in use by another news-notifier"):
            await Store.open(url, shared=True)  # and no bot starts while it runs
    finally:
        await alone.close()


async def test_one_leader_a_standby_takes_over_when_its_session_ends(
    databases: Databases, caplog: pytest.LogCaptureFixture
) -> None:
    url = databases.new()
    first, second, third = await _bots(url, 3)
    lost: list[str] = []
    first.db.on_leadership_lost = lambda: lost.append("first")
    try:
        assert await first.db.lead()
        assert not await second.db.lead()
        assert not await third.db.lead()
        assert await first.db.lead()  # a leader asked again: still
        assert await first.db.still_leading()

        caplog.set_level(logging.INFO, logger="bot.store.postgres")
        await _terminate(await _holder_pid(first))
        await _until(lambda: lost == ["first"])  # told at once, by the connection's close
        assert not first.db.leading
        assert await second.db.lead()  # the lock went with the session
        assert not await third.db.lead()
        # The old leader comes back as a standby: its present lock taken again, not the lead.
        assert not await first.db.lead()
        assert "event=database_lock_taken_again" in caplog.text
        assert await second.db.live_instances() == 3

        await second.db.resign()  # a clean stop: the next try takes it
        assert await third.db.lead()
        assert not await first.db.lead()
    finally:
        for store in (first, second, third):
            await store.close()


async def test_a_leader_whose_session_is_gone_sees_it_at_its_next_check(
    databases: Databases,
) -> None:
    url = databases.new()
    (bot,) = await _bots(url, 1)
    try:
        assert await bot.db.lead()
        db = bot.db
        assert isinstance(db, PostgresDatabase)
        db._closing = True  # the termination listener stays silent: only the ping can tell
        await _terminate(await _holder_pid(bot))
        db._closing = False
        await asyncio.sleep(0.2)
        assert not await bot.db.still_leading()
        assert await bot.db.lead()  # nobody else: it leads again on a new connection
    finally:
        await bot.close()


async def test_rows_written_by_any_bot_wake_the_leader_once_committed(
    databases: Databases,
) -> None:
    url = databases.new()
    leader, writer = await _bots(url, 2)
    woken: list[float] = []
    leader.db.on_outbox_rows = lambda: woken.append(time.monotonic())
    other_url = databases.new("other")
    (stranger,) = await _bots(other_url, 1)
    try:
        assert await leader.db.lead()
        now = int(time.time() * 1000)
        await writer.chats.upsert(1, kind="private", title="a", language="en", now_ms=now)
        await stranger.chats.upsert(1, kind="private", title="a", language="en", now_ms=now)
        await stranger.outbox.enqueue_text(1, None, kind="notice", texts=["elsewhere"], now_ms=now)
        await asyncio.sleep(0.3)
        assert woken == []  # another schema's rows are not this leader's

        with pytest.raises(RuntimeError):
            async with writer.db.transaction() as conn:
                from bot.store.outbox import outbox_rows_coming

                await outbox_rows_coming(conn)
                raise RuntimeError("rolled back")
        await asyncio.sleep(0.3)
        assert woken == []  # a rollback tells nobody

        await writer.outbox.enqueue_text(1, None, kind="notice", texts=["hello"], now_ms=now)
        await _until(lambda: len(woken) == 1, within=5)
        assert [item.id for item in await leader.outbox.pending_after(0, 10)] != []
    finally:
        for store in (leader, writer, stranger):
            await store.close()


async def test_writers_of_outbox_rows_commit_in_the_order_of_their_ids(
    databases: Databases,
) -> None:
    """The sender reads rows above the last id it loaded: a row whose transaction took a lower
    id and committed later would be skipped. The second writer waits for the first's commit."""
    url = databases.new()
    (store,) = await _bots(url, 1)
    now = int(time.time() * 1000)
    await store.chats.upsert(1, kind="private", title="a", language="en", now_ms=now)
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def slow_writer() -> None:
        async with store.db.transaction() as conn:
            from bot.store.outbox import outbox_rows_coming

            await outbox_rows_coming(conn)
            await conn.execute(
                "INSERT INTO outbox (chat_id, kind, text, not_before, created_at)"
                " VALUES (1, 'notice', 'first', ?, ?)",
                (now, now),
            )
            first_in.set()
            await release.wait()

    try:
        task = asyncio.create_task(slow_writer())
        await first_in.wait()
        second = asyncio.create_task(
            store.outbox.enqueue_text(1, None, kind="notice", texts=["second"], now_ms=now)
        )
        await asyncio.sleep(0.5)
        assert not second.done()  # it waits for the first writer's commit
        assert await store.outbox.pending_after(0, 10) == []
        release.set()
        await task
        await second
        rows = await store.outbox.pending_after(0, 10)
        assert [row.id for row in rows] == sorted(row.id for row in rows) and len(rows) == 2
    finally:
        await store.close()
