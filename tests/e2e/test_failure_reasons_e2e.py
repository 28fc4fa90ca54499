"""Why a feed failed, end to end in both languages: /subscribe's reply for a homepage and the
/list health line for a failing feed (including a reason stored by an older version)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import bot_settings, running_bot
from tests.e2e.test_commands import publish
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


PROPER_NOUNS = {"HTTP", "HTTPS", "DNS", "RSS", "Atom", "RDF", "JSON", "HTML", "Feed"}


def english_words(text: str) -> list[str]:
    text = re.sub(r"https?://\S+|/f\.xml|/\w+", " ", text)  # addresses, commands
    return [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in PROPER_NOUNS]


@pytest.mark.parametrize(
    ("language", "homepage", "failing"),
    [
        ("zh-CN", "它是HTML 网页", "获取失败：连接失败（连续 1 次）"),
        ("en", "it is an HTML page", "failing: connection (1 check in a row)"),
    ],
)
async def test_reasons_in_the_users_language(
    tmp_path: Path,
    fake: FakeTelegram,
    feed_server: FeedServer,
    language: str,
    homepage: str,
    failing: str,
) -> None:
    feed_server.serve(
        "/index.html", "<!doctype html><html><body>Home</body></html>", content_type="text/html"
    )
    url = publish(feed_server)
    user = fake.add_user(1001, "Alice", language_code=language)
    chat = fake.private_chat(user)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, user, "subscribe", feed_server.url("/index.html"))
        fake.user_command(chat, user, "subscribe", url)
        messages = await fake.wait_for_messages(chat.id, 2, timeout=10)
        assert homepage in messages[0].text, messages[0].text
        # A failing feed, as the poller records it (the same code older versions stored).
        await bot.store.db.execute(
            "UPDATE feeds SET consecutive_failures = 1, last_error = 'connection',"
            " next_check_at = 9999999999999"
        )
        fake.user_command(chat, user, "list")
        messages = await fake.wait_for_messages(chat.id, 3, timeout=10)
        assert failing in messages[2].text, messages[2].text
        if language.startswith("zh"):
            for message in (messages[0], messages[2]):
                assert not english_words(message.text), message.text
