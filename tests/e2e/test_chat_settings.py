"""/settings end to end: its buttons change the chat's choices in place, each stored and
applied to the chat's next message (silent, link previews, pictures, language, digest
time); in groups and channels only administrators may press them; forged presses change
nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import COMMANDS, t
from bot.store import Chat as StoredChat
from bot.telegram.chat_settings import menu_text
from bot.usecases.choices import Choices
from tests.e2e.harness import RunningBot, bot_settings, running_bot
from tests.e2e.test_commands import fast_replies
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.pictures import png
from tests.fakes.telegram_api import Chat, FakeTelegram, SentMessage, User


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


class Feed:
    """One feed on the local host, its stories published one after another."""

    def __init__(self, feed_server: FeedServer) -> None:
        self.server = feed_server
        self.items: list[FeedItem] = []
        feed_server.serve("/p.png", png(640, 480), content_type="image/png")
        feed_server.publish("/f.xml", [], title="Pictures")

    @property
    def url(self) -> str:
        return self.server.url("/f.xml")

    def add(self, n: int) -> None:
        """Story n, with a picture and a link (a preview could show it)."""
        body = f'<p><img src="{self.server.url("/p.png")}"></p><p>Lead {n}.</p>'
        self.items.append(
            FeedItem(
                f"Story {n}",
                f"https://news.test/{n}",
                guid=str(n),
                pub_date=datetime.now(UTC),
                description=body,
            )
        )
        self.server.publish("/f.xml", self.items, title="Pictures")


async def next_message(fake: FakeTelegram, chat: Chat) -> SentMessage:
    count = len(fake.messages(chat.id))
    return (await fake.wait_for_messages(chat.id, count + 1, timeout=15))[-1]


async def ask(fake: FakeTelegram, chat: Chat, user: User, *words: str) -> SentMessage:
    count = len(fake.messages(chat.id))
    fake.user_command(chat, user, *words)
    return (await fake.wait_for_messages(chat.id, count + 1, timeout=10))[-1]


async def press(
    fake: FakeTelegram, menu: SentMessage, user: User, change: str, *, edits: bool = True
) -> dict[str, Any]:
    """Press the menu's button for `change` (as in cfg:<chat>:<change>); the bot's answer,
    once the menu was redrawn (`edits`: the press is expected to change it)."""
    [data] = [b["callback_data"] for b in menu.buttons if b["callback_data"].endswith(f":{change}")]
    before = len(menu.edits)
    answer = await answered(fake, fake.press_button(menu, user, data=data))
    if edits:
        await fake.wait_for(lambda: len(menu.edits) > before, 10, "the menu redrawn")
    return answer


async def answered(fake: FakeTelegram, update: dict[str, Any]) -> dict[str, Any]:
    query_id = update["callback_query"]["id"]
    await fake.wait_for(lambda: query_id in fake.callback_answers, 10, "the press answered")
    return fake.callback_answers[query_id]


async def choices_of(bot: RunningBot, chat_id: int) -> StoredChat:
    chat = await bot.store.chats.get(chat_id)
    assert chat is not None
    return chat


def expected_menu(shown_in: str, /, **changed: Any) -> str:
    """The menu's text, in `shown_in`, for a chat with the defaults but `changed`."""
    defaults: dict[str, Any] = {
        "pictures": True,
        "link_preview": False,  # telegram.link_preview's default
        "silent": False,
        "language_choice": "",
        "language": "en",
        "digest_time": None,
        "zone": "UTC",
    }
    return menu_text(shown_in, Choices(**{**defaults, **changed}))


async def test_each_button_is_stored_and_applies_to_the_next_message(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed = Feed(feed_server)
    alice = fake.add_user(1001, "Alice", language_code="en")
    chat = fake.private_chat(alice)
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        await ask(fake, chat, alice, "subscribe", feed.url)
        # Never chosen: telegram.link_preview (off), with sound, pictures on.
        feed.add(1)
        first = await next_message(fake, chat)
        assert first.method == "sendPhoto" and "disable_notification" not in first.params

        menu = await ask(fake, chat, alice, "settings")
        assert menu.source == expected_menu("en")
        assert len(menu.buttons) == 3 + 3 + 6
        assert all(len(b["callback_data"].encode()) <= 64 for b in menu.buttons)

        # Pictures off: the next alert is text, with Telegram's default (no preview).
        assert "text" not in await press(fake, menu, alice, "p0")
        assert menu.source == expected_menu("en", pictures=False)
        assert (await choices_of(bot, chat.id)).pictures is False
        feed.add(2)
        second = await next_message(fake, chat)
        assert second.method == "sendMessage" and second.text.startswith("Story 2")
        assert second.params["link_preview_options"] == {"is_disabled": True}
        assert "disable_notification" not in second.params

        # Silent and link previews on: the next alert says both.
        await press(fake, menu, alice, "s1")
        await press(fake, menu, alice, "w1")
        assert menu.source == expected_menu("en", pictures=False, silent=True, link_preview=True)
        stored = await choices_of(bot, chat.id)
        assert (stored.silent, stored.link_preview) == (True, True)
        feed.add(3)
        third = await next_message(fake, chat)
        assert third.params["disable_notification"] is True
        assert third.params["link_preview_options"] == {"is_disabled": False}

        # Pictures on again: a silent photo.
        await press(fake, menu, alice, "p1")
        feed.add(4)
        fourth = await next_message(fake, chat)
        assert fourth.method == "sendPhoto" and fourth.params["disable_notification"] is True

        # Chinese, although Alice's client speaks English: the menu, the next reply and the
        # digest speak Chinese.
        await press(fake, menu, alice, "lz")
        changed = {"silent": True, "link_preview": True, "language_choice": "zh"}
        assert menu.source == expected_menu("zh", **changed, language="zh")
        assert (await ask(fake, chat, alice, "keywords")).source == t("zh", "keywords.none")
        digest = await ask(fake, chat, alice, "digest")
        assert digest.source.startswith("<b>每日摘要</b>")
        assert digest.params["disable_notification"] is True  # the digest is silent too

        # A digest time from the menu, in the chat's zone.
        await press(fake, menu, alice, "d0800")
        stored = await choices_of(bot, chat.id)
        assert (stored.digest_hour, stored.digest_minute, stored.timezone) == (8, 0, "UTC")
        assert menu.source == expected_menu("zh", **changed, language="zh", digest_time="08:00")
        await press(fake, menu, alice, "doff")
        assert (await choices_of(bot, chat.id)).digest_hour is None

        # Automatic: Alice's language again.
        await press(fake, menu, alice, "la")
        assert menu.source == expected_menu("en", silent=True, link_preview=True)
        assert (await ask(fake, chat, alice, "keywords")).source == t("en", "keywords.none")
        stored = await choices_of(bot, chat.id)
        assert (stored.language_choice, stored.language) == ("", "en")

        # The same press twice (a double tap): stored once, the second edit a no-op.
        edits = len(menu.edits)
        await press(fake, menu, alice, "s0")
        again = fake.press_forged_button(menu, alice, f"cfg:{chat.id}:s0")  # its button is gone
        assert "text" not in await answered(fake, again)
        await fake.wait_for_request("editMessageText", count=edits + 2)  # refused: unchanged
        assert len(menu.edits) == edits + 1
        assert (await choices_of(bot, chat.id)).silent is False


async def test_in_a_group_anyone_reads_the_settings_only_admins_press(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    admin, member = fake.add_user(2001, "Admin"), fake.add_user(2002, "Member")
    group = fake.add_group(-4001, "Group", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        menu = await ask(fake, group, member, "settings")  # reading is for anyone
        assert menu.source == expected_menu("en")
        before = await choices_of(bot, group.id)
        for change in ("p0", "w1", "s1", "lz", "d0700"):
            answer = await press(fake, menu, member, change, edits=False)
            assert answer.get("show_alert") is True, change
            assert answer.get("text") == t("en", "auth.not_admin")[:200]
        assert menu.edits == [] and await choices_of(bot, group.id) == before

        await press(fake, menu, admin, "s1")
        assert (await choices_of(bot, group.id)).silent is True
        assert menu.source == expected_menu("en", silent=True)


async def test_in_a_channel_a_reader_cannot_press_its_settings(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    """Anyone who reads a channel can press the buttons of its posts: the presser must be
    one of its administrators (the /settings post itself came from one)."""
    admin, reader = fake.add_user(2001, "Admin"), fake.add_user(2002, "Reader")
    channel = fake.add_channel(-1002001, "Channel", admins=[admin])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        fake.channel_post(channel, "/settings")
        menu = await next_message(fake, channel)
        assert menu.source == expected_menu("en")
        answer = await press(fake, menu, reader, "lz", edits=False)
        assert answer.get("show_alert") is True and menu.edits == []
        assert (await choices_of(bot, channel.id)).language_choice == ""
        await press(fake, menu, admin, "lz")
        assert (await choices_of(bot, channel.id)).language == "zh"
        assert menu.source == expected_menu("zh", language_choice="zh", language="zh")


async def test_forged_settings_presses_change_nothing(tmp_path: Path, fake: FakeTelegram) -> None:
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob")
    chat = fake.private_chat(alice)
    fake.private_chat(bob)
    group = fake.add_group(-4001, "Group", admins=[bob])
    async with running_bot(fast_replies(bot_settings(tmp_path, fake), fake), fake) as bot:
        await ask(fake, group, bob, "start")
        menu = await ask(fake, chat, alice, "settings")
        group_before = await choices_of(bot, group.id)
        # Data no button carries: answered, nothing said, nothing changed.
        for data in ("cfg:1001:p2", "cfg:1001:d0730", "cfg:1001:lx", "cfg:x:p0", "cfg:1001:"):
            assert "text" not in await answered(fake, fake.press_forged_button(menu, alice, data))
        # A button for a chat Alice does not administer (Bob's group; Bob's private chat).
        for target in (group.id, bob.id):
            update = fake.press_forged_button(menu, alice, f"cfg:{target}:s1")
            assert (await answered(fake, update)).get("show_alert") is True
        assert menu.edits == []
        assert (await choices_of(bot, chat.id)).silent is False
        assert await choices_of(bot, group.id) == group_before


def test_settings_is_in_the_command_menu_and_help_in_both_languages() -> None:
    for language in ("en", "zh"):
        assert "settings" in [name for name, _ in COMMANDS[language]]
        assert "/settings" in t(language, "help")
