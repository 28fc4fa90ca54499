"""Adaptive polling: how often to check each feed so that news is found soonest for a fixed
number of requests.

Pure functions, no I/O: the poller keeps a `FeedRate` per feed (three columns of the feed
row), calls `observe` after a check that found new stories, `interval` to schedule the
next check, and `budget_factor` about once a minute over all feeds.

The rate model
--------------
A feed publishes at a rate λ (stories an hour) that drifts. The bot knows only when it
first saw each story (publish dates lie, or are missing), so each check tells it "n new
stories since the last check". The state keeps two sums, both decayed with the same time
constant τ (`TAU_HOURS`) so that old news counts less:

    S = Σ exp(−age/τ)          over the new stories seen (age = now − the check that saw it)
    W = ∫ exp(−age/τ) dt       over the time the feed has been watched  (= τ(1 − e^(−watched/τ)))

S/W is the Poisson rate with exponentially discounted exposure (an exponentially weighted
rate, corrected for how long the feed has been watched). A young feed has little W, so
the estimate borrows `PRIOR_STORIES` (a) stories' worth of evidence at the reference rate
k (below):

    λ̂ = (S + a) / (W + a/k)

A new feed (S = W = 0) has λ̂ = k, which is what makes it start at the mean interval; as W
grows to τ its own record takes over, and a burst is forgotten within a few τ.

Decay is lazy: S and W are stored as of `at_ms` and brought forward to the time they are
read. Both decay alike, so `observe(state, 0, now)` changes nothing any later read could
see: the poller need not write the row after a check that found nothing.

The interval policy
-------------------
Checking feed i every I_i seconds, a story waits I_i/2 on average (it lands anywhere in the
interval). Over all stories, the delay per unit time is D = Σ λ_i I_i / 2. The request
budget is R = Σ 1/I_i = N/T: N feeds make as many requests as they did when each was
checked every T = poll.interval seconds. Minimising D subject to R (Lagrange multiplier μ):

    ∂/∂I_i [λ_i I_i/2 + μ/I_i] = 0   ⇒   I_i = √(2μ/λ_i) ∝ 1/√λ_i        (the square-root rule)

Written as I_i = T·√(k/λ̂_i), k is the rate of a feed checked exactly every T: the "budget
factor" (a reference rate, stories an hour). Within the bounds [lo, hi] = [poll.min_interval,
poll.max_interval], I_i = clamp(T·√(k/λ̂_i), lo, hi) is still the optimum (the KKT conditions:
a feed at a bound stays there, the rest share one multiplier). k is chosen so that the budget
holds: Σ 1/I_i = N/T, i.e. the harmonic mean of the intervals is T. That is "the mean
interval" counted in requests; the plain average of the intervals comes out longer (Jensen).
Substituting λ̂, k/λ̂_i = (k·W_i + a)/(S_i + a), which grows with k: Σ 1/I_i falls as k grows,
so the k that meets the budget is unique, and `budget_factor` finds it by a safeguarded
secant on log k (a handful of passes over the feeds: about 10-20 ms for 10,000 feeds).

The budget is spent where it buys the most freshness: busy feeds go down to lo (a story
there waits lo/2), quiet ones up to hi. The feed's own signals only slow it down: a <ttl> or
Cache-Control max-age hint is a floor on the interval (up to poll.hint_max), and Retry-After,
429 and failures go through the poller's backoff as before. Per-host politeness, and the
jitter added to every interval, stay with the poller. A feed slowed by its hint spends less
than its share, so the total stays at or under the budget.

A time-of-day profile is not modelled: the sample feeds carry too few entries (median 20) to
learn 24 hourly rates, and bench/freshness.py has no daily cycle to show one would pay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.config import Settings

# Time constant of the decayed rate: a story seen this long ago counts 1/e. Long enough that
# a feed publishing a few stories a day has a rate (none below about PRIOR_STORIES/τ, one
# story in two days, can be told from silence), short enough that a burst is forgotten
# within days and a feed that speeds up is followed within hours (bench/README.md,
# Freshness, weighs 6, 24 and 72 h).
TAU_HOURS = 24.0
# Evidence a feed's own record has to outweigh: this many stories at the reference rate.
PRIOR_STORIES = 0.5

_MS_PER_HOUR = 3_600_000.0


@dataclass(frozen=True, slots=True)
class FeedRate:
    """What the poller stores per feed, as of `at_ms` (see the module docstring)."""

    stories: float  # S: new stories seen, each weighted exp(-age/τ)
    watched_hours: float  # W: hours watched, weighted the same way (never above τ)
    at_ms: int  # when S and W were last brought up to date

    @classmethod
    def new(cls, now_ms: int) -> FeedRate:
        """A feed just subscribed: nothing seen yet, so it starts at the mean interval."""
        return cls(0.0, 0.0, now_ms)


def _decayed(state: FeedRate, now_ms: int) -> tuple[float, float]:
    """S and W brought forward to now_ms (the time since at_ms counts as watched)."""
    hours = max(0.0, (now_ms - state.at_ms) / _MS_PER_HOUR)
    keep = math.exp(-hours / TAU_HOURS)
    return state.stories * keep, state.watched_hours * keep + TAU_HOURS * (1.0 - keep)


def observe(state: FeedRate, new_stories: int, now_ms: int) -> FeedRate:
    """The state after a check at now_ms that found `new_stories` stories never seen before.

    Only stories that would be news count: not the entries recorded as seen by a feed's
    first check, nor archive entries. With new_stories == 0 nothing changes that a later
    read could see, so the poller may skip the call and the write.
    """
    if now_ms < state.at_ms:  # a clock stepped back: count the stories, let no time pass
        now_ms = state.at_ms
    stories, watched = _decayed(state, now_ms)
    return FeedRate(stories + new_stories, watched, now_ms)


def rate(state: FeedRate, reference_rate: float, now_ms: int) -> float:
    """The estimated publishing rate λ̂ (stories an hour) at now_ms."""
    stories, watched = _decayed(state, now_ms)
    return (stories + PRIOR_STORIES) / (watched + PRIOR_STORIES / reference_rate)


def interval(
    state: FeedRate,
    budget_factor: float,
    settings: Settings,
    now_ms: int,
    hint_seconds: float | None = None,
) -> float:
    """Seconds from a check at now_ms to the next one, before the poller's jitter.

    budget_factor is `budget_factor()`'s answer (the reference rate k); hint_seconds the
    feed's own <ttl>/max-age, which can only lengthen the interval (up to poll.hint_max).
    """
    poll = settings.poll
    stories, watched = _decayed(state, now_ms)
    seconds = _clamped(
        poll.interval
        * math.sqrt((budget_factor * watched + PRIOR_STORIES) / (stories + PRIOR_STORIES)),
        poll.min_interval,
        poll.max_interval,
    )
    if hint_seconds:
        seconds = max(seconds, min(float(hint_seconds), float(poll.hint_max)))
    return seconds


def budget_factor(
    states: Iterable[FeedRate], settings: Settings, now_ms: int, previous: float | None = None
) -> float:
    """The reference rate k at which all the feeds together make as many requests as if
    each were checked every poll.interval seconds (Σ 1/interval = N/poll.interval).

    `previous` (the last answer) is only a starting guess: passing it saves work, the
    answer is the same. With no feed, or only feeds with no record yet (any k gives them
    the mean), the guess is returned.
    """
    poll = settings.poll
    mean, low, high = float(poll.interval), float(poll.min_interval), float(poll.max_interval)
    watched_list: list[float] = []
    evidence_list: list[float] = []  # S + a
    for state in states:
        stories, watched = _decayed(state, now_ms)
        watched_list.append(watched)
        evidence_list.append(stories + PRIOR_STORIES)
    guess = previous if previous and previous > 0 else 1.0
    if not any(watched_list):
        return guess
    target = len(watched_list) / mean
    pairs = list(zip(watched_list, evidence_list, strict=True))

    def excess(log_k: float) -> float:
        """log(requests per second at k / the budget): falls as k grows."""
        k = math.exp(log_k)
        total = 0.0
        for watched, evidence in pairs:
            seconds = mean * math.sqrt((k * watched + PRIOR_STORIES) / evidence)
            total += 1.0 / (low if seconds < low else high if seconds > high else seconds)
        return math.log(total / target)

    return math.exp(_falling_root(excess, math.log(guess)))


def _falling_root(
    function: Callable[[float], float], start: float, tolerance: float = 1e-6
) -> float:
    """x where a non-increasing function crosses 0: bracket from `start` by doubling steps,
    then regula falsi (Illinois variant) with bisection as the safeguard. The function may
    be flat at its ends (every feed at a bound); the crossing is then any point of it."""
    value = function(start)
    if value == 0.0:
        return start
    low, low_value, high, high_value = _bracket(function, start, value)
    if low_value <= 0:  # the budget cannot be spent even at the smallest k: closest end
        return low
    if high_value >= 0:
        return high
    side = 0
    for _ in range(100):
        # Regula falsi on the bracket; when one end stays put twice, halve its value
        # (Illinois) so the bracket shrinks from both sides.
        middle = (low * high_value - high * low_value) / (high_value - low_value)
        if not low < middle < high:
            middle = (low + high) / 2
        value = function(middle)
        if abs(value) < tolerance or high - low < tolerance:
            return middle
        if value > 0:
            low, low_value = middle, value
            if side == 1:
                high_value /= 2
            side = 1
        else:
            high, high_value = middle, value
            if side == -1:
                low_value /= 2
            side = -1
    return (low + high) / 2


def _bracket(
    function: Callable[[float], float], start: float, value: float
) -> tuple[float, float, float, float]:
    """(low, f(low), high, f(high)) around the crossing, found from `start` (where f is
    `value`) by steps that double, up to 64."""
    step = 1.0
    if value > 0:  # too many requests: a larger k slows the feeds
        low, low_value = start, value
        while True:
            high = low + step
            high_value = function(high)
            if high_value <= 0 or step > 64:
                return low, low_value, high, high_value
            low, low_value, step = high, high_value, step * 2
    high, high_value = start, value
    while True:
        low = high - step
        low_value = function(low)
        if low_value >= 0 or step > 64:
            return low, low_value, high, high_value
        high, high_value, step = low, low_value, step * 2


def _clamped(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value
