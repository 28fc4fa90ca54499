"""A command aimed at another chat: `/list @mychannel`, `/mode -1001234567890 1 digest`.

Every setting command may name the chat it is about before its arguments: a chat's
@username, or a group's or channel's numeric id. Numeric ids are negative: a positive one
is a user, and a small positive number is a subscription's (`/unsubscribe 2`). The command
wrapper (command.py) resolves the target once: Telegram is asked for the chat (getChat),
whether the bot can post there and whether the user administers it (getChatMember, through
access.py's cache); the handler then acts on that chat and answers in the user's chat. This
is how a channel is managed from a private chat.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import Bot
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.i18n import t
from bot.telegram.access import Access

log = logging.getLogger(__name__)

# A chat's @username (Telegram's: 4-32 letters, digits, underscores, from a letter) or a
# group's or channel's id (-100… for supergroups and channels).
TARGET = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}|-[1-9][0-9]{0,15}")


def split_target(args: Sequence[str], text: str) -> tuple[str | None, list[str], str]:
    """The target a command names first, if any, and its arguments and text without it.

    `args` are the command's words and `text` everything after the command as typed (its
    first word is args[0])."""
    if not args or not TARGET.fullmatch(args[0]):
        return None, list(args), text
    parts = text.split(maxsplit=1)
    return args[0], list(args[1:]), parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class TargetChat:
    """The chat a command was aimed at, as Telegram describes it."""

    id: int
    kind: str  # group, supergroup, channel
    title: str
    username: str

    @property
    def name(self) -> str:
        """How replies name it: its title and @username, whichever it has."""
        handle = f"@{self.username}" if self.username else ""
        if self.title and handle:
            return f"{self.title} ({handle})"
        return self.title or handle or str(self.id)


class TargetRefused(Exception):
    """The command may not act on the chat it names; `keys` are the texts that say why
    (both when the user does not administer it and the bot cannot post there)."""

    def __init__(self, *keys: str, **values: str) -> None:
        super().__init__(keys, values)
        self.keys = keys
        self.values = values

    def text(self, language: str) -> str:
        return "\n\n".join(t(language, key, **self.values) for key in self.keys)


async def resolve_target(bot: Bot, access: Access, given: str, user_id: int | None) -> TargetChat:
    """The chat `given` names, once the user is found to administer it and the bot to be
    able to post there; else TargetRefused says what is missing. `user_id` is None when the
    command came from no one in particular (a channel post, an anonymous admin)."""
    if user_id is None:
        raise TargetRefused("target.anonymous", target=given)
    try:
        found = await bot.get_chat(int(given) if given.startswith("-") else given)
    except Forbidden:  # the bot was removed from it, or never added
        raise TargetRefused("target.bot_missing", chat=given, bot=bot.username) from None
    except BadRequest:
        raise TargetRefused("target.not_found", target=given) from None
    if found.type == ChatType.PRIVATE:
        raise TargetRefused("target.not_found", target=given)
    target = TargetChat(found.id, str(found.type), found.title or "", found.username or "")
    try:
        bot_ok = await access.admins.may_post(bot, target.id, target.kind)
    except TelegramError as error:  # e.g. "member list is inaccessible": not an admin there
        log.info("event=target_bot_unknown chat=%d error=%r", target.id, str(error))
        bot_ok = False
    admin = await _administers(bot, access, target.id, user_id)
    missing = []
    if admin is False or (admin is None and bot_ok):
        missing.append("target.not_admin")
    if not bot_ok:
        missing.append("target.bot_missing")
    if missing:
        raise TargetRefused(*missing, chat=target.name, bot=bot.username)
    return target


async def _administers(bot: Bot, access: Access, chat_id: int, user_id: int) -> bool | None:
    """Whether the user administers the chat; None when Telegram would not say (it lets a
    bot read a channel's members only where the bot is an administrator)."""
    try:
        return await access.admins.is_admin(bot, chat_id, user_id, keep_refusal=False)
    except TelegramError as error:
        log.info("event=target_admin_unknown chat=%d error=%r", chat_id, str(error))
        return None
