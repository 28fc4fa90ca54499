"""A channel managed from a private chat: every setting command names it first (`@name` or
its id), the bot checks that the user administers it and that the bot can post there, acts
on it, and answers in the private chat naming it; the channel's alerts go to the channel.
Refused, with what is missing, for a channel the user does not administer, and for one
where the bot cannot post."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.i18n import t
from bot.opml import parse_opml
from bot.telegram.targets import TargetChat
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.e2e.test_chat_settings import answered, expected_menu, press
from tests.e2e.test_commands import fast_replies
from tests.e2e.test_ops import LIMITS, document_reply, downloaded, opml_of
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, SentMessage, User

CHANNEL = TargetChat(-1003001, "channel", "Daily News", "mychannel")
BOT = "news_notifier_test_bot"  # the fake's bot's username


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def publish(feed_server: FeedServer, path: str, *numbers: int) -> str:
    items = [
        FeedItem(f"Story {n}", f"https://n.test{path}/{n}", guid=str(n), pub_date=datetime.now(UTC))
        for n in numbers
    ]
    feed_server.publish(path, items, title=f"Feed {path}")
    return feed_server.url(path)


class Private:
    """A user's private chat with the bot: commands sent, the bot's replies read."""

    def __init__(self, fake: FakeTelegram, user: User) -> None:
        self.fake = fake
        self.user = user
        self.chat = fake.private_chat(user)

    async def ask(self, *words: str) -> SentMessage:
        count = len(self.fake.messages(self.chat.id))
        self.fake.user_command(self.chat, self.user, *words)
        return (await self.fake.wait_for_messages(self.chat.id, count + 1, timeout=10))[-1]


def about(target: TargetChat, text: str, language: str = "en") -> str:
    """A reply about `target`: headed with its name."""
    return f"{t(language, 'target.header', name=target.name)}\n{text}"


async def state(bot: RunningBot, chat_id: int) -> tuple:
    chat = await bot.store.chats.get(chat_id)
    subscriptions = await bot.store.chats.subscriptions(chat_id)
    return (
        [(s.feed_url, s.mode, s.thread_id) for s in subscriptions],
        await bot.store.chats.keywords(chat_id),
        chat and (chat.digest_hour, chat.timezone, chat.silent),
    )


async def test_a_private_chat_manages_a_channel_it_administers(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server, "/f.xml", 1)
    other = publish(feed_server, "/g.xml", 1)
    alice = fake.add_user(1001, "Alice")
    channel = fake.add_channel(CHANNEL.id, CHANNEL.title, username=CHANNEL.username, admins=[alice])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        me = Private(fake, alice)
        reply = await me.ask("subscribe", "@mychannel", url)
        assert reply.source == about(
            CHANNEL, t("en", "subscribe.done", title="Feed /f.xml", count=1)
        )
        # The channel follows it (no topic); the private chat does not.
        assert (await state(bot, channel.id))[0] == [(url, "instant", None)]
        assert await bot.store.chats.subscriptions(alice.id) == []
        # Its alerts go to the channel.
        publish(feed_server, "/f.xml", 1, 2)
        [alert] = await fake.wait_for_messages(channel.id, 1, timeout=15)
        assert alert.text.startswith("Story 2")

        listed = await me.ask("list", "@mychannel")
        assert listed.source.startswith(about(CHANNEL, t("en", "list.header", count=1)))
        assert url in listed.text
        # By its numeric id just the same.
        assert (await me.ask("list", str(CHANNEL.id))).source == listed.source
        assert (await me.ask("mode", "@mychannel", "1", "digest")).source == about(
            CHANNEL, t("en", "mode.done", title="Feed /f.xml", mode=t("en", "mode.digest"))
        )
        keywords = await me.ask("keywords", "@mychannel", "add", "climate")
        assert keywords.source.startswith(
            about(CHANNEL, t("en", "keywords.added", added="climate"))
        )
        scheduled = await me.ask("digest", "@mychannel", "at", "08:00", "Asia/Shanghai")
        assert scheduled.source.startswith(about(CHANNEL, "The daily digest will arrive"))
        assert await state(bot, channel.id) == (
            [(url, "digest", None)],
            await bot.store.chats.keywords(channel.id),
            (8, "Asia/Shanghai", False),
        )
        assert [k.text for k in (await state(bot, channel.id))[1]] == ["climate"]
        # The digest now: it goes to the channel, the private chat is told.
        count = len(fake.messages(channel.id))
        assert (await me.ask("digest", "@mychannel")).source == about(
            CHANNEL, t("en", "digest.queued")
        )
        digest = (await fake.wait_for_messages(channel.id, count + 1, timeout=10))[-1]
        assert digest.source.startswith("<b>Daily digest</b>")

        # /settings for the channel: its buttons change the channel, not this chat.
        menu = await me.ask("settings", "@mychannel")
        assert menu.source == about(
            CHANNEL, expected_menu("en", digest_time="08:00", zone="Asia/Shanghai")
        )
        assert all(b["callback_data"].startswith(f"cfg:{CHANNEL.id}:") for b in menu.buttons)
        await press(fake, menu, alice, "s1")
        assert (await bot.store.chats.get(channel.id)).silent is True  # type: ignore[union-attr]
        assert (await bot.store.chats.get(alice.id)).silent is False  # type: ignore[union-attr]
        assert menu.source.startswith(about(CHANNEL, ""))

        # /export and /import with the target in the file's caption.
        exported = await me.ask("export", "@mychannel")
        assert exported.method == "sendDocument" and exported.chat_id == alice.id
        assert exported.source == about(CHANNEL, t("en", "export.caption", count=1))
        document = parse_opml(await downloaded(fake, exported), **LIMITS)
        assert document.title == f"news-notifier: {CHANNEL.name}"
        assert [f.url for f in document.feeds] == [url]
        count = len(fake.messages(alice.id))
        progress = await document_reply(
            fake, me.chat, alice, opml_of(url, other), caption="/import @mychannel"
        )
        assert progress.source.startswith(about(CHANNEL, "Importing 2 feed(s)"))
        summary = (await fake.wait_for_messages(alice.id, count + 2, timeout=15))[-1]
        assert summary.source.startswith(about(CHANNEL, "")) and summary is not progress
        feeds = [s.feed_url for s in await bot.store.chats.subscriptions(channel.id)]
        assert feeds == [url, other]
        assert await bot.store.imports.unfinished() == []

        # /unsubscribe by number, and its buttons.
        assert (await me.ask("unsubscribe", "@mychannel", "2")).source == about(
            CHANNEL, t("en", "unsubscribe.done", title="Feed /g.xml")
        )
        buttons = await me.ask("unsubscribe", "@mychannel")
        assert [b["callback_data"] for b in buttons.buttons] == [
            f"unsub:{CHANNEL.id}:{s.id}" for s in await bot.store.chats.subscriptions(channel.id)
        ] + ["unsub:cancel"]
        fake.press_button(buttons, alice, text="1. Feed /f.xml")
        done = about(CHANNEL, t("en", "unsubscribe.done", title="Feed /f.xml"))
        await fake.wait_for(lambda: buttons.source == done, 10, "the menu edited")
        assert await bot.store.chats.subscriptions(channel.id) == []
        assert await bot.store.chats.subscriptions(alice.id) == []

        # A command posted in the channel itself still works, and is not headed.
        count = len(fake.messages(channel.id))
        fake.channel_post(channel, "/list")
        [listed] = (await fake.wait_for_messages(channel.id, count + 1, timeout=10))[count:]
        assert listed.source == t("en", "list.empty")


async def test_a_channel_the_user_does_not_administer_is_refused(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = publish(feed_server, "/f.xml", 1)
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob", language_code="zh")
    channel = fake.add_channel(CHANNEL.id, CHANNEL.title, username=CHANNEL.username, admins=[alice])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        await Private(fake, alice).ask("subscribe", "@mychannel", url)
        before = await state(bot, channel.id)
        bob_chat = Private(fake, bob)
        refused = t("zh", "target.not_admin", chat=CHANNEL.name)
        for words in (
            ["list", "@mychannel"],
            ["subscribe", "@mychannel", publish(feed_server, "/g.xml", 1)],
            ["unsubscribe", "@mychannel", "1"],
            ["mode", str(CHANNEL.id), "1", "digest"],
            ["keywords", "@mychannel", "add", "x"],
            ["digest", "@mychannel", "at", "08:00"],
            ["digest", "@mychannel"],
            ["settings", "@mychannel"],
            ["export", "@mychannel"],
        ):
            assert (await bob_chat.ask(*words)).source == refused, words
        reply = await document_reply(
            fake, bob_chat.chat, bob, opml_of(url), caption="/import @mychannel"
        )
        assert reply.source == refused
        # A forged button for the channel, pressed in Bob's own chat.
        menu = await bob_chat.ask("settings")
        update = fake.press_forged_button(menu, bob, f"cfg:{CHANNEL.id}:s1")
        answer = await answered(fake, update)
        assert answer.get("show_alert") is True and "管理员" in answer["text"]
        assert await state(bot, channel.id) == before
        assert fake.messages(channel.id) == []  # no digest, nothing


@pytest.mark.parametrize(
    "setup",
    ["admin without the right to post", "not in the channel", "restricted in the group"],
)
async def test_a_chat_where_the_bot_cannot_post_is_refused_saying_so(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer, setup: str
) -> None:
    url = publish(feed_server, "/f.xml", 1)
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob")
    if setup == "restricted in the group":
        target = TargetChat(-1004001, "supergroup", "Readers", "readers")
        fake.add_group(
            target.id,
            target.title,
            supergroup=True,
            username=target.username,
            admins=[alice],
            bot_status="restricted",
        )
    else:
        target = CHANNEL
        fake.add_channel(
            CHANNEL.id,
            CHANNEL.title,
            username=CHANNEL.username,
            admins=[alice],
            bot_status="left" if setup == "not in the channel" else "administrator",
            bot_can_post=False,
        )
    # Telegram tells a bot outside a chat nothing of it: the reply names what was given.
    name = "@" + target.username if setup == "not in the channel" else target.name
    cannot_post = t("en", "target.bot_missing", chat=name, bot=BOT)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        alice_chat = Private(fake, alice)
        for words in (["subscribe", f"@{target.username}", url], ["list", f"@{target.username}"]):
            assert (await alice_chat.ask(*words)).source == cannot_post, words
        # Both missing: both said.
        reply = await Private(fake, bob).ask("list", f"@{target.username}")
        if setup == "not in the channel":
            assert reply.source == cannot_post
        else:
            not_admin = t("en", "target.not_admin", chat=target.name)
            assert reply.source == f"{not_admin}\n\n{cannot_post}"
        assert await bot.store.chats.get(target.id) is None  # never stored


async def test_a_target_that_is_no_group_or_channel_is_refused(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob", username="bobby")
    fake.private_chat(bob)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        me = Private(fake, alice)
        for given in ("@nosuchchannel", "@bobby", "-1009999"):
            reply = await me.ask("list", given)
            assert reply.source == t("en", "target.not_found", target=given), given


async def test_a_target_named_in_a_channel_post_is_refused(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    """A channel's post carries no user: whether they administer another chat is unknown."""
    alice = fake.add_user(1001, "Alice")
    ours = fake.add_channel(-1005001, "Ours", admins=[alice])
    fake.add_channel(CHANNEL.id, CHANNEL.title, username=CHANNEL.username, admins=[alice])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake):
        fake.channel_post(ours, "/list @mychannel")
        [reply] = await fake.wait_for_messages(ours.id, 1, timeout=10)
        assert reply.source == t("en", "target.anonymous", target="@mychannel")


async def test_feeds_found_on_a_page_are_offered_here_and_subscribed_there(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    """/subscribe @mychannel PAGE with two feeds: the buttons come to the private chat, a
    press subscribes the channel; only the channel's administrators may press them."""
    for name in ("news", "sport"):
        publish(feed_server, f"/{name}.xml", 1)
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" href="/{name}.xml">'
        for name in ("news", "sport")
    )
    feed_server.serve("/", f"<html><head>{links}</head></html>", content_type="text/html")
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob")
    channel = fake.add_channel(CHANNEL.id, CHANNEL.title, username=CHANNEL.username, admins=[alice])
    group = fake.add_group(-4001, "Both", admins=[alice, bob])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        count = len(fake.messages(group.id))
        fake.user_command(group, alice, "subscribe", "@mychannel", feed_server.url("/"))
        menu = (await fake.wait_for_messages(group.id, count + 1, timeout=15))[-1]
        assert menu.source.startswith(about(CHANNEL, t("en", "discover.choose", count=2)))
        # Bob administers the group the menu is in, not the channel it is about.
        answer = await answered(fake, fake.press_button(menu, bob, text="2. Feed /sport.xml"))
        assert answer.get("show_alert") is True and menu.edits == []
        fake.press_button(menu, alice, text="2. Feed /sport.xml")
        await fake.wait_for(lambda: menu.edits, 15, "the menu replaced")
        sport = feed_server.url("/sport.xml")
        assert menu.source == about(
            CHANNEL, t("en", "subscribe.found", title="Feed /sport.xml", url=sport, count=1)
        )
        assert await bot.subscriptions(channel.id) == [sport]
        assert await bot.subscriptions(group.id) == []
