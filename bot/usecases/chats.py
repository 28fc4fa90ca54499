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
        # Chats stored by this process (and not paused since), with their language: a
        # command from one of them needs no write.
        self.known: dict[int, str] = {}

    async def remember(
        self, chat_id: int, *, kind: str, title: str, language_code: str | None
    ) -> tuple[str, bool]:
        """Store the chat (once per process, or when its language changes).

        Returns its language and whether it had been paused: a chat that sends a command
        can be reached again, so its subscriptions resume.
        """
        language = language_of(language_code) if language_code else self.known.get(chat_id)
        if language is None:
            stored = await self.store.chats.get(chat_id)
            language = stored.language if stored else "en"
        resumed = False
        if self.known.get(chat_id) != language:
            await self.store.chats.upsert(
                chat_id, kind=kind, title=title, language=language, now_ms=self.clock.now_ms()
            )
            resumed = await self.store.chats.resume(chat_id)
            self.known[chat_id] = language
        return language, resumed

    def language(self, chat_id: int) -> str | None:
        """The language of a chat this process has stored, without asking the store."""
        return self.known.get(chat_id)

    def forget(self, chat_id: int) -> None:
        """The next command from the chat must look it up again (it may have been paused)."""
        self.known.pop(chat_id, None)

    async def pause(self, chat_id: int) -> Paused:
        """The chat can no longer be reached: paused, and its queued messages dropped."""
        self.forget(chat_id)
        paused = await self.store.chats.pause(chat_id)
        # Again: a command that came in while the pause was written must not leave the
        # paused chat marked as stored.
        self.forget(chat_id)
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
