"""A chat's life cycle has one owner (bot/usecases/chats.py), whoever sees the change: the
sender (a send refused) or the Telegram handlers (a member update, a service message)."""

from __future__ import annotations

from typing import Any

from telegram.error import Forbidden

from bot.clock import FakeClock
from bot.config import Settings
from bot.delivery.sender import Sender
from bot.i18n import t
from bot.store import Store
from bot.usecases.chats import Chats


async def outbox(store: Store) -> list[tuple[int, str, str]]:
    rows = await store.db.fetchall("SELECT chat_id, status, text FROM outbox ORDER BY id")
    return [(row[0], row[1], row[2]) for row in rows]


async def chat_status(store: Store, chat_id: int) -> str | None:
    chat = await store.chats.get(chat_id)
    return chat.status if chat else None


async def queue_notice(store: Store, chat_id: int, text: str) -> None:
    await store.outbox.enqueue_text(chat_id, None, kind="notice", texts=[text], now_ms=0)


async def test_pausing_a_chat_pauses_it_and_drops_what_was_queued_for_it(
    store: Store, clock: FakeClock
) -> None:
    chats = Chats(store, clock)
    for chat_id in (1, 2):
        await chats.remember(chat_id, kind="private", title="", language_code="zh")
        await queue_notice(store, chat_id, f"for {chat_id}")
    await queue_notice(store, 1, "another for 1")

    paused = await chats.pause(1)

    assert (paused.changed, paused.dropped) == (True, 2)
    assert await chat_status(store, 1) == "paused"
    assert await chat_status(store, 2) == "active"
    assert [(chat_id, status) for chat_id, status, _ in await outbox(store)] == [
        (1, "dropped"),
        (2, "pending"),
        (1, "dropped"),
    ]
    assert chats.language(1) is None  # forgotten: its next command looks it up again
    assert chats.language(2) == "zh"
    again = await chats.pause(1)
    assert (again.changed, again.dropped) == (False, 0)


async def test_a_paused_chat_that_speaks_again_resumes_once(store: Store, clock: FakeClock) -> None:
    chats = Chats(store, clock)
    assert await chats.remember(7, kind="private", title="A", language_code=None) == ("en", False)
    await chats.pause(7)
    assert await chats.remember(7, kind="private", title="A", language_code=None) == ("en", True)
    assert await chat_status(store, 7) == "active"
    assert await chats.remember(7, kind="private", title="A", language_code=None) == ("en", False)
    # The language follows whoever spoke last, and is kept for the chat's next commands.
    assert await chats.remember(7, kind="private", title="A", language_code="zh-hans") == (
        "zh",
        False,
    )
    assert await chats.remember(7, kind="private", title="A", language_code=None) == ("zh", False)


async def test_a_migrated_group_takes_its_subscriptions_and_queue_along(
    store: Store, clock: FakeClock
) -> None:
    chats = Chats(store, clock)
    await chats.remember(-1, kind="group", title="G", language_code="en")
    feed_id = await store.feeds.add("https://n.test/feed", title="F", site_url="", now_ms=0)
    await store.chats.subscribe(-1, feed_id, thread_id=None, now_ms=0)
    await queue_notice(store, -1, "queued before the upgrade")
    await store.imports.begin(-1, 55, language="en", total=3, now_ms=0)

    await chats.migrate(-1, -100)

    assert [s.feed_id for s in await store.chats.subscriptions(-100)] == [feed_id]
    assert await store.chats.subscriptions(-1) == []
    assert [chat_id for chat_id, _, _ in await outbox(store)] == [-100]
    assert chats.language(-1) is None
    # The progress message is in the old group: a restart must not edit the new group's
    # message of the same number.
    assert [(i.chat_id, i.message_id) for i in await store.imports.unfinished()] == [(-1, 55)]


async def test_feed_notices_go_to_active_subscribers_in_their_language(
    store: Store, clock: FakeClock
) -> None:
    woken: list[bool] = []
    chats = Chats(store, clock, on_queued=lambda: woken.append(True))
    feed_id = await store.feeds.add("https://n.test/feed", title="Feed", site_url="", now_ms=0)
    for chat_id, language in ((1, "en"), (2, "zh"), (3, "en")):
        await chats.remember(chat_id, kind="private", title="", language_code=language)
        await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=0)
    await chats.pause(3)
    await store.feeds.mark_gone(feed_id, now_ms=0)
    feed = await store.feeds.get(feed_id)
    assert feed is not None

    await chats.tell_feed_health(feed, failing=True)

    values: dict[str, Any] = {"title": "Feed", "url": "https://n.test/feed"}
    assert [(chat_id, text) for chat_id, _, text in await outbox(store)] == [
        (1, t("en", "notice.feed_gone", **values)),
        (2, t("zh", "notice.feed_gone", **values)),
    ]
    assert woken == [True]


class RefusingBot:
    """Every send refused: the user blocked the bot."""

    async def do_api_request(self, endpoint: str, api_kwargs: dict[str, Any]) -> None:
        raise Forbidden("Forbidden: bot was blocked by the user")


async def test_the_sender_pauses_a_blocked_chat_through_the_same_owner(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    chats = Chats(store, clock)
    await chats.remember(5, kind="private", title="", language_code="en")
    await queue_notice(store, 5, "one")
    await queue_notice(store, 5, "two")
    sender = Sender(store, RefusingBot(), settings.delivery, clock, chats=chats)  # type: ignore[arg-type]
    await sender.start()
    try:
        sender.wake()
        assert await sender.drain(10)
    finally:
        await sender.stop(0)
    assert await chat_status(store, 5) == "paused"
    assert {status for _, status, _ in await outbox(store)} == {"dropped"}
    assert chats.language(5) is None  # the handlers' view of it too: one cache
    assert sender.stats.dropped == 2
