"""OutboxStore.backlog, read by every /metrics scrape: how many rows are pending and when
the oldest of them was queued; sent and abandoned rows are not the backlog."""

from __future__ import annotations

import pytest

from bot.store import Store


async def queue(store: Store, text: str, at_ms: int) -> int:
    await store.outbox.enqueue_text(1, None, kind="notice", texts=[text], now_ms=at_ms)
    row = await store.db.fetchone("SELECT MAX(id) FROM outbox")
    assert row is not None
    return int(row[0])


async def test_backlog_counts_pending_rows_and_dates_the_oldest(store: Store) -> None:
    assert await store.outbox.backlog() == (0, None)
    first = await queue(store, "first", 1_000)
    second = await queue(store, "second", 2_000)
    await queue(store, "third", 3_000)
    assert await store.outbox.backlog() == (3, 1_000)
    await store.outbox.mark_sent([first], 4_000)
    assert await store.outbox.backlog() == (2, 2_000)
    await store.outbox.give_up(second, status="failed", error="refused")
    assert await store.outbox.backlog() == (1, 3_000)


async def test_backlog_counts_up_to_the_cap(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.store.outbox.BACKLOG_COUNT_CAP", 2)
    for n in range(4):
        await queue(store, f"row {n}", 1_000 * (n + 1))
    assert await store.outbox.backlog() == (2, 1_000)
