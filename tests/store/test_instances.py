"""The instances table (issue 14): each running instance's row, heartbeat and role; the dead
ones found and their feed leases handed back at once; /stats lists them."""

from __future__ import annotations

import pytest

from bot.clock import FakeClock
from bot.reports import render_stats
from bot.store import Store
from bot.usecases.instances import SILENT_SECONDS, Instance, InstancePresence


async def lease_feed(store: Store, url: str, owner: str, now: int) -> int:
    feed_id = await store.feeds.add(url, title="", site_url="", now_ms=now)
    await store.db.execute(
        "UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE id = ?",
        (owner, now + 10**9, feed_id),
    )
    return feed_id


async def owner_of(store: Store, feed_id: int) -> str | None:
    row = await store.db.fetchone("SELECT lease_owner FROM feeds WHERE id = ?", (feed_id,))
    assert row is not None
    return row[0]


async def test_instances_register_beat_take_a_role_and_show_in_stats(
    store: Store, clock: FakeClock
) -> None:
    presence = InstancePresence(store, clock, Instance("host-a:41:aa", "host-a", 41))
    await presence.start()
    clock.advance(7)
    await presence.beat()
    await presence.set_role("leader")
    clock.advance(3)
    [row] = await store.instances.all()
    assert (row.id, row.host, row.pid, row.role) == ("host-a:41:aa", "host-a", 41, "leader")
    assert row.heartbeat_at == row.started_at + 7000

    stats = await store.stats.gather(now_ms=clock.now_ms())
    text = render_stats("en", stats)
    assert "Instances: 1" in text
    assert "<code>host-a:41:aa</code> (host-a, pid 41): leader, last heartbeat 3 s ago" in text

    await presence.stop()
    assert await store.instances.all() == []
    assert "Instances" not in render_stats("en", await store.stats.gather(now_ms=0))


async def test_a_killed_instances_leases_are_handed_back_when_the_next_one_starts(
    store: Store, second_store: Store, clock: FakeClock
) -> None:
    """The one before was killed: its row and its leases are still there. On SQLite the
    next instance is alone by construction; on PostgreSQL the dead one's presence lock went
    with its connection. Either way they are handed back at once, not after the lease."""
    now = clock.now_ms()
    dead = InstancePresence(second_store, clock, Instance("h:1:dead", "h", 1))
    await dead.start()
    feed_id = await lease_feed(store, "https://a.test/feed", "h:1:dead", now)
    presence = second_store.instances._presence
    if presence is not None:
        presence.terminate()  # what kill -9 does to its connections
    second_store.instances._presence = None

    alive = InstancePresence(store, clock, Instance("h:2:alive", "h", 2))
    await alive.start()
    assert await owner_of(store, feed_id) is None
    assert [row.id for row in await store.instances.all()] == ["h:2:alive"]
    await alive.stop()


@pytest.mark.postgresql_only
async def test_a_live_instance_is_left_alone_and_a_silent_one_is_reaped(
    store: Store, second_store: Store, clock: FakeClock
) -> None:
    now = clock.now_ms()
    other = InstancePresence(second_store, clock, Instance("h:1:other", "h", 1))
    await other.start()
    feed_id = await lease_feed(store, "https://a.test/feed", "h:1:other", now)
    me = InstancePresence(store, clock, Instance("h:2:me", "h", 2))
    await me.start()
    await me.beat()
    assert await owner_of(store, feed_id) == "h:1:other"  # its session lives
    assert {row.id for row in await store.instances.all()} == {"h:1:other", "h:2:me"}

    # Silent for longer than SILENT_SECONDS (a host gone without closing its connections).
    clock.advance(SILENT_SECONDS + 1)
    await me.beat()
    assert await owner_of(store, feed_id) is None
    assert [row.id for row in await store.instances.all()] == ["h:2:me"]
    # It was alive after all: its next heartbeat registers it again.
    await other.beat()
    assert {row.id for row in await store.instances.all()} == {"h:1:other", "h:2:me"}
    await other.stop()
    await me.stop()


@pytest.mark.postgresql_only
async def test_an_instance_whose_presence_connection_dropped_takes_its_lock_again(
    store: Store, second_store: Store, clock: FakeClock
) -> None:
    """PostgreSQL restarted, or the connection was cut: the presence lock went with it. The
    next heartbeat registers again, so the others keep seeing it alive."""
    me = InstancePresence(store, clock, Instance("h:1:me", "h", 1))
    await me.start()
    presence = store.instances._presence
    assert presence is not None
    presence.terminate()
    await me.beat()
    assert store.instances._presence is not None and not store.instances._presence.is_closed()
    other = InstancePresence(second_store, clock, Instance("h:2:other", "h", 2))
    await other.start()
    await other.beat()
    assert {row.id for row in await store.instances.all()} == {"h:1:me", "h:2:other"}
    await other.stop()
    await me.stop()
