"""/subscribe on a slow feed shows "typing…" while it checks; a quick one shows nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


DOCUMENT = rss_document(
    [FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))], title="Slow"
)


async def test_a_slow_check_shows_typing_until_the_reply(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    # The whole document at once, then the body ends 2.5 s later.
    feed_server.trickle("/slow.xml", DOCUMENT, interval=2.5, count=1)
    feed_server.publish("/fast.xml", [FeedItem("Two", "https://n.test/2", guid="2")])
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake):
        fake.user_command(chat, alice, "subscribe", feed_server.url("/fast.xml"))
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert fake.requests_for("sendChatAction") == []
        fake.user_command(chat, alice, "subscribe", feed_server.url("/slow.xml"))
        [_, reply] = await fake.wait_for_messages(chat.id, 2, timeout=15)
        assert "Subscribed to" in reply.text
    actions = fake.requests_for("sendChatAction")
    assert actions, "no typing shown during a 2.5 s check"
    assert all(a.params["action"] == "typing" and a.status == 200 for a in actions)
    assert all(a.time <= reply.sent_at for a in actions)
