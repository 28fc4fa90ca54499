"""The fake Bot API's sendPhoto, exercised through the real python-telegram-bot Bot: it
must refuse what Telegram refuses (a caption too long once parsed, bad HTML, a photo URL
it cannot fetch or use), or the bot's photo alerts are tested against nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram
from telegram.error import BadRequest

from bot.delivery.transport import AiohttpRequest
from tests.fakes.feed_server import FeedServer
from tests.fakes.pictures import jpeg_head, png
from tests.fakes.telegram_api import ApiSpec, FakeTelegram

SPEC = ApiSpec.load()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(spec=SPEC) as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    client = telegram.Bot(fake.token, base_url=fake.base_url, request=AiohttpRequest())
    async with client:
        yield client


async def test_a_photo_by_url_is_fetched_and_sent_with_its_caption(
    fake: FakeTelegram, bot: telegram.Bot, feed_server: FeedServer
) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    feed_server.serve("/pic.jpg", jpeg_head(900, 600), content_type="image/jpeg")
    message = await bot.send_photo(
        chat.id, feed_server.url("/pic.jpg"), caption="<b>Title</b>\nText", parse_mode="HTML"
    )
    assert message.caption == "Title\nText" and message.photo[-1].width == 900
    [sent] = fake.messages(chat.id)
    assert (sent.method, sent.text, sent.photo[0]["height"]) == ("sendPhoto", "Title\nText", 600)
    assert [e["type"] for e in sent.entities] == ["bold"]
    assert feed_server.hits("/pic.jpg") == 1


async def test_the_caption_is_counted_after_parsing_in_utf16(
    fake: FakeTelegram, bot: telegram.Bot, feed_server: FeedServer
) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    feed_server.serve("/pic.png", png(40, 30), content_type="image/png")
    url = feed_server.url("/pic.png")
    # 1024 characters once parsed, under a link whose address does not count.
    link = '<a href="https://n.test/' + "a" * 1500 + '">'
    await bot.send_photo(
        chat.id, url, caption=f"<b>{link}{'&lt;' * 1024}</a></b>", parse_mode="HTML"
    )
    await bot.send_photo(chat.id, url, caption="😀" * 512)  # 1024 UTF-16 units
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(chat.id, url, caption="😀" * 513)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(chat.id, url, caption="<i>" + "x" * 1025 + "</i>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_photo(chat.id, url, caption="<b>open", parse_mode="HTML")
    assert len(fake.messages(chat.id)) == 2


@pytest.mark.parametrize(
    ("path", "body", "content_type", "error"),
    [
        ("/gone.jpg", None, None, "failed to get HTTP URL content"),
        ("/page.jpg", b"<html></html>", "text/html", "wrong type of the web page content"),
        ("/junk.png", b"not a picture", "image/png", "IMAGE_PROCESS_FAILED"),
        ("/strip.png", png(4000, 100), "image/png", "PHOTO_INVALID_DIMENSIONS"),
        ("/huge.jpg", jpeg_head(900, 600) + bytes(5 * 2**20), "image/jpeg", "failed to get"),
    ],
)
async def test_a_photo_telegram_cannot_use_is_refused_with_its_words(
    fake: FakeTelegram,
    bot: telegram.Bot,
    feed_server: FeedServer,
    path: str,
    body: bytes | None,
    content_type: str | None,
    error: str,
) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    if body is not None:
        feed_server.serve(path, body, content_type=content_type)
    with pytest.raises(BadRequest, match="(?i)" + error):
        await bot.send_photo(chat.id, feed_server.url(path), caption="Story")
    # Nothing was sent, so nothing counts against the chat's limit: text goes at once.
    await bot.send_message(chat.id, "Story")
    await bot.send_message(chat.id, "Story again")
    assert [m.method for m in fake.messages(chat.id)] == ["sendMessage", "sendMessage"]


async def test_a_photo_on_a_host_a_test_cannot_reach_or_no_url_is_refused(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    chat = fake.private_chat(fake.add_user(1001))
    with pytest.raises(BadRequest, match=r"(?i)failed to get HTTP URL content"):
        await bot.send_photo(chat.id, "https://images.example.com/a.jpg")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/HTTP URL specified"):
        await bot.send_photo(chat.id, "no-such-file-id")
    assert fake.messages(chat.id) == []
