"""Button presses the bot did not expect: forged callback data, the same button pressed twice.

Every callback query is answered (a client shows a spinner on the button until it is), and
none of them leaves an ERROR or a traceback in the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import t
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram

# Data a modified client can put in a callback query; none names a subscription of the chat.
# "²" and "٣" are digits to str.isdigit() (and "٣" to int()), not numbers a button carries.
FORGED = ["unsub:²", "unsub:٣", "unsub:", "unsub:-1", "unsub:1.0", "unsub: 1", "nonsense", "x:1"]


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


async def answered(fake: FakeTelegram, update: dict[str, Any]) -> dict[str, Any]:
    query_id = update["callback_query"]["id"]
    await fake.wait_for(
        lambda: query_id in fake.callback_answers, timeout=10, what=f"query {query_id} answered"
    )
    return fake.callback_answers[query_id]


async def test_forged_and_repeated_presses_are_answered_without_errors(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    feed_server.publish(
        "/f.xml", [FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))]
    )
    url = feed_server.url("/f.xml")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        fake.user_command(chat, alice, "unsubscribe")
        menu = (await fake.wait_for_messages(chat.id, 2, timeout=10))[-1]

        for data in FORGED:
            answer = await answered(fake, fake.press_forged_button(menu, alice, data))
            assert "text" not in answer, (data, answer)
        assert await bot.subscriptions(chat.id) == [url]
        assert menu.edits == [], "a forged press must not change the menu"

        # A double tap: both presses reach the bot before its first edit reaches the client.
        first = fake.press_button(menu, alice, data="unsub:cancel")
        second = fake.press_button(menu, alice, data="unsub:cancel")
        await answered(fake, first)
        await answered(fake, second)
        assert menu.text == t("en", "unsubscribe.cancelled")
        assert await bot.subscriptions(chat.id) == [url]

    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
    unknown = [r.getMessage() for r in caplog.records if "event=callback_unknown" in r.getMessage()]
    assert len(unknown) == len(FORGED), unknown  # each once, at DEBUG
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "callback_unknown" in r.msg)
