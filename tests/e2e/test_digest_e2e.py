"""The daily digest end to end: scheduled by command a minute ahead, delivered by the bot."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from tests.e2e.harness import RunningBot, bot_settings, running_bot
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


async def test_a_feed_followed_in_digest_mode_is_listed_in_full(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """A feed in `/mode 1 digest` that published 120 stories since the chat subscribed:
    no alert for any of them, and `/digest` lists every one (the one that was there at
    subscribing too), each whole in one message of at most 4096 characters."""
    now = datetime.now(UTC).replace(microsecond=0)
    first = FeedItem("Story 0", "https://n.test/0", guid="0", pub_date=now - timedelta(hours=3))
    feed_server.publish("/busy.xml", [first], title="Busy wire")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", feed_server.url("/busy.xml"))
        fake.user_command(chat, alice, "mode", "1", "digest")
        await fake.wait_for_messages(chat.id, 2, timeout=10)
        stories = [
            FeedItem(
                f"Story {n}: the wire's headline number {n}",
                f"https://n.test/{n}",
                guid=str(n),
                pub_date=now - timedelta(minutes=n),
                description=f"<p>What happened in story {n}, told in one sentence. More.</p>",
            )
            for n in range(1, 121)
        ]
        feed_server.publish("/busy.xml", [*stories, first], title="Busy wire")
        await wait_for_stories(bot, 121)
        assert len(fake.messages(chat.id)) == 2  # digest mode: no alerts

        fake.user_command(chat, alice, "digest")
        await fake.wait_for(lambda: len(linked(fake, chat.id)) >= 121, timeout=30, what="digest")
        digest = fake.messages(chat.id)[2:]
        assert len(digest) > 1
        assert sorted(url for url, _title in linked(fake, chat.id)) == sorted(
            f"https://n.test/{n}" for n in range(121)
        )
        for url, title in linked(fake, chat.id):  # each title whole, in its own link
            n = url.rsplit("/", 1)[1]
            assert title == (
                f"Story {n}: the wire's headline number {n}" if n != "0" else "Story 0"
            )
        assert all(len(m.text) <= 4096 for m in digest)
        assert not any("more" in m.text for m in digest)


def linked(fake: FakeTelegram, chat_id: int) -> list[tuple[str, str]]:
    """(url, linked text) of every text link in the chat's messages."""
    found = []
    for message in fake.messages(chat_id):
        text = message.text.encode("utf-16-le")
        for entity in message.entities:
            if entity["type"] == "text_link":
                start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
                found.append((entity["url"], text[start:end].decode("utf-16-le")))
    return found


async def wait_for_stories(bot: RunningBot, count: int) -> None:
    """Until the poller has recorded `count` stories (15 s at most)."""
    async with asyncio.timeout(15):
        while True:
            row = await bot.store.db.fetchone("SELECT COUNT(*) FROM stories")
            if row and row[0] >= count:
                return
            await asyncio.sleep(0.2)
