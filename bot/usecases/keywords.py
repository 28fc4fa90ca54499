"""A chat's keyword filter: show, add, remove, clear (and keep the alert index in step)."""

from __future__ import annotations

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

    async def _save(self, chat_id: int, keywords: list[Keyword]) -> None:
        await self.store.chats.set_keywords(chat_id, keywords)
        self.index.set_chat(chat_id, keywords)
