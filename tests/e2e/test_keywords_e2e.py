"""Keyword-filtered alerts end to end: only matching stories, exclusions win, clear restores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


class Feed:
    """A feed that publishes one story at a time, keeping the older ones listed."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.items: list[FeedItem] = []
        self.publish("Opening story", "Nothing to see.")

    def publish(self, title: str, text: str) -> None:
        n = len(self.items) + 1
        item = FeedItem(
            title,
            f"https://n.test/{n}",
            guid=str(n),
            pub_date=datetime.now(UTC),
            description=f"<p>{text}</p>",
        )
        self.items.insert(0, item)
        self.server.publish("/f.xml", self.items, title="World news")

    @property
    def url(self) -> str:
        return self.server.url("/f.xml")


async def test_keywords_filter_alerts_exclusion_wins_clear_restores(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed = Feed(feed_server)
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob", language_code="zh")
    a, b = fake.private_chat(alice), fake.private_chat(bob)
    async with running_bot(bot_settings(tmp_path, fake), fake):
        fake.user_command(a, alice, "subscribe", feed.url)
        fake.user_command(b, bob, "subscribe", feed.url)
        await fake.wait_for_messages(a.id, 1, timeout=10)
        await fake.wait_for_messages(b.id, 1, timeout=10)
        fake.user_message(a, alice, '/keywords add putin "central bank" -football')
        fake.user_message(b, bob, "/keywords add 普京")
        await fake.wait_for_messages(a.id, 2, timeout=10)
        await fake.wait_for_messages(b.id, 2, timeout=10)

        feed.publish("Markets calm before the weekend", "Shares drifted.")
        feed.publish("Putin's envoy says talks will go on", "Moscow (普京) signalled more talks.")
        feed.publish("Football: Putin attends the cup final", "He watched the match.")
        feed.publish("The Central Bank raises rates", "A quarter point.")
        # Alice: the envoy story and the central bank story; the football one is excluded.
        messages = await fake.wait_for_messages(a.id, 4, timeout=15)
        alerts = [m.text for m in messages[2:]]
        assert alerts[0].startswith("Putin's envoy") and "🔎 putin" in alerts[0]
        assert alerts[1].startswith("The Central Bank") and '🔎 "central bank"' in alerts[1]
        # Bob: only the story whose summary carries 普京.
        messages = await fake.wait_for_messages(b.id, 3, timeout=15)
        assert messages[2].text.startswith("Putin's envoy") and "🔎 普京" in messages[2].text

        fake.user_command(a, alice, "keywords", "clear")
        await fake.wait_for_messages(a.id, 5, timeout=10)
        feed.publish("Weather: a sunny week ahead", "Warm and dry.")
        messages = await fake.wait_for_messages(a.id, 6, timeout=15)
        assert messages[5].text.startswith("Weather: a sunny week")
        assert "🔎" not in messages[5].text
        assert len(fake.messages(a.id)) == 6
        assert all("Football" not in m.text for m in fake.messages(a.id))
        assert len(fake.messages(b.id)) == 3
