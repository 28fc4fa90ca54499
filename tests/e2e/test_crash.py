"""Kills and stops: the real `news-notifier run` in a child process, against the fake Bot API
and the local feed host running in the test's event loop.

The database is prepared before the child starts: 300 private chats subscribed to one
primed feed, so the story the feed serves at the child's first poll is owed to all 300.
The child paces faster than Telegram (a settings file raises `delivery.global_per_second`,
and the fake's global limit with it) so a fan-out takes seconds, not ten.
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

from bot.store import Store
from tests.databases import Databases, integrity
from tests.e2e.child import Children
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, FloodLimits
from tests.helpers import record_entries

FEED = "/crash.xml"
CHATS = range(10_001, 10_301)  # 300 private chats
MAX_IN_FLIGHT = 32  # the default, written out in the settings file so the bound below holds
# The sender records deliveries in batches this often (bot.delivery.sender.FLUSH_EVERY). It is
# written out here, not imported: a slower flush means more resends after a kill, which is
# what the kill test must notice.
FLUSH_SECONDS = 0.05


def settings(rate: float) -> str:
    """The children's settings file: paced at `rate`, MAX_IN_FLIGHT sends open at most."""
    return (
        "[delivery]\n"
        f"global_per_second = {rate}\n"
        f"max_in_flight = {MAX_IN_FLIGHT}\n"
        "shutdown_grace_seconds = 5\n"
    )


async def prepare(database: str, feed_url: str) -> None:
    """300 chats subscribed to one primed feed (the test process writes, then lets go)."""
    now = int(time.time() * 1000)
    store = await Store.open(str(database))
    try:
        feed_id = await store.feeds.add(feed_url, title="Crash news", site_url="", now_ms=now)
        for chat_id in CHATS:
            await store.chats.upsert(
                chat_id, kind="private", title=f"chat {chat_id}", language="en", now_ms=now
            )
            await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=now)
        await record_entries(store, feed_id, now_ms=now)
    finally:
        await store.close()


async def outbox_statuses(database: str) -> Counter[str]:
    """Read after the child has exited (the test then holds the database's lock)."""
    store = await Store.open(str(database))
    try:
        assert await integrity(store) == "ok"
        rows = await store.db.fetchall("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return Counter({row[0]: row[1] for row in rows})
    finally:
        await store.close()


def publish_story(feed_server: FeedServer) -> None:
    feed_server.publish(
        FEED,
        [
            FeedItem(
                "Breaking: the crash test story",
                "https://news.test/crash",
                guid="crash-1",
                pub_date=datetime.now(UTC) - timedelta(minutes=1),
                description="<p>Every chat must get this once, whatever happens.</p>",
            )
        ],
        title="Crash news",
    )


def chats_reached(fake: FakeTelegram) -> int:
    return len({m.chat_id for m in fake.sent})


@contextlib.asynccontextmanager
async def setup(
    tmp_path: Path, databases: Databases, feed_server: FeedServer, rate: float
) -> AsyncIterator[tuple[FakeTelegram, Children, str]]:
    # The fake keeps Telegram's per-chat limits; its overall limit follows the bot's pace.
    limits = FloodLimits(global_per_second=rate, global_burst=30)
    async with FakeTelegram(limits=limits) as fake:
        for chat_id in CHATS:
            fake.private_chat(fake.add_user(chat_id, f"User {chat_id}"))
        children = Children(tmp_path, fake, settings(rate))
        database = databases.new()
        try:
            await prepare(database, feed_server.url(FEED))
            publish_story(feed_server)
            yield fake, children, database
        finally:
            await children.kill_all()


async def test_kill_9_mid_fan_out_then_restart_delivers_to_every_chat(
    tmp_path: Path, databases: Databases, feed_server: FeedServer
) -> None:
    rate = 150.0
    async with setup(tmp_path, databases, feed_server, rate) as (fake, children, database):
        # Each send takes a little while, so several are in flight when the kill comes.
        fake.delay(0.03, methods=["sendMessage"])
        first = await children.start(database, "run-1")
        await fake.wait_for(lambda: len(fake.sent) >= 0.4 * len(CHATS), 30, "40% of the fan-out")
        os.kill(first.pid, signal.SIGKILL)
        assert await first.exit_code(10) == -signal.SIGKILL
        at_kill = chats_reached(fake)
        assert at_kill < 0.8 * len(CHATS), f"killed too late to test anything: {at_kill}"

        # The same database: the kernel released the lock the killed run held.
        second = await children.start(database, "run-2")
        await fake.wait_for(
            lambda: chats_reached(fake) == len(CHATS), 30, "every chat to get the story"
        )
        second.process.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly as well
        assert await second.exit_code(15) == 0, second.output()[-3000:]

        per_chat = Counter(m.chat_id for m in fake.sent)
        assert set(per_chat) == set(CHATS)
        duplicates = sum(per_chat.values()) - len(CHATS)
        # The bound. The restart goes on from the outbox (the `at_kill` chats reached
        # before the kill, 120 or more, are far more than the bound). What it sends again can
        # only be what the first run had sent but not yet recorded:
        # - messages in flight: at most max_in_flight (32), the sender's semaphore;
        # - sends already answered but not yet marked sent: marks are written every
        #   FLUSH_SECONDS, so at `rate` messages a second at most one batch accumulating plus
        #   one batch being written when the kill came, 2 * ceil(150 * 0.05) = 16.
        # So at most 48 duplicates, and no chat gets the story more than twice.
        bound = MAX_IN_FLIGHT + 2 * math.ceil(rate * FLUSH_SECONDS)
        assert duplicates <= bound, (duplicates, bound)
        assert max(per_chat.values()) <= 2, per_chat.most_common(3)
        assert await outbox_statuses(database) == {"sent": len(CHATS)}
        assert fake.retry_after_count == 0


async def test_sigterm_mid_fan_out_exits_0_and_restart_finishes_without_duplicates(
    tmp_path: Path, databases: Databases, feed_server: FeedServer
) -> None:
    async with setup(tmp_path, databases, feed_server, rate=100.0) as (fake, children, database):
        first = await children.start(database, "run-1")
        await fake.wait_for(lambda: len(fake.sent) >= 0.3 * len(CHATS), 30, "30% of the fan-out")
        asked = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert await first.exit_code(10) == 0, first.output()[-3000:]
        took = time.monotonic() - asked
        assert took < 5, f"SIGTERM took {took:.1f}s"
        assert "Traceback" not in first.output()

        # Stopped cleanly: every accepted message is recorded as sent, the rest is pending.
        delivered = len(fake.sent)
        assert delivered == chats_reached(fake) < len(CHATS)
        assert await outbox_statuses(database) == {
            "sent": delivered,
            "pending": len(CHATS) - delivered,
        }

        calls_before = fake.request_counts["getme"]
        second = await children.start(database, "run-2")
        # The second run asks getMe only after it took the database's lock.
        await fake.wait_for_request("getMe", calls_before + 1, timeout=30)
        if databases.postgresql:  # several bots share it: tests/e2e/test_instances.py
            await a_third_stands_by(children, database)
        else:
            await a_third_is_refused(children, database)
        assert second.process.returncode is None  # the running bot was not disturbed

        await fake.wait_for(
            lambda: chats_reached(fake) == len(CHATS), 30, "every chat to get the story"
        )
        second.process.send_signal(signal.SIGTERM)
        assert await second.exit_code(10) == 0, second.output()[-3000:]
        # Nothing lost, and with clean stops nothing sent twice.
        assert Counter(m.chat_id for m in fake.sent) == dict.fromkeys(CHATS, 1)
        assert await outbox_statuses(database) == {"sent": len(CHATS)}
        assert fake.retry_after_count == 0


async def a_third_is_refused(children: Children, database: str) -> None:
    """A third `news-notifier run` on the same SQLite file refuses to start, in one line."""
    intruder = await children.spawn(
        database, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            _out, err = await intruder.communicate()
    finally:
        if intruder.returncode is None:
            intruder.kill()
            await intruder.wait()
    assert intruder.returncode == 2
    message = err.decode()
    assert "in use" in message and str(database) in message, message
    assert len(message.strip().splitlines()) == 1, message  # one clear line, no traceback


async def a_third_stands_by(children: Children, database: str) -> None:
    """On PostgreSQL a third `news-notifier run` joins as a standby (it sends nothing: the
    test's counts would show it) and stops cleanly."""
    third = await children.start(database, "run-3")
    async with asyncio.timeout(60):
        while "event=leadership role=standby" not in third.output():
            assert third.process.returncode is None, third.output()[-3000:]
            await asyncio.sleep(0.1)
    third.process.send_signal(signal.SIGTERM)
    assert await third.exit_code(30) == 0, third.output()[-3000:]
