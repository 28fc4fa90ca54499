"""Fixtures of the store tests (the `store` itself comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.store import Store


@pytest.fixture
async def second_store(store: Store) -> AsyncIterator[Store]:
    """Another instance's store on the same database: on PostgreSQL a pool of its own on the
    same schema, as another process would have; SQLite runs one instance, so there it is the
    same store (whose ticks may still overlap)."""
    if store.db.dialect != "postgresql":
        yield store
        return
    other = await Store.open(store.db.url, exclusive=False)  # type: ignore[attr-defined]
    try:
        yield other
    finally:
        await other.close()
