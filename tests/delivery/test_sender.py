"""The sender alone, with a stand-in for python-telegram-bot's Bot (no network)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

import pytest

from bot.clock import FakeClock, SystemClock
from bot.config import DeliverySettings, Settings
from bot.delivery import sender as sender_module
from bot.delivery.outcome import NotSent, NotSentTimedOut, OutcomeUnknown, OutcomeUnknownTimedOut
from bot.delivery.pacing import Pacer
from bot.delivery.sender import Sender
from bot.store import Store
from tests.conftest import START_MS
from tests.fakes.telegram_api import FloodControl, FloodLimits


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


async def test_drain_returns_only_once_a_flush_under_way_has_written(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send loop's flush took the delivered ids and is writing them (slowly: another
    connection, on PostgreSQL) when drain() comes: drain must wait for that write, not
    return because nothing is left to flush."""
    await queue_notices(store, 1)
    sender = Sender(store, RecordingBot(), settings.delivery, SystemClock())  # type: ignore[arg-type]
    write_started, release = asyncio.Event(), asyncio.Event()
    mark_sent = store.outbox.mark_sent

    async def slow_mark_sent(ids: Any, now_ms: int) -> None:
        write_started.set()
        await release.wait()
        await mark_sent(ids, now_ms)

    monkeypatch.setattr(store.outbox, "mark_sent", slow_mark_sent)
    await sender.start()
    sender.wake()
    await asyncio.wait_for(write_started.wait(), 10)  # the loop's flush holds the ids
    drained = asyncio.create_task(sender.drain(10))
    await asyncio.sleep(0.2)
    assert not drained.done(), "drain() returned while the delivery was not yet recorded"
    release.set()
    assert await drained
    row = await store.db.fetchone("SELECT status FROM outbox")
    assert row is not None and row[0] == "sent"
    await sender.stop()


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


def test_pacer_keeps_telegrams_real_limits_for_groups_and_private_chats() -> None:
    """At the real limits (no setting raised): each group gets its twenty messages a minute
    and no more, each private chat one a second, and Telegram's flood control (the fake's
    model of it) refuses none of them."""
    delivery = _settings().delivery
    assert (delivery.group_per_minute, delivery.chat_per_second) == (20, 1)
    pacer = Pacer(delivery)
    now = 0.0
    telegram = FloodControl(FloodLimits(), clock=lambda: now)
    groups, privates = (-1001, -1002, -100300), (5, 6)  # a channel counts as a group
    sent: dict[int, list[float]] = {chat: [] for chat in groups + privates}
    while now < 600:  # every chat has messages waiting for ten minutes
        for chat_id, times in sent.items():
            if pacer.earliest(chat_id) <= now:
                pacer.book(chat_id, now)
                assert telegram.admit(chat_id) == 0, f"chat {chat_id} refused at {now:.2f}s"
                times.append(now)
        now += 0.01
    # The 10 ms steps of this loop make each send up to a step late: a little under the rate.
    for chat_id in groups:
        times = sent[chat_id]
        assert 196 <= len(times) <= 200, (chat_id, len(times))  # 20 a minute, not fewer
        assert max(sum(t <= u < t + 60 for u in times) for t in times) == 20
    for chat_id in privates:
        assert 590 <= len(sent[chat_id]) <= 600, (chat_id, len(sent[chat_id]))


def _settings() -> Settings:
    from bot.config import load_settings

    return load_settings(None, {})


# --- sends whose outcome is unknown ------------------------------------------------------


class ScriptedTelegram:
    """Telegram that fails each call as scripted (None: answered), then answers every call.
    Like the real one, it carries out every message that reached it: all but those failed
    with NotSent, and with `read=False` those failed with OutcomeUnknown too (the connection
    closed before Telegram read them, as the fake's drop_next)."""

    def __init__(self, failures: Iterable[Exception | None] = (), *, read: bool = True) -> None:
        self.failures = deque(failures)
        self.read = read
        self.calls = 0
        self.delivered = 0
        self.methods: list[str] = []
        self.texts: list[str] = []  # the texts Telegram carried out, in order

    async def do_api_request(self, endpoint: str, api_kwargs: dict[str, Any]) -> None:
        self.calls += 1
        self.methods.append(endpoint)
        failure = self.failures.popleft() if self.failures else None
        unread = isinstance(failure, NotSent) or (
            not self.read and isinstance(failure, OutcomeUnknown)
        )
        if endpoint != "getMe" and not unread:
            self.delivered += 1
            self.texts.append(str(api_kwargs.get("text", "")))
        if failure is not None:
            raise failure


def unpaced(settings: Settings) -> DeliverySettings:
    return dataclasses.replace(settings.delivery, global_per_second=10_000, chat_per_second=10_000)


async def one_message(store: Store) -> None:
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=START_MS)
    await store.outbox.enqueue_text(1, None, kind="notice", texts=["hi"], now_ms=START_MS)


async def sent_once(
    store: Store, bot: ScriptedTelegram, settings: Settings, backoff: float = 0.01
) -> Sender:
    """Run a sender over the outbox until it is empty; retries come after `backoff`."""
    sender = Sender(store, bot, unpaced(settings), FakeClock(START_MS))  # type: ignore[arg-type]
    sender._backoff = lambda attempts: backoff  # type: ignore[method-assign]
    await sender.start()
    sender.wake()
    assert await sender.drain(10)
    await sender.stop()
    return sender


async def outbox_row(store: Store) -> tuple[str, int]:
    row = await store.db.fetchone("SELECT status, unanswered FROM outbox")
    assert row is not None
    return row[0], row[1]


async def test_a_send_with_no_answer_is_tried_once_more_then_taken_as_delivered(
    store: Store, settings: Settings
) -> None:
    await one_message(store)
    # Slow for messages: the getMe that proves the path is answered, the sends are not.
    bot = ScriptedTelegram([OutcomeUnknownTimedOut(), None, OutcomeUnknownTimedOut()])

    sender = await sent_once(store, bot, settings)

    # Telegram got it twice (two copies at most), never a third time.
    assert bot.methods == ["sendMessage", "getMe", "sendMessage"]
    assert bot.delivered == 2
    assert await outbox_row(store) == ("sent", 2)
    stats = sender.stats
    assert (stats.unanswered, stats.assumed_delivered, stats.retries) == (2, 1, 1)
    assert stats.probes == 1
    assert stats.sent == 0 and stats.errors == {}
    counters = await store.outbox.counters(START_MS)
    assert counters == {"unanswered": 2, "assumed_delivered": 1}


async def test_a_send_that_never_reached_telegram_is_retried_without_spending_the_extra_copy(
    store: Store, settings: Settings
) -> None:
    await one_message(store)
    failures: list[Exception | None] = [OutcomeUnknown("aiohttp.ServerDisconnectedError")]
    failures += [None, NotSent("refused"), NotSentTimedOut("connect"), NotSent("refused")]
    bot = ScriptedTelegram(failures)

    sender = await sent_once(store, bot, settings)

    # Refusals cost nothing: the one unanswered send stays the only one, and the answered
    # getMe after it still holds for the tries that followed.
    assert bot.methods == ["sendMessage", "getMe"] + ["sendMessage"] * 4
    assert bot.delivered == 2  # the unanswered send and the last one
    assert await outbox_row(store) == ("sent", 1)
    stats = sender.stats
    assert (stats.sent, stats.unanswered, stats.assumed_delivered, stats.retries) == (1, 1, 0, 4)
    assert stats.errors == {"NotSent": 2, "NotSentTimedOut": 1}


async def test_a_photo_with_no_answer_is_tried_once_more_then_taken_as_delivered(
    store: Store, settings: Settings
) -> None:
    """A photo that went out unanswered may have been delivered: like any send, it is sent
    once more at most, and it is never followed by the alert as text (that would make two
    copies of one alert in another form)."""
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=START_MS)
    feed_id = await store.feeds.add("https://f.test/x.xml", title="F", site_url="", now_ms=0)
    await store.db.execute(
        "INSERT INTO stories (id, feed_id, identity, timestamp_id, title, link, summary,"
        " image_url, first_seen_at, last_present_at) VALUES (7, ?, 'i', ?, 'Story',"
        " 'https://n.test/1', 'Lead.', 'https://img.test/p.jpg', ?, ?)",
        (feed_id, START_MS, START_MS, START_MS),
    )
    await store.db.execute(
        "INSERT INTO outbox (chat_id, kind, story_id, not_before, created_at)"
        " VALUES (1, 'alert', 7, ?, ?)",
        (START_MS, START_MS),
    )
    bot = ScriptedTelegram([OutcomeUnknownTimedOut(), None, OutcomeUnknownTimedOut()])

    sender = await sent_once(store, bot, settings)

    assert bot.methods == ["sendPhoto", "getMe", "sendPhoto"]
    assert await outbox_row(store) == ("sent", 2)
    assert (sender.stats.assumed_delivered, sender.stats.photo_fallbacks) == (1, 0)


async def test_a_restart_remembers_a_send_that_got_no_answer(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await one_message(store)
    retry_recorded = asyncio.Event()
    retry_later = store.outbox.retry_later

    async def recorded_retry_later(*args: Any, **kwargs: Any) -> None:
        await retry_later(*args, **kwargs)
        retry_recorded.set()

    monkeypatch.setattr(store.outbox, "retry_later", recorded_retry_later)
    clock = FakeClock(START_MS)
    first = ScriptedTelegram([OutcomeUnknownTimedOut()])
    sender = Sender(store, first, unpaced(settings), clock)  # type: ignore[arg-type]
    sender._backoff = lambda item: 3600.0  # type: ignore[method-assign]
    await sender.start()
    sender.wake()
    await asyncio.wait_for(retry_recorded.wait(), 10)
    await sender.stop(grace=0)  # stopped before its retry
    assert first.calls == 1
    assert await outbox_row(store) == ("pending", 1)

    clock.advance(7200)  # the retry is due
    # The new start has no answer yet from after that send: a getMe brings one, then the
    # last try goes (and gets no answer either).
    again = ScriptedTelegram([None, OutcomeUnknownTimedOut()])
    restarted = Sender(store, again, unpaced(settings), clock)  # type: ignore[arg-type]
    await restarted.start()
    restarted.wake()
    assert await restarted.drain(10)
    await restarted.stop()

    assert again.methods == ["getMe", "sendMessage"]  # one more send, not a third copy
    assert await outbox_row(store) == ("sent", 2)
    assert restarted.stats.assumed_delivered == 1


async def test_the_last_try_waits_for_an_answer_to_a_later_request(
    store: Store, settings: Settings
) -> None:
    """The two-hour soak's finding (bench/README): four requests in a row died before
    Telegram read them, and a retry that fell among them was taken as delivered though
    Telegram never had it. The last try now waits for an answer to a request that went out
    after the unanswered one: no other message is due here (the chat's second one waits
    behind the first), so the sender asks getMe until one is answered."""
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=START_MS)
    for text in ("first", "second"):
        await store.outbox.enqueue_text(1, None, kind="notice", texts=[text], now_ms=START_MS)
    bot = ScriptedTelegram((OutcomeUnknown("dropped unread") for _ in range(4)), read=False)

    sender = await sent_once(store, bot, settings)

    assert bot.methods == ["sendMessage"] + ["getMe"] * 4 + ["sendMessage"] * 2
    assert bot.texts == ["first", "second"]  # each delivered once, in order
    rows = await store.db.fetchall("SELECT status, unanswered FROM outbox ORDER BY id")
    assert [tuple(row) for row in rows] == [("sent", 1), ("sent", 0)]
    stats = sender.stats
    assert (stats.sent, stats.unanswered, stats.assumed_delivered, stats.probes) == (2, 1, 0, 4)


async def test_an_answer_to_another_chats_message_proves_the_path(
    store: Store, settings: Settings
) -> None:
    """A message sent after the unanswered one, to another chat, was answered: the last try
    goes without a probe, and the held chat never held up the other one."""
    for chat_id in (1, 2):
        await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)
        for n in (1, 2):
            await store.outbox.enqueue_text(
                chat_id, None, kind="notice", texts=[f"{chat_id}.{n}"], now_ms=START_MS
            )
    bot = ScriptedTelegram([OutcomeUnknown("dropped unread")], read=False)
    sender = await sent_once(store, bot, settings, backoff=0.3)

    assert "getMe" not in bot.methods and sender.stats.probes == 0
    assert sorted(bot.texts) == ["1.1", "1.2", "2.1", "2.2"]  # each once
    for chat_id in (1, 2):  # each chat's in order
        assert [t for t in bot.texts if t.startswith(f"{chat_id}.")] == [
            f"{chat_id}.1",
            f"{chat_id}.2",
        ]
    assert sender.stats.assumed_delivered == 0


class SilentTelegram:
    """Telegram that takes each message and never answers (it is that slow); getMe it
    answers at once, unless `answers_nothing`."""

    def __init__(self, *, answers_nothing: bool = False) -> None:
        self.answers_nothing = answers_nothing
        self.calls = 0  # messages sent
        self.called = asyncio.Event()  # a message was sent, or a getMe went unanswered

    async def do_api_request(self, endpoint: str, api_kwargs: dict[str, Any]) -> None:
        if endpoint == "getMe" and not self.answers_nothing:
            return
        self.calls += endpoint != "getMe"
        self.called.set()
        await asyncio.sleep(3600)


async def run_until_stopped(
    store: Store, settings: Settings, *, answers_nothing: bool = False
) -> int:
    """Start a sender, stop it once it sent (or had nothing to send); its sends."""
    telegram = SilentTelegram(answers_nothing=answers_nothing)
    sender = Sender(store, telegram, unpaced(settings), FakeClock(START_MS))  # type: ignore[arg-type]
    await sender.start()
    sender.wake()
    waits = {asyncio.ensure_future(sender.drain(10)), asyncio.ensure_future(telegram.called.wait())}
    await asyncio.wait(waits, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    await sender.stop(grace=0)  # cuts the wait for the answer short
    return telegram.calls


async def test_stops_while_telegram_is_slow_cost_at_most_one_extra_copy(
    store: Store, settings: Settings
) -> None:
    await one_message(store)

    calls = [await run_until_stopped(store, settings) for _ in range(3)]

    assert calls == [1, 1, 0]  # the third start takes it as delivered
    assert await outbox_row(store) == ("sent", 2)


async def test_a_message_held_while_telegram_answers_nothing_stays_pending_through_stops(
    store: Store, settings: Settings
) -> None:
    """With no answer to anything after its unanswered send, the last try never goes: a
    stop leaves the row pending with its count, and the next start holds it the same way."""
    await one_message(store)

    calls = [await run_until_stopped(store, settings, answers_nothing=True) for _ in range(3)]

    assert calls == [1, 0, 0]
    assert await outbox_row(store) == ("pending", 1)
