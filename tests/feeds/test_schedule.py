"""bot/feeds/schedule.py: when a feed is checked next (issue 16, part 1).

A healthy feed's delay is its adaptive interval (bot/feeds/freshness.py) at the budget
factor, its own hint as a floor up to poll.hint_max, then jitter; a failing one backs off
exponentially from poll.interval, with Retry-After honoured, as before adaptive polling.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from bot.config import Settings, load_settings
from bot.feeds.freshness import FeedRate, observe
from bot.feeds.schedule import BUDGET_REFRESH_MS, PollBudget, failure_delay, success_delay

HOUR_MS = 3_600_000
NOW = 1_740_787_200_000
DEFAULTS = load_settings(environ={})  # interval 300, bounds 60..3600, hint_max 21600
# Where a realistic mix of feeds holds the budget factor (tests/test_freshness.py).
FACTOR = 0.07


def settings(**poll: float) -> Settings:
    return dataclasses.replace(DEFAULTS, poll=dataclasses.replace(DEFAULTS.poll, **poll))


def watched_for(hours: int, stories_per_hour: float) -> FeedRate:
    """A feed checked hourly for `hours`, each check finding the hour's stories (rounded)."""
    state = FeedRate.new(NOW - hours * HOUR_MS)
    for hour in range(1, hours + 1):
        state = observe(state, round(stories_per_hour), NOW - (hours - hour) * HOUR_MS)
    return state


def delays(
    state: FeedRate,
    *,
    config: Settings = DEFAULTS,
    hint: int | None = None,
    factor: float = FACTOR,
    samples: int = 200,
) -> list[float]:
    rng = random.Random(5)
    return [success_delay(state, factor, config, NOW, hint, rng) for _ in range(samples)]


def within_jitter(values: list[float], centre: float, jitter: float = DEFAULTS.poll.jitter):
    return all(centre * (1 - jitter) <= v <= centre * (1 + jitter) for v in values)


def test_a_busy_feed_is_checked_sooner_than_the_mean_and_a_quiet_one_later() -> None:
    busy = delays(watched_for(72, 6))  # six stories an hour
    quiet = delays(watched_for(72, 0))  # nothing for three days
    mean = DEFAULTS.poll.interval
    assert max(busy) < mean * (1 - DEFAULTS.poll.jitter)
    assert min(quiet) > mean * (1 + DEFAULTS.poll.jitter)
    # The square-root rule: nine times the rate, a third of the interval (no bound hit).
    hourly = delays(watched_for(72, 1), factor=1.0)
    ninefold = delays(watched_for(72, 9), factor=1.0)
    assert sum(ninefold) / sum(hourly) == pytest.approx(1 / 3, rel=0.1)


def test_the_interval_stays_within_its_bounds_before_jitter() -> None:
    torrent = delays(watched_for(72, 500))
    silent = delays(watched_for(24 * 30, 0), factor=50.0)
    assert within_jitter(torrent, DEFAULTS.poll.min_interval)
    assert within_jitter(silent, DEFAULTS.poll.max_interval)
    narrow = settings(min_interval=200, max_interval=400)
    assert within_jitter(delays(watched_for(72, 500), config=narrow), 200)
    assert within_jitter(delays(watched_for(24 * 30, 0), config=narrow, factor=50.0), 400)


def test_a_new_feed_starts_at_the_mean_whatever_the_budget() -> None:
    new = FeedRate.new(NOW)
    for factor in (0.001, FACTOR, 1.0, 1000.0):
        assert within_jitter(delays(new, factor=factor), DEFAULTS.poll.interval)
    # The spread is the jitter's, both ways (feeds that fell due together drift apart).
    spread = delays(new)
    assert min(spread) < DEFAULTS.poll.interval < max(spread)


def test_the_feeds_hint_is_a_floor_up_to_hint_max() -> None:
    busy = watched_for(72, 6)
    # A ttl of 30 minutes slows a busy feed to 30 minutes.
    assert within_jitter(delays(busy, hint=1800), 1800)
    # A hint shorter than the feed's own interval changes nothing: hints never speed up.
    quiet = watched_for(72, 0)
    assert delays(quiet, hint=60) == delays(quiet)
    # A hint past hint_max counts as hint_max.
    assert within_jitter(delays(busy, hint=10 * 86_400), DEFAULTS.poll.hint_max)
    assert within_jitter(delays(busy, hint=7200, config=settings(hint_max=3000)), 3000)


def test_failure_backoff_is_unchanged_by_the_rate() -> None:
    """Failures back off from poll.interval, doubling, capped at backoff_max, jitter only
    later, and Retry-After honoured (up to the cap), whatever the feed's rate."""
    poll = DEFAULTS.poll
    rng = random.Random(3)
    for failures in (1, 2, 5, 30, 40):
        low = min(poll.interval * 2**failures, poll.backoff_max)
        for _ in range(50):
            delay = failure_delay(poll, failures, None, rng)
            assert low <= delay <= low * (1 + poll.jitter)
    assert failure_delay(poll, 1, 7200.0, rng) >= 7200
    assert failure_delay(poll, 1, 10 * poll.backoff_max, rng) <= poll.backoff_max * (
        1 + poll.jitter
    )


def test_the_budget_is_recomputed_about_once_a_minute() -> None:
    budget = PollBudget()
    assert budget.stale(NOW)  # never computed
    budget.computed_at_ms = NOW
    assert not budget.stale(NOW + BUDGET_REFRESH_MS - 1)
    assert budget.stale(NOW + BUDGET_REFRESH_MS)
    assert budget.stale(NOW - 1)  # the clock stepped back: compute again
    assert BUDGET_REFRESH_MS == 60_000
