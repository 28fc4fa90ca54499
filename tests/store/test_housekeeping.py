"""Housekeeping: what the bot forgets, and what it must never forget.

The seen set is what keeps a story from being alerted twice. A story still listed by its
feed must stay in it however old it is (an undated feed gives it the same id every
time), and a story owed to a chat must stay until it is sent. Outbox rows go once
delivered or abandoned and past the duplicate window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace

from bot.clock import FakeClock
from bot.config import Settings
from bot.feeds.record import DedupeRules
from bot.models import Delivery, Entry, NewStory, Recipient
from bot.routing import Router
from bot.store import Store
from bot.telegram.jobs import housekeeping
from tests.helpers import alert_nobody, record_entries

DAY_MS = 86_400_000
RETENTION_DAYS = 90


def entry(feed_id: int, name: str, clock: FakeClock) -> Entry:
    # An undated entry: its timestamp id is when it was first seen (PRODUCT: story id).
    return Entry(
        feed_id=feed_id,
        timestamp_id=clock.now_ms(),
        identity=f"id-{name}",
        title=f"Story {name}",
        link=f"https://n.test/{name}",
        lead_html="",
    )


def alert_everyone(story: NewStory, recipients: Sequence[Recipient]) -> list[Delivery]:
    return [Delivery(r.chat_id, r.thread_id, None) for r in recipients]


async def check(
    store: Store,
    clock: FakeClock,
    feed_id: int,
    names: Sequence[str],
    router: Router = alert_nobody,
) -> int:
    """One successful check of the feed listing `names`; how many were new to it."""
    report = await record_entries(
        store,
        feed_id,
        [entry(feed_id, name, clock) for name in names],
        now_ms=clock.now_ms(),
        rules=DedupeRules(archive_window_ms=10_000 * DAY_MS, duplicate_window_ms=0),
        router=router,
    )
    return report.inserted


async def remembered(store: Store) -> set[str]:
    rows = await store.db.fetchall("SELECT title FROM stories")
    return {row[0].removeprefix("Story ") for row in rows}


async def subscribed_feed(store: Store, clock: FakeClock) -> int:
    now = clock.now_ms()
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=now)
    feed_id = await store.feeds.add("https://feeds.test/a.xml", title="A", site_url="", now_ms=now)
    await store.chats.subscribe(1, feed_id, thread_id=None, now_ms=now)
    return feed_id


async def test_purge_forgets_stories_gone_from_their_feed_not_those_still_in_it(
    store: Store, clock: FakeClock
) -> None:
    feed_id = await subscribed_feed(store, clock)
    await check(store, clock, feed_id, ["kept", "gone"])  # both first seen now
    clock.advance(RETENTION_DAYS * 86_400 + 86_400)
    # 91 days later the feed still lists "kept" (first seen 91 days ago, present now).
    assert await check(store, clock, feed_id, ["kept"]) == 0
    forgotten = await store.stories.purge(older_than_ms=clock.now_ms() - RETENTION_DAYS * DAY_MS)
    assert forgotten == 1
    assert await remembered(store) == {"kept"}
    # What the rule protects: the undated story still in its feed is not news again.
    assert await check(store, clock, feed_id, ["kept"]) == 0


async def test_purge_never_forgets_a_story_still_owed_to_a_chat(
    store: Store, clock: FakeClock
) -> None:
    feed_id = await subscribed_feed(store, clock)
    await check(store, clock, feed_id, ["first"])  # primes the feed: no alert
    clock.advance(60)
    await check(store, clock, feed_id, ["owed"], alert_everyone)  # news: an alert for chat 1
    [pending] = await store.outbox.pending_after(0, 10)
    clock.advance(RETENTION_DAYS * 86_400 + 86_400)  # the chat unreachable all that time
    older_than = clock.now_ms() - RETENTION_DAYS * DAY_MS
    assert await store.stories.purge(older_than_ms=older_than) == 1
    assert await remembered(store) == {"owed"}
    assert (await store.outbox.stories([pending.story_id or 0])).keys() == {pending.story_id}
    # Once sent, nothing needs it any more.
    await store.outbox.mark_sent([pending.id], clock.now_ms())
    assert await store.stories.purge(older_than_ms=older_than) == 1
    assert await remembered(store) == set()


async def outbox_statuses(store: Store) -> dict[str, str]:
    rows = await store.db.fetchall("SELECT text, status FROM outbox ORDER BY id")
    return {row[0]: row[1] for row in rows}


async def queue_row(store: Store, clock: FakeClock, name: str, days_ago: float) -> int:
    at = clock.now_ms() - int(days_ago * DAY_MS)
    await store.outbox.enqueue_text(1, None, kind="notice", texts=[name], now_ms=at)
    row = await store.db.fetchone("SELECT MAX(id) FROM outbox")
    assert row is not None
    return int(row[0])


async def test_outbox_purge_removes_only_finished_rows_older_than_the_window(
    store: Store, clock: FakeClock
) -> None:
    old, recent = 8.0, 6.0
    for name, days_ago, finish in [
        ("old sent", old, "sent"),
        ("old failed", old, "failed"),
        ("old dropped", old, "dropped"),
        ("old pending", old, None),
        ("recent sent", recent, "sent"),
        ("recent pending", recent, None),
    ]:
        row_id = await queue_row(store, clock, name, days_ago)
        if finish == "sent":
            await store.outbox.mark_sent([row_id], clock.now_ms())
        elif finish:
            await store.outbox.give_up(row_id, status=finish, error="x")
    forgotten = await store.outbox.purge(older_than_ms=clock.now_ms() - 7 * DAY_MS)
    assert forgotten == 3
    assert await outbox_statuses(store) == {
        "old pending": "pending",
        "recent sent": "sent",
        "recent pending": "pending",
    }


def with_windows(settings: Settings, *, retention_days: float, duplicate_hours: float) -> Settings:
    return dataclasses.replace(
        settings,
        dedupe=dataclasses.replace(settings.dedupe, retention_days=retention_days),
        delivery=dataclasses.replace(settings.delivery, duplicate_title_hours=duplicate_hours),
    )


async def run_housekeeping(store: Store, settings: Settings, clock: FakeClock) -> None:
    """The JobQueue job as the application calls it (it reads only the runtime)."""
    runtime = SimpleNamespace(store=store, settings=settings, clock=clock)
    context = SimpleNamespace(runtime=runtime)
    await housekeeping(context)  # type: ignore[arg-type]


async def test_housekeeping_purges_with_the_configured_retention(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    feed_id = await subscribed_feed(store, clock)
    await check(store, clock, feed_id, ["left 31 days ago"])
    clock.advance(2 * 86_400)
    await check(store, clock, feed_id, ["left 29 days ago"])
    clock.advance(29 * 86_400)
    await check(store, clock, feed_id, ["listed"])
    await run_housekeeping(
        store, with_windows(settings, retention_days=30, duplicate_hours=48), clock
    )
    assert await remembered(store) == {"left 29 days ago", "listed"}


async def test_housekeeping_keeps_outbox_rows_for_the_longer_of_7_days_and_the_duplicate_window(
    store: Store, settings: Settings, clock: FakeClock
) -> None:
    for name, days_ago in [("11 days", 11), ("9 days", 9), ("6 days", 6)]:
        await store.outbox.mark_sent([await queue_row(store, clock, name, days_ago)], 0)
    # Alerts are checked for duplicates against sent rows for duplicate_title_hours.
    ten_days = with_windows(settings, retention_days=90, duplicate_hours=240)
    await run_housekeeping(store, ten_days, clock)
    assert (await outbox_statuses(store)).keys() == {"9 days", "6 days"}
    # A shorter duplicate window still keeps a week.
    await run_housekeeping(
        store, with_windows(settings, retention_days=90, duplicate_hours=48), clock
    )
    assert (await outbox_statuses(store)).keys() == {"6 days"}
