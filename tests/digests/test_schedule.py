"""The daily digest's schedule: digest times and zones, next_due through DST changes,
catch-up at start, and the window of stories each digest lists. Every instant is
injected."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import DAY_MS, HOUR_MS
from bot.digests.schedule import (
    DigestWindow,
    digest_window,
    due_since,
    next_due,
    on_demand_window,
    parse_digest_time,
    parse_zone,
    previous_due,
)
from bot.errors import UserError
from bot.feeds.record import DedupeRules
from bot.models import Entry
from bot.store import Store
from tests.helpers import at, record_entries

MINUTE_MS = 60_000


def utc(*fields: int) -> int:
    return at("UTC", *fields)


def local(epoch_ms: int, zone: str) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(ZoneInfo(zone))


# ---------------------------------------------------------------------------------------
# parse_digest_time / parse_zone
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("07:30", (7, 30)),
        ("7:30", (7, 30)),
        ("0:00", (0, 0)),
        ("23:59", (23, 59)),
        (" 08:05 ", (8, 5)),
        ("０７：３０", (7, 30)),  # full-width digits and colon, as Chinese keyboards type them
        ("7：30", (7, 30)),
    ],
)
def test_parse_digest_time_accepts(text: str, expected: tuple[int, int]) -> None:
    assert parse_digest_time(text) == expected


@pytest.mark.parametrize(
    "text",
    ["25:99", "24:00", "7", "", "12:60", "ab:cd", "7:3", "07:30:00", "-1:30", "7.30", "٠٧:٣٠"],
)
def test_parse_digest_time_rejects(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_digest_time(text)
    assert caught.value.key == "digest.bad_time"
    assert caught.value.values == {"given": text}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Asia/Shanghai", "Asia/Shanghai"),
        ("asia/shanghai", "Asia/Shanghai"),
        ("AMERICA/NEW_YORK", "America/New_York"),
        (" Europe/Berlin ", "Europe/Berlin"),
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("GMT", "GMT"),
    ],
)
def test_parse_zone_accepts(text: str, expected: str) -> None:
    assert parse_zone(text) == expected
    ZoneInfo(parse_zone(text))  # and the result loads


@pytest.mark.parametrize(
    "text", ["Mars/Olympus", "Asia/Shangai", "", "Shanghai", "localtime", "Factory", "../UTC"]
)
def test_parse_zone_rejects(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_zone(text)
    assert caught.value.key == "digest.bad_zone"
    assert caught.value.values == {"given": text}


# ---------------------------------------------------------------------------------------
# next_due: named DST cases
# ---------------------------------------------------------------------------------------


def test_next_due_shanghai_no_dst() -> None:
    # 08:00 CST is 00:00 UTC, every day of the year.
    assert next_due(8, 0, "Asia/Shanghai", utc(2025, 2, 25, 23, 59)) == utc(2025, 2, 26, 0, 0)
    # Strictly after: at the due instant itself, the next one is tomorrow's.
    assert next_due(8, 0, "Asia/Shanghai", utc(2025, 2, 26, 0, 0)) == utc(2025, 2, 27, 0, 0)
    assert next_due(8, 0, "Asia/Shanghai", utc(2025, 2, 26, 0, 0) - 1) == utc(2025, 2, 26, 0, 0)


def test_next_due_berlin_spring_forward_gap() -> None:
    # 2025-03-30 02:30 does not exist in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    assert next_due(2, 30, "Europe/Berlin", utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1, 0)
    assert next_due(2, 30, "Europe/Berlin", utc(2025, 3, 30, 1, 0)) == utc(2025, 3, 31, 0, 30)


def test_next_due_berlin_fall_back_once() -> None:
    # 2025-10-26 02:30 happens twice in Berlin: 00:30 UTC (CEST), then 01:30 UTC (CET).
    first = next_due(2, 30, "Europe/Berlin", utc(2025, 10, 25, 12))
    assert first == utc(2025, 10, 26, 0, 30)
    # Right after the first occurrence, the second one is not due: the next is Monday's.
    assert next_due(2, 30, "Europe/Berlin", first) == utc(2025, 10, 27, 1, 30)
    assert next_due(2, 30, "Europe/Berlin", utc(2025, 10, 26, 1, 0)) == utc(2025, 10, 27, 1, 30)


def test_next_due_new_york_both_changes() -> None:
    # 2025-03-09: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    assert next_due(2, 30, "America/New_York", utc(2025, 3, 8, 12)) == utc(2025, 3, 9, 7, 0)
    assert next_due(2, 30, "America/New_York", utc(2025, 3, 9, 7, 0)) == utc(2025, 3, 10, 6, 30)
    # 2025-11-02: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST); first only.
    first = next_due(1, 30, "America/New_York", utc(2025, 11, 1, 12))
    assert first == utc(2025, 11, 2, 5, 30)
    assert next_due(1, 30, "America/New_York", first) == utc(2025, 11, 3, 6, 30)


def test_next_due_gap_over_midnight_still_serves_that_day() -> None:
    # America/Nuuk 2025-03-29: Saturday 23:00 (-02) jumps to Sunday 00:00 (-01), 01:00 UTC.
    # Saturday's 23:30 digest goes out at the end of the gap, not never.
    saturday = next_due(23, 30, "America/Nuuk", utc(2025, 3, 29, 12))
    assert saturday == utc(2025, 3, 30, 1, 0)
    sunday = next_due(23, 30, "America/Nuuk", saturday)
    assert local(sunday, "America/Nuuk").replace(tzinfo=None) == datetime(2025, 3, 30, 23, 30)


def test_next_due_rejects_impossible_clock() -> None:
    with pytest.raises(ValueError):
        next_due(24, 0, "UTC", 0)
    with pytest.raises(ValueError):
        next_due(7, 60, "UTC", 0)


# ---------------------------------------------------------------------------------------
# next_due over whole years, against an independent definition
# ---------------------------------------------------------------------------------------


def first_reaching(zone: str, wall: datetime) -> int:
    """The first instant (whole minutes) at which the wall clock of `zone` reads `wall` or
    later: the definition of a day's due instant, by brute force. It covers every case at
    once: the time itself, the end of a gap that skipped it, the first of two repeats."""
    tz = ZoneInfo(zone)
    as_utc = datetime.combine(wall.date(), wall.time(), tzinfo=UTC)
    # Start where the wall clock surely still reads earlier: before `wall` minus the
    # largest offset the zone has around then (two hours' margin), and walk by minutes.
    nearby = [(as_utc + timedelta(days=d)).astimezone(tz).utcoffset() for d in (-2, -1, 0, 1, 2)]
    moment = as_utc - max(o for o in nearby if o is not None) - timedelta(hours=2)
    assert moment.astimezone(tz).replace(tzinfo=None) < wall
    while moment.astimezone(tz).replace(tzinfo=None) < wall:
        moment += timedelta(minutes=1)
    return int(moment.timestamp() * 1000)


def wall_exists(zone: str, wall: datetime) -> bool:
    tz = ZoneInfo(zone)
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def dues_of_year(hour: int, minute: int, zone: str, year: int) -> list[int]:
    """next_due chained from the last instant of the year before, for the whole year."""
    after = at(zone, year, 1, 1) - 1
    end = at(zone, year + 1, 1, 1)
    dues = []
    while (after := next_due(hour, minute, zone, after)) < end:
        dues.append(after)
    return dues


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize(("hour", "minute"), [(0, 0), (1, 30), (2, 30), (8, 0), (23, 59)])
def test_one_due_per_local_day_over_2025(zone: str, hour: int, minute: int) -> None:
    dues = dues_of_year(hour, minute, zone, 2025)
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(365)]
    assert [local(due, zone).date() for due in dues] == days
    for day, due in zip(days, dues, strict=True):
        wall = datetime.combine(day, time(hour, minute))
        seen = local(due, zone)
        assert seen.fold == 0  # never the second reading of a repeated time
        if wall_exists(zone, wall):
            assert seen.replace(tzinfo=None) == wall
        else:  # only the spring-forward days of the two DST zones
            assert day in (date(2025, 3, 30), date(2025, 3, 9))
            assert seen.replace(tzinfo=None) == wall.replace(hour=3, minute=0)
        assert due == first_reaching(zone, wall)


@pytest.mark.parametrize(
    ("zone", "hour", "minute"),
    [
        ("Australia/Lord_Howe", 2, 15),  # a 30-minute DST shift
        ("America/Nuuk", 23, 30),  # a gap that runs over midnight
        ("America/Santiago", 0, 0),  # transitions at local midnight
        ("Asia/Tehran", 12, 0),  # DST abolished in 2022: plain days
    ],
)
def test_one_due_per_scheduled_day_in_odd_zones(zone: str, hour: int, minute: int) -> None:
    dues = dues_of_year(hour, minute, zone, 2025)
    assert len(dues) == 365
    day = date(2025, 1, 1)
    for due in dues:
        assert due == first_reaching(zone, datetime.combine(day, time(hour, minute)))
        day += timedelta(days=1)


ZONES = sorted(available_timezones() - {"localtime", "Factory"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    day=st.dates(min_value=date(1980, 1, 1), max_value=date(2037, 12, 30)),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
)
def test_next_due_matches_definition_everywhere(
    zone: str, day: date, hour: int, minute: int
) -> None:
    due = first_reaching(zone, datetime.combine(day, time(hour, minute)))
    following = first_reaching(zone, datetime.combine(day + timedelta(days=1), time(hour, minute)))
    assert next_due(hour, minute, zone, due - 1) == due
    assert previous_due(hour, minute, zone, due) == due
    if following != due:  # equal only where a whole local day was skipped (Apia, 2011)
        # Nothing due between one day's instant and the next day's: one per day.
        assert next_due(hour, minute, zone, due) == following
        assert previous_due(hour, minute, zone, following - 1) == due


# ---------------------------------------------------------------------------------------
# due_since: catch-up at start
# ---------------------------------------------------------------------------------------

ZONE = "Europe/Berlin"
GRACE = 3 * HOUR_MS
TODAY_DUE = at(ZONE, 2025, 6, 10, 8, 0)
YESTERDAY_DUE = at(ZONE, 2025, 6, 9, 8, 0)


def test_due_since_missed_within_grace_is_returned() -> None:
    now = at(ZONE, 2025, 6, 10, 9, 30)
    assert due_since(8, 0, ZONE, YESTERDAY_DUE, now, GRACE) == TODAY_DUE


def test_due_since_missed_beyond_grace_is_skipped() -> None:
    assert due_since(8, 0, ZONE, YESTERDAY_DUE, TODAY_DUE + GRACE, GRACE) is None
    assert due_since(8, 0, ZONE, YESTERDAY_DUE, TODAY_DUE + GRACE - 1, GRACE) == TODAY_DUE


def test_due_since_nothing_missed() -> None:
    now = at(ZONE, 2025, 6, 10, 9, 0)
    assert due_since(8, 0, ZONE, TODAY_DUE, now, GRACE) is None
    # Sent a little late (flood wait): still nothing owed.
    assert due_since(8, 0, ZONE, TODAY_DUE + 5 * MINUTE_MS, now, GRACE) is None


def test_due_since_never_piles_up_old_digests() -> None:
    three_days_ago = at(ZONE, 2025, 6, 7, 8, 0)
    now = at(ZONE, 2025, 6, 10, 8, 10)
    assert due_since(8, 0, ZONE, three_days_ago, now, GRACE) == TODAY_DUE
    # Yesterday's, 23 hours old, is not sent either when today's is not yet due.
    assert due_since(8, 0, ZONE, three_days_ago, at(ZONE, 2025, 6, 10, 7, 0), GRACE) is None


def test_due_since_restart_between_setting_and_due_time() -> None:
    set_at = at(ZONE, 2025, 6, 10, 7, 0)  # "/digest at 08:00" at 07:00
    big_grace = 2 * DAY_MS  # even a generous grace must not reach back to yesterday's
    assert due_since(8, 0, ZONE, set_at, at(ZONE, 2025, 6, 10, 7, 30), big_grace) is None
    assert due_since(8, 0, ZONE, set_at, TODAY_DUE - 1, big_grace) is None
    assert due_since(8, 0, ZONE, set_at, TODAY_DUE, big_grace) == TODAY_DUE


def test_due_since_across_fall_back_sends_once() -> None:
    first = at(ZONE, 2025, 10, 26, 2, 30, fold=0)
    second = at(ZONE, 2025, 10, 26, 2, 30, fold=1)
    assert due_since(2, 30, ZONE, first, second + MINUTE_MS, GRACE) is None


# ---------------------------------------------------------------------------------------
# The window: which stories a digest lists
# ---------------------------------------------------------------------------------------

SH = "Asia/Shanghai"


@dataclass(frozen=True)
class Found:
    """A stored story as the store sees it: publication time and when it was first seen."""

    timestamp_id: int
    first_seen_ms: int


def selections(windows: list[DigestWindow], stories: list[Found]) -> list[list[Found]]:
    """What the store's digest reads select for each window: the stories are recorded by
    feed checks at their first-seen instants, as the poller records them, in a fresh store.
    Both reads (a minute's digests, and one chat's) must select the same stories."""

    async def select() -> list[list[Found]]:
        async with await Store.open(":memory:") as store:
            feed_id = await store.feeds.add("https://f.test/a", title="", site_url="", now_ms=0)
            await store.chats.upsert(1, kind="private", title="", language="en", now_ms=0)
            await store.chats.subscribe(1, feed_id, thread_id=None, now_ms=0)
            for first_seen in sorted({s.first_seen_ms for s in stories}):
                entries = [
                    Entry(
                        feed_id,
                        s.timestamp_id,
                        identity=str(n),
                        title=str(n),
                        link="",
                        lead_html="",
                    )
                    for n, s in enumerate(stories)
                    if s.first_seen_ms == first_seen
                ]
                await record_entries(
                    store,
                    feed_id,
                    entries,
                    now_ms=first_seen,
                    rules=DedupeRules(archive_window_ms=0, duplicate_window_ms=0),
                )
            found = []
            for w in windows:
                bounds = {
                    "seen_from": w.seen_from,
                    "seen_until": w.seen_until,
                    "published_from": w.published_from,
                }
                by_feed = await store.stories.in_window(**bounds)
                of_chat = await store.stories.window(1, **bounds)
                assert by_feed.get(feed_id, []) == of_chat
                found.append([stories[n] for n in sorted(int(s.title) for s in of_chat)])
            return found

    return asyncio.run(select())


def selected(window: DigestWindow, stories: list[Found]) -> list[Found]:
    return selections([window], stories)[0]


def test_published_before_found_after_goes_to_the_next_digest() -> None:
    d0, d1, d2 = (at(SH, 2025, 2, day, 8, 0) for day in (25, 26, 27))
    late = Found(timestamp_id=d1 - MINUTE_MS, first_seen_ms=d1 + MINUTE_MS)  # 07:59 / 08:01
    on_time = Found(timestamp_id=d1 - 2 * MINUTE_MS, first_seen_ms=d1 - MINUTE_MS)
    first, second = digest_window(d0, d1), digest_window(d1, d2)
    # When the 08:00 digest is made, only on_time is in the store; late shows up after.
    assert selected(first, [on_time, late]) == [on_time]
    assert selected(second, [on_time, late]) == [late]


def test_a_story_found_at_the_due_millisecond_is_in_the_next_digest_only() -> None:
    d0, d1, d2 = (at(SH, 2025, 2, day, 8, 0) for day in (25, 26, 27))
    at_due = Found(timestamp_id=d1 - MINUTE_MS, first_seen_ms=d1)
    assert selections([digest_window(d0, d1), digest_window(d1, d2)], [at_due]) == [[], [at_due]]


def test_a_timestamp_window_would_lose_that_story() -> None:
    # Why the window is on first-seen time: by publication time alone, the late story
    # belongs to the 08:00 digest, which was made before the story was found.
    d1, d2 = at(SH, 2025, 2, 26, 8, 0), at(SH, 2025, 2, 27, 8, 0)
    late = Found(timestamp_id=d1 - MINUTE_MS, first_seen_ms=d1 + MINUTE_MS)
    assert not (d1 <= late.timestamp_id < d2)
    assert selected(digest_window(d1, d2), [late]) == [late]


@settings(max_examples=200, deadline=None)
@given(
    found=st.lists(
        st.tuples(st.integers(0, 6 * DAY_MS - 1), st.integers(0, DAY_MS)), min_size=1, max_size=40
    ),
    hour=st.integers(0, 23),
    found_at_due=st.lists(st.tuples(st.integers(0, 6), st.integers(0, DAY_MS)), max_size=4),
)
def test_every_story_found_in_time_is_in_exactly_one_daily_digest(
    found: list[tuple[int, int]], hour: int, found_at_due: list[tuple[int, int]]
) -> None:
    # A week of daily digests at `hour` in Berlin (a DST change inside it: 23 h day).
    start = at("Europe/Berlin", 2025, 3, 27, 0, 0)
    dues = [next_due(hour, 0, "Europe/Berlin", start)]
    while len(dues) < 7:
        dues.append(next_due(hour, 0, "Europe/Berlin", dues[-1]))
    windows = [digest_window(None, dues[0])]
    windows += [digest_window(prev, due) for prev, due in pairwise(dues)]
    # Found during the week, at most a day after it was published.
    stories = [
        Found(timestamp_id=dues[0] + offset - lag, first_seen_ms=dues[0] + offset)
        for offset, lag in found
    ]
    # Some first seen at the very millisecond a digest falls due: the windows' edges.
    stories += [Found(timestamp_id=dues[i] - lag, first_seen_ms=dues[i]) for i, lag in found_at_due]
    listed = selections(windows, stories)
    for story in stories:
        hits = [w for w, chosen in zip(windows, listed, strict=True) if story in chosen]
        if story.first_seen_ms < dues[-1]:
            assert len(hits) == 1
            # ... and it is the first digest made after it was found.
            assert hits[0].seen_until == min(d for d in dues if d > story.first_seen_ms)
        else:
            assert hits == []


def test_first_digest_lists_the_last_24_hours_by_publication() -> None:
    due = at(SH, 2025, 2, 27, 8, 0)
    window = digest_window(None, due)
    # A feed just subscribed: its entries are all first seen at subscription time.
    subscribed = due - 2 * HOUR_MS
    recent = Found(timestamp_id=due - 23 * HOUR_MS, first_seen_ms=subscribed)
    old = Found(timestamp_id=due - 25 * HOUR_MS, first_seen_ms=subscribed)
    found_after = Found(timestamp_id=due - MINUTE_MS, first_seen_ms=due)
    assert selected(window, [recent, old, found_after]) == [recent]


def test_after_a_long_pause_at_most_24_hours_worth() -> None:
    due = at(SH, 2025, 2, 27, 8, 0)
    window = digest_window(due - 5 * DAY_MS, due)
    assert (window.seen_from, window.seen_until) == (due - DAY_MS, due)
    inside = Found(timestamp_id=due - 3 * HOUR_MS, first_seen_ms=due - 2 * HOUR_MS)
    before = Found(timestamp_id=due - 26 * HOUR_MS, first_seen_ms=due - 25 * HOUR_MS)
    assert selected(window, [inside, before]) == [inside]


def test_backlog_of_a_feed_added_between_digests_is_not_news() -> None:
    d1, d2 = at(SH, 2025, 2, 26, 8, 0), at(SH, 2025, 2, 27, 8, 0)
    added = d1 + 3 * HOUR_MS  # the new feed's entries are all first seen now
    month_old = Found(timestamp_id=d1 - 30 * DAY_MS, first_seen_ms=added)
    yesterday = Found(timestamp_id=d1 - 2 * HOUR_MS, first_seen_ms=added)
    assert selected(digest_window(d1, d2), [month_old, yesterday]) == [yesterday]


def test_schedule_moved_later_same_day_does_not_repeat() -> None:
    d1 = at(SH, 2025, 2, 26, 8, 0)
    moved = next_due(20, 0, SH, d1)  # "/digest at 20:00" after the 08:00 one went out
    story = Found(timestamp_id=d1 - HOUR_MS, first_seen_ms=d1 - MINUTE_MS)
    assert selected(digest_window(d1 - DAY_MS, d1), [story]) == [story]
    assert selected(digest_window(d1, moved), [story]) == []


def test_window_refuses_a_due_already_covered() -> None:
    due = at(SH, 2025, 2, 26, 8, 0)
    with pytest.raises(ValueError):
        digest_window(due, due)


def test_on_demand_lists_published_in_last_24_hours_including_backlog() -> None:
    now = at(SH, 2025, 2, 27, 15, 0)
    window = on_demand_window(now)
    in_feed_at_subscribe = Found(timestamp_id=now - 20 * HOUR_MS, first_seen_ms=now - 3 * DAY_MS)
    fresh = Found(timestamp_id=now - MINUTE_MS, first_seen_ms=now)
    too_old = Found(timestamp_id=now - DAY_MS - 1, first_seen_ms=now - HOUR_MS)
    assert selected(window, [in_feed_at_subscribe, fresh, too_old]) == [
        in_feed_at_subscribe,
        fresh,
    ]
