"""Several `news-notifier run` processes on one database.

PostgreSQL: three real children on one schema, against the fake Bot API and the local feed
host. One leads (sends, takes updates); the leader is killed with SIGKILL in the middle of a
fan-out to 300 chats; a standby takes over within seconds. Every story reaches every chat
once (the story cut by the kill: duplicates within the in-flight rule, counted), only one
process at a time calls getUpdates (the fake tells callers apart by their port), and a
command is answered by the new leader.

SQLite: a second child on the same file is refused, in one clear line, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.databases import Databases
from tests.e2e.child import Child, Children
from tests.e2e.test_crash import (
    CHATS,
    FEED,
    FLUSH_SECONDS,
    MAX_IN_FLIGHT,
    outbox_statuses,
    prepare,
    publish_story,
    settings,
)
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, FloodLimits
from tests.fakes.telegram_api.state import User

RATE = 100.0
LEADER = "event=leadership role=leader"
# A standby tries for the lead every second; a killed leader's lock is free at once. Start-up
# of a child on a busy 2-core machine is the slow part, so this is generous: the figure is
# bench/failover.py's.
TAKEOVER_WITHIN = 20.0


def socket_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's open sockets (Linux /proc)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@contextlib.asynccontextmanager
async def port_owners(children: list[Child]) -> AsyncIterator[dict[int, str]]:
    """port → the child's log name, sampled while they run (a killed child's ports go)."""
    owners: dict[int, str] = {}

    async def sample() -> None:
        while True:
            for child in children:
                if child.process.returncode is None:
                    for port in socket_ports(child.pid):
                        owners[port] = child.log.stem
            await asyncio.sleep(0.1)

    task = asyncio.create_task(sample())
    try:
        yield owners
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def leader_among(children: list[Child], within: float) -> Child:
    """The one child that says it leads (waits for it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leading = [c for c in children if c.process.returncode is None and LEADER in c.output()]
        if leading:
            assert len(leading) == 1, [c.log.stem for c in leading]
            return leading[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no leader: " + "\n".join(c.output()[-1500:] for c in children))


def publish_second_story(feed_server: FeedServer) -> None:
    now = datetime.now(UTC)
    feed_server.publish(
        FEED,
        [
            FeedItem(
                "Later: the second story",
                "https://news.test/second",
                guid="crash-2",
                pub_date=now,
                description="<p>The new leader sends this one.</p>",
            ),
            FeedItem(
                "Breaking: the crash test story",
                "https://news.test/crash",
                guid="crash-1",
                pub_date=now - timedelta(minutes=1),
                description="<p>Every chat must get this once, whatever happens.</p>",
            ),
        ],
        title="Crash news",
    )


@pytest.mark.postgresql_only
async def test_three_instances_one_leader_kill_9_a_standby_takes_over(
    tmp_path: Path, databases: Databases, feed_server: FeedServer
) -> None:
    limits = FloodLimits(global_per_second=RATE, global_burst=30)
    async with FakeTelegram(limits=limits) as fake:
        users = {chat_id: fake.add_user(chat_id, f"User {chat_id}") for chat_id in CHATS}
        for user in users.values():
            fake.private_chat(user)
        fake.delay(0.03, methods=["sendMessage"])  # several sends in flight at any moment
        children = Children(tmp_path, fake, settings(RATE))
        database = databases.new()
        await prepare(database, feed_server.url(FEED))
        try:
            bots = [await children.start(database, f"run-{n}") for n in (1, 2, 3)]
            async with port_owners(bots) as owners:
                await _kill_the_leader_mid_fan_out(fake, feed_server, bots, owners, users)
        finally:
            await children.kill_all()
        assert await outbox_statuses(database) == {"sent": 2 * len(CHATS)}


async def _kill_the_leader_mid_fan_out(
    fake: FakeTelegram,
    feed_server: FeedServer,
    bots: list[Child],
    owners: dict[int, str],
    users: dict[int, User],
) -> None:
    for bot in bots:  # all three up: the standbys check feeds too
        await fake.wait_for(lambda b=bot: "event=started" in b.output(), 60, "a start")
    first = await leader_among(bots, 30)
    publish_story(feed_server)
    await fake.wait_for(lambda: len(fake.sent) >= 0.3 * len(CHATS), 30, "30% of the fan-out")
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.time()
    assert await first.exit_code(10) == -signal.SIGKILL
    standbys = [b for b in bots if b is not first]
    second = await leader_among(standbys, TAKEOVER_WITHIN)
    await fake.wait_for(
        lambda: len({m.chat_id for m in fake.sent}) == len(CHATS), 60, "every chat, story 1"
    )
    publish_second_story(feed_server)
    await fake.wait_for(
        lambda: sum("second story" in m.text for m in fake.sent) >= len(CHATS), 60, "story 2"
    )
    user = next(iter(CHATS))
    before = len(fake.messages(user))
    fake.user_command(fake.chat(user), users[user], "list")
    await fake.wait_for(lambda: len(fake.messages(user)) > before, 30, "the new leader's reply")
    await asyncio.sleep(2 * FLUSH_SECONDS + 0.5)  # the last "sent" marks
    stopped_at = time.time()  # a stopping leader confirms its updates in a last call
    for bot in standbys:
        bot.process.send_signal(signal.SIGTERM)
    for bot in standbys:
        assert await bot.exit_code(20) == 0, bot.output()[-3000:]
        assert "Traceback" not in bot.output(), bot.output()[-3000:]

    per_story = Counter(
        (m.chat_id, "second story" in m.text) for m in fake.sent if m.chat_id in CHATS
    )
    assert {chat for chat, _ in per_story} == set(CHATS)
    assert all(per_story[(chat, True)] == 1 for chat in CHATS)  # sent by the new leader only
    duplicates = sum(per_story[(chat, False)] for chat in CHATS) - len(CHATS)
    # The in-flight rule (tests/e2e/test_crash.py): what was in flight or sent and not yet
    # marked when the leader was killed, at most.
    bound = MAX_IN_FLIGHT + 2 * math.ceil(RATE * FLUSH_SECONDS)
    assert duplicates <= bound, (duplicates, bound)
    print(f"duplicates after the kill: {duplicates} (bound {bound})")

    # Who polled, by the port of each call, and when it was answered. The killed leader's
    # last long poll is answered 409 once the new leader polls, as Telegram does.
    polls = [
        (owners.get(r.peer_port, f"port {r.peer_port}"), r.status, r.time)
        for r in fake.requests_for("getUpdates")
        if r.time < stopped_at
    ]
    answered_before = {name for name, status, at in polls if status == 200 and at < killed_at}
    answered_after = {name for name, status, at in polls if status == 200 and at > killed_at}
    conflicts = [name for name, status, _ in polls if status == 409]
    assert answered_before == {first.log.stem}, polls
    assert answered_after == {second.log.stem}, polls
    assert conflicts in ([], [first.log.stem]), polls
    assert fake.retry_after_count == 0


@pytest.mark.sqlite_only
async def test_a_second_instance_on_one_sqlite_file_is_refused(
    tmp_path: Path, databases: Databases
) -> None:
    async with FakeTelegram() as fake:
        children = Children(tmp_path, fake, settings(RATE))
        database = databases.new()
        try:
            first = await children.start(database, "run-1")
            await fake.wait_for(lambda: "event=started" in first.output(), 60, "the first start")
            second = await children.start(database, "run-2")
            assert await second.exit_code(60) == 2
            refusal = second.output().strip().splitlines()[-1]
            assert refusal.startswith(f"news-notifier: database {database} is in use by another")
            assert first.process.returncode is None  # the first runs on, untouched
            first.process.send_signal(signal.SIGTERM)
            assert await first.exit_code(20) == 0
        finally:
            await children.kill_all()
