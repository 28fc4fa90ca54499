"""What a test does to Telegram: the users and chats that exist, and the faults it injects.

Setup: add_user, private_chat, add_group, add_channel, set_admins, add_topic. A chat must
be known to the fake (added here, or through an injected update) before the bot can use it,
as on Telegram.

Faults of a chat: block, kick, deactivate_user, forget_chat, migrate, force_retry_after.
Faults of the server or the network: fail_next, fail_for, drop_next, delay, answer_slowly.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable

from tests.fakes.telegram_api.floods import FloodLimits
from tests.fakes.telegram_api.state import (
    Chat,
    ChatState,
    FakeState,
    SlowSpell,
    TransportFault,
    User,
)


class Controls(FakeState):
    """The test's controls of the fake: who exists and what goes wrong."""

    # ---- chats and users (test setup) ------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> User:
        user = User(user_id, first_name, username=username, language_code=language_code)
        self._users[user_id] = user
        return user

    def private_chat(self, user: User) -> Chat:
        """The user's private chat with the bot (its id is the user's id)."""
        self._users.setdefault(user.id, user)
        chat = Chat(user.id, "private", username=user.username, first_name=user.first_name)
        state = self._register(chat, "member")
        state.members.add(user.id)
        return chat

    def add_group(
        self,
        chat_id: int,
        title: str = "Group",
        *,
        supergroup: bool = False,
        forum: bool = False,
        username: str | None = None,
        admins: Iterable[User] = (),
        creator: User | None = None,
        bot_status: str = "member",
    ) -> Chat:
        """A group (or supergroup, or forum supergroup) the bot is in; chat_id is negative.
        bot_status="restricted": the bot is a member that may not send messages."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        kind = "supergroup" if supergroup or forum else "group"
        chat = Chat(chat_id, kind, title=title, username=username, is_forum=forum)
        self._register(chat, bot_status)
        self.set_admins(chat_id, admins, creator=creator)
        return chat

    def add_channel(
        self,
        chat_id: int,
        title: str = "Channel",
        *,
        username: str | None = None,
        admins: Iterable[User] = (),
        creator: User | None = None,
        bot_status: str = "administrator",
        bot_can_post: bool = True,
    ) -> Chat:
        """A channel; the bot must be an administrator allowed to post messages to post
        there, as on Telegram (bot_can_post=False: an administrator without that right)."""
        if chat_id >= 0:
            raise ValueError("channel chat ids are negative")
        chat = Chat(chat_id, "channel", title=title, username=username)
        self._register(chat, bot_status).bot_can_post = bot_can_post
        self.set_admins(chat_id, admins, creator=creator)
        return chat

    def set_admins(
        self, chat_id: int, admins: Iterable[User], *, creator: User | None = None
    ) -> None:
        """Who getChatMember/getChatAdministrators report as creator and administrators."""
        state = self._state(chat_id)
        admins = list(admins)
        state.admins = {user.id: "administrator" for user in admins}
        if creator is not None:
            state.admins[creator.id] = "creator"
            admins.append(creator)
        for user in admins:
            self._users.setdefault(user.id, user)
        for user_id in state.admins:
            state.members.add(user_id)

    def add_topic(self, chat_id: int, thread_id: int) -> None:
        """A forum topic that messages may be sent to."""
        self._state(chat_id).topics.add(thread_id)

    def chat(self, chat_id: int) -> Chat:
        return self._state(chat_id).chat

    # ---- faults ----------------------------------------------------------------------------

    def block(self, chat_id: int, *, update: bool = True) -> None:
        """The user blocks the bot: sends to their private chat answer 403."""
        state = self._state(chat_id)
        self._set_bot_status(state, "kicked", self._users[chat_id], update)

    def unblock(self, chat_id: int, *, update: bool = True) -> None:
        state = self._state(chat_id)
        self._set_bot_status(state, "member", self._users[chat_id], update)

    def kick(self, chat_id: int, by: User | None = None, *, update: bool = True) -> None:
        """The bot is removed from a group, supergroup or channel: sends answer 403."""
        state = self._state(chat_id)
        self._set_bot_status(state, "kicked", by or self._any_admin(state), update)

    def add_bot(
        self, chat_id: int, by: User, *, status: str = "member", update: bool = True
    ) -> None:
        """The bot is (re-)added to a known chat as member or administrator."""
        self._set_bot_status(self._state(chat_id), status, by, update)

    def deactivate_user(self, chat_id: int) -> None:
        """The user deleted their account: 403 "Forbidden: user is deactivated"."""
        self._state(chat_id).deactivated = True

    def forget_chat(self, chat_id: int) -> None:
        """From now on the chat does not exist: 400 "Bad Request: chat not found"."""
        self._chats.pop(chat_id, None)

    def migrate(self, chat_id: int, new_chat_id: int, *, update: bool = True) -> Chat:
        """A group becomes a supergroup: the old id answers 400 with migrate_to_chat_id.

        The new supergroup keeps the title, admins and members; with `update`, the two
        service messages Telegram sends (migrate_to_chat_id, migrate_from_chat_id) are queued.
        """
        old = self._state(chat_id)
        chat = Chat(new_chat_id, "supergroup", title=old.chat.title)
        new = self._register(chat, old.bot_status)
        new.admins, new.members = dict(old.admins), set(old.members)
        if update:
            self._queue_message_update(old, {"migrate_to_chat_id": new_chat_id})
            self._queue_message_update(new, {"migrate_from_chat_id": chat_id})
        old.migrated_to = new_chat_id
        return chat

    def force_retry_after(self, chat_id: int, retry_after: int, *, times: int = 1) -> None:
        """The next `times` messages to this chat answer 429 with this retry_after."""
        self._state(chat_id).forced_retry.extend([retry_after] * times)

    def fail_next(
        self, count: int, *, status: int = 502, methods: Collection[str] | None = None
    ) -> None:
        """The next `count` calls (of `methods`, default all) answer `status` (502, 500...)."""
        self._faults.append(TransportFault("fail", status, count, None, _names(methods)))

    def fail_for(
        self, seconds: float, *, status: int = 502, methods: Collection[str] | None = None
    ) -> None:
        """The API is down for `seconds`: every call answers `status`."""
        until = self._clock() + seconds
        self._faults.append(TransportFault("fail", status, None, until, _names(methods)))

    def drop_next(
        self,
        count: int,
        *,
        methods: Collection[str] | None = None,
        after_processing: bool = False,
    ) -> None:
        """Close the connection without an answer for the next `count` calls.

        With `after_processing` the call takes effect first (the message is delivered and
        recorded) and only the answer is lost, as when a connection breaks in flight.
        """
        kind = "drop_after" if after_processing else "drop"
        self._faults.append(TransportFault(kind, 0, count, None, _names(methods)))

    def delay(self, seconds: float, *, methods: Collection[str] | None = None) -> None:
        """Answer every call (of `methods`) `seconds` late; delay(0) ends it."""
        self._delay, self._delay_methods = seconds, _names(methods)

    def answer_slowly(
        self, seconds: float, *, for_seconds: float, methods: Collection[str] | None = None
    ) -> None:
        """Telegram is slow for `for_seconds`: each call (of `methods`) arriving meanwhile is
        read at once and carried out and answered `seconds` later, even when the client has
        given up waiting by then, as the real Telegram carries out every request it received.
        """
        self._slow = SlowSpell(seconds, self._clock() + for_seconds, _names(methods))

    def clear_faults(self) -> None:
        """End transport faults, delays and forced 429s (chat states stay as they are)."""
        self._faults.clear()
        self._delay = 0.0
        self._slow = SlowSpell(0.0, 0.0, None)
        for state in self._chats.values():
            state.forced_retry.clear()

    @property
    def limits(self) -> FloodLimits:
        return self.flood.limits

    def _set_bot_status(self, state: ChatState, status: str, by: User, update: bool) -> None:
        old = state.bot_status
        state.bot_status = status
        if update and old != status:
            self._queue_update(
                "my_chat_member",
                {
                    "chat": state.api,
                    "from": by.to_api(),
                    "date": int(time.time()),
                    "old_chat_member": self._member_api(self.bot_user, old),
                    "new_chat_member": self._member_api(self.bot_user, status),
                },
            )

    def _any_admin(self, state: ChatState) -> User:
        for user_id in state.admins:
            return self._users[user_id]
        return User(777000, "Telegram")


def _names(methods: Collection[str] | None) -> frozenset[str] | None:
    return frozenset(methods) if methods is not None else None
