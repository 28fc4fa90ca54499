"""A chat's keyword filter: show, add, remove, clear (and keep the alert index in step).

With several instances on one PostgreSQL database, a change made through any of them
reaches every instance's index within a second: the store tells them as it commits
(bot/store/changes.py) and `KeywordSync` reloads what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.config import KeywordSettings
from bot.filters import (
    Keyword,
    KeywordIndex,
    check_limit,
    merge_keywords,
    parse_keywords,
    remove_keywords,
)
from bot.store import Store

log = logging.getLogger(__name__)

# Removing takes what the chat has, whatever its length: no limit worth refusing over.
_REMOVE_MAX_LENGTH = 10_000


class KeywordFilters:
    def __init__(self, store: Store, index: KeywordIndex, limits: KeywordSettings) -> None:
        self.store = store
        self.index = index  # what routing matches new stories with
        self.limits = limits

    async def current(self, chat_id: int) -> list[Keyword]:
        return await self.store.chats.keywords(chat_id)

    async def add(self, chat_id: int, text: str) -> tuple[list[Keyword], list[Keyword]]:
        """Add keywords (with -exclusions and "phrases"): (added, already in the filter)."""
        adding = parse_keywords(text, max_length=self.limits.max_length)
        existing = await self.current(chat_id)
        check_limit(existing, adding, max_per_chat=self.limits.max_per_chat)
        merged = merge_keywords(existing, adding)
        await self._save(chat_id, merged)
        added = merged[len(existing) :]
        new_keys = {k.key for k in added}
        return added, [k for k in adding if k.key not in new_keys]

    async def remove(self, chat_id: int, text: str) -> tuple[list[Keyword], list[Keyword]]:
        """(removed, not found)."""
        removing = parse_keywords(text, max_length=_REMOVE_MAX_LENGTH)
        existing = await self.current(chat_id)
        kept, removed = remove_keywords(existing, removing)
        removed_keys = {k.key for k in removed}
        missing = [k for k in removing if k.key not in removed_keys]
        if removed:
            await self._save(chat_id, kept)
        return removed, missing

    async def clear(self, chat_id: int) -> None:
        await self._save(chat_id, [])

    async def load_all(self) -> None:
        """Fill the alert index with every chat's filter (at start)."""
        for chat_id, keywords in (await self.store.chats.all_keywords()).items():
            self.index.set_chat(chat_id, keywords)

    async def reload_chat(self, chat_id: int) -> None:
        """Take a chat's keywords as stored now (another instance may have changed them)."""
        self.index.set_chat(chat_id, await self.store.chats.keywords(chat_id))

    async def reload_all(self) -> None:
        """Make the index what is stored now, every chat: after changes may have been missed.
        Chats whose keywords are gone lose their filter; the others are set again."""
        stored = await self.store.chats.all_keywords()
        for chat_id in self.index.chat_ids() - stored.keys():
            self.index.remove_chat(chat_id)
        for done, (chat_id, keywords) in enumerate(stored.items(), 1):
            self.index.set_chat(chat_id, keywords)
            if done % 1000 == 0:
                await asyncio.sleep(0)  # 100,000 chats: let alerts and commands run between

    async def _save(self, chat_id: int, keywords: list[Keyword]) -> None:
        await self.store.chats.set_keywords(chat_id, keywords)
        self.index.set_chat(chat_id, keywords)


class KeywordSync:
    """Keeps this instance's keyword index in step with changes any instance makes
    (PostgreSQL; on SQLite this instance makes them all, and nothing runs)."""

    def __init__(self, store: Store, keywords: KeywordFilters) -> None:
        self.store = store
        self.keywords = keywords
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        changes = self.store.keyword_changes
        if not changes.shared or self._task is not None:
            return
        self._task = asyncio.create_task(
            changes.follow(self.keywords.reload_chat, self._reload_all), name="keyword-sync"
        )

    async def _reload_all(self) -> None:
        await self.keywords.reload_all()
        log.info("event=keywords_reloaded chats=%d", len(self.keywords.index))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
