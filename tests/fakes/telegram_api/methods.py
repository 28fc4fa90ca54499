"""What each Bot API method the fake models does, with Telegram's refusals.

A call reaches its handler after the spec has checked its parameters (spec.py). Handlers
check what Telegram checks beyond types: the chat exists and accepts the bot (blocked,
kicked, migrated, deactivated, unknown chats), flood control, replies, topics, edits and
deletions of known messages, chat actions, command lists, callback answers (at most 200
characters). Valid calls of methods the fake does not model succeed without effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from tests.fakes.telegram_api.entities import CAPTION_LIMIT, MESSAGE_LIMIT, formatted_text
from tests.fakes.telegram_api.errors import ApiError, JsonDict, bad_request
from tests.fakes.telegram_api.floods import too_many_requests
from tests.fakes.telegram_api.photos import fetch_photo, photo_dimensions
from tests.fakes.telegram_api.spec import INTEGER_TEXT, UploadedFile
from tests.fakes.telegram_api.state import DEFAULT_UPDATES, ChatState, SentMessage
from tests.fakes.telegram_api.webhooks import Webhooks

CALLBACK_ANSWER_LIMIT: Final = 200  # characters of an answerCallbackQuery notification
CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
DOWNLOAD_LIMIT: Final = 20 * 1024 * 1024  # getFile refuses bigger files, as Telegram does
_COMMAND_NAME: Final = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE_CODE: Final = re.compile(r"[a-z]{2}")
_CONFLICT_OTHER_POLL: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

Handler = Callable[[dict[str, Any]], Any]


def no_effect(params: dict[str, Any]) -> bool:
    """Valid calls of methods the fake does not model succeed without effect."""
    return True


class BotMethods(Webhooks):
    """The Bot API methods, one handler each, run on the fake's state (webhooks: webhooks.py)."""

    def _method_handlers(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "getFile": self._get_file,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "getChat": self._get_chat,
            "sendChatAction": self._send_chat_action,
        }

    def _get_me(self, params: dict[str, Any]) -> JsonDict:
        return {
            **self.bot_user.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    # ---- updates and webhooks --------------------------------------------------------------

    async def _get_updates(self, params: dict[str, Any]) -> list[JsonDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_arrived.set()  # an older poll wakes up and answers 409, as on Telegram
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"]) or DEFAULT_UPDATES
        offset = params.get("offset")
        limit = min(max(params.get("limit", 100), 1), 100)
        self._confirm(offset)
        deadline = asyncio.get_running_loop().time() + max(params.get("timeout", 0), 0)
        while True:
            batch = self._deliverable(offset, limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or remaining <= 0 or self._closing:
                return batch
            self._updates_arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._updates_arrived.wait()
            if generation != self._poll_generation:
                raise ApiError(409, _CONFLICT_OTHER_POLL)

    def _confirm(self, offset: int | None) -> None:
        """Telegram forgets updates below a given offset; a negative one keeps the last -N."""
        if offset is None:
            return
        before = len(self._updates)
        if offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        else:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        if len(self._updates) != before and self._waiters:
            self._notify()

    def _deliverable(self, offset: int | None, limit: int) -> list[JsonDict]:
        # Updates of types the bot did not ask for are dropped, as Telegram does.
        allowed = self._allowed_updates
        kept = [u for u in self._updates if _update_kind(u) in allowed]
        if len(kept) != len(self._updates):
            self._updates = deque(kept)
        start = offset if offset is not None and offset > 0 else 0
        return [u for u in kept if u["update_id"] >= start][:limit]

    # ---- command lists ---------------------------------------------------------------------

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        language = params.get("language_code", "")
        if language and not _LANGUAGE_CODE.fullmatch(language):
            raise bad_request("invalid language code specified")
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), language

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params["commands"]
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        for command in commands:
            if not _COMMAND_NAME.fullmatch(command["command"]):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise bad_request("command description must be 1-256 characters long")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[JsonDict]:
        return self.commands.get(self._commands_key(params), [])

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    # ---- the chat gate ---------------------------------------------------------------------

    # Chat-targeting methods share this gate: the chat must exist and accept the bot.
    def _target(self, params: dict[str, Any], *, sending: bool = False) -> ChatState:
        chat_id = params["chat_id"]
        if isinstance(chat_id, str):
            chat_id = self._resolve_username(chat_id)
        state = self._chats.get(chat_id)
        if state is None:
            raise bad_request("chat not found")
        if state.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": state.migrated_to},
            )
        if state.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if state.bot_status in ("kicked", "left"):
            raise ApiError(403, _forbidden_text(state))
        if sending:
            if state.chat.type == "channel" and state.bot_status != "administrator":
                raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
            if state.chat.type == "channel" and not state.bot_can_post:
                raise bad_request("need administrator rights in the channel chat")
            if state.bot_status == "restricted":
                raise bad_request("not enough rights to send text messages to the chat")
            thread_id = params.get("message_thread_id")
            if thread_id is not None and state.chat.is_forum and thread_id not in state.topics:
                raise bad_request("message thread not found")
            self._check_reply(state, params.get("reply_parameters"))
            retry_after = (
                state.forced_retry.popleft() if state.forced_retry else self.flood.admit(chat_id)
            )
            if retry_after:
                self.retry_after_by_chat[chat_id] += 1
                raise too_many_requests(retry_after)
        return state

    def _resolve_username(self, chat_id: str) -> int:
        if INTEGER_TEXT.fullmatch(chat_id):
            return int(chat_id)
        if chat_id.startswith("@"):
            for state in self._chats.values():
                if state.chat.username and state.chat.username.lower() == chat_id[1:].lower():
                    return state.chat.id
        raise bad_request("chat not found")

    def _check_reply(self, state: ChatState, reply: JsonDict | None) -> None:
        if not reply or reply.get("allow_sending_without_reply"):
            return
        if "chat_id" in reply and reply["chat_id"] != state.chat.id:
            return  # a reply into another chat; not tracked
        message_id = reply["message_id"]
        if message_id not in state.user_messages and message_id not in state.messages:
            raise bad_request("message to be replied not found")

    # ---- sending ---------------------------------------------------------------------------

    def _formatted(
        self, text: str, parse_mode: str | None, entities: list[JsonDict] | None, limit: int
    ) -> tuple[str, list[JsonDict]]:
        """The text as Telegram formats it, with this fake's strictness about entities."""
        return formatted_text(
            text, parse_mode, entities, limit, strict_entities=self.strict_html_entities
        )

    def _send_message(self, params: dict[str, Any]) -> JsonDict:
        # Format first: a malformed message is refused before it can count against limits.
        if not params["text"]:
            raise bad_request("message text is empty")
        text, entities = self._formatted(
            params["text"], params.get("parse_mode"), params.get("entities"), MESSAGE_LIMIT
        )
        if not text:
            raise bad_request("message text is empty")
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendMessage", params, text, entities, params["text"])
        return self._sent_api(state, sent)

    def _send_document(self, params: dict[str, Any]) -> JsonDict:
        caption = params.get("caption") or ""
        text, entities = self._formatted(
            caption, params.get("parse_mode"), params.get("caption_entities"), CAPTION_LIMIT
        )
        document = params["document"]
        if isinstance(document, UploadedFile):
            stored = self._store_file(document.data, document.filename, document.content_type)
        elif document in self._files:
            stored = self._files[document]
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendDocument", params, text, entities, caption)
        sent.document = stored.document()
        return self._sent_api(state, sent)

    async def _send_photo(self, params: dict[str, Any]) -> JsonDict:
        caption = params.get("caption") or ""
        text, entities = self._formatted(
            caption, params.get("parse_mode"), params.get("caption_entities"), CAPTION_LIMIT
        )
        self._target(params)  # the chat's own errors come before any fetch
        photo = await self._photo_sizes(params["photo"])
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendPhoto", params, text, entities, caption)
        sent.photo = photo
        return self._sent_api(state, sent)

    async def _photo_sizes(self, photo: Any) -> list[JsonDict]:
        """The PhotoSize array of a photo given as an upload, a file_id or a URL."""
        if isinstance(photo, UploadedFile):
            data = photo.data
        elif photo in self._files:
            data = self._files[photo].data
        elif photo.lower().startswith(("http://", "https://")):
            data = await fetch_photo(photo)
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        width, height = photo_dimensions(data)
        stored = self._store_file(data, None, None)
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(data),
            }
        ]

    def _store_sent(
        self,
        state: ChatState,
        method: str,
        params: dict[str, Any],
        text: str,
        entities: list[JsonDict],
        source: str,
    ) -> SentMessage:
        sent = SentMessage(
            chat_id=state.chat.id,
            message_id=state.take_message_id(),
            text=text,
            entities=entities,
            source=source,
            parse_mode=params.get("parse_mode"),
            thread_id=params.get("message_thread_id"),
            reply_markup=params.get("reply_markup"),
            method=method,
            params=params,
            sent_at=time.time(),
        )
        state.messages[sent.message_id] = sent
        self.sent.append(sent)
        if self._waiters:
            self._notify()
        return sent

    # ---- editing and deleting --------------------------------------------------------------

    def _editable(self, params: dict[str, Any], what: str) -> tuple[ChatState, SentMessage]:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not supported by the fake")
        if "chat_id" not in params or "message_id" not in params:
            raise bad_request("message identifier is not specified")
        state = self._target(params)
        sent = state.messages.get(params["message_id"])
        if sent is None or sent.deleted:
            if params["message_id"] in state.user_messages:
                raise bad_request("message can't be edited")
            raise bad_request(f"message to {what} not found")
        return state, sent

    def _edit_message_text(self, params: dict[str, Any]) -> JsonDict:
        if "text" not in params:
            raise bad_request("message text is empty")
        text, entities = self._formatted(
            params["text"], params.get("parse_mode"), params.get("entities"), MESSAGE_LIMIT
        )
        if not text:
            raise bad_request("message text is empty")
        state, sent = self._editable(params, "edit")
        if sent.document is not None:
            raise bad_request("there is no text in the message to edit")
        markup = params.get("reply_markup")
        if text == sent.text and entities == sent.entities and markup == sent.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.edits.append(sent.text)
        sent.text, sent.entities, sent.source = text, entities, params["text"]
        sent.parse_mode, sent.reply_markup = params.get("parse_mode"), markup
        sent.edit_date = int(time.time())
        if self._waiters:
            self._notify()
        return self._sent_api(state, sent)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> JsonDict:
        state, sent = self._editable(params, "edit")
        markup = params.get("reply_markup")
        if markup == sent.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        return self._sent_api(state, sent)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        state = self._target(params)
        message_id = params["message_id"]
        sent = state.messages.get(message_id)
        if sent is not None and not sent.deleted:
            sent.deleted = True
        elif message_id in state.user_messages:
            if state.chat.type != "private" and state.bot_status != "administrator":
                raise bad_request("message can't be deleted")
            state.user_messages.discard(message_id)
        else:
            raise bad_request("message to delete not found")
        if self._waiters:
            self._notify()
        return True

    # ---- files and callback answers --------------------------------------------------------

    def _get_file(self, params: dict[str, Any]) -> JsonDict:
        stored = self._files.get(params["file_id"])
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        if len(params.get("text", "")) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        query_id = params["callback_query_id"]
        if self._callback_queries.get(query_id, True):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_queries[query_id] = True
        self.callback_answers[query_id] = params
        if self._waiters:
            self._notify()
        return True

    # ---- chats and members -----------------------------------------------------------------

    def _status_of(self, state: ChatState, user_id: int) -> str:
        if user_id == self.bot_user.id:
            return state.bot_status
        if user_id in state.admins:
            return state.admins[user_id]
        if state.chat.type == "private":
            return "member" if user_id == state.chat.id else "left"
        return "member" if user_id in state.members else "left"

    def _get_chat_member(self, params: dict[str, Any]) -> JsonDict:
        state = self._target(params)
        user = self._users.get(params["user_id"])
        if user is None:
            raise bad_request("user not found")
        return self._member_api(user, self._status_of(state, user.id), state)

    def _get_chat_administrators(self, params: dict[str, Any]) -> list[JsonDict]:
        state = self._target(params)
        if state.chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        admins = [self._member_api(self._users[uid], st) for uid, st in state.admins.items()]
        if state.bot_status == "administrator":
            admins.append(self._member_api(self.bot_user, "administrator", state))
        return admins

    def _get_chat(self, params: dict[str, Any]) -> JsonDict:
        state = self._target(params)
        return {
            **state.api,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        if params["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._target(params)
        return True


def _forbidden_text(state: ChatState) -> str:
    kind = state.chat.type
    if kind == "private":
        return "Forbidden: bot was blocked by the user"
    if state.bot_status == "kicked":
        return f"Forbidden: bot was kicked from the {kind} chat"
    return f"Forbidden: bot is not a member of the {kind} chat"


def _update_kind(update: JsonDict) -> str:
    return next(key for key in update if key != "update_id")
