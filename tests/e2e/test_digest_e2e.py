"""The daily digest end to end: scheduled by command a minute ahead, delivered by the bot."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


async def test_digest_scheduled_a_minute_ahead_arrives(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = FakeClock(int(start.timestamp() * 1000))
    feed_server.publish(
        "/f.xml",
        [
            FeedItem(
                "Morning story",
                "https://n.test/1",
                guid="1",
                pub_date=start - timedelta(hours=1),
                description="<p>Something happened this morning. More text.</p>",
            ),
        ],
        title="Local news",
    )
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    due = start + timedelta(minutes=1)
    async with running_bot(bot_settings(tmp_path, fake), fake, clock) as bot:
        fake.user_command(chat, alice, "subscribe", feed_server.url("/f.xml"))
        fake.user_command(chat, alice, "digest", "at", due.strftime("%H:%M"), "UTC")
        messages = await fake.wait_for_messages(chat.id, 2, timeout=10)
        assert f"every day at {due:%H:%M} (UTC)" in messages[1].text
        fake.user_command(chat, alice, "digest")  # on command: now, schedule untouched
        messages = await fake.wait_for_messages(chat.id, 3, timeout=10)
        assert "Morning story" in messages[2].text
        assert "Something happened this morning." in messages[2].text

        clock.advance(61)
        deadline = time.monotonic() + 15
        messages = await fake.wait_for_messages(chat.id, 4, timeout=15)
        daily = messages[3]
        assert time.monotonic() < deadline
        assert f"{due:%Y-%m-%d} (UTC)" in daily.text and "Morning story" in daily.text
        stored = await bot.store.chats.get(chat.id)
        assert stored is not None
        assert stored.next_digest_at == int((due + timedelta(days=1)).timestamp() * 1000)
