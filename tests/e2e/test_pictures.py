"""Alerts with pictures, end to end: a story with a picture alerts as a photo (Telegram, the
fake here, fetches it from the local feed host) with the alert as its caption; a photo
Telegram refuses is followed by the same alert as text, once, even across a kill; a chat
with pictures off gets text."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.i18n import t
from bot.store import Store
from bot.text import CAPTION_LIMIT
from tests.databases import Databases
from tests.e2e.child import Children
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.e2e.test_alerts import SEED_SUMMARY, SEED_TITLE, seed_body
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.pictures import jpeg_head, png
from tests.fakes.telegram_api import FakeTelegram, SentMessage, utf16_len
from tests.helpers import record_entries

SEED_PICTURE = "https://images.weserv.nl?url=gdb.voanews.com/"


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def story(n: int, body: str, title: str = "") -> FeedItem:
    return FeedItem(
        title or f"Story {n}",
        f"https://news.test/{n}",
        guid=str(n),
        pub_date=datetime.now(UTC),
        description=body,
    )


async def subscribed(fake: FakeTelegram, feed_server: FeedServer) -> int:
    """A private chat subscribed to /f.xml (an empty feed so far); its id."""
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    fake.user_command(chat, alice, "subscribe", feed_server.url("/f.xml"))
    await fake.wait_for_messages(chat.id, 1, timeout=10)
    return chat.id


async def alert(fake: FakeTelegram, chat_id: int) -> SentMessage:
    """The chat's one alert (after the reply to /subscribe)."""
    messages = await fake.wait_for_messages(chat_id, 2, timeout=15)
    return messages[1]


async def test_the_seed_story_alerts_as_its_photo_with_the_alert_as_caption(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """The seed story, its picture served locally (the fake fetches it as Telegram would):
    one sendPhoto by URL whose caption is the alert: linked bold title, the lead's first
    sentence, the footer; not the picture's caption, not the date line."""
    feed_server.serve("/seed.jpg", jpeg_head(900, 600), content_type="image/jpeg")
    body = seed_body().replace(SEED_PICTURE, feed_server.url("/seed.jpg?url=gdb.voanews.com/"))
    feed_server.publish("/f.xml", [], title="美国之音中文网")
    async with running_bot(bot_settings(tmp_path, fake), fake):
        chat_id = await subscribed(fake, feed_server)
        feed_server.publish("/f.xml", [story(1, body, SEED_TITLE)], title="美国之音中文网")
        photo = await alert(fake, chat_id)
    assert photo.method == "sendPhoto" and photo.parse_mode == "HTML"
    assert photo.params["photo"].startswith(feed_server.url("/seed.jpg"))
    assert photo.photo is not None and photo.photo[0]["width"] == 900
    assert photo.text.startswith(SEED_TITLE) and SEED_SUMMARY in photo.text
    assert "资料照" not in photo.text and "Wed, 26 Feb" not in photo.text
    assert "美国之音中文网" in photo.text.splitlines()[-1]
    link = {"type": "text_link", "offset": 0, "length": len(SEED_TITLE)}
    assert {**link, "url": "https://news.test/1"} in photo.entities
    assert feed_server.hits("/seed.jpg") == 1
    assert [r.method for r in fake.requests if r.method.startswith("send")] == [
        "sendMessage",  # the reply to /subscribe
        "sendPhoto",
    ]


async def test_a_long_summary_is_cut_at_a_sentence_end_to_fit_the_caption(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """With a summary setting far above 1024 characters, the caption still fits: the
    summary ends at the last sentence end that leaves room for the footer."""
    feed_server.serve("/p.png", png(640, 480), content_type="image/png")
    sentences = [f"Sentence number {n} of a long lead paragraph tells more." for n in range(60)]
    body = f'<p><img src="{feed_server.url("/p.png")}"></p><p>{" ".join(sentences)}</p>'
    feed_server.publish("/f.xml", [])
    settings = bot_settings(tmp_path, fake)
    settings = dataclasses.replace(
        settings, summary=dataclasses.replace(settings.summary, max_chars=3000)
    )
    async with running_bot(settings, fake):
        chat_id = await subscribed(fake, feed_server)
        feed_server.publish("/f.xml", [story(1, body)])
        photo = await alert(fake, chat_id)
    assert photo.method == "sendPhoto"
    assert 900 < utf16_len(photo.text) <= CAPTION_LIMIT
    summary = photo.text.split("\n\n")[1]
    assert summary.startswith(sentences[0]) and summary.endswith("tells more.")
    assert summary in " ".join(sentences)  # whole sentences only, no "…"


async def test_a_refused_photo_is_followed_by_the_same_alert_as_text_once(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """The picture's address answers 404: Telegram cannot fetch it. The alert comes as
    text, once, and the row remembers that its photo was refused."""
    missing = feed_server.url("/gone.jpg")
    feed_server.publish("/f.xml", [])
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        chat_id = await subscribed(fake, feed_server)
        feed_server.publish("/f.xml", [story(1, f'<img src="{missing}"><p>Lead text.</p>')])
        text = await alert(fake, chat_id)
        assert text.method == "sendMessage" and text.text.startswith("Story 1\n\nLead text.")
        assert {"type": "text_link", "offset": 0, "length": 7, "url": "https://news.test/1"} in (
            text.entities
        )
        await wait_until_sent(bot)
        row = await bot.store.db.fetchone(
            "SELECT status, photo_refused, last_error FROM outbox WHERE kind = 'alert'"
        )
    assert row is not None and row[:2] == ("sent", 1) and "http url" in row[2].lower()
    photos = fake.requests_for("sendPhoto")
    assert [(r.status, r.params["photo"]) for r in photos] == [(400, missing)]
    assert len(fake.messages(chat_id)) == 2  # the reply to /subscribe and the alert


async def test_pictures_off_gets_the_alert_as_text(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.serve("/p.png", png(640, 480), content_type="image/png")
    feed_server.publish("/f.xml", [])
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        chat_id = await subscribed(fake, feed_server)
        # /settings will switch it; until then the column is the switch.
        await bot.store.db.execute("UPDATE chats SET pictures = 0 WHERE id = ?", (chat_id,))
        body = f'<p><img src="{feed_server.url("/p.png")}"></p><p>Lead text.</p>'
        feed_server.publish("/f.xml", [story(1, body)])
        text = await alert(fake, chat_id)
    assert text.method == "sendMessage" and text.text.startswith("Story 1\n\nLead text.")
    assert fake.requests_for("sendPhoto") == [] and feed_server.hits("/p.png") == 0


async def test_a_kill_after_the_photo_was_refused_sends_the_text_not_the_photo_again(
    tmp_path: Path, databases: Databases, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """The real `news-notifier run`: Telegram refuses the photo, then the text send fails
    (the API answers 502) and waits for its retry; the bot is killed there. The next run
    sends the text, once, and never the photo again."""
    chat_id = 1001
    fake.private_chat(fake.add_user(chat_id, "Alice"))
    database = databases.new()
    await prepare(database, chat_id, feed_server.url("/f.xml"))
    missing = feed_server.url("/gone.jpg")
    feed_server.publish("/f.xml", [story(1, f'<img src="{missing}"><p>Lead text.</p>')])
    children = Children(tmp_path, fake, "")
    try:
        fake.fail_for(600, status=502, methods=["sendMessage"])
        first = await children.start(database, "run-1")
        await fake.wait_for(lambda: bool(fake.requests_for("sendMessage")), 30, "the text send")
        os.kill(first.pid, signal.SIGKILL)
        assert await first.exit_code(10) == -signal.SIGKILL
        assert fake.messages(chat_id) == []
        assert [r.status for r in fake.requests_for("sendPhoto")] == [400]

        fake.clear_faults()
        second = await children.start(database, "run-2")
        await fake.wait_for_messages(chat_id, 1, timeout=30)
        second.process.send_signal(signal.SIGTERM)
        assert await second.exit_code(15) == 0, second.output()[-3000:]
    finally:
        await children.kill_all()
    [text] = fake.messages(chat_id)
    assert text.method == "sendMessage" and text.text.startswith("Story 1\n\nLead text.")
    assert len(fake.requests_for("sendPhoto")) == 1  # the refused one, before the kill


async def prepare(database: str, chat_id: int, feed_url: str) -> None:
    """A chat subscribed to a primed feed (what the feed lists next is news)."""
    now = int(time.time() * 1000)
    store = await Store.open(database)
    try:
        feed_id = await store.feeds.add(feed_url, title="Pictures", site_url="", now_ms=now)
        await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=now)
        await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=now)
        await record_entries(store, feed_id, now_ms=now)
    finally:
        await store.close()


async def wait_until_sent(bot: RunningBot) -> None:
    """Until the sender has recorded every row as delivered (it writes marks in batches)."""
    for _ in range(100):
        if await bot.store.outbox.depth() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("outbox not drained")


def test_help_tells_of_pictures_in_both_languages() -> None:
    assert "picture" in t("en", "help") and "图片" in t("zh", "help")
