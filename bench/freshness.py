"""Freshness: the delay from publish to detection, fixed against adaptive polling, for the
same number of requests.

    .venv/bin/python bench/freshness.py                  # 10,000 feeds, one week, seed 1
    .venv/bin/python bench/freshness.py --seed 2 --feeds 2000
    .venv/bin/python bench/freshness.py --min-span-hours 0.5 # keep a 78-an-hour source too
    .venv/bin/python bench/freshness.py --tau-hours 72       # explore the rate model

The publishing is drawn from real arrival patterns. Every feed document in
../shared/feeds/real-world/*.xml and crawl-sample/*.dat is parsed with feedparser; an entry's
published (else updated) time is its publish time. A source needs three dated entries
spanning --min-span-hours (1 h by default, 0.5 h at least: a document whose dates all fall
within minutes or seconds is one snapshot of a burst or a batch import, and would make its
copies publish at that pace all week; the bench names those it leaves out). Its
inter-arrival gaps, in their order, are its pattern; its entry count is how many stories
its document holds (the window). Each of the --feeds simulated feeds takes a source at
random and publishes by a stationary block bootstrap of the source's gaps (each next gap
is the source's next one, or with probability 1/BLOCK a random one), so bursts and lulls
keep their lengths and order, starting at a random phase.

Detection: a check at time c sees every story published in (previous check, c]; when
there are more than the window, the oldest fell out of the document before the check and
are lost (never alerted). A story's delay is its detecting check minus its publish time.
Figures count the stories published during the measured week (lost ones as an infinite
delay) and the requests made in it.

- fixed: every feed checked every poll.interval (300 s) × (1 ± poll.jitter), as
  bot/feeds/poller.py's success_delay does today, from a random phase.
- adaptive: bot/feeds/freshness.py as the poller will call it: observe() after a check
  that found new stories (as many as the window held), interval() for the next check with
  the same jitter, budget_factor() over all feeds every --refresh-minutes (the bot: every
  minute; coarser here for speed, the factor moves slowly). Every feed starts new
  (FeedRate.new) --warm-up-days before the week, as after a long run; the warm-up's
  requests and stories are not counted.

Goal (issue 16): adaptive halves fixed's median delay with no more requests (1% slack, the
budget is a rate and the jitter makes it vary).
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import itertools
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import feedparser

# Run as a script from anywhere: the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Verdicts, machine_with_versions
from bot.config import Settings, load_settings
from bot.feeds import freshness

SHARED = Path(__file__).resolve().parents[2] / "shared" / "feeds"
SOURCE_GLOBS = (("real-world", "*.xml"), ("crawl-sample", "*.dat"))
WEEK = 7 * 86400.0
BLOCK = 5  # mean run of consecutive source gaps in the bootstrap
GOAL_RATIO = 2.0  # fixed's median delay / adaptive's
REQUEST_SLACK = 0.01
# Shortest --min-span-hours accepted: some documents stamp 24 entries within one second.
MIN_SPAN_HOURS_ALLOWED = 0.5
# Rate classes of the breakdown, by the source's stories an hour.
CLASSES = (("busy, 1 an hour or more", 1.0), ("daily to hourly", 1 / 24), ("quieter", 0.0))


@dataclass(frozen=True)
class Source:
    name: str
    gaps: tuple[float, ...]  # seconds between consecutive publish times, in order
    window: int  # entries its document holds
    per_hour: float


@dataclass
class SimFeed:
    source: Source
    times: list[float]  # publish times, ascending, seconds from the week's start
    rate_class: int  # index into CLASSES


@dataclass
class Run:
    name: str
    requests: list[int]  # per rate class, made during the week
    delays: list[list[float]]  # per rate class, one per story published in the week

    def all_delays(self) -> list[float]:
        return sorted(itertools.chain.from_iterable(self.delays))


@dataclass
class AdaptiveDetails:
    factors: list[float]  # budget_factor at each refresh during the week
    solve_seconds: list[float]  # budget_factor's wall time at each refresh
    final_intervals: list[float]  # interval() of every feed at the week's end


# --- the sources ----------------------------------------------------------------------------


def load_sources(folder: Path, min_span_hours: float) -> tuple[list[Source], int, list[str]]:
    """Sources with a usable pattern, how many documents were read, and the names of those
    left out for too short a span (those with under 3 dated entries are only counted)."""
    paths = [path for sub, pattern in SOURCE_GLOBS for path in sorted((folder / sub).glob(pattern))]
    sources, too_short = [], []
    for path in paths:
        parsed = feedparser.parse(path.read_bytes())
        stamps = sorted(
            calendar.timegm(when)
            for entry in parsed.entries
            if (when := entry.get("published_parsed") or entry.get("updated_parsed"))
        )
        if len(stamps) < 3:
            continue
        span = stamps[-1] - stamps[0]
        if span < min_span_hours * 3600 or span <= 0:
            too_short.append(f"{path.name} ({len(stamps)} in {span} s)")
            continue
        gaps = tuple(float(b - a) for a, b in itertools.pairwise(stamps))
        sources.append(Source(path.name, gaps, len(parsed.entries), len(gaps) / (span / 3600)))
    return sources, len(paths), too_short


def rate_class(per_hour: float) -> int:
    return next(number for number, (_, floor) in enumerate(CLASSES) if per_hour >= floor)


def simulate_feeds(
    sources: Sequence[Source], count: int, start: float, end: float, rng: random.Random
) -> list[SimFeed]:
    """`count` feeds publishing from `start` to `end` by a stationary block bootstrap."""
    feeds = []
    for _ in range(count):
        source = rng.choice(sources)
        gaps = source.gaps
        position = rng.randrange(len(gaps))
        moment = start - rng.random() * gaps[position]  # a random phase within a gap
        times = []
        while moment < end:
            if moment >= start:
                times.append(moment)
            if rng.random() < 1 / BLOCK:
                position = rng.randrange(len(gaps))
            else:
                position = (position + 1) % len(gaps)
            moment += gaps[position]
        feeds.append(SimFeed(source, times, rate_class(source.per_hour)))
    return feeds


# --- the two policies -----------------------------------------------------------------------


def detect(feed: SimFeed, index: int, at: float, delays: list[float]) -> tuple[int, int]:
    """A check at `at` of the stories from `index` on: (the next index, how many it saw).
    Appends the delay of each story of the week it covers (math.inf when lost)."""
    times = feed.times
    end = bisect.bisect_right(times, at, index)
    seen = min(end - index, feed.source.window)
    for position in range(index, end):
        published = times[position]
        if 0.0 <= published < WEEK:
            delays.append(at - published if position >= end - seen else math.inf)
    return end, seen


def run_fixed(feeds: Sequence[SimFeed], settings: Settings, seed: int) -> Run:
    random_ = random.Random(seed).random
    mean, jitter = float(settings.poll.interval), settings.poll.jitter
    shortest, spread = mean * (1 - jitter), mean * 2 * jitter
    horizon = WEEK + mean * (1 + jitter)  # the week's last stories are found too
    run = Run("fixed", [0] * len(CLASSES), [[] for _ in CLASSES])
    for feed in feeds:
        times, delays = feed.times, run.delays[feed.rate_class]
        count, index, requests = len(times), 0, 0
        at = random_() * mean  # a random phase
        while at < horizon:
            if at < WEEK:
                requests += 1
            if index < count and times[index] <= at:
                index, _seen = detect(feed, index, at, delays)
            at += shortest + spread * random_()
        run.requests[feed.rate_class] += requests
    return run


def run_adaptive(
    feeds: Sequence[SimFeed], settings: Settings, seed: int, warm_up: float, refresh: float
) -> tuple[Run, AdaptiveDetails]:
    random_ = random.Random(seed).random
    jitter = settings.poll.jitter
    horizon = WEEK + settings.poll.max_interval * (1 + jitter)
    run = Run("adaptive", [0] * len(CLASSES), [[] for _ in CLASSES])
    details = AdaptiveDetails([], [], [])
    observe, interval = freshness.observe, freshness.interval
    states = [freshness.FeedRate.new(int(-warm_up * 1000)) for _ in feeds]
    due = [-warm_up + random_() * settings.poll.interval for _ in feeds]
    indexes = [0] * len(feeds)
    factor: float | None = None
    epoch = -warm_up
    while epoch < horizon:
        began = time.perf_counter()
        factor = freshness.budget_factor(states, settings, int(epoch * 1000), factor)
        if 0.0 <= epoch < WEEK:
            details.solve_seconds.append(time.perf_counter() - began)
            details.factors.append(factor)
        if epoch < WEEK <= epoch + refresh:
            details.final_intervals = [
                interval(state, factor, settings, int(WEEK * 1000)) for state in states
            ]
        epoch_end = min(epoch + refresh, horizon)
        for number, feed in enumerate(feeds):
            at = due[number]
            if at >= epoch_end:
                continue
            state, index = states[number], indexes[number]
            times, delays = feed.times, run.delays[feed.rate_class]
            count, requests = len(times), 0
            while at < epoch_end:
                now_ms = int(at * 1000)
                if 0.0 <= at < WEEK:
                    requests += 1
                if index < count and times[index] <= at:
                    # Only a check that found stories changes the state (observe's contract).
                    index, seen = detect(feed, index, at, delays)
                    state = observe(state, seen, now_ms)
                at += interval(state, factor, settings, now_ms) * (1 + jitter * (2 * random_() - 1))
            due[number], states[number], indexes[number] = at, state, index
            run.requests[feed.rate_class] += requests
        epoch = epoch_end
    return run, details


# --- figures --------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def seconds(value: float) -> str:
    return "lost" if value == math.inf else "-" if value != value else f"{value:,.0f} s"


def lost(delays: Sequence[float]) -> int:
    return sum(1 for delay in delays if delay == math.inf)


def report(
    fixed: Run,
    adaptive: Run,
    details: AdaptiveDetails,
    feeds: Sequence[SimFeed],
    settings: Settings,
) -> Verdicts:
    """Print the figures; the goal's verdicts."""
    both = (fixed, adaptive)
    ordered = [run.all_delays() for run in both]
    requests = [sum(run.requests) for run in both]
    print(f"\n{'':34}{'fixed':>14}{'adaptive':>14}")
    print(f"{'stories published in the week':34}" + "".join(f"{len(d):>14,}" for d in ordered))
    print(f"{'requests in the week':34}{requests[0]:>14,}{requests[1]:>14,}")
    for label, fraction in (("median delay", 0.5), ("p95 delay", 0.95), ("p99 delay", 0.99)):
        print(f"{label:34}" + "".join(f"{seconds(percentile(d, fraction)):>14}" for d in ordered))
    finite = [[x for x in d if x != math.inf] for d in ordered]
    print(
        f"{'mean delay (stories found)':34}"
        + "".join(f"{seconds(sum(d) / len(d)):>14}" for d in finite)
    )
    print(
        f"{'stories lost (fell out of the feed)':34}" + "".join(f"{lost(d):>14,}" for d in ordered)
    )

    print("\nby publishing rate of the source (median / p95 delay; share of requests):")
    for number, (label, _) in enumerate(CLASSES):
        members = sum(1 for feed in feeds if feed.rate_class == number)
        stories = len(fixed.delays[number])
        cells = []
        for run, total in zip(both, requests, strict=True):
            delays = sorted(run.delays[number])
            cells.append(
                f"{seconds(percentile(delays, 0.5))} / {seconds(percentile(delays, 0.95))};"
                f" {run.requests[number] / total:.0%}"
            )
        print(f"  {label}: {members:,} feeds, {stories:,} stories")
        print(f"    fixed {cells[0]}   adaptive {cells[1]}")

    intervals = sorted(details.final_intervals)
    poll = settings.poll
    at_min = sum(1 for value in intervals if value <= poll.min_interval)
    at_max = sum(1 for value in intervals if value >= poll.max_interval)
    harmonic = len(intervals) / sum(1 / value for value in intervals)
    print(
        f"\nadaptive intervals at the week's end: {at_min / len(intervals):.0%} at"
        f" min_interval {poll.min_interval} s, {at_max / len(intervals):.0%} at max_interval"
        f" {poll.max_interval} s, median {seconds(percentile(intervals, 0.5))};"
        f" harmonic mean {harmonic:.1f} s (the budget: {poll.interval} s),"
        f" arithmetic mean {sum(intervals) / len(intervals):.0f} s"
    )
    factors = sorted(details.factors)
    solves = sorted(details.solve_seconds)
    print(
        f"budget factor k (stories an hour of a feed checked every {poll.interval} s):"
        f" {factors[0]:.3f} to {factors[-1]:.3f}; budget_factor() over {len(feeds):,} feeds:"
        f" median {percentile(solves, 0.5) * 1000:.0f} ms, max {solves[-1] * 1000:.0f} ms"
    )

    ratio = percentile(ordered[0], 0.5) / percentile(ordered[1], 0.5)
    spent = requests[1] / requests[0]
    print()
    verdicts = Verdicts()
    verdicts.check(
        f"goal: adaptive median delay <= fixed / {GOAL_RATIO:g}",
        ratio >= GOAL_RATIO,
        f"fixed / adaptive median {ratio:.2f}",
    )
    verdicts.check(
        f"goal: adaptive requests <= fixed x {1 + REQUEST_SLACK:g}",
        spent <= 1 + REQUEST_SLACK,
        f"adaptive / fixed {spent:.4f}",
    )
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sources", type=Path, default=SHARED, help="folder of the feed corpora")
    parser.add_argument("--min-span-hours", type=float, default=1.0)
    parser.add_argument("--warm-up-days", type=float, default=2.0)
    parser.add_argument("--refresh-minutes", type=float, default=60.0)
    # To explore the rate model's two constants; the defaults are bot/feeds/freshness.py's.
    parser.add_argument("--tau-hours", type=float, default=freshness.TAU_HOURS)
    parser.add_argument("--prior-stories", type=float, default=freshness.PRIOR_STORIES)
    args = parser.parse_args(argv)
    freshness.TAU_HOURS, freshness.PRIOR_STORIES = args.tau_hours, args.prior_stories
    began = time.perf_counter()
    # The defaults of bot/default.toml, whatever the environment says.
    settings = load_settings(environ={})
    if args.min_span_hours < MIN_SPAN_HOURS_ALLOWED:
        parser.error(
            f"--min-span-hours below {MIN_SPAN_HOURS_ALLOWED:g}: documents stamped within"
            " seconds would publish millions of stories a week (memory)"
        )
    sources, read, too_short = load_sources(args.sources, args.min_span_hours)
    if not sources:
        raise SystemExit(f"no usable source in {args.sources}")
    warm_up = args.warm_up_days * 86400
    rng = random.Random(args.seed)
    feeds = simulate_feeds(sources, args.feeds, -warm_up, WEEK + 86400, rng)
    print(f"freshness: {len(feeds):,} feeds, one week, seed {args.seed}")
    print(f"machine: {machine_with_versions('feedparser')}")
    print(
        f"sources: {len(sources)} of {read} documents, {min(s.per_hour for s in sources):.4f}"
        f" to {max(s.per_hour for s in sources):.1f} stories an hour;"
        f" {read - len(sources) - len(too_short)} have fewer than 3 dated entries,"
        f" {len(too_short)} span under {args.min_span_hours:g} h: {', '.join(too_short)}"
    )
    print(
        f"settings: poll.interval {settings.poll.interval} s, min_interval"
        f" {settings.poll.min_interval} s, max_interval {settings.poll.max_interval} s, jitter"
        f" ±{settings.poll.jitter:.0%}; τ {freshness.TAU_HOURS:g} h, prior"
        f" {freshness.PRIOR_STORIES:g} stories; warm-up {args.warm_up_days:g} days, factor"
        f" refreshed every {args.refresh_minutes:g} min"
    )
    fixed = run_fixed(feeds, settings, args.seed)
    adaptive, details = run_adaptive(feeds, settings, args.seed, warm_up, args.refresh_minutes * 60)
    verdicts = report(fixed, adaptive, details, feeds, settings)
    print(f"wall time {time.perf_counter() - began:.0f} s")
    return verdicts.exit_code()


if __name__ == "__main__":
    sys.exit(main())
