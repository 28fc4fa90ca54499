"""Settings commands end to end: who may change them in groups (members, admins, anonymous
admins, buttons), /list's feed health lines, /digest's replies and /help, in both languages.

Replies are compared with `t(lang, key, ...)` against the text exactly as the bot sent it
(`SentMessage.source`), so a changed wording in i18n.py does not break these tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.format import format_time
from bot.errors import FailureKind, FeedFailure
from bot.i18n import COMMANDS, t
from bot.store import Store
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.e2e.test_commands import fast_replies, publish
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import Chat, FakeTelegram, SentMessage, User

# Who Telegram names as the sender of an anonymous group admin's message, and of a message
# a user sends "as" one of their channels (sender_chat then names that channel).
GROUP_ANONYMOUS_BOT = User(1087968824, "Group", username="GroupAnonymousBot", is_bot=True)
CHANNEL_BOT = User(136817688, "Channel", username="Channel_Bot", is_bot=True)


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


class Talk:
    """Send commands to one chat and get the bot's one reply to each."""

    def __init__(self, fake: FakeTelegram, chat: Chat) -> None:
        self.fake = fake
        self.chat = chat
        self.count = len(fake.messages(chat.id))

    def send(self, user: User, command: str, *args: str) -> dict[str, Any]:
        """Only send (the caller waits): returns the queued update."""
        return self.fake.user_command(self.chat, user, command, *args)

    async def reply(self) -> SentMessage:
        """The next message the bot sends to the chat."""
        self.count += 1
        messages = await self.fake.wait_for_messages(self.chat.id, self.count, timeout=10)
        return messages[self.count - 1]

    async def ask(self, user: User, command: str, *args: str) -> str:
        """`/command args` from `user`; the reply as the bot wrote it (Telegram HTML)."""
        self.send(user, command, *args)
        return (await self.reply()).source


async def chat_state(bot: RunningBot, chat_id: int) -> tuple:
    """Everything a settings command could change for a chat."""
    subs = await bot.store.chats.subscriptions(chat_id)
    chat = await bot.store.chats.get(chat_id)
    assert chat is not None
    return (
        [(s.id, s.feed_url, s.mode, s.thread_id) for s in subs],
        await bot.store.chats.keywords(chat_id),
        (chat.digest_hour, chat.digest_minute, chat.timezone, chat.next_digest_at),
        await bot.store.db.fetchone("SELECT COUNT(*) FROM feeds"),
    )


async def wait_answered(fake: FakeTelegram, update: dict[str, Any]) -> dict[str, Any]:
    """The bot's answerCallbackQuery to a button press."""
    query_id = update["callback_query"]["id"]
    await fake.wait_for(
        lambda: query_id in fake.callback_answers, timeout=10, what="the button answered"
    )
    return fake.callback_answers[query_id]


def sent_as_chat(update: dict[str, Any], sender_chat: dict[str, Any] | None = None) -> None:
    """Make a queued message update one sent on behalf of a chat (sender_chat; by default the
    chat it is in, as an anonymous admin's). Done before the test awaits anything, so the
    bot's next getUpdates reads it so."""
    message = update["message"]
    message["sender_chat"] = dict(sender_chat or message["chat"])


# --- 1. groups: who may change settings ------------------------------------------------


async def test_group_members_cannot_change_settings_admins_can_anyone_reads(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Group", admins=[admin])
    not_admin = t("en", "auth.not_admin")
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        talk = Talk(fake, group)
        assert "Feed /f.xml" in await talk.ask(admin, "subscribe", url)
        await talk.ask(admin, "keywords", "add", "ai")
        reply = await talk.ask(admin, "digest", "at", "07:00", "Europe/Berlin")
        assert "(Europe/Berlin)" in reply
        talk.send(admin, "unsubscribe")
        menu = await talk.reply()
        assert menu.source == t("en", "unsubscribe.choose")
        before = await chat_state(bot, group.id)
        assert before[0][0][2] == "instant" and before[2][:3] == (7, 0, "Europe/Berlin")

        for command in (
            ["digest", "at", "08:00"],
            ["digest", "at", "08:00", "Asia/Tokyo"],
            ["digest", "off"],
            ["mode", "1", "digest"],
            ["unsubscribe", "1"],
            ["unsubscribe", url],
            ["keywords", "clear"],
        ):
            assert await talk.ask(member, *command) == not_admin, command
        press = fake.press_button(menu, member, text="1. Feed /f.xml")
        answer = await wait_answered(fake, press)
        assert answer.get("show_alert") is True
        assert answer.get("text") == not_admin[:200]
        assert menu.edits == [] and menu.source == t("en", "unsubscribe.choose")
        assert await chat_state(bot, group.id) == before

        # Anyone may read: /list, /keywords, and the digest on command.
        listed = await talk.ask(member, "list")
        assert (
            t(
                "en",
                "list.item",
                number=1,
                title="Feed /f.xml",
                url=url,
                mode=t("en", "mode.instant"),
            )
            in listed
        )
        assert await talk.ask(member, "keywords") == t(
            "en", "keywords.show", includes="ai", excludes=t("en", "keywords.nothing")
        )
        digest = await talk.ask(member, "digest")
        assert "One" in digest and digest != not_admin
        assert await chat_state(bot, group.id) == before

        # The admin can do each of the refused changes.
        assert await talk.ask(admin, "mode", "1", "digest") == t(
            "en", "mode.done", title="Feed /f.xml", mode=t("en", "mode.digest")
        )
        reply = await talk.ask(admin, "digest", "at", "08:00")
        chat = await bot.store.chats.get(group.id)
        assert chat is not None and (chat.digest_hour, chat.timezone) == (8, "Europe/Berlin")
        assert reply == t(
            "en",
            "digest.scheduled",
            time="08:00",
            zone="Europe/Berlin",
            next=format_time(chat.next_digest_at, "Europe/Berlin"),
        )
        assert await talk.ask(admin, "digest", "off") == t("en", "digest.off")
        chat = await bot.store.chats.get(group.id)
        assert chat is not None and chat.digest_hour is None and chat.next_digest_at is None
        [(_, _, mode, _)] = (await chat_state(bot, group.id))[0]
        assert mode == "digest"
        fake.press_button(menu, admin, text="1. Feed /f.xml")
        done = t("en", "unsubscribe.done", title="Feed /f.xml")
        await fake.wait_for(lambda: menu.source == done, timeout=10, what="the menu edited")
        assert await bot.subscriptions(group.id) == []


async def test_group_admin_unsubscribes_by_number(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Group", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        talk = Talk(fake, group)
        await talk.ask(admin, "subscribe", url)
        assert await talk.ask(member, "unsubscribe", "1") == t("en", "auth.not_admin")
        assert await bot.subscriptions(group.id) == [url]
        assert await talk.ask(admin, "unsubscribe", "1") == t(
            "en", "unsubscribe.done", title="Feed /f.xml"
        )
        assert await bot.subscriptions(group.id) == []


async def test_anonymous_group_admin_may_change_settings_a_channel_identity_may_not(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server)
    admin = fake.add_user(2001, "Admin")
    group = fake.add_group(-4001, "Group", supergroup=True, admins=[admin])
    other_channel = {"id": -1009999, "type": "channel", "title": "Someone's channel"}
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        talk = Talk(fake, group)
        # A member posting as their own channel is not the group: refused.
        sent_as_chat(talk.send(CHANNEL_BOT, "subscribe", url), other_channel)
        assert (await talk.reply()).source == t("en", "auth.not_admin")
        assert await bot.subscriptions(group.id) == []

        # An anonymous admin posts as the group itself: allowed.
        sent_as_chat(talk.send(GROUP_ANONYMOUS_BOT, "subscribe", url))
        assert "Feed /f.xml" in (await talk.reply()).source
        assert await bot.subscriptions(group.id) == [url]
        sent_as_chat(talk.send(GROUP_ANONYMOUS_BOT, "mode", "1", "digest"))
        assert (await talk.reply()).source == t(
            "en", "mode.done", title="Feed /f.xml", mode=t("en", "mode.digest")
        )
        sent_as_chat(talk.send(GROUP_ANONYMOUS_BOT, "digest", "at", "08:00", "UTC"))
        assert "(UTC)" in (await talk.reply()).source
        chat = await bot.store.chats.get(group.id)
        assert chat is not None and chat.digest_hour == 8
        [subscription] = await bot.store.chats.subscriptions(group.id)
        assert subscription.mode == "digest"


# --- 3. /list shows a feed's health ----------------------------------------------------


async def set_health(store: Store, urls: dict[str, str]) -> None:
    """failing: two failures in a row; paused: failed long enough; gone: HTTP 410 (after a
    failure, so "gone" must win over "failing"). Next checks a year away: the poller leaves
    these rows alone while the test reads them."""
    now = int(datetime.now(UTC).timestamp() * 1000)
    later = now + 365 * 86_400_000
    ids = {name: (await store.feeds.by_url(url)).id for name, url in urls.items()}  # type: ignore[union-attr]
    for _ in range(2):
        await store.feeds.record_failure(
            ids["failing"],
            FeedFailure(FailureKind.HTTP_STATUS, status=503),
            now_ms=now,
            next_check_at=later,
            pause_after_ms=10**12,
        )
    # A reason this version has no text for is shown as it is.
    await store.feeds.record_failure(
        ids["paused"],
        FeedFailure.from_code("connection failed"),
        now_ms=now,
        next_check_at=later,
        pause_after_ms=0,
    )
    await store.feeds.record_failure(
        ids["gone"],
        FeedFailure(FailureKind.HTTP_STATUS, status=410),
        now_ms=now,
        next_check_at=later,
        pause_after_ms=10**12,
    )
    await store.feeds.mark_gone(ids["gone"], now_ms=now)
    await store.db.execute("UPDATE feeds SET next_check_at = ?", (later,))


async def test_list_shows_failing_paused_and_gone_feeds(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    names = ["ok", "failing", "paused", "gone"]
    urls = {name: publish(feed_server, f"/{name}.xml") for name in names}
    alice = fake.add_user(1001, "Alice")
    li = fake.add_user(1002, "Li", language_code="zh-hans")
    # Checks an hour apart: nothing but this test touches the feed rows.
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_POLL_INTERVAL="3600")
    async with running_bot(fast_replies(settings, fake), fake) as bot:
        talks = {"en": (Talk(fake, fake.private_chat(alice)), alice)}
        talks["zh"] = (Talk(fake, fake.private_chat(li)), li)
        for talk, user in talks.values():
            for name in names:
                await talk.ask(user, "subscribe", urls[name])
        await set_health(bot.store, urls)
        stored = {s.feed_url: s for s in await bot.store.chats.subscriptions(alice.id)}
        assert stored[urls["failing"]].feed_failures == 2
        assert stored[urls["paused"]].feed_status == "paused"
        assert stored[urls["gone"]].feed_status == "gone"
        assert stored[urls["gone"]].feed_failures > 0
        for lang, (talk, user) in talks.items():
            lines = [t(lang, "list.header", count=4)]
            for number, name in enumerate(names, start=1):
                lines.append(
                    t(
                        lang,
                        "list.item",
                        number=number,
                        title=f"Feed /{name}.xml",
                        url=urls[name],
                        mode=t(lang, "mode.instant"),
                    )
                )
                if name == "failing":
                    lines.append(t(lang, "list.failing", error="HTTP 503", failures=2))
                elif name == "paused":
                    lines.append(t(lang, "list.paused", error="connection failed"))
                elif name == "gone":
                    lines.append(t(lang, "list.gone"))
            assert await talk.ask(user, "list") == "\n".join(lines), lang


# --- 4. /digest's replies ---------------------------------------------------------------


@pytest.mark.parametrize("language_code", ["en", "zh-hans"])
async def test_digest_replies_and_the_zone_is_remembered(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, language_code: str
) -> None:
    lang = "zh" if language_code.startswith("zh") else "en"
    url = publish(feed_server)
    user = fake.add_user(1001, "Alice", language_code=language_code)
    chat = fake.private_chat(user)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        talk = Talk(fake, chat)
        usage = t(lang, "digest.usage")
        assert await talk.ask(user, "digest") == t(lang, "digest.no_subscriptions")
        assert await talk.ask(user, "digest", "off") == t(lang, "digest.was_off")
        for args, expected in [
            (["foo"], usage),
            (["at"], usage),
            (["off", "now"], usage),
            (["at", "08:00", "Asia/Tokyo", "extra"], usage),
            (["at", "25:00"], t(lang, "digest.bad_time", given="25:00")),
            (["at", "soon"], t(lang, "digest.bad_time", given="soon")),
            (["at", "08:00", "Mars/Olympus"], t(lang, "digest.bad_zone", given="Mars/Olympus")),
        ]:
            assert await talk.ask(user, "digest", *args) == expected, args
        stored = await bot.store.chats.get(chat.id)
        assert stored is not None and stored.digest_hour is None and stored.timezone is None

        await talk.ask(user, "subscribe", url)
        # 07:30 in Tokyo; then 09:00 with no zone keeps Tokyo; and again after /digest off.
        for time_, args, then_off in [
            ("07:30", ["Asia/Tokyo"], False),
            ("09:00", [], True),
            ("10:15", [], False),
        ]:
            before = datetime.now(UTC)
            reply = await talk.ask(user, "digest", "at", time_, *args)
            stored = await bot.store.chats.get(chat.id)
            assert stored is not None and stored.timezone == "Asia/Tokyo"
            assert stored.next_digest_at is not None
            due = datetime.fromtimestamp(stored.next_digest_at / 1000, UTC)
            assert f"{due.astimezone(ZoneInfo('Asia/Tokyo')):%H:%M}" == time_
            assert before - timedelta(minutes=1) < due <= before + timedelta(days=1)
            assert reply == t(
                lang,
                "digest.scheduled",
                time=time_,
                zone="Asia/Tokyo",
                next=format_time(stored.next_digest_at, "Asia/Tokyo"),
            )
            assert "(Asia/Tokyo)" in reply or "（Asia/Tokyo）" in reply
            if then_off:
                assert await talk.ask(user, "digest", "off") == t(lang, "digest.off")
                assert await talk.ask(user, "digest", "off") == t(lang, "digest.was_off")
                stored = await bot.store.chats.get(chat.id)
                assert stored is not None and stored.digest_hour is None


# --- 5. /help ---------------------------------------------------------------------------


async def test_help_lists_the_commands_in_both_languages(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    alice = fake.add_user(1001, "Alice", language_code="en-GB")
    li = fake.add_user(1002, "Li", language_code="zh-hans")
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        for user, lang in [(alice, "en"), (li, "zh")]:
            talk = Talk(fake, fake.private_chat(user))
            for command in ("help", "start"):
                text = await talk.ask(user, command)
                assert text == t(lang, "help"), (lang, command)
                # Every command of the menu (but /help itself, which the reader just sent).
                for name, _ in COMMANDS[lang]:
                    assert name == "help" or f"/{name}" in text, (lang, name)
                for form in ("/digest at", "/digest off", "/keywords add", "/keywords clear"):
                    assert form in text, (lang, form)
        assert t("en", "help") != t("zh", "help")


async def test_the_unsubscribe_menu_says_how_to_reach_feeds_past_its_buttons(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.telegram import handlers

    monkeypatch.setattr(handlers, "MAX_BUTTONS", 2)
    urls = [publish(feed_server, f"/{n}.xml") for n in range(3)]
    alice = fake.add_user(1001, "Alice", language_code="zh-hans")
    chat = fake.private_chat(alice)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        for n, url in enumerate(urls, start=1):
            fake.user_command(chat, alice, "subscribe", url)
            await fake.wait_for_messages(chat.id, n, timeout=10)
        fake.user_command(chat, alice, "unsubscribe")
        menu = (await fake.wait_for_messages(chat.id, 4, timeout=10))[-1]
    more = t("zh", "unsubscribe.more", shown=2, count=3)
    assert menu.source == f"{t('zh', 'unsubscribe.choose')}\n{more}"
    assert [b["text"] for b in menu.buttons] == [
        "1. Feed /0.xml",
        "2. Feed /1.xml",
        t("zh", "unsubscribe.cancel"),
    ]


async def test_adding_keywords_already_there_says_so(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        fake.user_command(chat, alice, "keywords", "add AI")
        fake.user_command(chat, alice, "keywords", "add ai, ML")
        fake.user_command(chat, alice, "keywords", "add AI")
        first, second, third = await fake.wait_for_messages(chat.id, 3, timeout=10)
    assert first.source.startswith(t("en", "keywords.added", added="AI") + "\n\n")
    assert second.source.startswith(
        t("en", "keywords.added", added="ML") + "\n\n" + t("en", "keywords.already", already="ai")
    )
    assert third.source.startswith(t("en", "keywords.already", already="AI") + "\n\n")
