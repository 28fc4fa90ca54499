"""Every command's wrong forms get a clear reply and change nothing; groups, buttons, chats."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Settings
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def publish(feed_server: FeedServer, path: str = "/f.xml") -> str:
    feed_server.publish(
        path,
        [FeedItem("One", "https://n.test/1", guid="1", pub_date=datetime.now(UTC))],
        title="Feed " + path,
    )
    return feed_server.url(path)


async def state(bot: RunningBot, chat_id: int) -> tuple:
    subs = await bot.store.chats.subscriptions(chat_id)
    return (
        [(s.feed_url, s.mode) for s in subs],
        await bot.store.chats.keywords(chat_id),
        await bot.store.db.fetchone("SELECT COUNT(*) FROM feeds"),
    )


def fast_replies(settings: Settings, fake: FakeTelegram) -> Settings:
    """Many commands in one chat: Telegram's per-chat pace (kept by bot and fake alike)
    would make the test wait a second per reply, so both allow 20 a second here."""
    fake.limits.chat_per_second = 20
    fake.limits.group_per_minute = 1200
    return dataclasses.replace(
        settings,
        delivery=dataclasses.replace(settings.delivery, chat_per_second=20, group_per_minute=1200),
    )


# (command text, a phrase the reply must contain)
WRONG_FORMS = [
    ("/subscribe", "Send the feed's address"),
    ("/sub", "Send the feed's address"),
    ("/subscribe not a url", "not a web address"),
    ("/subscribe notaurl", "not a web address"),
    ("/subscribe ftp://example.com/feed.xml", "Only http:// and https://"),
    ("/subscribe file:///etc/passwd", "Only http:// and https://"),
    ("/subscribe javascript:alert(1)", "Only http:// and https://"),
    ("/subscribe data:text/xml,<rss/>", "Only http:// and https://"),
    ("/subscribe https://" + "a" * 5000 + ".com/", "too long"),
    ("/subscribe {base}/page.html", "it is an HTML page"),
    ("/subscribe {base}/missing.xml", "HTTP 404"),
    ("/subscribe {base}/empty.xml", "it is an empty document"),
    ("/subscribe {base}/gone.xml", "gone for good"),
    ("/subscribe {base}/loop.xml", "redirects too many times"),
    ("/subscribe http://[::1]/x", "private or local network"),
    ("/unsubscribe 7", "no subscription number 7"),
    ("/unsubscribe 0", "no subscription number 0"),
    ("/unsubscribe https://nowhere.test/x.xml", "not subscribed to"),
    ("/unsubscribe 1 2", "Send the feed's number"),
    ("/mode", "Send a number from /list and a mode"),
    ("/mode 1", "Send a number from /list and a mode"),
    ("/mode 1 loud", "Send a number from /list and a mode"),
    ("/mode 9 digest", "no subscription number 9"),
    (
        "/keywords frobnicate",
        "Use <code>/keywords</code>".replace("<code>", "").replace("</code>", ""),
    ),
    ("/keywords add", "Give at least one word"),
    ('/keywords add "unclosed phrase', "quotation mark is not closed"),
    ("/keywords add " + "x" * 65, "at most 64 characters"),
    ("/keywords remove", "Give at least one word"),
    ("/keywords clear now", "Use /keywords"),
    ("/nosuchcommand", "I don't know that command"),
]


async def test_wrong_forms_get_a_clear_reply_and_change_nothing(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.serve(
        "/page.html", "<!doctype html><html><body>Hi</body></html>", content_type="text/html"
    )
    feed_server.serve("/empty.xml", b"", content_type="application/xml")
    feed_server.serve("/gone.xml", b"", status=410)
    feed_server.redirect("/loop.xml", "/loop.xml")
    url = publish(feed_server)
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    settings = fast_replies(bot_settings(tmp_path, fake), fake)
    async with running_bot(settings, fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        before = await state(bot, chat.id)
        number = 1
        for text, expected in WRONG_FORMS:
            text = text.replace("{base}", feed_server.base_url.rstrip("/"))
            if "[::1]" in text:
                continue  # needs the guard on: test_private_addresses_are_refused…
            number += 1
            fake.user_message(chat, alice, text)
            messages = await fake.wait_for_messages(chat.id, number, timeout=10)
            assert expected in messages[-1].text, (text, messages[-1].text)
        assert await state(bot, chat.id) == before
        assert fake.retry_after_count == 0
    assert len(WRONG_FORMS) - 1 >= 25


async def test_private_addresses_are_refused_when_not_allowed(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS="0")
    async with running_bot(settings, fake) as bot:
        for n, target in enumerate(
            [
                "http://[::1]/x",
                "http://127.0.0.1:9/feed",
                "http://169.254.169.254/latest/meta-data/",
                "http://localhost/feed.xml",
            ],
            start=1,
        ):
            fake.user_command(chat, alice, "subscribe", target)
            messages = await fake.wait_for_messages(chat.id, n, timeout=10)
            assert "private or local network" in messages[-1].text, target
        assert await bot.subscriptions(chat.id) == []


async def test_group_admins_change_settings_others_are_refused(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Group", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        fake.user_command(group, member, "subscribe", url)
        [refusal] = await fake.wait_for_messages(group.id, 1, timeout=10)
        assert "only this chat's administrators" in refusal.text
        assert await bot.subscriptions(group.id) == []
        fake.user_command(group, member, "keywords", "add", "ai")
        await fake.wait_for_messages(group.id, 2, timeout=10)
        assert await bot.store.chats.keywords(group.id) == []

        fake.user_command(group, admin, "subscribe", url)  # /subscribe@botname url
        messages = await fake.wait_for_messages(group.id, 3, timeout=10)
        assert "Subscribed to" in messages[-1].text
        fake.user_command(group, member, "list")  # anyone may read
        messages = await fake.wait_for_messages(group.id, 4, timeout=10)
        assert url in messages[-1].text


async def test_unsubscribe_with_buttons_and_by_number(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    urls = [publish(feed_server, "/a.xml"), publish(feed_server, "/b.xml")]
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        for n, url in enumerate(urls, start=1):
            fake.user_command(chat, alice, "subscribe", url)
            await fake.wait_for_messages(chat.id, n, timeout=10)
        fake.user_command(chat, alice, "unsubscribe")
        messages = await fake.wait_for_messages(chat.id, 3, timeout=10)
        assert [b["text"] for b in messages[-1].buttons][:2] == ["1. Feed /a.xml", "2. Feed /b.xml"]
        fake.press_button(messages[-1], alice, text="1. Feed /a.xml")
        await fake.wait_for(
            lambda: "Unsubscribed" in fake.messages(chat.id)[2].text,
            timeout=10,
            what="the button's message edited",
        )
        assert await bot.subscriptions(chat.id) == [urls[1]]
        fake.user_command(chat, alice, "unsub", "1")
        messages = await fake.wait_for_messages(chat.id, 4, timeout=10)
        assert "Unsubscribed from" in messages[-1].text
        assert await bot.subscriptions(chat.id) == []


async def test_mode_and_list_and_keywords_round_trip(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    alice = fake.add_user(1001, "Alice", language_code="zh-CN")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        fake.user_command(chat, alice, "mode", "1", "digest")
        fake.user_message(chat, alice, '/keywords add 普京 "central bank" -sports')
        fake.user_command(chat, alice, "list")
        messages = await fake.wait_for_messages(chat.id, 4, timeout=10)
        assert "仅摘要" in messages[1].text
        assert "已添加" in messages[2].text and '"central bank"' in messages[2].text
        assert "-sports" in messages[2].text
        assert "1. Feed /f.xml" in messages[3].text
        assert await bot.store.chats.keywords(chat.id) == [
            ("普京", False),
            ("central bank", False),
            ("sports", True),
        ]
        fake.user_command(chat, alice, "keywords", "clear")
        messages = await fake.wait_for_messages(chat.id, 5, timeout=10)
        assert "已清除" in messages[-1].text
        assert len(bot.runtime.keyword_index) == 0


async def test_a_long_list_is_split_within_telegrams_limits(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    """130 subscriptions with short names: more than 100 bold titles fit in 4096 characters,
    and Telegram keeps the formatting of 100 entities per message only."""
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    count = 130
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        later = bot.runtime.clock.now_ms() + 86_400_000  # not checked during the test
        await bot.store.chats.upsert(
            chat.id, kind="private", title="Alice", language="en", now_ms=later
        )
        for n in range(1, count + 1):
            feed_id = await bot.store.feeds.add(
                f"http://a.co/{n}", title="A", site_url="", now_ms=later
            )
            await bot.store.chats.subscribe(chat.id, feed_id, thread_id=None, now_ms=later)
        fake.user_command(chat, alice, "list")

        def listed() -> str:
            return "\n".join(m.text for m in fake.messages(chat.id))

        last = f"{count}. A — instant\nhttp://a.co/{count}"
        await fake.wait_for(lambda: last in listed(), 10, "the whole list")
        assert [r.status for r in fake.requests_for("sendMessage")] == [200, 200]
        shown = "\n" + listed() + "\n"
        assert all(f"\n{n}. A — instant\nhttp://a.co/{n}\n" in shown for n in range(1, count + 1))
        assert all(len(m.entities) <= 100 for m in fake.messages(chat.id))


async def test_blocked_chat_pauses_and_start_resumes(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        fake.block(chat.id)  # sends a my_chat_member update (kicked)
        await fake.wait_for(lambda: not fake.pending_updates, timeout=10, what="update read")
        await fake.wait_for_request("getUpdates", fake.request_counts["getupdates"] + 1, timeout=10)
        stored = await bot.store.chats.get(chat.id)
        assert stored is not None and stored.status == "paused"
        fake.unblock(chat.id, update=False)  # the user only presses Start
        fake.user_command(chat, alice, "start")
        messages = await fake.wait_for_messages(chat.id, 3, timeout=10)
        assert "active again" in messages[1].text
        stored = await bot.store.chats.get(chat.id)
        assert stored is not None and stored.status == "active"


async def test_bot_added_back_to_a_group_resumes_it(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    admin = fake.add_user(2001, "Admin")
    group = fake.add_group(-4001, "Group", admins=[admin])
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(group, admin, "subscribe", url)
        await fake.wait_for_messages(group.id, 1, timeout=10)

        async def status() -> str:
            chat = await bot.store.chats.get(group.id)
            return chat.status if chat else "?"

        fake.kick(group.id, admin)
        await fake.wait_until_updates_consumed(timeout=10)
        for _ in range(50):
            if await status() == "paused":
                break
            await asyncio.sleep(0.1)
        assert await status() == "paused"
        fake.add_bot(group.id, admin)
        await fake.wait_until_updates_consumed(timeout=10)
        for _ in range(50):
            if await status() == "active":
                break
            await asyncio.sleep(0.1)
        assert await status() == "active"


async def test_command_menu_is_registered_in_both_languages(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    async with running_bot(bot_settings(tmp_path, fake), fake):
        assert "subscribe" in fake.my_commands("")
        assert "digest" in fake.my_commands("zh")


async def test_allowed_users_restrict_the_bot(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    alice, mallory = fake.add_user(1001, "Alice"), fake.add_user(1666, "Mallory")
    a, m = fake.private_chat(alice), fake.private_chat(mallory)
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOWED_USERS="1001")
    async with running_bot(settings, fake) as bot:
        fake.user_command(m, mallory, "subscribe", url)
        [refusal] = await fake.wait_for_messages(m.id, 1, timeout=10)
        assert "this bot is private" in refusal.text
        fake.user_command(a, alice, "subscribe", url)
        [welcome] = await fake.wait_for_messages(a.id, 1, timeout=10)
        assert "Subscribed to" in welcome.text
        assert await bot.subscriptions(m.id) == []


async def test_subscribers_are_told_once_when_a_feed_is_paused_and_when_it_recovers(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    alice = fake.add_user(1001, "Alice", language_code="zh-TW")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        feed_server.serve("/f.xml", b"oops", status=500)
        # Failing for days: pretend it started failing long ago, then let a check fail.
        await bot.store.db.execute(
            "UPDATE feeds SET failing_since = 1, consecutive_failures = 9, next_check_at = 0"
        )
        messages = await fake.wait_for_messages(chat.id, 2, timeout=15)
        assert "已暂停" in messages[1].text or "暂停" in messages[1].text
        assert "（HTTP 500）" in messages[1].text, messages[1].text  # the reason, in Chinese
        feed = await bot.store.feeds.by_url(url)
        assert feed is not None and feed.status == "paused"
        publish(feed_server)
        await bot.store.db.execute("UPDATE feeds SET next_check_at = 0")
        messages = await fake.wait_for_messages(chat.id, 3, timeout=15)
        assert "已恢复" in messages[2].text
        await asyncio.sleep(2)
        assert len(fake.messages(chat.id)) == 3  # told once each time
