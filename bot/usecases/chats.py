"""A chat's life with the bot, in one place: remembered when it speaks (and resumed when it
had been paused), paused when it can no longer be reached, moved when a group becomes a
supergroup; and the notices a feed's subscribers get when it fails or recovers.

The sender (a send refused: blocked, kicked, migrated) and the Telegram handlers (member
updates, service messages, every command) both come here, so each change is made one way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.clock import Clock
from bot.i18n import failure_reason, language_of, t
from bot.store import Feed, Paused, Store

log = logging.getLogger(__name__)

# Told after notices were queued, so the sender wakes at once.
QueuedListener = Callable[[], None]


class Chats:
    def __init__(self, store: Store, clock: Clock, *, on_queued: QueuedListener | None = None):
        self.store = store
        self.clock = clock
        self.on_queued = on_queued
        # Told when a chat was paused: the feeds it followed may have no active chat left
        # (WebSub unsubscribes from their hubs).
        self.on_left: Callable[[], None] | None = None
        # Chats stored by this process (and not paused since), with their language: a
        # command from one of them needs no write.
        self.known: dict[int, str] = {}
        # Those of them whose language was chosen in /settings: no user's changes it.
        self.chosen: set[int] = set()

    async def remember(
        self, chat_id: int, *, kind: str, title: str, language_code: str | None
    ) -> tuple[str, bool]:
        """Store the chat (once per process, or when its language changes).

        Returns its language (the one chosen in /settings, else the user's, else the one
        stored) and whether it had been paused: a chat that sends a command can be reached
        again, so its subscriptions resume.
        """
        asked = language_of(language_code) if language_code else None
        known = self.known.get(chat_id)
        if known is not None and (asked in (None, known) or chat_id in self.chosen):
            return known, False
        language, chosen = await self.store.chats.upsert(
            chat_id, kind=kind, title=title, language=asked, now_ms=self.clock.now_ms()
        )
        resumed = await self.store.chats.resume(chat_id)
        self._keep(chat_id, language, chosen)
        return language, resumed

    def language(self, chat_id: int) -> str | None:
        """The language of a chat this process has stored, without asking the store."""
        return self.known.get(chat_id)

    async def reply_language(self, chat_id: int, language_code: str | None) -> str:
        """What a user's button press in the chat is answered in: the chat's chosen
        language, else the user's."""
        if chat_id not in self.known:
            stored = await self.store.chats.get(chat_id)
            if stored is not None and stored.language_choice:
                return stored.language
        elif chat_id in self.chosen:
            return self.known[chat_id]
        return language_of(language_code)

    async def choose_language(self, chat_id: int, choice: str, language_code: str | None) -> str:
        """/settings: "en" or "zh" from now on, or "" (automatic): the language of the user
        who chose it, then of whoever speaks next. Returns the chat's language."""
        language = choice or language_of(language_code)
        await self.store.chats.choose_language(chat_id, choice, language)
        self._keep(chat_id, language, bool(choice))
        return language

    def _keep(self, chat_id: int, language: str, chosen: bool) -> None:
        self.known[chat_id] = language
        if chosen:
            self.chosen.add(chat_id)
        else:
            self.chosen.discard(chat_id)

    def forget(self, chat_id: int) -> None:
        """The next command from the chat must look it up again (it may have been paused)."""
        self.known.pop(chat_id, None)
        self.chosen.discard(chat_id)

    async def pause(self, chat_id: int) -> Paused:
        """The chat can no longer be reached: paused, and its queued messages dropped."""
        self.forget(chat_id)
        paused = await self.store.chats.pause(chat_id)
        # Again: a command that came in while the pause was written must not leave the
        # paused chat marked as stored.
        self.forget(chat_id)
        if self.on_left:
            self.on_left()
        return paused

    async def migrate(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup: its subscriptions, keywords and queue move along."""
        await self.store.chats.migrate(old_id, new_id)
        self.forget(old_id)  # it never speaks again
        log.info("event=chat_migrated from=%d to=%d", old_id, new_id)

    async def tell_feed_health(self, feed: Feed, failing: bool) -> None:
        """Tell a feed's subscribers, once, that it was paused or gone, or that it recovered."""
        current = await self.store.feeds.get(feed.id) or feed
        if failing:
            key = "notice.feed_gone" if current.status == "gone" else "notice.feed_paused"
        else:
            key = "notice.feed_recovered"
        failure = current.failure
        for chat_id, thread_id, language in await self.store.feeds.subscriber_languages(feed.id):
            text = t(
                language,
                key,
                title=current.display_title,
                url=current.url,
                error=failure_reason(language, failure) if failure else "?",
            )
            await self.store.outbox.enqueue_text(
                chat_id, thread_id, kind="notice", texts=[text], now_ms=self.clock.now_ms()
            )
        if self.on_queued:
            self.on_queued()
