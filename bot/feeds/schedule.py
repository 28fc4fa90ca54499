"""When a feed is checked next: the interval, the feed's own hints, backoff on failure."""

from __future__ import annotations

import random

from bot.config import PollSettings, Settings


def success_delay(poll: PollSettings, hint_seconds: int | None, rng: random.Random) -> float:
    """Seconds until the next check of a healthy feed."""
    base = float(poll.interval)
    if hint_seconds:
        # A hint may slow checks (a feed that says ttl=60 minutes), never speed them up.
        base = min(max(base, float(hint_seconds)), float(max(poll.hint_max, poll.interval)))
    return base * (1 + rng.uniform(-poll.jitter, poll.jitter))


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
