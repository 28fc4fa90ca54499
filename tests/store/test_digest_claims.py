"""Each chat's due digest is made exactly once, whichever instance's tick sees it first
(issue 14): DigestSchedulers of two instances tick at the same instant over the same chats;
each digest is claimed with a compare-and-set in the transaction that queues it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.clock import FakeClock
from bot.config import Settings
from bot.digests.scheduler import DigestScheduler
from bot.models import Entry
from bot.store import Store
from tests.helpers import record_entries

CHATS = 150  # more than one write batch (WRITE_BATCH = 100)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


async def setup(store: Store, settings: Settings, clock: FakeClock) -> None:
    now = clock.now_ms()
    feed_id = await store.feeds.add("https://a.test/f.xml", title="A", site_url="", now_ms=now)
    scheduler = DigestScheduler(store, settings, clock)
    for chat in range(1, CHATS + 1):
        await store.chats.upsert(chat, kind="private", title="", language="en", now_ms=now)
        await store.chats.subscribe(chat, feed_id, thread_id=None, now_ms=now)
        await scheduler.set_schedule(chat, ["08:00", "UTC"], thread_id=None)
    entry = Entry(feed_id, now, "story-1", "Story one", "https://a.test/1", "")
    await record_entries(store, feed_id, [entry], {"story-1": "Its summary."}, now_ms=now)


async def digests_per_chat(store: Store) -> dict[int, int]:
    rows = await store.db.fetchall(
        "SELECT chat_id, COUNT(*) FROM outbox WHERE kind = 'digest' GROUP BY chat_id"
    )
    return {row[0]: row[1] for row in rows}


async def test_two_instances_ticking_at_once_queue_each_digest_once(
    store: Store, second_store: Store, settings: Settings
) -> None:
    clock = FakeClock(ms(2025, 3, 1, 7, 0))
    await setup(store, settings, clock)
    clock.set(datetime(2025, 3, 1, 8, 0, 2, tzinfo=UTC))
    first = DigestScheduler(store, settings, clock)
    second = DigestScheduler(second_store, settings, clock)
    queued = await asyncio.gather(first.fire_due(), second.fire_due())
    assert sum(queued) == CHATS, queued
    assert await digests_per_chat(store) == dict.fromkeys(range(1, CHATS + 1), 1)
    # Every schedule moved on to tomorrow, and nothing is due again today.
    row = await store.db.fetchone("SELECT MIN(next_digest_at), MAX(next_digest_at) FROM chats")
    assert tuple(row or ()) == (ms(2025, 3, 2, 8, 0), ms(2025, 3, 2, 8, 0))
    clock.advance(600)
    assert await asyncio.gather(first.fire_due(), second.fire_due()) == [0, 0]
    # The next day's digest is made once again.
    clock.set(datetime(2025, 3, 2, 8, 0, 1, tzinfo=UTC))
    assert sum(await asyncio.gather(second.fire_due(), first.fire_due())) == CHATS
    assert set((await digests_per_chat(store)).values()) == {2}


async def test_a_schedule_changed_by_another_instance_keeps_the_due_digest_once(
    store: Store, second_store: Store, settings: Settings
) -> None:
    """The claim is on the digest's window (last_digest_at), not on next_digest_at: a
    `/digest at` answered by another instance while the digest renders moves the schedule,
    and the digest that was due still goes out, once."""
    clock = FakeClock(ms(2025, 3, 1, 7, 0))
    await setup(store, settings, clock)
    clock.set(datetime(2025, 3, 1, 8, 0, 2, tzinfo=UTC))
    due = await store.chats.digests_due(clock.now_ms())
    other = DigestScheduler(second_store, settings, clock)
    await other.set_schedule(1, ["21:00", "UTC"], thread_id=None)
    # The first instance read the chats before that change; it renders and writes now.
    first = DigestScheduler(store, settings, clock)
    store.chats.digests_due = lambda _now: _return(due)  # type: ignore[method-assign]
    assert await first.fire_due() == CHATS
    chat = await store.chats.get(1)
    assert chat is not None and chat.next_digest_at == ms(2025, 3, 1, 21, 0)
    assert (await digests_per_chat(store))[1] == 1


async def _return(value: object) -> object:
    return value
