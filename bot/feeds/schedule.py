"""When a feed is checked next: its adaptive interval, the feed's own hints, the WebSub
safety net, and backoff on failure.

A healthy feed's interval comes from how often it publishes (bot/feeds/freshness.py): the
square-root rule at the current budget factor, within [poll.min_interval,
poll.max_interval], then its own hint as a floor (up to poll.hint_max), then jitter; a
feed a WebSub hub pushes is polled no more often than the safety net. A failing feed backs
off exponentially from poll.interval, and Retry-After is honoured (failure_delay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.clock import MINUTE_MS
from bot.config import PollSettings, Settings
from bot.feeds.freshness import FeedRate, interval

# How often the budget factor is recomputed over all feeds: the rates it is computed from
# drift over hours (freshness.TAU_HOURS), a minute-old factor is as good as a new one.
BUDGET_REFRESH_MS = MINUTE_MS


@dataclass
class PollBudget:
    """The budget factor (freshness.budget_factor) the pipeline schedules every check with,
    kept in memory and recomputed by the poller about once a minute."""

    # Any value schedules a feed with no record at the mean, and only such feeds are
    # checked before the poller's first tick computes the real one.
    factor: float = 1.0
    computed_at_ms: int | None = None

    def stale(self, now_ms: int) -> bool:
        return self.computed_at_ms is None or not (
            0 <= now_ms - self.computed_at_ms < BUDGET_REFRESH_MS
        )


def success_delay(
    rate: FeedRate,
    budget_factor: float,
    settings: Settings,
    now_ms: int,
    hint_seconds: int | None,
    rng: random.Random,
) -> float:
    """Seconds until the next check of a healthy feed whose rate is `rate` after this check
    at now_ms: its adaptive interval, the hint as a floor (a feed that says ttl=60 minutes
    is not checked sooner; a hint never speeds checks up), then jitter around it."""
    seconds = interval(rate, budget_factor, settings, now_ms, hint_seconds)
    jitter = settings.poll.jitter
    return seconds * (1 + rng.uniform(-jitter, jitter))


def failure_delay(
    poll: PollSettings, failures: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds until the next try after `failures` consecutive failures (1 = first)."""
    delay = min(poll.interval * 2 ** min(failures, 30), poll.backoff_max)
    delay *= 1 + rng.uniform(0, poll.jitter)  # only later, never earlier than the backoff
    if retry_after:
        delay = max(delay, min(retry_after, poll.backoff_max))
    return min(delay, poll.backoff_max * (1 + poll.jitter))


def safety_net_delay(
    delay: float, *, pushed: bool, settings: Settings, rng: random.Random
) -> float:
    """Seconds until the next check of a feed whose WebSub hub pushes its stories (pushed):
    it is still polled, as a safety net for a delivery the hub dropped, but slowly, at
    `websub.poll_interval` (jittered like every interval) unless `delay` is longer.
    A feed that is not pushed keeps `delay`.

    Whatever computes a feed's interval (the fixed one here, an adaptive one) passes its
    result through this last.
    """
    if not pushed:
        return delay
    poll = settings.poll
    safety = settings.websub.poll_interval * (1 + rng.uniform(-poll.jitter, poll.jitter))
    return max(delay, safety)
