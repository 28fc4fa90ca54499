"""Shared fixtures: settings for tests, a fresh database, a fake clock, a local feed host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.store import Store
from tests.fakes.feed_server import FeedServer

# 2025-03-01T00:00:00Z: after the seed story and most real-world fixtures.
START_MS = 1_740_787_200_000


def make_settings(tmp_path: Path, **env: str) -> Settings:
    environ = {
        "NEWS_NOTIFIER_DATABASE": str(tmp_path / "bot.sqlite3"),
        "NEWS_NOTIFIER_POLL_INTERVAL": "1",
        "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1",
        **env,
    }
    return load_settings(None, environ)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START_MS)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await Store.open(settings.database.path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server
