"""Shared fixtures: settings for tests, a fresh database, a fake clock, a local feed host.

Tests under tests/store/ and tests/e2e/ run twice, on SQLite and on PostgreSQL (the
`backend` parameter); the rest run on SQLite. A test that only SQLite can run (it deletes
the database file, reads SQLite's own pragmas) says so with @pytest.mark.sqlite_only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings, load_settings
from bot.store import Store
from tests.databases import BACKENDS, Databases
from tests.fakes.feed_server import FeedServer

# 2025-03-01T00:00:00Z: after the seed story and most real-world fixtures.
START_MS = 1_740_787_200_000


# Folders whose tests run on both backends.
BOTH_BACKENDS = ("store", "e2e")
# The database of the test running now (make_settings' default); set by `databases`.
_current: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test runs on SQLite only")
    config.addinivalue_line("markers", "postgresql_only: the test runs on PostgreSQL only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    folder = Path(str(metafunc.definition.path)).parent.name
    marked = metafunc.definition.get_closest_marker
    if marked("postgresql_only"):
        backends: tuple[str, ...] = ("postgresql",)
    elif folder in BOTH_BACKENDS and not marked("sqlite_only"):
        backends = BACKENDS
    else:
        return
    metafunc.fixturenames.append("backend")
    metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture(autouse=True)
def databases(backend: str, tmp_path: Path) -> Iterator[Databases]:
    """New databases for this test; its first is make_settings' default."""
    made = Databases(backend, tmp_path)
    _current["database"] = made.new()
    try:
        yield made
    finally:
        _current.clear()
        made.drop()


def make_settings(tmp_path: Path, **env: str) -> Settings:
    environ = {
        "NEWS_NOTIFIER_DATABASE": _current.get("database") or str(tmp_path / "bot.sqlite3"),
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
