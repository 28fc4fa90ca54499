"""What users do: the messages, commands, files and button presses the bot receives.

Each action is queued as an update for getUpdates, shaped as Telegram shapes it (bot
commands and URLs in a user's text get their entities, as Telegram adds them).
"""

from __future__ import annotations

import time

from tests.fakes.telegram_api.entities import detect_entities
from tests.fakes.telegram_api.errors import JsonDict
from tests.fakes.telegram_api.state import Chat, ChatState, FakeState, SentMessage, User


class UserActions(FakeState):
    """Updates a test makes users (and channel admins) cause."""

    def user_message(
        self,
        chat: Chat,
        user: User,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> JsonDict:
        """A user writes `text` (bot commands and URLs get their entities); returns the update."""
        self._users.setdefault(user.id, user)
        state = self._chats.get(chat.id) or self._register(chat, "member")
        state.members.add(user.id)
        extra: JsonDict = {"from": user.to_api(), "text": text}
        entities = detect_entities(text)
        if entities:
            extra["entities"] = entities
        if thread_id is not None:
            state.topics.add(thread_id)
            extra["message_thread_id"] = thread_id
            if chat.is_forum:
                extra["is_topic_message"] = True
        if reply_to is not None:
            extra["reply_to_message"] = self._message_api(state, reply_to)
        return self._queue_message_update(state, extra)

    def user_command(
        self,
        chat: Chat,
        user: User,
        command: str,
        *args: str,
        thread_id: int | None = None,
        mention: bool | None = None,
    ) -> JsonDict:
        """A user sends /command (with @botname in groups unless mention=False) and args."""
        if mention is None:
            mention = chat.is_group
        text = "/" + command + (f"@{self.bot_user.username}" if mention else "")
        text = " ".join([text, *args])
        return self.user_message(chat, user, text, thread_id=thread_id)

    def channel_post(self, chat: Chat, text: str) -> JsonDict:
        """A post in a channel the bot administers."""
        state = self._chats.get(chat.id) or self._register(chat, "administrator")
        extra: JsonDict = {"sender_chat": state.api, "text": text}
        entities = detect_entities(text)
        if entities:
            extra["entities"] = entities
        return self._queue_message_update(state, extra, kind="channel_post")

    def user_document(
        self,
        chat: Chat,
        user: User,
        content: bytes,
        file_name: str,
        *,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> JsonDict:
        """A user sends a file; the bot can fetch it with getFile and download it."""
        self._users.setdefault(user.id, user)
        state = self._chats.get(chat.id) or self._register(chat, "member")
        state.members.add(user.id)
        stored = self._store_file(content, file_name, mime_type)
        extra: JsonDict = {"from": user.to_api(), "document": stored.document()}
        if caption:
            extra["caption"] = caption
        return self._queue_message_update(state, extra)

    def press_button(
        self,
        message: SentMessage,
        user: User,
        *,
        data: str | None = None,
        text: str | None = None,
    ) -> JsonDict:
        """A user presses an inline button of a bot message (chosen by callback data or text).

        Raises ValueError when the message has no such button: a test cannot press a button
        the bot never showed.
        """
        for button in message.buttons:
            if (data is None or button.get("callback_data") == data) and (
                text is None or button["text"] == text
            ):
                break
        else:
            raise ValueError(f"no button {data or text!r} in message {message.message_id}")
        if "callback_data" not in button:
            raise ValueError(f"button {button['text']!r} has no callback_data")
        return self._queue_callback_query(message, user, button["callback_data"])

    def press_forged_button(self, message: SentMessage, user: User, data: str) -> JsonDict:
        """A modified client sends a callback query with `data` the bot never put on a button
        of `message` (any string up to Telegram's 64 bytes)."""
        if not 1 <= len(data.encode()) <= 64:
            raise ValueError("callback data must be 1 to 64 bytes")
        return self._queue_callback_query(message, user, data)

    def _message_api(self, state: ChatState, message_id: int) -> JsonDict:
        sent = state.messages.get(message_id)
        if sent is not None:
            return self._sent_api(state, sent)
        return {"message_id": message_id, "date": int(time.time()), "chat": state.api}

    def _queue_callback_query(self, message: SentMessage, user: User, data: str) -> JsonDict:
        self._users.setdefault(user.id, user)
        query_id = f"{next(self._callback_counter)}{user.id}"
        self._callback_queries[query_id] = False
        state = self._state(message.chat_id)
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": self._sent_api(state, message),
            "chat_instance": str(-abs(message.chat_id) * 7919),
            "data": data,
        }
        return self._queue_update("callback_query", query)

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates not yet confirmed by the bot (through a later getUpdates offset)."""
        return list(self._updates)
