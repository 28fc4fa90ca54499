"""/export, /import and /stats through the real bot; and no log line ever shows the token."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import telegram

from bot.config import LogSettings, Settings
from bot.logs import setup_logging
from bot.opml import OpmlFeed, build_opml, parse_opml
from bot.telegram import files
from tests.e2e.harness import bot_settings, running_bot
from tests.e2e.test_commands import fast_replies
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.telegram_api import Chat, FakeTelegram, SentMessage, User

LIMITS = {"max_bytes": 1_048_576, "max_feeds": 500}


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def publish(feed_server: FeedServer, path: str, title: str | None = None) -> str:
    item = FeedItem("One", f"https://n.test{path}/1", guid="1", pub_date=datetime.now(UTC))
    feed_server.publish(path, [item], title=title or f"Feed {path}")
    return feed_server.url(path)


def opml_of(*urls: str) -> bytes:
    return build_opml([OpmlFeed(url, f"Label {n}") for n, url in enumerate(urls)], title="mine")


async def downloaded(fake: FakeTelegram, message: SentMessage) -> bytes:
    """The document the bot sent, fetched the way any client would."""
    assert message.document is not None, message.text
    async with telegram.Bot(
        fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url
    ) as client:
        file = await client.get_file(message.document["file_id"])
        return bytes(await file.download_as_bytearray())


async def command_reply(fake: FakeTelegram, chat: Chat, user: User, *words: str) -> SentMessage:
    count = len(fake.messages(chat.id))
    fake.user_command(chat, user, *words)
    return (await fake.wait_for_messages(chat.id, count + 1, timeout=10))[-1]


async def document_reply(
    fake: FakeTelegram, chat: Chat, user: User, content: bytes, caption: str | None = "/import"
) -> SentMessage:
    count = len(fake.messages(chat.id))
    fake.user_document(chat, user, content, "feeds.opml", mime_type="text/x-opml", caption=caption)
    return (await fake.wait_for_messages(chat.id, count + 1, timeout=10))[-1]


# --- /export --------------------------------------------------------------------------------


async def test_export_sends_the_chats_feeds_as_an_opml_document_anyone_may_ask(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    urls = [publish(feed_server, "/a.xml", "Alpha & Co"), publish(feed_server, "/b.xml")]
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Readers' group", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        empty = await command_reply(fake, group, member, "export")
        assert "no subscriptions yet" in empty.text
        for url in urls:
            assert "Subscribed" in (await command_reply(fake, group, admin, "subscribe", url)).text
        sent = await command_reply(fake, group, member, "export")  # reading is for anyone
        assert sent.method == "sendDocument"
        assert sent.document and sent.document["file_name"].endswith(".opml")
        assert "2 feed(s)" in sent.text
        document = parse_opml(await downloaded(fake, sent), **LIMITS)
        assert document.title == "news-notifier: Readers' group"
        assert [(f.url, f.title) for f in document.feeds] == [
            (urls[0], "Alpha & Co"),
            (urls[1], "Feed /b.xml"),
        ]


# --- /import --------------------------------------------------------------------------------


async def test_import_edits_one_progress_message_and_ends_with_one_summary(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "PROGRESS_EVERY", 0.2)
    good = []
    for n in range(12):
        # Each check takes 0.3 s: three rounds of four, long enough to show progress a few
        # times.
        document = rss_document(
            [FeedItem(f"Story {n}", f"https://n.test/{n}", guid=str(n))], title=f"Slow {n}"
        )
        feed_server.trickle(f"/slow{n}.xml", document, interval=0.3, count=1)
        good.append(feed_server.url(f"/slow{n}.xml"))
    already = publish(feed_server, "/already.xml")
    missing = [feed_server.url(f"/missing{n}.xml") for n in range(3)]
    feed_server.serve("/page.html", "<!doctype html><p>Hi</p>", content_type="text/html")
    page = feed_server.url("/page.html")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    settings = fast_replies(bot_settings(tmp_path, fake), fake)
    async with running_bot(settings, fake) as bot:
        await command_reply(fake, chat, alice, "subscribe", already)
        before = len(fake.messages(chat.id))
        content = opml_of(*good[:6], already, *missing, page, "ftp://old.test/feed", *good[6:])
        progress = await document_reply(fake, chat, alice, content)
        messages = await fake.wait_for_messages(chat.id, before + 2, timeout=20)
        summary = messages[-1]
        await asyncio.sleep(0.5)
        assert len(fake.messages(chat.id)) == before + 2  # a progress message and a summary

        assert progress.text == "Import: checked 18 of 18 feed(s)."
        assert progress.edits[0] == "Importing 18 feed(s): checked 0 of 18…"
        assert len(progress.edits) >= 3  # shown on the way, not only at the end
        edits = [r.time for r in fake.requests_for("editMessageText") if r.status == 200]
        # At most one edit per PROGRESS_EVERY; only the final one may come sooner.
        gaps = [later - earlier for earlier, later in itertools.pairwise(edits[:-1])]
        assert gaps and all(gap >= 0.2 * 0.9 for gap in gaps), gaps

        assert summary.text.startswith("Import finished: 18 feed(s) in the file")
        assert "added: 12" in summary.text and "already subscribed: 1" in summary.text
        assert "failed: 5" in summary.text
        assert "HTTP 404: 3" in summary.text and "/missing0.xml" in summary.text
        assert "not a feed: " in summary.text and "not http(s): 1" in summary.text
        assert await bot.subscriptions(chat.id) == [already, *good]  # the file's order


async def test_list_and_export_show_imported_feeds_in_the_files_order(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    # Checks end in reverse file order: the first feed answers last.
    urls = []
    for n in range(6):
        document = rss_document([FeedItem("One", f"https://n.test/{n}", guid="1")], title=f"F{n}")
        feed_server.trickle(f"/f{n}.xml", document, interval=0.1 * (6 - n), count=1)
        urls.append(feed_server.url(f"/f{n}.xml"))
    had = publish(feed_server, "/had.xml")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        await command_reply(fake, chat, alice, "subscribe", had)
        before = len(fake.messages(chat.id))
        missing = feed_server.url("/missing.xml")
        await document_reply(fake, chat, alice, opml_of(*urls[:3], missing, *urls[3:]))
        summary = (await fake.wait_for_messages(chat.id, before + 2, timeout=20))[-1]
        assert "added: 6" in summary.text and "HTTP 404: 1" in summary.text

        # The numbers /unsubscribe and /mode take follow the file, after the chat's own feeds.
        listed = (await command_reply(fake, chat, alice, "list")).text.splitlines()
        expected = [had, *urls]
        assert [line for line in listed if line.startswith("http")] == expected, listed
        numbered = [line.split(" — ")[0] for line in listed if line[:1].isdigit()]
        assert numbered == ["1. Feed /had.xml", *(f"{n + 2}. F{n}" for n in range(6))]
        exported = await command_reply(fake, chat, alice, "export")
        document = parse_opml(await downloaded(fake, exported), **LIMITS)
        assert [f.url for f in document.feeds] == expected


async def test_import_as_a_reply_to_a_file_and_by_caption_in_groups(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    urls = [publish(feed_server, f"/{n}.xml") for n in range(3)]
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Group", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        # A file sent first, then answered with /import.
        sent = fake.user_document(chat, alice, opml_of(*urls[:2]), "feeds.opml")
        update = fake.user_message(chat, alice, "/import", reply_to=sent["message"]["message_id"])
        # The fake keeps only the ids of users' messages; Telegram sends the replied-to message
        # whole. The bot has not polled yet: nothing awaited since the update was queued.
        update["message"]["reply_to_message"] = sent["message"]
        messages = await fake.wait_for_messages(chat.id, 2, timeout=10)
        assert "added: 2" in messages[-1].text
        assert await bot.subscriptions(chat.id) == urls[:2]

        # In a group only administrators may import; a caption for another bot is not ours.
        captioned = f"/import@{fake.bot_user.username}"
        refusal = await document_reply(fake, group, member, opml_of(urls[2]), captioned)
        assert "only this chat's administrators" in refusal.text
        fake.user_document(group, admin, opml_of(urls[2]), "x.opml", caption="/import@other_bot")
        await fake.wait_until_updates_consumed(timeout=10)
        progress = await document_reply(fake, group, admin, opml_of(urls[2]), "/import")
        assert progress.text.startswith("Import")
        messages = await fake.wait_for_messages(group.id, 3, timeout=10)
        assert "added: 1" in messages[-1].text
        assert await bot.subscriptions(group.id) == [urls[2]]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<opml version="2.0"><body><outline text="&lol3;" xmlUrl="https://a.test/f"/></body></opml>"""


async def test_bad_files_get_one_clear_reply_and_change_nothing(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    rss = rss_document([FeedItem("One", "https://n.test/1", guid="1")])
    too_many = opml_of(*[f"https://a.test/{n}" for n in range(6)])
    cases = [
        (rss, "is a news feed itself"),
        (BILLION_LAUGHS, "declares a DOCTYPE"),
        (b"<opml><body><outline", "not even valid XML"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "not even valid XML"),
        (b'<opml version="2.0"><body/></opml>', "lists no feeds"),
        (opml_of("https://a.test/f") + b"<!--" + b"x" * 3000 + b"-->", "too large"),
        (too_many, "at most 5 can be imported"),
    ]
    alice = fake.add_user(1001, "Alice", language_code="en")
    chat = fake.private_chat(alice)
    settings = fast_replies(bot_settings(tmp_path, fake), fake)
    settings = dataclasses.replace(
        settings, opml=dataclasses.replace(settings.opml, max_bytes=2048, max_feeds=5)
    )
    async with running_bot(settings, fake) as bot:
        usage = await command_reply(fake, chat, alice, "import")
        assert "Send an OPML file" in usage.text
        for content, expected in cases:
            answer = await document_reply(fake, chat, alice, content)
            assert expected in answer.text, (expected, answer.text)
        await asyncio.sleep(0.3)
        assert len(fake.messages(chat.id)) == 1 + len(cases)
        assert await bot.subscriptions(chat.id) == []


# --- /stats ---------------------------------------------------------------------------------


async def test_stats_is_for_operators_only(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, backend: str
) -> None:
    url = publish(feed_server, "/f.xml")
    operator, alice = fake.add_user(9001, "Operator"), fake.add_user(1001, "Alice")
    admin = fake.add_user(2001, "Group admin")
    group = fake.add_group(-4001, "Group", admins=[admin])
    settings = fast_replies(bot_settings(tmp_path, fake, NEWS_NOTIFIER_ADMINS="9001"), fake)
    async with running_bot(settings, fake) as bot:
        alice_chat = fake.private_chat(alice)
        await command_reply(fake, alice_chat, alice, "subscribe", url)
        refused = await command_reply(fake, alice_chat, alice, "stats")
        assert refused.text == "This command is for the bot's operators only."
        refused = await command_reply(fake, group, admin, "stats")  # a group admin is not one
        assert "operators only" in refused.text

        now = bot.runtime.clock.now_ms()
        await bot.store.outbox.bump_counter("flood_wait", now, by=2)
        await bot.store.outbox.bump_counter("error.TimedOut", now)
        await bot.store.outbox.bump_counter("error.unreachable", now, by=3)
        await bot.store.outbox.bump_counter("unanswered", now, by=2)
        await bot.store.outbox.bump_counter("assumed_delivered", now)
        report = await command_reply(fake, fake.private_chat(operator), operator, "stats")
        text = report.text
        assert text.startswith("Bot stats")
        assert "Chats: 3 active, 0 paused" in text  # Alice, the group, the operator
        assert "Subscriptions (active chats): 1" in text
        assert "Feeds: 1 healthy, 0 failing, 0 paused, 0 gone" in text
        assert "Stories found today (UTC): 1" in text
        assert "Outbox: 0 pending" in text
        assert "Flood waits (last 24 h): 2" in text
        assert "Send errors (last 24 h): TimedOut 1, unreachable 3" in text
        assert "Sends with no answer (last 24 h): 2, 1 of them taken as delivered" in text
        assert f"MB ({'PostgreSQL' if backend == 'postgresql' else 'file + WAL'})" in text


# --- logs -----------------------------------------------------------------------------------


@contextmanager
def captured_logs(log_format: str, token: str) -> Iterator[io.StringIO]:
    """The bot's own logging set-up, writing to a buffer; every library at DEBUG."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    chatty = ["httpx", "httpcore", "aiohttp", "aiohttp.client", "telegram", "apscheduler"]
    saved_levels = {name: logging.getLogger(name).level for name in chatty}
    buffer = io.StringIO()
    setup_logging(LogSettings("DEBUG", log_format), token, stream=buffer)
    # setup_logging keeps httpx at WARNING; open everything up, so that a token in any
    # library's record, at any level, would show.
    for name in chatty:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


async def full_flow(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, settings: Settings
) -> None:
    """Subscribe, an alert, an import (file download), an export, a 403 on a blocked chat."""
    url = publish(feed_server, "/f.xml")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(settings, fake) as bot:
        await command_reply(fake, chat, alice, "subscribe", url)
        feed_server.publish(
            "/f.xml",
            [FeedItem("Two", "https://n.test/2", guid="2", pub_date=datetime.now(UTC))],
        )
        alert = (await fake.wait_for_messages(chat.id, 2, timeout=15))[-1]
        assert alert.text.startswith("Two")
        await document_reply(fake, chat, alice, opml_of(publish(feed_server, "/g.xml")))
        await fake.wait_for_messages(chat.id, 4, timeout=10)
        await downloaded(fake, await command_reply(fake, chat, alice, "export"))

        fake.block(chat.id, update=False)  # the next alert is refused: 403 Forbidden
        feed_server.publish(
            "/f.xml",
            [FeedItem("Three", "https://n.test/3", guid="3", pub_date=datetime.now(UTC))],
        )
        for _ in range(150):
            stored = await bot.store.chats.get(chat.id)
            if stored and stored.status == "paused":
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.status == "paused"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_log_line_shows_the_token(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, log_format: str
) -> None:
    secret = fake.token.split(":", 1)[1]
    settings = fast_replies(bot_settings(tmp_path, fake), fake)
    with captured_logs(log_format, fake.token) as buffer:
        await full_flow(tmp_path, fake, feed_server, settings)
    lines = buffer.getvalue().splitlines()
    assert len(lines) > 50
    leaks = [line for line in lines if fake.token in line or secret in line]
    assert leaks == []
    text = buffer.getvalue()
    assert "<token>" in text  # the token was there to hide, and it was hidden
    for expected in ("event=subscribe", "event=chat_unreachable", "telegram.", "httpx"):
        assert expected in text, expected
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # one object a line, every line
        assert all(isinstance(r, dict) and {"time", "level", "logger"} <= set(r) for r in records)
        assert any(r.get("event") == "chat_unreachable" for r in records)
        assert any(r["level"] == "DEBUG" for r in records)


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [("DEBUG", ["debug", "info", "warning"], []), ("WARNING", ["warning"], ["debug", "info"])],
)
def test_the_log_level_setting_is_obeyed(level: str, shown: list, hidden: list) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    try:
        setup_logging(LogSettings(level, "text"), "", stream=buffer)
        log = logging.getLogger("bot.test")
        for name in ("debug", "info", "warning"):
            getattr(log, name)(f"event=said_{name}")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = buffer.getvalue()
    assert all(f"bot.test event=said_{name}" in text for name in shown)
    assert not any(f"event=said_{name}" in text for name in hidden)
