"""What the fake Telegram knows: users, chats, the messages in them, files and updates.

The records (User, Chat, SentMessage...) are what tests read; FakeState holds them together
with the faults in effect and the updates waiting for getUpdates, and shows them the way
the Bot API does (Message, ChatMember, Document objects). FakeTelegram is assembled from
parts that share this state, one per module: Controls (test setup and faults, controls.py),
UserActions (what users do, users.py), BotMethods (what the bot's calls do, methods.py)
and the server itself (server.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.fakes.telegram_api.entities import render_html
from tests.fakes.telegram_api.errors import JsonDict
from tests.fakes.telegram_api.floods import FloodControl
from tests.fakes.telegram_api.spec import ApiSpec

# --------------------------------------------------------------------------------------------
# Users, chats and what the bot sent


@dataclass(frozen=True, slots=True)
class User:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str  # private, group, supergroup, channel
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    is_forum: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.is_forum:
            data["is_forum"] = True
        return data

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")


@dataclass(eq=False)
class SentMessage:
    """A message the bot sent, as the user sees it (`text`, `entities`, `html`)."""

    chat_id: int
    message_id: int
    text: str  # plain text after parsing; the caption for documents
    entities: list[JsonDict]
    source: str  # text (or caption) exactly as the bot sent it
    parse_mode: str | None
    thread_id: int | None
    reply_markup: JsonDict | None
    method: str
    params: dict[str, Any]
    sent_at: float  # time.time()
    document: JsonDict | None = None
    photo: list[JsonDict] | None = None  # PhotoSize array of a sendPhoto
    deleted: bool = False
    edits: list[str] = field(default_factory=list)  # earlier texts, oldest first
    edit_date: int | None = None

    @property
    def html(self) -> str:
        return render_html(self.text, self.entities)

    @property
    def buttons(self) -> list[JsonDict]:
        """The inline keyboard's buttons, row after row."""
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str  # canonical name, e.g. "sendMessage"
    params: dict[str, Any]  # converted values when valid, raw strings otherwise
    time: float  # time.time()
    status: int  # 0: the connection was dropped before the call was read
    description: str | None  # the error description, None on success
    # The client's port: which process made the call, when several share one fake.
    peer_port: int = 0


@dataclass(slots=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None
    mime_type: str | None

    def document(self) -> JsonDict:
        data: JsonDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            data["file_name"] = self.file_name
        if self.mime_type:
            data["mime_type"] = self.mime_type
        return data


@dataclass
class ChatState:
    chat: Chat
    bot_status: str  # member, administrator, restricted (may not send), kicked, left
    api: JsonDict
    next_message_id: int = 1
    messages: dict[int, SentMessage] = field(default_factory=dict)
    user_messages: set[int] = field(default_factory=set)
    admins: dict[int, str] = field(default_factory=dict)  # user id -> creator|administrator
    members: set[int] = field(default_factory=set)
    topics: set[int] = field(default_factory=set)
    deactivated: bool = False
    migrated_to: int | None = None
    forced_retry: deque[int] = field(default_factory=deque)
    bot_can_post: bool = True  # as an administrator of a channel: can_post_messages

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


# --------------------------------------------------------------------------------------------
# Faults in effect (set by controls.py, applied by server.py)


@dataclass
class TransportFault:
    """A fault of the server or the network rather than of one chat."""

    kind: str  # fail, drop, drop_after
    status: int
    remaining: int | None  # calls left, or None while `until` holds
    until: float | None
    methods: frozenset[str] | None

    def applies(self, method: str, now: float) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.until is not None:
            return now < self.until
        return bool(self.remaining)


@dataclass(frozen=True, slots=True)
class SlowSpell:
    """A while in which Telegram answers late (answer_slowly)."""

    seconds: float
    until: float
    methods: frozenset[str] | None

    def delay(self, method: str, now: float) -> float:
        """How late a call of `method` arriving `now` is carried out and answered."""
        if now >= self.until or (self.methods is not None and method not in self.methods):
            return 0.0
        return self.seconds


# --------------------------------------------------------------------------------------------
# The state shared by FakeTelegram's parts

# What getUpdates delivers until the bot names its allowed_updates, as on Telegram.
DEFAULT_UPDATES: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
# A member who may not send anything (every required field of ChatMemberRestricted).
_RESTRICTED_RIGHTS: Final = {
    "is_member": True,
    "can_send_messages": False,
    "can_send_audios": False,
    "can_send_documents": False,
    "can_send_photos": False,
    "can_send_videos": False,
    "can_send_video_notes": False,
    "can_send_voice_notes": False,
    "can_send_polls": False,
    "can_send_other_messages": False,
    "can_add_web_page_previews": False,
    "can_react_to_messages": False,
    "can_edit_tag": False,
    "can_change_info": False,
    "can_invite_users": False,
    "can_pin_messages": False,
    "can_manage_topics": False,
    "until_date": 0,
}
_ADMIN_RIGHTS: Final = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_post_messages": True,
    "can_edit_messages": True,
    "can_pin_messages": True,
    "can_manage_topics": True,
}


class FakeState:
    """Everything the fake Bot API knows, shared by the parts of FakeTelegram."""

    def __init__(
        self,
        *,
        token: str,
        bot_user: User,
        spec: ApiSpec,
        flood: FloodControl,
        clock: Callable[[], float],
        strict_html_entities: bool,
        record_requests: bool,
    ) -> None:
        self.token = token
        self.spec = spec
        self.bot_user = bot_user
        self._bot_api = bot_user.to_api()
        self.strict_html_entities = strict_html_entities
        self.record_requests = record_requests
        self.flood = flood
        self._clock = clock

        self.requests: list[RecordedRequest] = []
        self.request_counts: Counter[str] = Counter()  # by lowercased method name
        self.retry_after_by_chat: Counter[int] = Counter()  # 429s answered, per chat
        self.sent: list[SentMessage] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.webhook_url = ""

        self._users: dict[int, User] = {self.bot_user.id: self.bot_user}
        self._chats: dict[int, ChatState] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._callback_counter = itertools.count(1)
        self._updates: deque[JsonDict] = deque()
        self._next_update_id = 100_000
        self._allowed_updates: frozenset[str] = DEFAULT_UPDATES
        self._updates_arrived = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._faults: list[TransportFault] = []
        self._delay = 0.0
        self._delay_methods: frozenset[str] | None = None
        self._slow = SlowSpell(0.0, 0.0, None)
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # ---- chats -----------------------------------------------------------------------------

    def _register(self, chat: Chat, bot_status: str) -> ChatState:
        existing = self._chats.get(chat.id)
        if existing is not None:
            existing.chat, existing.api = chat, chat.to_api()
            return existing
        state = ChatState(chat=chat, bot_status=bot_status, api=chat.to_api())
        self._chats[chat.id] = state
        return state

    def _state(self, chat_id: int) -> ChatState:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise KeyError(f"chat {chat_id} is not known to the fake; add it first") from None

    # ---- updates and waiters ---------------------------------------------------------------

    def _queue_message_update(
        self, state: ChatState, extra: JsonDict, kind: str | None = None
    ) -> JsonDict:
        message_id = state.take_message_id()
        state.user_messages.add(message_id)
        message = {"message_id": message_id, "date": int(time.time()), "chat": state.api, **extra}
        if kind is None:
            kind = "channel_post" if state.chat.type == "channel" else "message"
        return self._queue_update(kind, message)

    def _queue_update(self, kind: str, payload: JsonDict) -> JsonDict:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._updates.append(update)
        self._updates_arrived.set()
        return update

    def _notify(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done() and condition():
                future.set_result(None)

    # ---- files and messages, as Bot API objects --------------------------------------------

    def _store_file(self, data: bytes, file_name: str | None, mime_type: str | None) -> StoredFile:
        number = next(self._file_counter)
        suffix = Path(file_name).suffix if file_name else ""
        stored = StoredFile(
            file_id=f"BQACAgIAAxkBAAI{number:06d}{self.bot_user.id:x}",
            file_unique_id=f"AgAD{number:06d}",
            file_path=f"documents/file_{number}{suffix}",
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _sent_api(self, state: ChatState, sent: SentMessage) -> JsonDict:
        message: JsonDict = {
            "message_id": sent.message_id,
            "from": self._bot_api,
            "date": int(sent.sent_at),
            "chat": state.api,
        }
        if state.chat.type == "channel":
            del message["from"]
            message["sender_chat"] = state.api
        if sent.thread_id is not None:
            message["message_thread_id"] = sent.thread_id
            if state.chat.is_forum:
                message["is_topic_message"] = True
        text_key, entities_key = "text", "entities"
        if sent.document is not None:
            message["document"] = sent.document
            text_key, entities_key = "caption", "caption_entities"
        if sent.photo is not None:
            message["photo"] = sent.photo
            text_key, entities_key = "caption", "caption_entities"
        if sent.text:
            message[text_key] = sent.text
        if sent.entities:
            message[entities_key] = sent.entities
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        return message

    def _member_api(self, user: User, status: str, state: ChatState | None = None) -> JsonDict:
        """A ChatMember; `state` gives the bot's own rights in that chat."""
        member: JsonDict = {"status": status, "user": user.to_api()}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(_ADMIN_RIGHTS)
            if state is not None and user.id == self.bot_user.id:
                member["can_post_messages"] = state.bot_can_post
        elif status == "restricted":
            member.update(_RESTRICTED_RIGHTS)
        elif status == "kicked":
            member["until_date"] = 0
        return member
