"""The sender alone, with a stand-in for python-telegram-bot's Bot (no network)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

import pytest

from bot.clock import SystemClock
from bot.config import Settings
from bot.delivery import sender as sender_module
from bot.delivery.pacing import Pacer
from bot.delivery.sender import Sender
from bot.store import Store


class RecordingBot:
    def __init__(self) -> None:
        self.sent: Counter[int] = Counter()
        self.texts: dict[int, list[str]] = {}

    async def do_api_request(self, endpoint: str, api_kwargs: dict[str, Any]) -> None:
        assert endpoint == "sendMessage"
        await asyncio.sleep(0.001)
        self.sent[api_kwargs["chat_id"]] += 1
        self.texts.setdefault(api_kwargs["chat_id"], []).append(api_kwargs["text"])


async def queue_notices(store: Store, chats: int) -> None:
    for chat_id in range(1, chats + 1):
        await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)
        await store.outbox.enqueue_text(chat_id, None, kind="notice", texts=["<b>hi</b>"], now_ms=0)


async def test_drain_and_the_send_loop_never_load_a_row_twice(
    store: Store, settings: Settings
) -> None:
    await queue_notices(store, 200)
    delivery = dataclasses.replace(settings.delivery, global_per_second=10_000)
    bot = RecordingBot()
    sender = Sender(store, bot, delivery, SystemClock())  # type: ignore[arg-type]
    await sender.start()
    sender.wake()
    assert await sender.drain(30)
    await sender.stop()
    assert len(bot.sent) == 200 and set(bot.sent.values()) == {1}
    row = await store.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
    assert row is not None and row[0] == 200


async def test_a_backlog_bigger_than_memory_is_read_on_as_rows_are_sent(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender holds at most MAX_QUEUED rows; the rest stay in the outbox and are
    loaded as the queue empties. Every row is sent once, each chat's in order, and the
    large texts of digest parts are read only when they are sent."""
    monkeypatch.setattr(sender_module, "MAX_QUEUED", 40)
    monkeypatch.setattr(sender_module, "REFILL_BATCH", 15)
    for chat_id in range(1, 31):
        await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)
    for n in range(10):  # interleaved, as digests of many chats are queued
        for chat_id in range(1, 31):
            await store.outbox.enqueue_text(
                chat_id, None, kind="digest", texts=[f"<b>part {n}</b>"], now_ms=0
            )
    delivery = dataclasses.replace(
        settings.delivery, global_per_second=10_000, chat_per_second=10_000
    )
    bot = RecordingBot()
    sender = Sender(store, bot, delivery, SystemClock())  # type: ignore[arg-type]
    most = 0
    refill = sender._refill_unlocked

    async def watched_refill() -> None:
        nonlocal most
        await refill()
        most = max(most, sender.queued)

    monkeypatch.setattr(sender, "_refill_unlocked", watched_refill)
    await sender.start()
    sender.wake()
    assert await sender.drain(30)
    await sender.stop()
    assert most == 40
    assert all(texts == [f"<b>part {n}</b>" for n in range(10)] for texts in bot.texts.values())
    assert len(bot.texts) == 30
    row = await store.db.fetchone("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
    assert row is not None and row[0] == 300


def test_pacer_keeps_its_spacing_through_late_wake_ups() -> None:
    delivery = dataclasses.replace(_settings().delivery, global_per_second=10)
    pacer = Pacer(delivery)
    now = 0.0
    sent = []
    while now < 10:
        if pacer.earliest(1_000 + len(sent)) <= now:
            pacer.book(1_000 + len(sent), now)
            sent.append(now)
        now += 0.013  # the loop wakes a little late every time
    assert 99 <= len(sent) <= 101  # 10 a second over 10 s, not fewer, never more
    for start in sent:  # no one-second window holds more than the rate (+1 at the edge)
        assert sum(start <= t < start + 1 for t in sent) <= 11


def _settings() -> Settings:
    from bot.config import load_settings

    return load_settings(None, {})
