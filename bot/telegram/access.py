"""Who may use the bot, who may change a chat's settings, and where the bot may post.

NEWS_NOTIFIER_ALLOWED_USERS (empty: anyone) decides who may use it at all; in groups only
administrators may change what the chat follows, and a chat named as a command's target
(telegram/targets.py) only by its administrators, when the bot can post there. Telegram is
asked who administers a chat and what the bot may do there, and its answers are kept a few
minutes (telegram.admin_cache_seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection

from telegram import Bot, ChatMember, ChatMemberAdministrator, ChatMemberRestricted, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

log = logging.getLogger(__name__)

ADMIN_STATUSES = {ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR}


class AdminCache:
    """Who administers which group, asked with getChatMember and kept a few minutes."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._seen: dict[tuple[int, int], tuple[float, bool]] = {}

    async def is_admin(
        self, bot: Bot, chat_id: int, user_id: int, *, keep_refusal: bool = True
    ) -> bool:
        """keep_refusal=False: a "no" is asked again next time (it told the user how to
        fix it, and the fix must count at once)."""

        async def ask() -> bool:
            member = await bot.get_chat_member(chat_id, user_id)
            return member.status in ADMIN_STATUSES

        return await self._cached((chat_id, user_id), ask, keep_refusal=keep_refusal)

    async def may_post(self, bot: Bot, chat_id: int, kind: str) -> bool:
        """Whether the bot can send messages to the chat (a "no" is not kept)."""

        async def ask() -> bool:
            return may_post(await bot.get_chat_member(chat_id, bot.id), kind)

        return await self._cached((chat_id, bot.id), ask, keep_refusal=False)

    async def any_admin_among(self, bot: Bot, chat_id: int, user_ids: frozenset[int]) -> bool:
        """Whether one of `user_ids` administers the chat (a channel: posts carry no user)."""

        async def ask() -> bool:
            admins = await bot.get_chat_administrators(chat_id)
            return any(member.user.id in user_ids for member in admins)

        # User id 0 is never a real user: the key of the chat's whole admin list.
        return await self._cached((chat_id, 0), ask)

    async def _cached(
        self, key: tuple[int, int], ask: Callable[[], Awaitable[bool]], *, keep_refusal: bool = True
    ) -> bool:
        hit = self._seen.get(key)
        now = time.monotonic()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        answer = await ask()
        if len(self._seen) > 10_000:
            self._seen.clear()
        if answer or keep_refusal:
            self._seen[key] = (now, answer)
        return answer


def may_post(member: ChatMember, kind: str) -> bool:
    """Whether the bot, as this member of a chat of `kind`, can send messages there: in a
    channel as its creator or an administrator allowed to post; in a group as a member not
    restricted from sending."""
    status = member.status
    if status == ChatMemberStatus.OWNER:
        return True
    if kind == ChatType.CHANNEL:
        return isinstance(member, ChatMemberAdministrator) and bool(member.can_post_messages)
    if status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER):
        return True
    if isinstance(member, ChatMemberRestricted):
        return member.is_member and member.can_send_messages
    return False


class Access:
    """The two rules, over one AdminCache (kept in bot_data: see context.BotData)."""

    def __init__(self, allowed_users: Collection[int], admin_cache_seconds: float) -> None:
        self.allowed_users = frozenset(allowed_users)
        self.admins = AdminCache(admin_cache_seconds)

    async def is_allowed(self, update: Update, bot: Bot) -> bool:
        """NEWS_NOTIFIER_ALLOWED_USERS: empty lets anyone in. A channel post carries no user,
        so a channel is let in when one of its administrators is an allowed user."""
        if not self.allowed_users:
            return True
        chat = update.effective_chat
        if chat is not None and chat.type == ChatType.CHANNEL:
            try:
                return await self.admins.any_admin_among(bot, chat.id, self.allowed_users)
            except TelegramError as error:
                log.warning("event=admin_list_failed chat=%d error=%r", chat.id, str(error))
                return False
        user = update.effective_user
        return user is not None and user.id in self.allowed_users

    async def may_change(self, update: Update, bot: Bot) -> bool:
        """Private chats: the user. Groups: administrators only. Channels: posts are by
        admins, but anyone who reads the channel can press its buttons: the presser must
        be one of its administrators."""
        chat = update.effective_chat
        if chat is None or chat.type == ChatType.PRIVATE:
            return True
        if update.callback_query is None:
            if chat.type == ChatType.CHANNEL:
                return True
            message = update.effective_message
            if message and message.sender_chat and message.sender_chat.id == chat.id:
                return True  # an anonymous administrator posting as the group
        user = update.effective_user
        if user is None:
            return False
        return await self.admins.is_admin(bot, chat.id, user.id)
