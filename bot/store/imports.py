"""Imports in progress: the message each one edits, so that the next start can tell the
chat of an import that a kill cut short (bot/telegram/files.py)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.db import Database


@dataclass(frozen=True, slots=True)
class UnfinishedImport:
    chat_id: int
    message_id: int  # the progress message
    language: str
    total: int  # feeds in the file


class ImportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def begin(
        self, chat_id: int, message_id: int, *, language: str, total: int, now_ms: int
    ) -> None:
        await self.db.execute(
            "INSERT INTO imports (chat_id, message_id, language, total, started_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET message_id = excluded.message_id,"
            " language = excluded.language, total = excluded.total,"
            " started_at = excluded.started_at",
            (chat_id, message_id, language, total, now_ms),
        )

    async def end(self, chat_id: int) -> None:
        await self.db.execute("DELETE FROM imports WHERE chat_id = ?", (chat_id,))

    async def unfinished(self) -> list[UnfinishedImport]:
        """Before the bot takes updates: every import still recorded was cut short."""
        rows = await self.db.fetchall(
            "SELECT chat_id, message_id, language, total FROM imports ORDER BY started_at"
        )
        return [UnfinishedImport(*row) for row in rows]
