"""A user subscribes by command, a story appears in the local feed, the alert arrives once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram
from tests.paths import SHARED

SEED_TITLE = "克里姆林宫称正在准备俄美专家级会谈，为特普峰会铺路"
SEED_LINK = (
    "https://www.voachinese.com/a/kremlin-says-russia-and-us-are-preparing-more-talks-20250226/"
    "7988895.html"
)
SEED_SUMMARY = (
    "克里姆林宫周三（2月26日）表示，作为上周美俄高级别会谈及弗拉基米尔·普京（Vladimir Putin）和"
    "唐纳德·特朗普（Donald Trump）总统早些时候通话的后续行动，"
    "正在为俄罗斯和美国之间的专家级会谈做准备。"
)
SEED_HTML = SHARED / "seed/voa-kremlin-20250226.md"


def seed_body() -> str:
    text = SEED_HTML.read_text(encoding="utf-8")
    return text.split("------", 1)[1].strip()


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


async def test_subscribe_then_seed_story_alerts_once_with_its_summary(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    now = datetime.now(UTC)
    old = FeedItem(
        "Older story",
        "https://www.voachinese.com/a/1.html",
        guid="old",
        pub_date=now - timedelta(hours=3),
        description="<p>Old news.</p>",
    )
    feed_server.publish("/voa.xml", [old], title="美国之音中文网")
    alice = fake.add_user(1001, "Alice", language_code="zh-hans")
    chat = fake.private_chat(alice)

    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", feed_server.url("/voa.xml"))
        [reply] = await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert "已订阅" in reply.text and "美国之音中文网" in reply.text
        assert await bot.subscriptions(chat.id) == [feed_server.url("/voa.xml")]

        seed = FeedItem(
            SEED_TITLE,
            SEED_LINK,
            guid="7988895",
            pub_date="Wed, 26 Feb 2025 17:30:53 GMT",
            description=seed_body(),
        )
        # Published now (the seed's own date is older than the archive window allows
        # relative to "old"): keep its text, date it now.
        seed = FeedItem(
            seed.title, seed.link, guid=seed.guid, pub_date=now, description=seed.description
        )
        feed_server.publish("/voa.xml", [seed, old], title="美国之音中文网")
        messages = await fake.wait_for_messages(chat.id, 2, timeout=10)
        alert = messages[1]
        assert alert.text.startswith(SEED_TITLE)
        assert SEED_SUMMARY in alert.text
        assert "资料照" not in alert.text and "Wed, 26 Feb" not in alert.text
        assert {"type": "bold", "offset": 0, "length": len(SEED_TITLE)} in [
            {k: e[k] for k in ("type", "offset", "length")} for e in alert.entities
        ]
        # The title is the story's link (no URL line); the footer names the feed. (The
        # seed's picture lives on the internet, which the fake cannot reach: its photo is
        # refused and the alert comes as text. tests/e2e/test_pictures.py sends it.)
        assert {"type": "text_link", "offset": 0, "length": len(SEED_TITLE), "url": SEED_LINK} in (
            alert.entities
        )
        assert SEED_LINK not in alert.text and "美国之音中文网" in alert.text
        assert alert.parse_mode == "HTML"

        # More polls of the unchanged feed: no second alert.
        await asyncio.sleep(2.5)
        assert len(fake.messages(chat.id)) == 2
        row = await bot.store.db.fetchone("SELECT status FROM outbox WHERE kind = 'alert'")
        assert row is not None and row[0] == "sent"


async def test_forum_topic_subscription_alerts_into_its_topic(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.publish(
        "/f.xml", [FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))]
    )
    admin = fake.add_user(2001, "Admin")
    forum = fake.add_group(-100500, "Forum", forum=True, admins=[admin])
    fake.add_topic(forum.id, 77)
    async with running_bot(bot_settings(tmp_path, fake), fake):
        fake.user_command(forum, admin, "subscribe", feed_server.url("/f.xml"), thread_id=77)
        await fake.wait_for_messages(forum.id, 1, timeout=10, thread_id=77)
        feed_server.publish(
            "/f.xml",
            [
                FeedItem("Two", "https://n.test/2", guid="2", pub_date=datetime.now(UTC)),
                FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC)),
            ],
        )
        messages = await fake.wait_for_messages(forum.id, 2, timeout=10, thread_id=77)
        assert messages[1].text.startswith("Two")


async def test_channel_admin_posts_commands_and_gets_alerts(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.publish(
        "/f.xml", [FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))]
    )
    channel = fake.add_channel(-100900, "News channel")
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.channel_post(channel, f"/subscribe {feed_server.url('/f.xml')}")
        [reply] = await fake.wait_for_messages(channel.id, 1, timeout=10)
        assert "Subscribed to" in reply.text
        assert await bot.subscriptions(channel.id) == [feed_server.url("/f.xml")]
