"""A chat's choices in /settings: pictures, link previews, silent alerts, its language and
its daily digest's time; what they are and the changes its buttons make.

Each is a column of the chat's row (migrations 0006, 0008), read by whatever it shapes:
the sender reads pictures, link previews and silence with each outbox row; alerts, notices
and digests are written in chats.language, which a chosen language overrides (Chats).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.digests.scheduler import DigestScheduler
from bot.store import Store
from bot.usecases.chats import Chats

# The choices that are on or off, by the name of their column (store.chats.FLAG_COLUMNS).
FLAGS = ("pictures", "link_preview", "silent")
LANGUAGE_CHOICES = ("", "en", "zh")  # "": automatic (the language of whoever speaks)


@dataclass(frozen=True, slots=True)
class Choices:
    """What a chat's /settings shows: each choice as it is in effect."""

    pictures: bool
    link_preview: bool  # the operator's telegram.link_preview while the chat never chose
    silent: bool
    language_choice: str  # one of LANGUAGE_CHOICES
    language: str  # the language in effect
    digest_time: str | None  # "HH:MM" of the daily digest; None: off
    zone: str  # the digest's zone (the chat's, else the operator's default)

    def flag(self, name: str) -> bool:
        return bool(getattr(self, name))


class ChatChoices:
    def __init__(
        self,
        store: Store,
        chats: Chats,
        digests: DigestScheduler,
        *,
        default_link_preview: bool,
        default_zone: str,
    ) -> None:
        self.store = store
        self.chats = chats
        self.digests = digests
        self.default_link_preview = default_link_preview
        self.default_zone = default_zone

    async def current(self, chat_id: int) -> Choices:
        chat = await self.store.chats.get(chat_id)
        if chat is None:  # every command remembers its chat first: the defaults, then
            return Choices(
                True, self.default_link_preview, False, "", "en", None, self.default_zone
            )
        digest = None
        if chat.digest_hour is not None and chat.digest_minute is not None:
            digest = f"{chat.digest_hour:02d}:{chat.digest_minute:02d}"
        preview = chat.link_preview
        return Choices(
            pictures=chat.pictures,
            link_preview=self.default_link_preview if preview is None else preview,
            silent=chat.silent,
            language_choice=chat.language_choice,
            language=chat.language,
            digest_time=digest,
            zone=chat.timezone or self.default_zone,
        )

    async def set_flag(self, chat_id: int, name: str, value: bool) -> None:
        """Pictures, link previews or silence on or off: from the chat's next message on."""
        await self.store.chats.set_flag(chat_id, name, value)

    async def choose_language(self, chat_id: int, choice: str, language_code: str | None) -> str:
        """ "en", "zh", or "" (automatic: `language_code`'s, the chooser's). Returns the
        chat's language from now on."""
        if choice not in LANGUAGE_CHOICES:
            raise ValueError(f"not a language choice: {choice!r}")
        return await self.chats.choose_language(chat_id, choice, language_code)

    async def set_digest_time(self, chat_id: int, time: str | None, thread_id: int | None) -> None:
        """The daily digest at `time` ("HH:MM", in the chat's zone), or off (None)."""
        if time is None:
            await self.digests.turn_off(chat_id)
        else:
            await self.digests.set_schedule(chat_id, [time], thread_id=thread_id)
