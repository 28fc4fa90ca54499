"""WebSub push in the running bot (`run`, as `news-notifier run` starts it) against the fake
Bot API, the local feed host and the fake hub (tests/fakes/websub_hub.py): a feed announcing
the hub, a chat subscribes, the bot subscribes at the hub on its own, the hub pushes a new
story and the chat gets the alert once, long before a poll could have found it; a forged
delivery is refused and counted; the hub is told when the last chat leaves (one unsubscribes,
the other blocks the bot). Without a public URL nothing of WebSub runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.feeds.websub import BAD_SIGNATURE_COUNTER
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.e2e.test_crash_trials import until
from tests.e2e.test_listener import free_port, get
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.websub_hub import FakeHub

ORIGIN = "https://bot.example"
# Far beyond the test: any alert that arrives came through the hub, not from a poll.
POLL_INTERVAL = "3600"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def story(key: str, when: datetime) -> FeedItem:
    return FeedItem(
        f"Story {key}", f"https://news.test/{key}", f"guid-{key}", when, "<p>Lead. More.</p>"
    )


@asynccontextmanager
async def pushing_bot(
    tmp_path: Path, fake: FakeTelegram
) -> AsyncIterator[tuple[RunningBot, FakeHub]]:
    """The bot with a public URL and its listener, and a hub reaching the listener as the
    reverse proxy in front of a real bot would."""
    port = free_port()
    settings = bot_settings(
        tmp_path,
        fake,
        NEWS_NOTIFIER_WEBHOOK_URL=ORIGIN + "/telegram",
        NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{port}",
        NEWS_NOTIFIER_POLL_INTERVAL=POLL_INTERVAL,
    )
    async with (
        FakeHub(forward={ORIGIN: f"http://127.0.0.1:{port}"}) as hub,
        running_bot(settings, fake) as bot,
    ):
        yield bot, hub


async def test_a_story_pushed_by_the_hub_reaches_the_chat_once_before_any_poll(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    now = datetime.now(UTC)
    url = feed_server.url("/f.xml")
    old = story("old", now - timedelta(hours=2))
    feed_server.publish("/f.xml", [old], links=[("hub", "HUB"), ("self", url)])
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with pushing_bot(tmp_path, fake) as (bot, hub):
        feed_server.publish("/f.xml", [old], links=[("hub", hub.url), ("self", url)])
        fake.user_command(chat, alice, "subscribe", url)
        [reply] = await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert "Subscribed" in reply.text, reply.text

        # The bot subscribes at the hub by itself, and answers its verification of intent.
        async with asyncio.timeout(10):
            await hub.verified()
            await hub.settled()
        [asked] = hub.requests
        assert (asked.mode, asked.topic) == ("subscribe", url)
        assert asked.callback.startswith(ORIGIN + "/websub/") and asked.secret
        assert [v.confirmed for v in hub.verifications] == [True]
        feed = await bot.store.feeds.by_url(url)
        assert feed is not None and feed.hub_push
        assert feed.next_check_at - bot.runtime.clock.now_ms() > 1800 * 1000

        # The publisher pings the hub; the hub fetches the topic and pushes it, signed.
        feed_server.publish(
            "/f.xml", [story("new", now), old], links=[("hub", hub.url), ("self", url)]
        )
        assert await hub.publish(url) == [202]
        [_, alert] = await fake.wait_for_messages(chat.id, 2, timeout=10)
        assert alert.text.startswith("Story new")
        # Fetched twice: by /subscribe and by the hub. The bot did not poll it.
        assert feed_server.hits("/f.xml") == 2

        # The same body pushed again, and a forged one: no second alert.
        assert await hub.publish(url) == [202]
        forged = rss_document([story("forged", now), story("new", now), old])
        signature = hub.sign(forged, "not-the-secret")
        assert await hub.deliver(asked.callback, forged, signature=signature, topic=url) == 202
        await asyncio.sleep(1.5)
        assert len(fake.messages(chat.id)) == 2
        counters = await bot.store.outbox.counters(bot.runtime.clock.now_ms())
        assert counters[BAD_SIGNATURE_COUNTER] == 1


async def test_the_hub_is_told_when_the_last_chat_leaves_or_blocks_the_bot(
    tmp_path: Path,
    fake: FakeTelegram,
    feed_server: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A subscription younger than this is not taken for one the last chat left (a
    # /subscribe checks the feed before the chat's row is written): shortened for the test.
    monkeypatch.setattr("bot.feeds.websub.ORPHAN_GRACE_MS", 1000)
    url = feed_server.url("/f.xml")
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob")
    alice_chat, bob_chat = fake.private_chat(alice), fake.private_chat(bob)
    async with pushing_bot(tmp_path, fake) as (bot, hub):
        old = story("old", datetime.now(UTC) - timedelta(hours=2))
        feed_server.publish("/f.xml", [old], links=[("hub", hub.url), ("self", url)])
        for chat, user in ((alice_chat, alice), (bob_chat, bob)):
            fake.user_command(chat, user, "subscribe", url)
            await fake.wait_for_messages(chat.id, 1, timeout=10)
        async with asyncio.timeout(10):
            await hub.verified()
            await hub.settled()
        assert len(hub.subscriptions) == 1
        await asyncio.sleep(1.2)  # past the grace

        fake.user_command(alice_chat, alice, "unsubscribe", url)
        await fake.wait_for_messages(alice_chat.id, 2, timeout=10)
        await asyncio.sleep(1)
        assert [r.mode for r in hub.requests] == ["subscribe"]  # Bob still follows it

        fake.block(bob_chat.id)  # the update pauses Bob's chat
        assert await until(lambda: len(hub.verifications) == 2, 10), hub.requests
        await hub.settled()
        assert [r.mode for r in hub.requests] == ["subscribe", "unsubscribe"]
        assert hub.verifications[-1].confirmed and hub.subscriptions == {}
        feed = await bot.store.feeds.by_url(url)
        assert feed is not None and not feed.hub_push
        assert await bot.store.websub.count_by_state() == {}


async def test_without_a_public_url_nothing_of_websub_runs(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{port}")
    url = feed_server.url("/f.xml")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with FakeHub() as hub, running_bot(settings, fake) as bot:
        feed_server.publish("/f.xml", [], links=[("hub", hub.url), ("self", url)])
        fake.user_command(chat, alice, "subscribe", url)
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert bot.runtime.websub is None and bot.runtime.pipeline.on_fetched is None
        assert (await get(f"http://127.0.0.1:{port}/websub/anything"))[0] == 404
        await asyncio.sleep(0.5)
        assert hub.requests == []
        assert await bot.store.websub.count_by_state() == {}
