"""bot/feeds/freshness.py: the publishing-rate model and the interval policy (issue 16)."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, Settings, load_settings
from bot.feeds.freshness import (
    TAU_HOURS,
    FeedRate,
    budget_factor,
    interval,
    observe,
    rate,
)

HOUR_MS = 3_600_000
DEFAULTS = load_settings(environ={})
# About where bench/freshness.py's 10,000 feeds hold the budget factor (0.067 to 0.078).
BENCH_FACTOR = 0.07


def poll_settings(**changes: float) -> Settings:
    return dataclasses.replace(DEFAULTS, poll=dataclasses.replace(DEFAULTS.poll, **changes))


def watched(per_hour: float, hours: int, rng: random.Random, start_ms: int = 0) -> FeedRate:
    """A feed publishing `per_hour` stories an hour (Poisson), checked every hour."""
    state = FeedRate.new(start_ms)
    moment = rng.expovariate(per_hour) if per_hour else math.inf
    for hour in range(1, hours + 1):
        found = 0
        while moment <= hour:
            found += 1
            moment += rng.expovariate(per_hour)
        state = observe(state, found, start_ms + hour * HOUR_MS)
    return state


def fleet(rng: random.Random, now_ms: int) -> list[FeedRate]:
    """A mix: busy, hourly, daily and silent feeds watched for three days, and new ones."""
    states = []
    for per_hour in (30.0, 8.0, 1.0, 0.2, 1 / 24, 0.0):
        states += [watched(per_hour, 72, rng, now_ms - 72 * HOUR_MS) for _ in range(50)]
    return states + [FeedRate.new(now_ms - rng.randrange(HOUR_MS)) for _ in range(50)]


def request_mean(states: list[FeedRate], factor: float, settings: Settings, now_ms: int) -> float:
    """The mean interval in requests: N / Σ 1/interval (the harmonic mean)."""
    return len(states) / sum(1 / interval(s, factor, settings, now_ms) for s in states)


def test_the_bounds_are_settings_around_the_mean_interval() -> None:
    assert (DEFAULTS.poll.min_interval, DEFAULTS.poll.max_interval) == (60, 3600)
    fast = load_settings(environ={"NEWS_NOTIFIER_POLL_INTERVAL": "1"})
    assert (fast.poll.min_interval, fast.poll.max_interval) == (1, 3600)
    slow = load_settings(environ={"NEWS_NOTIFIER_POLL_INTERVAL": "7200"})
    assert (slow.poll.min_interval, slow.poll.max_interval) == (60, 7200)


def test_crossed_bounds_are_refused_in_one_line(tmp_path: Path) -> None:
    user = tmp_path / "settings.toml"
    user.write_text("[poll]\nmin_interval = 900\nmax_interval = 600\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(user, environ={})
    assert str(refused.value) == (
        "setting poll.min_interval is 900; allowed: a whole number from 1 to"
        " poll.max_interval (600)"
    )


@given(
    stories=st.floats(0, 1e5),
    watched_hours=st.floats(0, TAU_HOURS),
    factor=st.floats(1e-9, 1e9),
    later_hours=st.floats(0, 1e4),
    hint=st.one_of(st.none(), st.integers(1, 10**6)),
)
def test_intervals_stay_within_the_bounds(
    stories: float, watched_hours: float, factor: float, later_hours: float, hint: int | None
) -> None:
    state = FeedRate(stories, watched_hours, 0)
    poll = DEFAULTS.poll
    seconds = interval(state, factor, DEFAULTS, int(later_hours * HOUR_MS), hint)
    assert poll.min_interval <= seconds <= max(poll.max_interval, poll.hint_max)
    if hint is None:
        assert seconds <= poll.max_interval


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_budget_is_the_mean_interval_in_requests(seed: int) -> None:
    rng = random.Random(seed)
    now_ms = 10 * 24 * HOUR_MS
    states = fleet(rng, now_ms)
    factor = budget_factor(states, DEFAULTS, now_ms)
    intervals = [interval(s, factor, DEFAULTS, now_ms) for s in states]
    # Within 1% of poll.interval, and the mix really spreads over the range.
    assert request_mean(states, factor, DEFAULTS, now_ms) == pytest.approx(300, rel=0.01)
    assert min(intervals) < DEFAULTS.poll.interval / 3 < 3 * DEFAULTS.poll.interval < max(intervals)
    # The previous answer is only a starting guess.
    assert budget_factor(states, DEFAULTS, now_ms, previous=factor * 1000) == pytest.approx(
        factor, rel=1e-4
    )


def test_the_budget_holds_when_it_leaves_no_choice() -> None:
    """interval == min_interval: every feed must be checked at the floor."""
    settings = poll_settings(interval=60)
    now_ms = 10 * 24 * HOUR_MS
    states = fleet(random.Random(4), now_ms)
    factor = budget_factor(states, settings, now_ms)
    assert {interval(s, factor, settings, now_ms) for s in states} == {60.0}


def test_busy_feeds_are_checked_more_often() -> None:
    rng = random.Random(5)
    now_ms = 72 * HOUR_MS
    rates = [20.0, 5.0, 1.0, 0.25, 1 / 24, 0.0]
    states = [watched(per_hour, 72, rng) for per_hour in rates]
    factor = BENCH_FACTOR
    intervals = [interval(s, factor, DEFAULTS, now_ms) for s in states]
    assert intervals == sorted(intervals)
    assert intervals[0] == DEFAULTS.poll.min_interval
    assert intervals[-1] > 2 * DEFAULTS.poll.interval  # silent for 3 days
    estimates = [rate(s, factor, now_ms) for s in states]
    assert estimates[1] == pytest.approx(5.0, rel=0.25)


def test_hints_only_slow_a_feed_down() -> None:
    rng = random.Random(6)
    busy = watched(20.0, 72, rng)
    now_ms = 72 * HOUR_MS
    plain = interval(busy, 0.1, DEFAULTS, now_ms)
    assert plain == 60.0
    assert interval(busy, 0.1, DEFAULTS, now_ms, hint_seconds=30) == plain
    assert interval(busy, 0.1, DEFAULTS, now_ms, hint_seconds=900) == 900.0
    # A hint slows up to poll.hint_max, no further.
    assert interval(busy, 0.1, DEFAULTS, now_ms, hint_seconds=10**7) == DEFAULTS.poll.hint_max
    quiet = FeedRate(0.0, TAU_HOURS, now_ms)
    assert interval(quiet, 0.1, DEFAULTS, now_ms, hint_seconds=90) == interval(
        quiet, 0.1, DEFAULTS, now_ms
    )


def test_a_new_feed_starts_at_the_mean() -> None:
    now_ms = 10 * 24 * HOUR_MS
    states = fleet(random.Random(7), now_ms)
    factor = budget_factor(states, DEFAULTS, now_ms)
    new = FeedRate.new(now_ms)
    assert interval(new, factor, DEFAULTS, now_ms) == pytest.approx(DEFAULTS.poll.interval)
    assert rate(new, factor, now_ms) == pytest.approx(factor)
    for other in (1e-3, 1.0, 1e3):  # whatever the fleet's factor
        assert interval(new, other, DEFAULTS, now_ms) == pytest.approx(DEFAULTS.poll.interval)


def test_a_fleet_of_new_feeds_keeps_the_guess() -> None:
    states = [FeedRate.new(0) for _ in range(10)]
    assert budget_factor(states, DEFAULTS, 0, previous=0.25) == 0.25
    assert budget_factor([], DEFAULTS, 0, previous=0.25) == 0.25


def test_decay_forgets_an_old_burst() -> None:
    rng = random.Random(8)
    factor = BENCH_FACTOR
    quiet = watched(0.0, 13 * 24, rng)
    burst = observe(watched(0.0, 5 * 24, rng), 50, 5 * 24 * HOUR_MS)
    just_after = 5 * 24 * HOUR_MS
    assert (
        interval(burst, factor, DEFAULTS, just_after)
        < interval(quiet, factor, DEFAULTS, just_after) / 5
    )
    # Eight quiet days (eight τ) later, the 50 stories weigh 0.02 of one.
    later = 13 * 24 * HOUR_MS
    assert interval(burst, factor, DEFAULTS, later) == pytest.approx(
        interval(quiet, factor, DEFAULTS, later), rel=0.05
    )
    assert rate(burst, factor, later) < 2 * rate(quiet, factor, later)


def test_a_check_that_found_nothing_changes_nothing_later_reads_see() -> None:
    state = observe(FeedRate.new(0), 3, HOUR_MS)
    skipped = observe(state, 0, 5 * HOUR_MS)
    for later_ms in (5 * HOUR_MS, 30 * HOUR_MS, 300 * HOUR_MS):
        assert interval(skipped, 0.1, DEFAULTS, later_ms) == pytest.approx(
            interval(state, 0.1, DEFAULTS, later_ms), rel=1e-9
        )
    assert observe(state, 2, 9 * HOUR_MS).stories == pytest.approx(
        observe(skipped, 2, 9 * HOUR_MS).stories, rel=1e-9
    )


def test_a_clock_stepping_back_counts_the_stories_without_time() -> None:
    state = observe(FeedRate.new(0), 1, 10 * HOUR_MS)
    earlier = observe(state, 2, 9 * HOUR_MS)
    assert (earlier.stories, earlier.watched_hours, earlier.at_ms) == (
        pytest.approx(state.stories + 2),
        state.watched_hours,
        state.at_ms,
    )
