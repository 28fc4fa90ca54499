"""Daily digests through the store and outbox, with an injected clock (no waiting)."""

from __future__ import annotations

import dataclasses
import random
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.digests.render import DigestItem, DigestRenderer, render_digest
from bot.digests.schedule import digest_window
from bot.digests.scheduler import DigestScheduler
from bot.filters import Keyword, KeywordFilter
from bot.models import Entry, Story
from bot.store import Store
from bot.text import MESSAGE_LIMIT, telegram_length
from tests.fakes.telegram_api import parse_html
from tests.helpers import record_entries

SEED_TITLE = "克里姆林宫称正在准备俄美专家级会谈，为特普峰会铺路"
SEED_SUMMARY = (
    "克里姆林宫周三（2月26日）表示，作为上周美俄高级别会谈及弗拉基米尔·普京（Vladimir Putin）"
    "和唐纳德·特朗普（Donald Trump）总统早些时候通话的后续行动，"
    "正在为俄罗斯和美国之间的专家级会谈做准备。"
)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def with_grace(settings: Settings, *, hours: float) -> Settings:
    return dataclasses.replace(
        settings, digest=dataclasses.replace(settings.digest, grace_hours=hours)
    )


async def setup_chat(store: Store, clock: FakeClock, chat_id: int = 1) -> int:
    await store.chats.upsert(
        chat_id, kind="private", title="", language="en", now_ms=clock.now_ms()
    )
    feed_id = await store.feeds.add(
        "https://feeds.test/a.xml", title="Feed A", site_url="", now_ms=clock.now_ms()
    )
    await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=clock.now_ms())
    return feed_id


async def add_story(
    store: Store,
    clock: FakeClock,
    feed_id: int,
    n: int,
    *,
    published_ms: int | None = None,
    title: str | None = None,
    summary: str = "A summary.",
) -> None:
    entry = Entry(
        feed_id=feed_id,
        timestamp_id=published_ms or clock.now_ms(),
        identity=f"id-{n}",
        title=title or f"Story {n}",
        link=f"https://n.test/{n}",
        lead_html="",
    )
    await record_entries(store, feed_id, [entry], {entry.identity: summary}, now_ms=clock.now_ms())


async def digests(store: Store, chat_id: int = 1) -> list[str]:
    rows = await store.db.fetchall(
        "SELECT text FROM outbox WHERE kind = 'digest' AND chat_id = ? ORDER BY id", (chat_id,)
    )
    return [row[0] for row in rows]


async def test_daily_digest_in_shanghai_once_per_day_with_the_seed_story(
    store: Store, settings: Settings
) -> None:
    clock = FakeClock(ms(local("Asia/Shanghai", 2025, 2, 27, 7, 0)))
    feed_id = await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    schedule = await scheduler.set_schedule(1, ["08:00", "Asia/Shanghai"], thread_id=None)
    assert schedule.next_due_ms == ms(local("Asia/Shanghai", 2025, 2, 27, 8, 0))
    await add_story(
        store, clock, feed_id, 1, published_ms=1740591053000, title=SEED_TITLE, summary=SEED_SUMMARY
    )
    assert await scheduler.fire_due() == 0  # 07:00: not yet
    clock.set(local("Asia/Shanghai", 2025, 2, 27, 8, 0, 3))
    assert await scheduler.fire_due() == 1
    [text] = await digests(store)
    assert "2025-02-27 (Asia/Shanghai)" in text and SEED_TITLE in text
    assert SEED_SUMMARY in text
    clock.advance(600)
    assert await scheduler.fire_due() == 0  # once a day
    clock.set(local("Asia/Shanghai", 2025, 2, 28, 8, 0, 1))
    assert await scheduler.fire_due() == 1
    assert "No new stories" in (await digests(store))[1]


async def run_days(
    scheduler: DigestScheduler, clock: FakeClock, until: datetime, step_s: int = 300
) -> list[int]:
    """Tick every `step_s` until `until`; the clock times at which a digest was queued."""
    fired = []
    while clock.now_ms() < ms(until):
        clock.advance(step_s)
        if await scheduler.fire_due():
            fired.append(clock.now_ms())
    return fired


async def test_berlin_across_both_dst_changes_one_digest_per_local_day(
    store: Store, settings: Settings
) -> None:
    zone = "Europe/Berlin"
    clock = FakeClock(ms(local(zone, 2025, 3, 29, 12, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["02:30", zone], thread_id=None)
    fired = await run_days(scheduler, clock, local(zone, 2025, 4, 1, 12, 0))
    local_times = [datetime.fromtimestamp(t / 1000, ZoneInfo(zone)) for t in fired]
    # 30 March: 02:30 does not exist (02:00 → 03:00): sent at 03:00, the next valid instant.
    assert [(t.day, t.hour, t.minute) for t in local_times] == [(30, 3, 0), (31, 2, 30), (1, 2, 30)]

    clock.set(local(zone, 2025, 10, 25, 12, 0))
    await scheduler.set_schedule(1, ["02:30", zone], thread_id=None)
    fired = await run_days(scheduler, clock, local(zone, 2025, 10, 28, 12, 0))
    local_times = [datetime.fromtimestamp(t / 1000, ZoneInfo(zone)) for t in fired]
    # 26 October: 02:30 happens twice (fall back): one digest, at the first.
    assert [(t.day, t.hour, t.minute, t.fold) for t in local_times] == [
        (26, 2, 30, 0),
        (27, 2, 30, 0),
        (28, 2, 30, 0),
    ]


async def test_new_york_spring_forward(store: Store, settings: Settings) -> None:
    zone = "America/New_York"
    clock = FakeClock(ms(local(zone, 2025, 3, 8, 12, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["02:15", zone], thread_id=None)
    fired = await run_days(scheduler, clock, local(zone, 2025, 3, 11, 0, 0), step_s=60)
    hours = [datetime.fromtimestamp(t / 1000, ZoneInfo(zone)).strftime("%d %H:%M") for t in fired]
    assert hours == ["09 03:00", "10 02:15"]


async def test_restart_between_schedule_and_due_time(settings: Settings) -> None:
    zone = "Europe/Berlin"
    clock = FakeClock(ms(local(zone, 2025, 6, 1, 7, 0)))
    store = await Store.open(settings.database.path)
    await setup_chat(store, clock)
    await DigestScheduler(store, settings, clock).set_schedule(1, ["08:00", zone], thread_id=None)
    await store.close()
    clock.set(local(zone, 2025, 6, 1, 7, 30))
    store = await Store.open(settings.database.path)  # the bot restarted
    try:
        scheduler = DigestScheduler(store, settings, clock)
        assert await scheduler.fire_due() == 0
        clock.set(local(zone, 2025, 6, 1, 8, 0, 5))
        assert await scheduler.fire_due() == 1
    finally:
        await store.close()


async def test_missed_digest_inside_grace_is_sent_outside_is_skipped(
    store: Store, settings: Settings
) -> None:
    zone = "UTC"
    settings = with_grace(settings, hours=3)
    clock = FakeClock(ms(local(zone, 2025, 6, 1, 7, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["08:00"], thread_id=None)
    clock.set(local(zone, 2025, 6, 1, 10, 30))  # down from 07:00 to 10:30: 2.5 h late
    assert await scheduler.fire_due() == 1
    clock.set(local(zone, 2025, 6, 2, 12, 0))  # down again: 4 h late, skipped
    assert await scheduler.fire_due() == 0
    chat = await store.chats.get(1)
    assert chat is not None and chat.next_digest_at == ms(local(zone, 2025, 6, 3, 8, 0))
    assert len(await digests(store)) == 1
    clock.set(local(zone, 2025, 6, 3, 8, 1))
    assert await scheduler.fire_due() == 1


async def test_story_found_just_after_a_digest_is_in_the_next_one(
    store: Store, settings: Settings
) -> None:
    zone = "UTC"
    clock = FakeClock(ms(local(zone, 2025, 6, 1, 7, 0)))
    feed_id = await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["08:00"], thread_id=None)
    clock.set(local(zone, 2025, 6, 1, 8, 0, 10))
    assert await scheduler.fire_due() == 1
    # Published 07:59, found 08:01, after the 08:00 digest was made.
    clock.set(local(zone, 2025, 6, 1, 8, 1))
    await add_story(
        store, clock, feed_id, 7, published_ms=ms(local(zone, 2025, 6, 1, 7, 59)), title="Late find"
    )
    clock.set(local(zone, 2025, 6, 2, 8, 0, 10))
    assert await scheduler.fire_due() == 1
    first, second = await digests(store)
    assert "Late find" not in first and "Late find" in second


async def test_story_found_at_the_due_millisecond_is_in_exactly_one_of_two_digests(
    store: Store, settings: Settings
) -> None:
    zone = "UTC"
    clock = FakeClock(ms(local(zone, 2025, 6, 1, 7, 0)))
    feed_id = await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["08:00"], thread_id=None)
    # Found by a check at exactly 08:00:00.000, the instant the first digest falls due,
    # and made into digests at that same millisecond and a day later.
    due = local(zone, 2025, 6, 1, 8, 0)
    clock.set(due)
    await add_story(
        store, clock, feed_id, 8, published_ms=ms(due - timedelta(minutes=1)), title="Edge find"
    )
    assert await scheduler.fire_due() == 1
    clock.set(due + timedelta(days=1))
    assert await scheduler.fire_due() == 1
    first, second = await digests(store)
    assert ("Edge find" in first) + ("Edge find" in second) == 1
    # The window is half-open, [previous due, due): found at a due instant is the next one.
    assert "Edge find" in second


async def test_on_demand_digest_lists_the_last_24_hours_and_leaves_the_schedule(
    store: Store, settings: Settings
) -> None:
    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 12, 0)))
    feed_id = await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["08:00"], thread_id=None)
    before = await store.chats.get(1)
    await add_story(store, clock, feed_id, 1, published_ms=clock.now_ms() - 3_600_000)
    await add_story(store, clock, feed_id, 2, published_ms=clock.now_ms() - 30 * 3_600_000)
    assert await scheduler.send_now(1, thread_id=None) == 1
    [text] = await digests(store)
    assert "Story 1" in text and "Story 2" not in text
    assert await store.chats.get(1) == before


async def test_keyword_matches_are_marked_and_first(store: Store, settings: Settings) -> None:
    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 12, 0)))
    feed_id = await setup_chat(store, clock)
    await store.chats.set_keywords(1, [("putin", False)])
    await add_story(
        store, clock, feed_id, 1, title="Markets calm", published_ms=clock.now_ms() - 60_000
    )
    await add_story(
        store,
        clock,
        feed_id,
        2,
        title="Putin's envoy speaks",
        published_ms=clock.now_ms() - 120_000,
    )
    await DigestScheduler(store, settings, clock).send_now(1, thread_id=None)
    [text] = await digests(store)
    assert text.index("Putin's envoy") < text.index("Markets calm")


async def test_thousands_of_stories_split_into_valid_parts(
    store: Store, settings: Settings
) -> None:
    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 12, 0)))
    await setup_chat(store, clock)
    settings = dataclasses.replace(
        settings, digest=dataclasses.replace(settings.digest, max_stories_per_feed=100)
    )
    feeds = [
        await store.feeds.add(
            f"https://feeds.test/{n}.xml", title=f"Feed {n}", site_url="", now_ms=clock.now_ms()
        )
        for n in range(3)
    ]
    for feed_id in feeds:
        await store.chats.subscribe(1, feed_id, thread_id=None, now_ms=clock.now_ms())
        for n in range(100):
            await add_story(
                store,
                clock,
                feed_id,
                feed_id * 1000 + n,
                published_ms=clock.now_ms() - n * 60_000,
                summary="A fairly long summary sentence about the news. " * 3,
            )
    parts = await DigestScheduler(store, settings, clock).send_now(1, thread_id=None)
    texts = await digests(store)
    assert parts == len(texts) > 1
    for n in range(3):
        for k in (0, 50, 99):
            number = feeds[n] * 1000 + k
            assert sum(f">Story {number}<" in t for t in texts) == 1


async def test_wrong_input_is_answered(store: Store, settings: Settings) -> None:
    from bot.errors import UserError

    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 12, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    for args, key in [
        (["25:99"], "digest.bad_time"),
        (["8"], "digest.bad_time"),
        (["08:00", "Mars/Olympus"], "digest.bad_zone"),
        ([], "digest.usage"),
    ]:
        try:
            await scheduler.set_schedule(1, args, thread_id=None)
        except UserError as error:
            assert error.key == key, args
        else:
            raise AssertionError(f"{args} accepted")
    chat = await store.chats.get(1)
    assert chat is not None and chat.digest_hour is None


def test_timedelta_helper_sanity() -> None:
    assert ms(local("UTC", 2025, 1, 1, 0, 0) + timedelta(hours=1)) == 1735693200000


# --- many chats at once -----------------------------------------------------------------

WORDS = [
    "markets",
    "putin",
    "trade",
    "energy",
    "court",
    "election",
    "storm",
    "vaccine",
    "rates",
    "chip",
]
HANZI = "克里姆林宫美俄会谈能源贸易法院选举台风疫苗利率芯片"


def random_story(rng: random.Random, n: int, feed_id: int, base_ms: int) -> Story:
    """A story with the shapes that change rendering: CJK, no summary, long titles and
    links, markup characters, equal timestamps (so the id breaks the tie)."""
    if feed_id % 3 == 0:
        title = "".join(rng.choices(HANZI, k=rng.randint(4, 40)))
        summary = "".join(rng.choices(HANZI, k=rng.randint(0, 150))) + "。"
    else:
        title = " ".join(rng.choices(WORDS, k=rng.randint(2, 12))) + rng.choice(["", " <&>"])
        summary = rng.choice(["", "One sentence. Two.", " ".join(rng.choices(WORDS, k=40))])
    if rng.random() < 0.02:
        title = "x" * 5000  # cut to fit one message
    link = rng.choice([f"https://n.test/{n}", f"https://n.test/{'p' * 300}/{n}", "mailto:x"])
    return Story(
        n,
        feed_id,
        f"Feed {feed_id} & co",
        base_ms - rng.randint(0, 40) * 60_000,
        title,
        link,
        summary,
    )


def test_one_renderer_for_many_chats_equals_rendering_each_alone() -> None:
    """fire_due renders every chat of a window with one DigestRenderer, whose sections are
    shared between chats: each chat's messages must be exactly render_digest's for that
    chat's stories alone, whatever order the chats come in."""
    rng = random.Random(5)
    base = 1_740_000_000_000
    stories = [random_story(rng, n, rng.randint(1, 8), base) for n in range(1, 400)]
    by_feed: dict[int, list[Story]] = {}
    for story in sorted(stories, key=lambda s: (-s.timestamp_id, -s.id)):
        by_feed.setdefault(story.feed_id, []).append(story)
    chats = []
    for _ in range(120):
        feeds = set(rng.sample(range(1, 10), rng.randint(0, 6)))  # feed 9 has no stories
        mine = [s for s in stories if s.feed_id in feeds]
        matched = {s.id for s in mine if rng.random() < 0.05} if rng.random() < 0.3 else set()
        in_digest_mode = {f for f in feeds if rng.random() < 0.3}
        language, zone = rng.choice(["en", "zh"]), rng.choice(["UTC", "Asia/Tokyo"])
        chats.append((feeds, matched, in_digest_mode, language, zone))
    for order in (chats, list(reversed(chats))):
        renderer = DigestRenderer(by_feed, max_per_feed=7)
        for feeds, matched, in_digest_mode, language, zone in order:
            shared = renderer.render(
                feeds,
                matched,
                now_ms=base,
                zone=zone,
                language=language,
                digest_feeds=in_digest_mode,
            )
            alone = render_digest(
                [DigestItem(s, s.id in matched) for s in stories if s.feed_id in feeds],
                now_ms=base,
                zone=zone,
                language=language,
                max_per_feed=7,
                digest_feeds=in_digest_mode,
            )
            assert shared == alone


def test_a_feed_in_digest_mode_lists_every_story_one_also_alerted_its_newest() -> None:
    """A digest-mode feed's stories came in no alert: the digest is where they are
    delivered, so it lists all 130, over as many messages as that takes; the same feed
    followed in instant mode lists max_per_feed and counts the rest."""
    stories = [
        Story(
            n,
            1,
            "Busy",
            1_740_000_000_000 - n * 60_000,
            f"Story number {n} of a busy day",
            f"https://b.test/{n}",
            "A one-line summary of what happened in this story.",
        )
        for n in range(1, 131)
    ]
    items = [DigestItem(story, n % 50 == 0) for n, story in enumerate(stories)]

    def render(digest_feeds: set[int]) -> list[str]:
        return render_digest(
            items,
            now_ms=1_740_000_000_000,
            zone="UTC",
            language="en",
            max_per_feed=10,
            digest_feeds=digest_feeds,
        )

    instant = "\n".join(render(set()))
    assert instant.count("https://b.test/") == 10 and instant.endswith("… and 120 more")
    messages = render({1})
    assert len(messages) > 1
    listed = [int(m) for text in messages for m in re.findall(r"https://b\.test/(\d+)", text)]
    assert sorted(listed) == list(range(1, 131))  # each once: none cut in two, none lost
    assert not any("more" in text for text in messages)
    for text in messages:
        assert telegram_length(text) <= MESSAGE_LIMIT
        parse_html(text)  # valid on its own: no story broken across two messages


async def test_fire_due_for_many_chats_equals_each_chat_rendered_alone(
    store: Store, settings: Settings
) -> None:
    """One fire_due for 40 chats (two windows: new chats and chats with yesterday's
    digest; keywords with includes and excludes) queues for each chat exactly the
    messages that chat's stories and keywords give on their own."""
    zone = "UTC"
    rng = random.Random(8)
    due = ms(local(zone, 2025, 6, 2, 8, 0))
    clock = FakeClock(due - 30 * 3_600_000)
    feed_ids = [
        await store.feeds.add(f"https://feeds.test/{n}.xml", title=f"F{n}", site_url="", now_ms=0)
        for n in range(5)
    ]
    for n in range(150):  # found over the 30 hours before the due instant
        clock.set_ms(due - 30 * 3_600_000 + n * 700_000)
        title = " ".join(rng.choices(WORDS, k=5))
        await add_story(store, clock, rng.choice(feed_ids), n, title=title)
    clock.set_ms(due - 3_600_000)
    scheduler = DigestScheduler(store, settings, clock)
    expected_keywords: dict[int, list[Keyword]] = {}
    for chat_id in range(1, 41):
        await store.chats.upsert(
            chat_id, kind="private", title="", language=rng.choice(["en", "zh"]), now_ms=0
        )
        for feed_id in rng.sample(feed_ids, rng.randint(1, 4)):
            await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=0)
        for subscription in await store.chats.subscriptions(chat_id):
            if rng.random() < 0.3:
                await store.chats.set_mode(chat_id, subscription.id, "digest")
        if chat_id % 3 == 0:
            chosen = [(w, False) for w in rng.sample(WORDS, 2)] + [(rng.choice(WORDS), True)]
            await store.chats.set_keywords(chat_id, chosen)
            expected_keywords[chat_id] = [Keyword(text, exclude) for text, exclude in chosen]
        await scheduler.set_schedule(chat_id, ["08:00", zone], thread_id=None)
        if chat_id % 4:  # had yesterday's digest; the others get their first
            await store.db.execute(
                "UPDATE chats SET last_digest_at = ? WHERE id = ?", (due - 86_400_000, chat_id)
            )
    clock.set_ms(due + 3_000)
    assert await scheduler.fire_due() == 40
    for chat_id in range(1, 41):
        chat = await store.chats.get(chat_id)
        assert chat is not None and chat.last_digest_at == due
        first = chat_id % 4 == 0
        window = digest_window(None if first else due - 86_400_000, due)
        stories = await store.stories.window(
            chat_id,
            seen_from=window.seen_from,
            seen_until=window.seen_until,
            published_from=window.published_from,
        )
        chat_filter = KeywordFilter(expected_keywords.get(chat_id, []))
        items = []
        for story in stories:
            verdict = chat_filter.check(f"{story.title}\n{story.summary}")
            items.append(
                DigestItem(
                    story,
                    bool(chat_filter.includes) and verdict.keyword is not None and verdict.alert,
                )
            )
        in_digest_mode = {
            s.feed_id for s in await store.chats.subscriptions(chat_id) if s.mode == "digest"
        }
        expected = render_digest(
            items,
            now_ms=due,
            zone=zone,
            language=chat.language,
            max_per_feed=settings.digest.max_stories_per_feed,
            digest_feeds=in_digest_mode,
        )
        assert await digests(store, chat_id) == expected, chat_id
        if chat_id % 3 == 0 and any(item.matched for item in items):
            assert "★" in expected[0]


async def test_a_schedule_changed_while_digests_are_made_keeps_its_new_time(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fire_due reads the due chats, then yields while it renders thousands of digests: a
    `/digest at` or `/digest off` answered meanwhile must not be overwritten by the
    schedule fire_due computed from what it read. The due digest still goes out."""
    zone = "UTC"
    settings = with_grace(settings, hours=2)
    clock = FakeClock(ms(local(zone, 2025, 6, 2, 2, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    for chat_id in (2, 3, 4, 5):
        await store.chats.upsert(chat_id, kind="private", title="", language="en", now_ms=0)
    for chat_id in (1, 2, 3):  # due at 06:00, found at 07:00: inside grace, sent
        await scheduler.set_schedule(chat_id, ["06:00"], thread_id=None)
    for chat_id in (4, 5):  # due at 03:00, found at 07:00: beyond grace, skipped
        await scheduler.set_schedule(chat_id, ["03:00"], thread_id=None)
    clock.set(local(zone, 2025, 6, 2, 7, 0))
    read_feeds = store.chats.subscribed_feeds

    async def answer_commands_meanwhile(chat_ids: list[int]) -> dict[int, set[int]]:
        await scheduler.set_schedule(2, ["21:30"], thread_id=None)
        await scheduler.turn_off(3)
        await scheduler.set_schedule(4, ["22:00"], thread_id=None)
        return await read_feeds(chat_ids)

    monkeypatch.setattr(store.chats, "subscribed_feeds", answer_commands_meanwhile)
    assert await scheduler.fire_due() == 3
    chats = {chat_id: await store.chats.get(chat_id) for chat_id in range(1, 6)}
    next_due = {chat_id: chat.next_digest_at for chat_id, chat in chats.items() if chat}
    assert next_due == {
        1: ms(local(zone, 2025, 6, 3, 6, 0)),  # moved on as usual
        2: ms(local(zone, 2025, 6, 2, 21, 30)),  # the new time, not 06:00 tomorrow
        3: None,  # still off
        4: ms(local(zone, 2025, 6, 2, 22, 0)),  # the new time survives the skip
        5: ms(local(zone, 2025, 6, 3, 3, 0)),  # skipped to tomorrow
    }
    for chat_id in (1, 2, 3):
        chat = chats[chat_id]
        assert chat is not None and chat.last_digest_at == ms(local(zone, 2025, 6, 2, 6, 0))
        assert len(await digests(store, chat_id)) == 1


async def test_a_tick_while_digests_are_made_returns_at_once_and_queues_nothing_twice(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ticks every few seconds and a big minute takes longer than a tick."""
    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 7, 0)))
    await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    await scheduler.set_schedule(1, ["08:00"], thread_id=None)
    clock.set(local("UTC", 2025, 6, 1, 8, 0, 5))
    read_feeds = store.chats.subscribed_feeds
    overlapping: list[int] = []

    async def next_tick_meanwhile(chat_ids: list[int]) -> dict[int, set[int]]:
        overlapping.append(await scheduler.fire_due())
        return await read_feeds(chat_ids)

    monkeypatch.setattr(store.chats, "subscribed_feeds", next_tick_meanwhile)
    assert await scheduler.fire_due() == 1
    assert overlapping == [0]
    assert len(await digests(store)) == 1


async def test_the_zone_is_remembered_when_only_a_time_is_given(
    store: Store, settings: Settings
) -> None:
    """`/digest at 07:30 Asia/Tokyo`, then `/digest at 09:00`: still Tokyo (not the default
    zone), also after `/digest off`; and the digest is headed with Tokyo's date and zone."""
    from bot.delivery.format import format_time
    from bot.i18n import t

    assert settings.digest.timezone == "UTC"  # the default differs from the chat's zone
    clock = FakeClock(ms(local("UTC", 2025, 6, 1, 12, 0)))  # 21:00 in Tokyo
    feed_id = await setup_chat(store, clock)
    scheduler = DigestScheduler(store, settings, clock)
    first = await scheduler.set_schedule(1, ["07:30", "Asia/Tokyo"], thread_id=None)
    assert (first.zone, first.next_due_ms) == (
        "Asia/Tokyo",
        ms(local("Asia/Tokyo", 2025, 6, 2, 7, 30)),
    )
    schedule = await scheduler.set_schedule(1, ["09:00"], thread_id=None)
    tokyo_nine = ms(local("Asia/Tokyo", 2025, 6, 2, 9, 0))
    assert (schedule.hour, schedule.minute, schedule.zone) == (9, 0, "Asia/Tokyo")
    assert schedule.next_due_ms == tokyo_nine
    chat = await store.chats.get(1)
    assert chat is not None
    assert (chat.timezone, chat.digest_hour, chat.next_digest_at) == ("Asia/Tokyo", 9, tokyo_nine)
    # The reply the handler makes from this schedule names the zone and Tokyo's 09:00.
    reply = t(
        "en",
        "digest.scheduled",
        time="09:00",
        zone=schedule.zone,
        next=format_time(schedule.next_due_ms, schedule.zone),
    )
    assert "Asia/Tokyo" in reply and "2025-06-02 09:00" in reply

    assert await scheduler.turn_off(1)
    again = await scheduler.set_schedule(1, ["09:00"], thread_id=None)
    assert (again.zone, again.next_due_ms) == ("Asia/Tokyo", tokyo_nine)

    await add_story(store, clock, feed_id, 1, published_ms=clock.now_ms() - 60_000)
    clock.set(local("UTC", 2025, 6, 2, 0, 0, 5))  # 09:00:05 in Tokyo (not yet 09:00 UTC)
    assert await scheduler.fire_due() == 1
    [text] = await digests(store)
    assert "2025-06-02 (Asia/Tokyo)" in text and "Story 1" in text
