"""One chat's burst of commands: every other chat is still answered at once, the burst's
excess gets one "slow down" reply and is counted, and nothing queues without bound.

Telegram's real limits throughout (one reply a second in a private chat, twenty a minute in
a group), kept by the bot and checked by the fake, which refuses and counts any message
over them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.i18n import t
from bot.telegram.ordering import COMMAND_BURST
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.telegram_api import Chat, FakeTelegram, SentMessage, User

FLOOD = 200
# Issue 11: another chat's command is answered within 3 s, whatever one chat sends.
OTHERS_ANSWERED_WITHIN = 3.0
# Commands the bot may answer beyond the burst: its budget refills (one a second in private)
# while it reads the burst, which takes well under a second; three leaves room for a slow
# machine.
REFILLED_WHILE_READING = 3


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def slow_down(chat: Chat) -> str:
    return t("en", "flood.slow_down", per_minute=20 if chat.is_group else 60)


def burst(fake: FakeTelegram, chat: Chat, user: User, command: str) -> None:
    for _ in range(FLOOD):
        fake.user_command(chat, user, command)


async def answered_within_bound(fake: FakeTelegram, chat: Chat, user: User, command: str) -> str:
    asked = time.monotonic()
    fake.user_command(chat, user, command)
    [answer] = await fake.wait_for_messages(chat.id, 1, timeout=OTHERS_ANSWERED_WITHIN)
    took = time.monotonic() - asked
    assert took < OTHERS_ANSWERED_WITHIN, f"answered after {took:.1f}s"
    return answer.source


def answers(messages: list[SentMessage], chat: Chat) -> list[SentMessage]:
    """The replies to the burst's commands, after checking it got exactly one "slow down"."""
    warnings = [m for m in messages if m.source == slow_down(chat)]
    assert len(warnings) == 1, [m.source for m in messages]
    return [m for m in messages if m not in warnings]


async def test_a_burst_in_a_private_chat_leaves_others_answered_and_is_cut_short(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    alice, bob = fake.add_user(1001, "Alice"), fake.add_user(1002, "Bob")
    flooding, other = fake.private_chat(alice), fake.private_chat(bob)
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ADMINS=str(bob.id))
    async with running_bot(settings, fake):
        burst(fake, flooding, alice, "keywords")
        await fake.wait_until_updates_consumed(timeout=10)  # the bot has read the burst
        assert await answered_within_bound(fake, other, bob, "list") == t("en", "list.empty")

        # The burst's first commands are answered, paced; the rest were dropped at once, so
        # after the first answers nothing more comes.
        await fake.wait_for_messages(flooding.id, COMMAND_BURST + 1, timeout=15)
        settled = len(fake.messages(flooding.id))
        await asyncio.sleep(2.5)  # two more replies' pace
        replied = answers(fake.messages(flooding.id), flooding)
        assert len(fake.messages(flooding.id)) == settled, "answers kept coming"
        assert COMMAND_BURST <= len(replied) <= COMMAND_BURST + REFILLED_WHILE_READING
        assert all(m.source == t("en", "keywords.none") for m in replied)

        # Every dropped command is counted, for the operator's /stats.
        fake.user_command(other, bob, "stats")
        [_, stats] = await fake.wait_for_messages(other.id, 2, timeout=5)
        dropped = FLOOD - len(replied)
        assert f"Updates dropped (a chat sending too fast, last 24 h): {dropped}" in stats.text

    assert fake.retry_after_count == 0 and not fake.flood.refused


async def test_bursts_in_a_private_chat_and_a_group_leave_a_third_chat_answered(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    alice, bob, carol = (fake.add_user(n, name) for n, name in enumerate("ABC", start=1001))
    private, other = fake.private_chat(alice), fake.private_chat(carol)
    group = fake.add_group(-4001, "Busy group")
    async with running_bot(bot_settings(tmp_path, fake), fake):
        burst(fake, private, alice, "help")
        burst(fake, group, bob, "help")
        await fake.wait_until_updates_consumed(timeout=10)
        assert await answered_within_bound(fake, other, carol, "help") == t("en", "help")
        # The group's "slow down" goes at its pace (one message every 3 s) after its first
        # answer.
        await fake.wait_for_messages(group.id, 2, timeout=10)
    # The bot answered what it took of both bursts before it stopped, and no more.
    for chat in (private, group):
        replied = answers(fake.messages(chat.id), chat)
        assert COMMAND_BURST <= len(replied) <= COMMAND_BURST + REFILLED_WHILE_READING, chat
    assert fake.retry_after_count == 0 and not fake.flood.refused
