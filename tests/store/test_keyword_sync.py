"""Keyword changes across instances (issue 14): a change made through one instance reaches
another instance's in-memory index within a second (PostgreSQL NOTIFY, sent in the change's
transaction); a notification missed while the listening connection was down is made up by a
full reload once it listens again. Two Store objects on one schema stand for two instances
(each its own pool and listening connection, as two processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.config import Settings
from bot.filters import KeywordIndex
from bot.store import Store
from bot.usecases.keywords import KeywordFilters, KeywordSync
from tests.databases import POSTGRESQL_URL

pytestmark = pytest.mark.postgresql_only

CHAT = 7
STORY = "Rust 2.0 released\nThe compiler got faster."


class Instance:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.index = KeywordIndex()
        self.keywords = KeywordFilters(store, self.index, settings.keywords)
        self.sync = KeywordSync(store, self.keywords)
        self.changes = store.keyword_changes

    def alerts(self) -> bool:
        """Whether this instance's index alerts CHAT about STORY."""
        return self.index.decide(STORY, [CHAT])[CHAT].alert

    async def start(self) -> None:
        self.changes.listening.clear()
        self.sync.start()
        async with asyncio.timeout(10):
            await self.changes.listening.wait()


@pytest.fixture
async def two(store: Store, settings: Settings) -> AsyncIterator[tuple[Instance, Instance]]:
    other = await Store.open(store.db.url, exclusive=False)  # type: ignore[attr-defined]
    await store.chats.upsert(CHAT, kind="private", title="", language="en", now_ms=0)
    a, b = Instance(store, settings), Instance(other, settings)
    try:
        yield a, b
    finally:
        await a.sync.stop()
        await b.sync.stop()
        await other.close()


async def arrives(instance: Instance, expected: bool, within: float = 1.0) -> float:
    """Seconds until the instance's index routes STORY to CHAT as `expected`."""
    began = time.perf_counter()
    async with asyncio.timeout(within):
        for _ in range(int(within / 0.005) + 1):
            if instance.alerts() == expected:
                break
            await asyncio.sleep(0.005)
    assert instance.alerts() == expected
    return time.perf_counter() - began


async def test_a_change_through_one_instance_reaches_the_others_index_within_a_second(
    two: tuple[Instance, Instance],
) -> None:
    a, b = two
    await a.start()
    await b.start()
    assert b.alerts()  # no filter: every story alerts
    await a.keywords.add(CHAT, "python")
    await arrives(b, False)
    await a.keywords.add(CHAT, "rust")
    await arrives(b, True)
    await a.keywords.add(CHAT, "-compiler")  # an exclusion: the story no longer alerts
    await arrives(b, False)
    await b.keywords.clear(CHAT)  # the other way round
    await arrives(a, True)
    assert b.alerts()


async def test_a_notification_missed_while_not_listening_is_made_up_by_a_full_reload(
    two: tuple[Instance, Instance],
) -> None:
    a, b = two
    await a.keywords.add(CHAT, "python")  # b hears nothing: it does not listen yet
    await b.start()  # its first LISTEN reloads everything
    assert not b.alerts() and CHAT in b.index.chat_ids()

    # b's listening connection dies (a network cut, a restarted pooler); a change is made
    # meanwhile; b listens again and reloads: the change is there.
    pid = b.changes.backend_pid
    b.changes.listening.clear()
    conn = await asyncpg.connect(POSTGRESQL_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()
    await a.keywords.clear(CHAT)
    async with asyncio.timeout(10):
        await b.changes.listening.wait()
    assert b.changes.backend_pid != pid
    await arrives(b, True)
    assert CHAT not in b.index.chat_ids()
