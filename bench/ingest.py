"""Ingestion throughput: the bot's whole pipeline against bare feedparser.parse, in one run.

    .venv/bin/python bench/ingest.py                  # 5 rounds on ../shared/feeds/crawl-sample
    .venv/bin/python bench/ingest.py --first-fetch    # entries recorded as seen, none routed
    .venv/bin/python bench/ingest.py --profile        # where the pipeline's time goes

The pipeline is what a poller check does with a fetched body, minus the network and the
worker-thread hops: parse_and_normalize (feedparser with sanitizer and relative-URI rewriting
off, then normalize_entry), known_identities, summarize_all on the unknown entries, and
record_check in one CheckUnit (insert-if-new, route, outbox) on a fresh SQLite database, in
the order FeedPipeline runs them. By default every feed is primed and
has one instant subscriber without keywords (the real make_router, empty KeywordIndex), so
every entry is a new story that is routed and queued: the costliest way through.
--first-fetch leaves the feeds unprimed, as /subscribe's first check finds them: entries are
recorded as seen and nothing is routed.

The baseline is feedparser.parse(bytes) with its defaults (sanitizer and relative-URI
resolution on) on the same bytes. Each document goes through every side back to back, the
order rotating from one document to the next, so the machine's noise falls on all sides
alike; each round starts from fresh databases. Documents that are not feeds count 0 entries
but are processed all the same; any exception other than NotAFeedError stops the bench.

Figures are entries per second by wall clock and the ratios by wall clock and by CPU time
(time.process_time, the aiosqlite thread included); on a loaded machine the CPU ratio moves
least.

Memory is measured apart, since tracemalloc slows the code it watches: one untimed pass per
side in a fresh child process, reporting tracemalloc's peak and the process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import feedparser

# Run as a script from anywhere: the project is not installed into the venv.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (
    DATABASE_HELP,
    ScratchDatabases,
    Verdicts,
    backend_name,
    is_postgresql,
    machine_with_versions,
    maxrss_bytes,
    postgresql_server_cpu,
)
from bot.clock import DAY_MS, FakeClock
from bot.config import Settings, load_settings
from bot.errors import NotAFeedError
from bot.feeds.pipeline import NormalizedFeed, dedupe_rules, parse_and_normalize, summarize_all
from bot.feeds.record import record_check
from bot.filters import KeywordIndex
from bot.routing import Router, make_router
from bot.store import FeedUpdate, Store
from tests.paths import SHARED

SAMPLE = SHARED / "feeds/crawl-sample"
GOAL_RATIO = 1.5
# 2025-03-01T00:00:00Z, as in the tests: later than every entry of the sample.
NOW_MS = 1_740_787_200_000

# Seconds per stage of the pipeline, summed over a pass.
Stages = dict[str, float]
# One side of the comparison: (document index, bytes, stage timer) → entries.
Side = Callable[[int, bytes, Stages], Awaitable[int]]


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0
    entries: int = 0
    not_feeds: int = 0

    def rate(self, seconds: float) -> float:
        return self.entries / seconds if seconds else 0.0


@dataclass
class Round:
    timings: dict[str, Timing]
    stages: dict[str, Stages] = field(default_factory=dict)
    server_cpu: float = 0.0  # PostgreSQL's server processes, for the pipeline's store work
    queued: int = 0  # outbox rows the pipeline wrote


# --- data -----------------------------------------------------------------------------------


def load_documents(folder: Path) -> list[bytes]:
    """Every document of the sample (the README beside them is not one)."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".md")
    if not paths:
        raise SystemExit(f"no documents in {folder}")
    return [p.read_bytes() for p in paths]


def feed_url(index: int) -> str:
    return f"http://feeds.test/crawl/{index:04d}.xml"


def bench_settings(location: str) -> Settings:
    return load_settings(None, {"NEWS_NOTIFIER_DATABASE": location})


# --- the sides ------------------------------------------------------------------------------


async def baseline(index: int, body: bytes, stages: Stages) -> int:
    """feedparser with every default: what "just use feedparser" costs."""
    return len(feedparser.parse(body).entries)


class Pipeline:
    """The bot's stages on one store, in the order FeedPipeline runs them."""

    def __init__(self, store: Store, settings: Settings, router: Router, feed_ids: list[int]):
        self.store = store
        self.settings = settings
        self.router = router
        self.feed_ids = feed_ids
        self.clock = FakeClock(NOW_MS)
        self.rules = dedupe_rules(settings)

    @classmethod
    async def open(cls, location: str, documents: int, *, primed: bool) -> Pipeline:
        """A fresh database with one feed per document, each followed by its own chat."""
        settings = bench_settings(location)
        store = await Store.open(settings.database.path)
        feed_ids = []
        for index in range(documents):
            feed_id = await store.feeds.add(feed_url(index), title="", site_url="", now_ms=NOW_MS)
            chat_id = index + 1
            await store.chats.upsert(
                chat_id, kind="private", title="", language="en", now_ms=NOW_MS
            )
            await store.chats.subscribe(chat_id, feed_id, thread_id=None, now_ms=NOW_MS)
            feed_ids.append(feed_id)
        if primed:
            # A primed feed's new entries are news: routed and queued.
            await store.db.execute("UPDATE feeds SET primed_at = ?", (NOW_MS - DAY_MS,))
        return cls(store, settings, make_router(KeywordIndex()), feed_ids)

    async def close(self) -> None:
        await self.store.close()

    async def ingest(self, index: int, body: bytes, stages: Stages) -> int:
        feed_id = self.feed_ids[index]
        began = time.perf_counter()
        try:
            parsed = parse_and_normalize(
                body, url=feed_url(index), content_type=None, feed_id=feed_id, now_ms=NOW_MS
            )
        except NotAFeedError:
            stages["parse+normalize"] = stages.get("parse+normalize", 0.0) + _since(began)
            raise
        parsed_at = time.perf_counter()
        stories = self.store.stories
        known = await stories.known_identities(feed_id, [e.identity for e in parsed.entries])
        unknown = [e for e in parsed.entries if e.identity not in known]
        looked_up = time.perf_counter()
        summaries = summarize_all(unknown, self.settings)
        summarized = time.perf_counter()
        async with stories.check_unit(feed_id) as unit:
            await record_check(
                unit, parsed.entries, summaries, self._update(parsed), self.rules, self.router
            )
        done = time.perf_counter()
        for stage, seconds in (
            ("parse+normalize", parsed_at - began),
            ("summarize", summarized - looked_up),
            ("store", (looked_up - parsed_at) + (done - summarized)),
        ):
            stages[stage] = stages.get(stage, 0.0) + seconds
        return len(parsed.entries)

    def _update(self, parsed: NormalizedFeed) -> FeedUpdate:
        return FeedUpdate(
            now_ms=NOW_MS,
            next_check_at=NOW_MS + self.settings.poll.interval * 1000,
            etag='"bench"',
            body_hash="0" * 32,
            title=parsed.document.title or None,
            site_url=parsed.document.site_url or None,
            new_body=True,
        )


def _since(began: float) -> float:
    return time.perf_counter() - began


# --- timing ---------------------------------------------------------------------------------


async def timed_round(
    documents: Sequence[bytes], number: int, *, primed: bool, database: str | None
) -> Round:
    """Every document through every side, back to back, the order rotating per document."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        ScratchDatabases(database, tmp) as databases,
    ):
        async with AsyncExitStack() as stack:
            location = databases.new(f"ingest{number}")
            pipeline = await Pipeline.open(location, len(documents), primed=primed)
            stack.push_async_callback(pipeline.close)
            sides: dict[str, Side] = {"baseline": baseline, "pipeline": pipeline.ingest}
            result = Round({name: Timing() for name in sides}, {name: {} for name in sides})
            names = list(sides)
            gc.collect()
            server = postgresql_server_cpu(location) if is_postgresql(location) else 0.0
            for index, body in enumerate(documents):
                shift = (index + number) % len(names)
                for name in names[shift:] + names[:shift]:
                    await _time_one(sides[name], index, body, result, name)
            if is_postgresql(location):
                result.server_cpu = postgresql_server_cpu(location) - server
            row = await pipeline.store.db.fetchone("SELECT COUNT(*) FROM outbox")
            result.queued = int(row[0]) if row else 0
            return result


async def _time_one(side: Side, index: int, body: bytes, result: Round, name: str) -> None:
    timing = result.timings[name]
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        entries = await side(index, body, result.stages[name])
    except NotAFeedError:
        entries = 0
        timing.not_feeds += 1
    timing.wall += time.perf_counter() - wall
    timing.cpu += time.process_time() - cpu
    timing.entries += entries


# --- memory, in child processes -------------------------------------------------------------


def memory_pass(folder: str, side: str, primed: bool) -> dict[str, int]:
    """One untimed pass of `side` in this (fresh) process: RSS before, after, traced peak."""
    documents = load_documents(Path(folder))
    gc.collect()
    rss_before = maxrss_bytes()
    tracemalloc.start()
    asyncio.run(_memory_pass(documents, side, primed))
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rss_before": rss_before, "rss_after": maxrss_bytes(), "traced_peak": peak}


async def _memory_pass(documents: Sequence[bytes], side: str, primed: bool) -> None:
    stages: Stages = {}
    if side == "baseline":
        for index, body in enumerate(documents):
            await baseline(index, body, stages)
        return
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        pipeline = await Pipeline.open(str(Path(tmp, "m.sqlite3")), len(documents), primed=primed)
        try:
            for index, body in enumerate(documents):
                try:
                    await pipeline.ingest(index, body, stages)
                except NotAFeedError:
                    pass
        finally:
            await pipeline.close()


def measure_memory(folder: Path, primed: bool) -> dict[str, dict[str, int]]:
    """Each side in its own new process, so one side's peak cannot hide the other's."""
    figures = {}
    for side in ("baseline", "pipeline"):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            figures[side] = pool.submit(memory_pass, str(folder), side, primed).result()
    return figures


# --- profile --------------------------------------------------------------------------------

# Where time goes, by the file a function lives in (first match wins). Built-in functions
# (pyexpat's Parse, str methods, dict lookups) are charged to the code that called them.
_AREAS = (
    ("feedparser", "/feedparser"),
    ("xml.sax + expat (feedparser's strict parser)", "xml/sax/"),
    ("urllib.parse (urljoin: feedparser, normalize)", "urllib/parse.py"),
    ("re (feedparser's regexes, mostly)", "/re/"),
    ("copy.deepcopy (feedparser)", "/copy.py"),
    ("bot.feeds.parse", "bot/feeds/parse.py"),
    ("bot.feeds.entry (normalize)", "bot/feeds/entry.py"),
    ("bot.summary (+ selectolax)", "bot/summary.py"),
    ("bot.store + aiosqlite calls", "bot/store/"),
    ("waiting for aiosqlite's thread", "selectors.py"),
    ("event loop", "asyncio/"),
)


def _area(function: tuple[str, int, str]) -> str:
    filename = function[0]
    return next((name for name, part in _AREAS if part in filename), "other")


def time_by_area(stats: pstats.Stats) -> dict[str, float]:
    """Own time per area, each built-in's time split among its callers."""
    by_area: dict[str, float] = {}
    for function, row in stats.stats.items():  # type: ignore[attr-defined]
        own, callers = row[2], row[4]
        if function[0] == "~" and callers:
            # callers: {caller: (calls, primitive calls, own time, cumulative time)}
            shares = [(_area(caller), timing[2]) for caller, timing in callers.items()]
        else:
            shares = [(_area(function), own)]
        for area, seconds in shares:
            by_area[area] = by_area.get(area, 0.0) + seconds
    return by_area


def profile_pipeline(documents: Sequence[bytes], primed: bool, top: int) -> str:
    """cProfile of one pipeline pass: time per area, then the top functions."""
    profiler = cProfile.Profile()

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            location = str(Path(tmp, "p.sqlite3"))
            pipeline = await Pipeline.open(location, len(documents), primed=primed)
            try:
                profiler.enable()
                for index, body in enumerate(documents):
                    try:
                        await pipeline.ingest(index, body, {})
                    except NotAFeedError:
                        pass
                profiler.disable()
            finally:
                await pipeline.close()

    asyncio.run(run())
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_area = time_by_area(stats)
    total = sum(by_area.values())
    out.write("own time by area (profiled, so slower than real):\n")
    for area, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        out.write(f"  {area:<48} {seconds:7.2f} s  {seconds / total:6.1%}\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# --- report ---------------------------------------------------------------------------------


def machine() -> str:
    return machine_with_versions("feedparser", "selectolax")


def print_rounds(rounds: Sequence[Round]) -> None:
    names = list(rounds[0].timings)
    others = [n for n in names if n != "baseline"]
    header = "round " + "".join(f"{n + ' e/s':>16}" for n in names)
    header += "".join(f"{n + '/base wall':>20}{'cpu':>6}" for n in others)
    print(header)
    for number, result in enumerate(rounds, 1):
        t = result.timings
        line = f"{number:>5} " + "".join(f"{t[n].rate(t[n].wall):>16,.0f}" for n in names)
        for n in others:
            line += f"{_ratio(t, n, 'wall'):>20.2f}{_ratio(t, n, 'cpu'):>6.2f}"
        print(line)
    for label, pick in (("best", max), ("median", statistics.median)):
        line = f"{label:>5} " + "".join(
            f"{pick([r.timings[n].rate(r.timings[n].wall) for r in rounds]):>16,.0f}" for n in names
        )
        for n in others:
            walls = [_ratio(r.timings, n, "wall") for r in rounds]
            cpus = [_ratio(r.timings, n, "cpu") for r in rounds]
            line += f"{pick(walls):>20.2f}{pick(cpus):>6.2f}"
        print(line)


def _ratio(timings: dict[str, Timing], name: str, clock: str) -> float:
    """How many times faster `name` is than the baseline, entries per second over entries
    per second (the same entries, so the inverse ratio of times)."""
    base, other = timings["baseline"], timings[name]
    return getattr(base, clock) / getattr(other, clock) * other.entries / max(base.entries, 1)


def print_stages(rounds: Sequence[Round], name: str) -> None:
    walls = [r.timings[name].wall for r in rounds]
    middle = rounds[walls.index(statistics.median_low(walls))]
    total = middle.timings[name].wall
    parts = ", ".join(
        f"{stage} {seconds:.2f} s ({seconds / total:.0%})"
        for stage, seconds in middle.stages[name].items()
    )
    print(f"{name} stages (median round, {total:.2f} s): {parts}")


def print_memory(figures: dict[str, dict[str, int]]) -> None:
    for side, f in figures.items():
        print(
            f"memory {side:<9}: tracemalloc peak {f['traced_peak'] / 2**20:6.1f} MiB, "
            f"ru_maxrss {f['rss_after'] / 2**20:6.1f} MiB "
            f"({f['rss_before'] / 2**20:.1f} MiB before the pass: imports and documents)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--first-fetch", action="store_true", help="feeds unprimed: record only, no routing"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one pipeline pass")
    parser.add_argument("--top", type=int, default=30, help="functions listed by --profile")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory passes")
    parser.add_argument("--database", help=DATABASE_HELP)
    args = parser.parse_args(argv)

    documents = load_documents(args.folder)
    primed = not args.first_fetch
    size = sum(map(len, documents))
    print(f"machine: {machine()}")
    print(
        f"ingest: {len(documents)} documents ({size / 1e6:.1f} MB) from {args.folder}; "
        f"mode: {'first fetch (record only)' if args.first_fetch else 'news (route + queue)'}; "
        f"{args.rounds} rounds; store on {backend_name(args.database)}"
    )
    rounds = [
        asyncio.run(timed_round(documents, number, primed=primed, database=args.database))
        for number in range(args.rounds)
    ]
    first = rounds[0].timings
    print(
        "entries: "
        + ", ".join(f"{n} {t.entries:,} ({t.not_feeds} not feeds)" for n, t in first.items())
    )
    print_rounds(rounds)
    for name in first:
        if name != "baseline":
            print_stages(rounds, name)
    print_check_cpu(rounds, len(documents))
    verdicts = Verdicts()
    ratio = statistics.median(_ratio(r.timings, "pipeline", "wall") for r in rounds)
    verdicts.check(
        f"goal: pipeline >= {GOAL_RATIO}x baseline",
        ratio >= GOAL_RATIO,
        f"median wall {ratio:.2f}x",
    )
    # News: one chat per feed, so each entry queues one alert, less the few that repeat a
    # story of the same check or of another feed; a first fetch queues none. Every round
    # starts from a fresh database, so every round queues the same.
    entries = rounds[0].timings["pipeline"].entries
    queued = sorted({r.queued for r in rounds})
    ok = (len(queued) == 1 and 0.99 * entries <= queued[0] <= entries) if primed else queued == [0]
    verdicts.check(
        "check: alerts queued", ok, f"outbox rows {queued} for {entries:,} entries, every round"
    )
    if not args.no_memory:
        print_memory(measure_memory(args.folder, primed))
    if args.profile:
        print(profile_pipeline(documents, primed, args.top))
    return verdicts.exit_code()


def print_check_cpu(rounds: Sequence[Round], documents: int) -> None:
    """The pipeline's CPU per feed check (one document = one check), the bench's process
    and, on PostgreSQL, the server's processes."""
    own = statistics.median(r.timings["pipeline"].cpu for r in rounds) / documents * 1000
    server = statistics.median(r.server_cpu for r in rounds) / documents * 1000
    print(
        f"pipeline CPU per feed check (median round): {own:.2f} ms in this process"
        + (f" + {server:.2f} ms in PostgreSQL's = {own + server:.2f} ms" if server else "")
    )


if __name__ == "__main__":
    sys.exit(main())
