"""Storage: all SQL lives below this package, behind `Store`.

Plain SQL, numbered migrations per backend (migrations/<sqlite|postgresql>/NNNN_name.sql)
applied at start. The SQL sticks to what SQLite and PostgreSQL share (INSERT … ON CONFLICT
… DO NOTHING RETURNING, `?` parameters), so the same store runs on either (bot/store/db.py).
"""

from __future__ import annotations

from bot.errors import (
    DatabaseLockedError,
    DatabaseLostError,
    DatabaseRefusedError,
    DatabaseUnavailableError,
)
from bot.store.backends import open_database
from bot.store.chats import Chat, ChatStore, Paused, Subscription
from bot.store.db import Database
from bot.store.feeds import Feed, FeedStore, FeedUpdate
from bot.store.imports import ImportStore, UnfinishedImport
from bot.store.outbox import OutboxItem, OutboxStore, StoryText
from bot.store.stats import CheckActivity, ExportedFeed, Stats, StatsStore
from bot.store.stories import CheckUnit, FeedState, QueuedAlert, StoryStore
from bot.store.websub import HubSubscription, WebSubStore

__all__ = [
    "Chat",
    "ChatStore",
    "CheckActivity",
    "CheckUnit",
    "Database",
    "DatabaseLockedError",
    "DatabaseLostError",
    "DatabaseRefusedError",
    "DatabaseUnavailableError",
    "ExportedFeed",
    "Feed",
    "FeedState",
    "FeedStore",
    "FeedUpdate",
    "HubSubscription",
    "ImportStore",
    "OutboxItem",
    "OutboxStore",
    "Paused",
    "QueuedAlert",
    "Stats",
    "StatsStore",
    "Store",
    "StoryStore",
    "StoryText",
    "Subscription",
    "UnfinishedImport",
    "WebSubStore",
]


class Store:
    """The bot's one store: a database and the table families on it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.feeds = FeedStore(db)
        self.chats = ChatStore(db)
        self.stories = StoryStore(db)
        self.outbox = OutboxStore(db)
        self.imports = ImportStore(db)
        self.stats = StatsStore(db)
        self.websub = WebSubStore(db)

    @classmethod
    async def open(
        cls,
        location: str,
        *,
        exclusive: bool = True,
        shared: bool = False,
        read_only: bool = False,
    ) -> Store:
        """The store on the database at `location`: a SQLite file path or a postgresql://
        URL. exclusive=False skips the instance lock; shared: one of several running bots
        (PostgreSQL; SQLite stays one bot's); read_only opens without migrating, for a
        reader beside a running bot (healthcheck, export-opml)."""
        db = await open_database(location, exclusive=exclusive, shared=shared, read_only=read_only)
        return cls(db)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
