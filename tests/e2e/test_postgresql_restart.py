"""PostgreSQL restarted in the middle of a fan-out to 300 chats: the real `news-notifier run`
in a child process, on a PostgreSQL server of the test's own (tests/databases.py
PrivatePostgres), which the test restarts as an operator would (`pg_ctl restart -m fast`:
every connection is closed, in the middle of whatever it was doing).

What must hold: the bot keeps running and says so in a line or two, not a traceback per
failure; every chat gets the story; a message goes twice at most when it was in flight
(sent, its "sent" mark not yet written) — and since the process itself lives on, the marks
it could not write are written once the database is back, so in practice none does.
"""

from __future__ import annotations

import asyncio
import math
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import PrivatePostgres
from tests.e2e.child import Children
from tests.e2e.test_crash import (
    CHATS,
    FEED,
    FLUSH_SECONDS,
    MAX_IN_FLIGHT,
    chats_reached,
    outbox_statuses,
    prepare,
    publish_story,
    settings,
)
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram, FloodLimits

pytestmark = pytest.mark.postgresql_only

RATE = 100.0


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    private = PrivatePostgres()
    private.start()
    try:
        yield private
    finally:
        private.stop()


async def test_postgresql_restarted_mid_fan_out_every_chat_gets_the_story(
    tmp_path: Path, server: PrivatePostgres, feed_server: FeedServer
) -> None:
    limits = FloodLimits(global_per_second=RATE, global_burst=30)
    async with FakeTelegram(limits=limits) as fake:
        for chat_id in CHATS:
            fake.private_chat(fake.add_user(chat_id, f"User {chat_id}"))
        fake.delay(0.03, methods=["sendMessage"])  # several sends in flight at any moment
        children = Children(tmp_path, fake, settings(RATE))
        await prepare(server.url, feed_server.url(FEED))
        publish_story(feed_server)
        bot = await children.start(server.url, "run")
        try:
            await fake.wait_for(lambda: len(fake.sent) >= 0.3 * len(CHATS), 30, "30% sent")
            await asyncio.to_thread(server.restart)
            reached_at_restart = chats_reached(fake)
            assert reached_at_restart < len(CHATS), "restarted too late to test anything"
            await fake.wait_for(
                lambda: chats_reached(fake) == len(CHATS), 60, "every chat to get the story"
            )
            assert bot.process.returncode is None, bot.output()[-3000:]  # it kept running
            # Its "sent" marks are written once the database answers again (the flush
            # keeps what it could not write).
            await asyncio.sleep(2 * FLUSH_SECONDS + 1.0)
            bot.process.send_signal(signal.SIGTERM)
            assert await bot.exit_code(15) == 0, bot.output()[-3000:]
        finally:
            await children.kill_all()

        output = bot.output()
        assert "Traceback" not in output, output[-3000:]
        said = [line for line in output.splitlines() if "event=database_unavailable" in line]
        assert 1 <= len(said) <= 3, said  # said so, in a line or two, not once per failure
        assert "event=database_available" in output

        per_chat = Counter(m.chat_id for m in fake.sent)
        assert set(per_chat) == set(CHATS)
        duplicates = sum(per_chat.values()) - len(CHATS)
        # The in-flight rule (tests/e2e/test_crash.py): at most what was sent and not yet
        # recorded when the connection dropped.
        assert duplicates <= MAX_IN_FLIGHT + 2 * math.ceil(RATE * FLUSH_SECONDS), duplicates
        assert await outbox_statuses(server.url) == {"sent": len(CHATS)}


async def test_postgresql_restarted_under_two_instances_one_leads_again(
    tmp_path: Path, server: PrivatePostgres, feed_server: FeedServer
) -> None:
    """Two bots, the leader in the middle of a fan-out when PostgreSQL restarts: both lose
    their locks; the leader stops sending at once; one of the two leads again (never both),
    and every chat gets the story, duplicates within the in-flight rule."""
    limits = FloodLimits(global_per_second=RATE, global_burst=30)
    async with FakeTelegram(limits=limits) as fake:
        for chat_id in CHATS:
            fake.private_chat(fake.add_user(chat_id, f"User {chat_id}"))
        fake.delay(0.03, methods=["sendMessage"])
        children = Children(tmp_path, fake, settings(RATE))
        await prepare(server.url, feed_server.url(FEED))
        bots = [await children.start(server.url, name) for name in ("run-1", "run-2")]
        try:
            for bot in bots:
                await fake.wait_for(bot.logged("started"), 60, "a start")
            publish_story(feed_server)
            await fake.wait_for(lambda: len(fake.sent) >= 0.3 * len(CHATS), 30, "30% sent")
            await asyncio.to_thread(server.restart)
            assert chats_reached(fake) < len(CHATS), "restarted too late to test anything"
            await fake.wait_for(
                lambda: chats_reached(fake) == len(CHATS), 60, "every chat to get the story"
            )
            await asyncio.sleep(2 * FLUSH_SECONDS + 1.0)
            for bot in bots:
                assert bot.process.returncode is None, bot.output()[-3000:]
                bot.process.send_signal(signal.SIGTERM)
            for bot in bots:
                assert await bot.exit_code(20) == 0, bot.output()[-3000:]
        finally:
            await children.kill_all()

    outputs = [bot.output() for bot in bots]
    for output in outputs:
        assert "Traceback" not in output, output[-3000:]
    # Leadership before and after the restart: the one that led lost it and stood by.
    assert sum("event=leadership_lost" in output for output in outputs) == 1, outputs
    assert sum(o.count("event=leadership role=leader") for o in outputs) == 2, outputs
    per_chat = Counter(m.chat_id for m in fake.sent)
    assert set(per_chat) == set(CHATS)
    duplicates = sum(per_chat.values()) - len(CHATS)
    assert duplicates <= MAX_IN_FLIGHT + 2 * math.ceil(RATE * FLUSH_SECONDS), duplicates
    assert await outbox_statuses(server.url) == {"sent": len(CHATS)}
