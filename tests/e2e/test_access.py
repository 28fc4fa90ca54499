"""NEWS_NOTIFIER_ALLOWED_USERS through the real bot: who may use it, in every kind of chat."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.i18n import t
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram

ALICE, MALLORY = 1001, 1666


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def publish(feed_server: FeedServer, path: str = "/f.xml") -> str:
    item = FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))
    feed_server.publish(path, [item], title="Feed " + path)
    return feed_server.url(path)


async def test_a_refused_user_leaves_no_trace_and_resumes_nothing(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    mallory = fake.add_user(MALLORY, "Mallory", language_code="zh-hans")
    chat = fake.private_chat(mallory)
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOWED_USERS=str(ALICE))
    async with running_bot(settings, fake) as bot:
        fake.user_command(chat, mallory, "start")
        [refusal] = await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert refusal.source == t("zh", "auth.not_allowed")
        assert await bot.store.chats.get(chat.id) is None


async def test_a_channel_is_let_in_only_when_an_allowed_user_administers_it(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """A channel post carries no user: the channel's administrators decide."""
    url = publish(feed_server)
    alice, mallory = fake.add_user(ALICE, "Alice"), fake.add_user(MALLORY, "Mallory")
    ours = fake.add_channel(-100_2001, "Ours", admins=[alice])
    theirs = fake.add_channel(-100_2002, "Theirs", admins=[mallory])
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOWED_USERS=str(ALICE))
    async with running_bot(settings, fake) as bot:
        fake.channel_post(theirs, f"/subscribe {url}")
        [refusal] = await fake.wait_for_messages(theirs.id, 1, timeout=10)
        assert refusal.source == t("en", "auth.not_allowed")
        assert await bot.subscriptions(theirs.id) == []
        assert await bot.store.chats.get(theirs.id) is None
        fake.channel_post(ours, f"/subscribe {url}")
        [welcome] = await fake.wait_for_messages(ours.id, 1, timeout=10)
        assert "Subscribed to" in welcome.text
        assert await bot.subscriptions(ours.id) == [url]


async def test_a_button_pressed_by_a_user_not_allowed_changes_nothing(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    alice, mallory = fake.add_user(ALICE, "Alice"), fake.add_user(MALLORY, "Mallory")
    group = fake.add_group(-4001, "Group", admins=[alice, mallory])
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOWED_USERS=str(ALICE))
    async with running_bot(settings, fake) as bot:
        fake.user_command(group, alice, "subscribe", url)
        await fake.wait_for_messages(group.id, 1, timeout=10)
        fake.user_command(group, alice, "unsubscribe")
        [_, menu] = await fake.wait_for_messages(group.id, 2, timeout=10)
        fake.press_button(menu, mallory, text="1. Feed /f.xml")
        await fake.wait_for(lambda: len(fake.callback_answers) == 1, 10, "the button's answer")
        [answer] = fake.callback_answers.values()
        assert answer["text"] == t("en", "auth.not_allowed")[:200]
        assert await bot.subscriptions(group.id) == [url]
