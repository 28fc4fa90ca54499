"""The real bot (`python -m bot run`) on a big database: start-up, memory, one poll cycle.

    .venv/bin/python -m bench.scale                  # 10,000 feeds, 100,000 chats, 1M stories
    .venv/bin/python -m bench.scale --feeds 1000 --chats 10000 --stories 100000   # quick look
    .venv/bin/python -m bench.scale --cache /tmp/scale.sqlite3   # build once, reuse after
    .venv/bin/python -m bench.scale --profile        # also: the bot under cProfile, top functions
    .venv/bin/python -m bench.scale --fixed-poller --fixed-sender --drain   # the recorded run

What it builds (plain SQL, executemany in big transactions, seeded so two runs build the
same data):
- feeds: `--feeds` rows, served by FeedServers in a child process, spread over `--hosts`
  loopback addresses (127.0.1.1, 127.0.1.2, ...: the poller bounds checks per host at 2, so
  one host for all would measure that bound and nothing else). Every feed has a stored ETag;
  most match what the server answers (a 304 to the bot's conditional GET), `--changed` of them
  carry an older one and get a 200 with 20 items, 2 of them new (alerts to their subscribers),
  the rest already seen. Every feed is due at start, as after a restart past one interval.
- chats: `--chats` rows (80% private, 20% groups; a tenth with a daily digest, due tomorrow),
  each subscribed to 1-5 feeds (every feed has subscribers; popularity skewed), 5% of chats
  with 1-3 keywords.
- stories: `--stories` seen stories spread evenly over the feeds, with realistic sizes (title
  about 70 characters, link 80, summary 250; link and title keys filled), published over up to
  80 days, the newest 20 of each feed still present in it.

What it measures, with the fake Bot API (Telegram's limits on) in a child process:
- start-up: from spawning `python -m bot run` to the log line `event=started` (and to the
  fake's first getUpdates), against the same on an empty database, and the bare import time;
- resident memory of the bot (VmRSS, and the peak VmHWM, from /proc/PID/status) after start
  and after one poll cycle;
- one poll cycle: from start until every feed's last_checked_at is set (read with a separate
  read-only connection), with the poll concurrency setting;
- the database size on disk (main file, -wal and -shm) after the build and after the cycle;
- SIGTERM: the bot's exit code and how long it took to stop;
- the database's largest tables and indexes (SQLite's dbstat).

`--database postgresql://…` runs the bot on PostgreSQL instead: the same SQLite database is
built, then copied into a scratch schema of that database by the bot's own `news-notifier
migrate-db` (so both backends get the same rows), and dropped at the end; sizes are then
PostgreSQL's (tables and indexes of the schema), and the server processes' CPU that served
the bot is reported beside the bot's own. The reruns below are SQLite's only.

Extra runs, each on a fresh copy of the database:
- `--fixed-poller`: the cycle again with a proposed Poller.tick (FIXED_POLLER below), patched
  into the bot's own process (bot/ is not edited);
- `--fixed-sender`: the same with a proposed Sender.wake (FIXED_SENDER below);
- `--drain`: the cycle again, then on until the outbox is empty, with the sender's pace raised
  by a settings file and the fake's limits off: memory after sending to many chats;
- `--profile`: the cycle again under cProfile (the bot's main thread), top functions printed.

Goals: start-up under 5 s, memory under 250 MB; the exit status is 1 when one is missed or a
check fails (every feed checked once, none failed, no 429, a clean stop). Figures are printed
(and written as JSON with `--json PATH`).

bench/soak.py reuses this module's helpers (BotProcess, rss, machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import pstats
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    ScratchDatabases,
    Verdicts,
    answer_commands,
    backend_name,
    is_postgresql,
    lscpu_model,
    postgresql_server_cpu,
    start_child,
    stop_child,
)
from bot.config import load_settings
from bot.feeds.entry import identity_key
from bot.store import Store
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, FakeTelegramProcess, FloodLimits

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
ITEMS_IN_FEED = 20  # items each feed document carries
NEW_PER_CHANGED_FEED = 2  # of which new, in a changed feed
GOAL_START_SECONDS = 5.0
GOAL_RSS_MB = 250.0
FAST_PACE = 2000  # messages a second the sender may send in `--drain` (limits off)
BUILD_BATCH = 100_000  # rows per executemany (one transaction per table, or per batch)

# --------------------------------------------------------------------------------------------
# Helpers shared with bench/soak.py


def machine() -> str:
    """CPU model and count, as `nproc` and lscpu tell them."""
    return f"{len(os.sched_getaffinity(0))} cores (nproc), {lscpu_model('unknown CPU')}"


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB (1 MB = 2**20 bytes); (nan, nan) once it is gone."""
    values = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (nan once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bot_environment(*, token: str, base_url: str, database: str, **extra: str) -> dict[str, str]:
    """The process environment for `python -m bot run`: ours, none of the caller's settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWS_NOTIFIER_", "TELEGRAM_")) and k != "PYTHONPROFILEIMPORTTIME"
    }
    env.update(
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_BASE_URL=base_url,
        NEWS_NOTIFIER_DATABASE=database,
        NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS="1",
        **extra,
    )
    return env


_EVENT = re.compile(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ event=(\w+)")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+ [A-Z]+ ")
KEEP_ERRORS = 5  # ERROR records (with their tracebacks) kept for the report


class BotProcess:
    """`python -m bot run` as a child: its stderr goes to a log file and is watched for
    `event=started`; events are counted by (level, name)."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: Sequence[str] = ()) -> None:
        self.env = env
        self.log_path = log_path
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[str] | None = None
        self.spawned_at = 0.0  # time.monotonic()
        self.started_at: float | None = None  # when `event=started` was read
        self.spawned_wall = 0.0  # time.time()
        self.events: Counter[tuple[str, str]] = Counter()
        self.tracebacks = 0
        self.errors: list[str] = []  # the first ERROR records, with their tracebacks
        self._started = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.spawned_wall = time.time()
        self.spawned_at = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, *self.prefix, "-m", "bot", "run"],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, name="bot-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        error: list[str] | None = None  # the ERROR record being collected
        with self.log_path.open("a", encoding="utf-8") as log:
            for line in self.proc.stderr:
                log.write(line)
                if _LOG_LINE.match(line):
                    error = None
                match = _EVENT.match(line)
                if match:
                    level, event = match.group(1), match.group(2)
                    self.events[(level, event)] += 1
                    if event == "started" and self.started_at is None:
                        self.started_at = time.monotonic()
                        self._started.set()
                    if level in ("ERROR", "CRITICAL") and len(self.errors) < KEEP_ERRORS:
                        error = []
                        self.errors.append("")
                elif line.startswith("Traceback"):
                    self.tracebacks += 1
                    if error is None and len(self.errors) < KEEP_ERRORS:
                        error = []
                        self.errors.append("")
                if error is not None:
                    error.append(line.rstrip("\n"))
                    self.errors[-1] = "\n".join(error[:40])
        self._started.set()  # the process ended: release a waiter

    def wait_started(self, timeout: float) -> float | None:
        """Seconds from spawn to `event=started`, or None (timed out, or the bot exited)."""
        self._started.wait(timeout)
        return None if self.started_at is None else self.started_at - self.spawned_at

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM, then wait; returns (exit code, seconds to exit). Killed after `timeout`."""
        assert self.proc is not None
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            code = None
        seconds = time.monotonic() - began
        if self._reader is not None:
            self._reader.join(10)
        return code, seconds

    def event_count(self, name: str) -> int:
        return sum(n for (_, event), n in self.events.items() if event == name)

    def problems(self) -> dict[str, int]:
        """WARNING and ERROR events by name, and tracebacks."""
        found = {
            f"{level} {event}": n
            for (level, event), n in sorted(self.events.items())
            if level in ("WARNING", "ERROR", "CRITICAL")
        }
        if self.tracebacks:
            found["tracebacks"] = self.tracebacks
        return found


def read_only(path: str | Path) -> sqlite3.Connection:
    """A separate read-only connection beside the running bot (WAL: never blocks it)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


class Reader:
    """Reads (and the run's few writes) beside the running bot, on either backend: a sqlite3
    connection, or one asyncpg connection driven from a loop on a thread of its own (its
    application_name is not the schema's, so it is not counted as the bot's server CPU).
    SQL is written with `?`; PostgreSQL gets `$1, $2, …`."""

    def __init__(self, location: str, *, write: bool = False) -> None:
        self.postgresql = is_postgresql(location)
        self._sqlite: sqlite3.Connection | None = None
        if not self.postgresql:
            if write:
                self._sqlite = sqlite3.connect(location, isolation_level=None, timeout=10)
            else:
                self._sqlite = read_only(location)
            return
        import asyncpg

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._pg = self._run(
            asyncpg.connect(location, server_settings={"application_name": "bench-reader"})
        )

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @staticmethod
    def _numbered(sql: str) -> str:
        parts = sql.split("?")
        return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return self._sqlite.execute(sql, params).fetchall()
        rows = self._run(self._pg.fetch(self._numbered(sql), *params))
        return [tuple(row) for row in rows]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        return self.all(sql, params)[0]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._sqlite is not None:
            self._sqlite.execute("BEGIN")
            self._sqlite.executemany(sql, rows)
            self._sqlite.execute("COMMIT")
            return
        self._run(self._pg.executemany(self._numbered(sql), rows))

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            return
        self._run(self._pg.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def postgresql_mb(url: str, top: int = 8) -> tuple[dict[str, float], dict[str, float]]:
    """PostgreSQL's sizes of this schema: tables with their indexes and TOAST in all, and
    the largest tables and indexes on their own, in MB."""
    reader = Reader(url)
    try:
        rows = reader.all(
            "SELECT c.relname, c.relkind::text, pg_relation_size(c.oid),"
            " pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
        )
    finally:
        reader.close()
    total = sum(size for _, kind, _, size in rows if kind == "r") / 2**20
    largest = sorted(((name, own / 2**20) for name, _, own, _ in rows), key=lambda r: -r[1])
    return {"schema": total, "total": total}, dict(largest[:top])


def disk_mb(path: str | Path) -> dict[str, float]:
    """Sizes in MB of the database file and its -wal and -shm files (PostgreSQL: the
    schema's tables with their indexes)."""
    if is_postgresql(str(path)):
        return postgresql_mb(str(path))[0]
    sizes = {}
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            sizes["db" + suffix] = os.path.getsize(f"{path}{suffix}") / 2**20
    sizes["total"] = sum(sizes.values())
    return sizes


def space_by_object(path: str | Path, top: int = 8) -> dict[str, float]:
    """MB per table and index (SQLite's dbstat), largest first; empty where dbstat is missing."""
    if is_postgresql(str(path)):
        return postgresql_mb(str(path), top)[1]
    conn = read_only(path)
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?", (top,)
        ).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {name: size / 2**20 for name, size in rows}


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


async def create_schema(path: str) -> None:
    """The bot's own migrations, as `Store.open` applies them at start."""
    store = await Store.open(path, exclusive=False)
    await store.close()


# An experiment for `--fixed-poller`: bot/feeds/poller.py's Poller.tick replaced, inside the
# bot's process only (bot/ is not edited), by a version that (a) does not start a second check
# of a feed whose check finished while the due-feeds query was running, and (b) keeps the
# checks flowing: while the query comes back full, it queries again as soon as fewer than
# 2 x concurrency checks are in flight, instead of waiting for the next 1 s tick.
FIXED_POLLER = """
import asyncio
from bot.feeds import poller

async def _refill(self):
    limit = self.settings.poll.concurrency * 4
    try:
        while not self._stopping:
            finished = self._finished_during_query = set()
            now = self.clock.now_ms()
            due = await self.store.feeds.due(now, limit)
            due += await self.store.feeds.paused_due_for_probe(now, limit)
            for feed in due:
                if feed.id in self._in_flight or feed.id in finished:
                    continue
                task = asyncio.create_task(self._check_bounded(feed))
                self._in_flight[feed.id] = task
                def done(_t, fid=feed.id, poller=self):
                    poller._in_flight.pop(fid, None)
                    poller._finished_during_query.add(fid)
                task.add_done_callback(done)
            if len(due) < limit:
                return
            while len(self._in_flight) > 2 * self.settings.poll.concurrency:
                if self._stopping:
                    return
                await asyncio.sleep(0.02)
    finally:
        self._refilling = None

async def tick(self):
    if self._stopping or getattr(self, "_refilling", None):
        return 0
    if not hasattr(self, "_finished_during_query"):
        self._finished_during_query = set()
    self._refilling = asyncio.create_task(_refill(self))
    return 0

poller.Poller.tick = tick
"""

# An experiment for `--fixed-sender`: bot/delivery/sender.py's Sender.wake, which the poller
# calls after every feed check that queued alerts, made to signal new rows at most every
# REFILL_GAP seconds (a later call is folded into one delayed signal). Each signal makes the
# send loop refill from the database before its next send, and during a busy poll cycle each
# refill waits for the database behind the checks' transactions.
FIXED_SENDER = """
import asyncio
from bot.delivery import sender

REFILL_GAP = 0.5

def wake(self):
    loop = asyncio.get_running_loop()
    if getattr(self, "_wake_handle", None) is not None:
        return
    delay = getattr(self, "_last_wake", -1e9) + REFILL_GAP - loop.time()
    def fire():
        self._wake_handle = None
        self._last_wake = loop.time()
        self._new_rows.set()
    if delay <= 0:
        fire()
    else:
        self._wake_handle = loop.call_later(delay, fire)

sender.Sender.wake = wake
"""

RUN_BOT = """
import runpy, sys
sys.argv = ["bot", "run"]
runpy.run_module("bot", run_name="__main__")
"""

# --------------------------------------------------------------------------------------------
# Text: a seeded corpus of news-like words; snippets are slices of it at word boundaries

_VOCABULARY_TEXT = (
    "government minister election parliament president budget economy inflation market "
    "stocks bank rates energy climate summit talks ceasefire border trade tariffs exports "
    "court ruling judge police investigation report study researchers scientists health "
    "hospital vaccine outbreak storm flood wildfire earthquake rescue officials city council "
    "school students teachers union strike workers company profits shares technology "
    "software security data privacy network outage launch satellite mission space rocket "
    "football league championship coach season match record festival film music award "
    "museum exhibition history century village region province capital coast island river "
    "mountain airport railway bridge housing prices rents plan proposal vote campaign "
    "opposition coalition leader spokesman statement agreement sanctions diplomats embassy "
    "refugees migrants aid donors charity farmers harvest drought water power grid fuel "
    "oil gas prices consumers retail sales growth forecast quarter annual new old first last "
    "major minor local national global early late after before during amid over under "
    "against with without despite says said announced warned agreed rejected approved "
    "delayed cancelled opened closed raised cut expanded reduced signed won lost"
)
VOCABULARY = _VOCABULARY_TEXT.split()


def corpus(seed: int, words: int = 400_000) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choices(VOCABULARY, k=words))


def snippet(text: str, key: int, length: int) -> str:
    """About `length` characters of `text` starting at a word boundary chosen by `key`."""
    start = (key * 2_654_435_761) % (len(text) - length - 40)
    start = text.find(" ", start) + 1
    end = text.rfind(" ", start, start + length)
    return text[start : end if end > start else start + length]


# --------------------------------------------------------------------------------------------
# The plan: every feed, chat and story is a function of (seed, index)


@dataclass(frozen=True)
class Plan:
    feeds: int
    chats: int
    stories: int
    hosts: int
    changed: float  # fraction of feeds whose stored ETag is stale (200 with new items)
    seed: int
    t0_ms: int  # "now" when the database was built

    @property
    def per_feed(self) -> int:
        return max(ITEMS_IN_FEED, self.stories // self.feeds)

    def host(self, feed: int) -> str:
        return f"127.0.1.{1 + feed % self.hosts}"

    def path(self, feed: int) -> str:
        return f"/news/{feed}/rss.xml"

    def changed_feeds(self) -> set[int]:
        count = round(self.feeds * self.changed)
        return set(random.Random(self.seed).sample(range(self.feeds), count))

    def gap_ms(self, feed: int) -> int:
        """Time between two stories of a feed: 15 minutes to 19 hours (log-uniform), so a
        feed's history spans at most 80 days (the default retention is 90)."""
        rng = random.Random(self.seed * 1_000_003 + feed)
        span_days = 80 * rng.random() ** 2 + 0.5
        return max(60_000, int(span_days * DAY_MS / self.per_feed))

    def guid(self, feed: int, j: int) -> str:
        return f"f{feed}-s{j}"

    def etag(self, feed: int) -> str:
        return f'"{feed}-v1"'


def story_texts(text: str, feed: int, j: int) -> tuple[str, str, str]:
    """(title, link, summary) of story j of a feed."""
    key = feed * 131_071 + j
    title = snippet(text, key, 70).capitalize() + f" ({feed}.{j})"
    slug = "-".join(snippet(text, key + 7, 40).split()[:6])
    link = f"https://news{feed % 997}.example.com/{2025 - j % 3}/{slug}-{feed}-{j}.html"
    summary = snippet(text, key + 13, 250).capitalize() + "."
    return title, link, summary


def feed_items(plan: Plan, text: str, feed: int, now_ms: int) -> list[FeedItem]:
    """The document a feed serves: its newest items, with new ones first in a changed feed."""
    items = []
    gap = plan.gap_ms(feed)
    known = ITEMS_IN_FEED
    if feed in _changed_cache(plan):
        for k in range(NEW_PER_CHANGED_FEED):
            title, link, summary = story_texts(text, feed, 10_000_000 + k)
            items.append(
                FeedItem(
                    title=title,
                    link=link,
                    guid=f"f{feed}-new{k}",
                    pub_date=datetime.fromtimestamp((now_ms - (k + 1) * 60_000) / 1000, UTC),
                    description=f"<p>{summary}</p>",
                )
            )
        known -= NEW_PER_CHANGED_FEED
    for j in range(known):
        title, link, summary = story_texts(text, feed, j)
        items.append(
            FeedItem(
                title=title,
                link=link,
                guid=plan.guid(feed, j),
                pub_date=datetime.fromtimestamp((plan.t0_ms - j * gap) / 1000, UTC),
                description=f"<p>{summary}</p>",
            )
        )
    return items


_CHANGED: dict[Plan, set[int]] = {}


def _changed_cache(plan: Plan) -> set[int]:
    if plan not in _CHANGED:
        _CHANGED[plan] = plan.changed_feeds()
    return _CHANGED[plan]


# --------------------------------------------------------------------------------------------
# The feed host: FeedServers on `hosts` loopback addresses, in a child process


class FeedHostProcess:
    """Serves every feed of the plan from a child process (its CPU is not the bot's)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ports: dict[str, int] = {}
        self._context = multiprocessing.get_context("spawn")
        self._connection: Any = None
        self._process: Any = None

    def start(self, timeout: float = 300.0) -> None:
        self.ports = start_child(
            self, _serve_feeds_in_process, (asdict(self.plan),), timeout, "the feed host process"
        )

    def url(self, feed: int) -> str:
        host = self.plan.host(feed)
        return f"http://{host}:{self.ports[host]}{self.plan.path(feed)}"

    def stats(self) -> dict[str, Any]:
        self._connection.send("stats")
        return self._connection.recv()

    def reset_stats(self) -> None:
        """Forget the requests counted so far (each run counts its own)."""
        self._connection.send("reset")
        self._connection.recv()

    def stop(self) -> None:
        stop_child(self)


def _serve_feeds_in_process(connection: Any, plan: dict[str, Any]) -> None:
    asyncio.run(_serve_feeds(connection, Plan(**plan)))


async def _serve_feeds(connection: Any, plan: Plan) -> None:
    text = corpus(plan.seed)
    now_ms = int(time.time() * 1000)
    servers = {f"127.0.1.{1 + h}": FeedServer(f"127.0.1.{1 + h}") for h in range(plan.hosts)}
    for server in servers.values():
        await server.start()
    try:
        for feed in range(plan.feeds):
            servers[plan.host(feed)].publish(
                plan.path(feed),
                feed_items(plan, text, feed, now_ms),
                title=f"News {feed}",
                etag=plan.etag(feed),
            )
        connection.send({host: server.port for host, server in servers.items()})

        def stats() -> dict[str, Any]:
            hits = bodies = body_bytes = twice = 0
            for feed in range(plan.feeds):
                server, path = servers[plan.host(feed)], plan.path(feed)
                hits += server.hits(path)
                twice += server.hits(path) >= 2
                sent = server.bytes_sent(path)
                bodies += sent > 0
                body_bytes += sent
            return {
                "requests": hits,
                "feeds_answered_200": bodies,
                "feeds_hit_twice": twice,
                "body_mb": body_bytes / 2**20,
                "cpu": time.process_time(),
            }

        def reset() -> str:
            for server in servers.values():
                server.reset_stats()
            return "reset"

        await answer_commands(connection, {"stats": stats, "reset": reset})
    finally:
        for server in servers.values():
            await server.stop()
    with contextlib.suppress(OSError):
        connection.send("stopped")


# --------------------------------------------------------------------------------------------
# The fake Bot API in a child process, with groups as well as private chats


def private_id(k: int) -> int:
    return 1_000_000 + k


def group_id(k: int) -> int:
    return -(1_001_000_000_000 + k)


class FakeApiProcess(FakeTelegramProcess):
    """FakeTelegramProcess that also knows groups, and tells when getUpdates first came."""

    def __init__(self, *, privates: int, groups: int, **options: Any) -> None:
        super().__init__(**options)
        self.privates = privates
        self.groups = groups

    def start(self, timeout: float = 120.0) -> None:
        self.port = start_child(
            self,
            _serve_fake_in_process,
            (self.privates, self.groups, self.options),
            timeout,
            "the fake Bot API process",
        )


def _serve_fake_in_process(connection: Any, privates: int, groups: int, options: Any) -> None:
    asyncio.run(_serve_fake(connection, privates, groups, options))


async def _serve_fake(connection: Any, privates: int, groups: int, options: Any) -> None:
    async with FakeTelegram(**options) as fake:
        for k in range(privates):
            fake.private_chat(fake.add_user(private_id(k)))
        admin = fake.add_user(999, "Admin")
        for k in range(groups):
            fake.add_group(group_id(k), f"Group {k}", supergroup=k % 2 == 0, creator=admin)
        connection.send(fake.port)
        await answer_commands(
            connection,
            {
                "stats": lambda: {
                    **fake.stats(),
                    "flood_refused": sum(fake.flood.refused.values()),
                    "cpu": time.process_time(),
                }
            },
        )
    with contextlib.suppress(OSError):
        connection.send("stopped")


# --------------------------------------------------------------------------------------------
# Building the database


def build_database(path: str, plan: Plan) -> dict[str, float]:
    """Every row of the plan, by plain SQL. Returns seconds per table."""
    asyncio.run(create_schema(path))
    text = corpus(plan.seed)
    rng = random.Random(plan.seed)
    t0 = plan.t0_ms
    timings: dict[str, float] = {}
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")  # one big file write per batch while building
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")  # 256 MB: indexes build in memory

    def timed(name: str, rows: Callable[[], Any], sql: str) -> None:
        began = time.perf_counter()
        batch: list[tuple[Any, ...]] = []
        for row in rows():
            batch.append(row)
            if len(batch) >= BUILD_BATCH:
                conn.execute("BEGIN")
                conn.executemany(sql, batch)
                conn.execute("COMMIT")
                batch = []
        if batch:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
        timings[name] = time.perf_counter() - began

    changed = plan.changed_feeds()

    def feeds() -> Any:
        for feed in range(plan.feeds):
            etag = f'"{feed}-v0"' if feed in changed else plan.etag(feed)
            yield (
                feed + 1,
                f"http://{plan.host(feed)}:0{plan.path(feed)}",  # the port is set per run
                f"News {feed}",
                f"https://news{feed % 997}.example.com/",
                etag,
                f"{rng.getrandbits(128):032x}",
                t0 - 600_000,
                t0 - 600_000,
                t0 - 30 * DAY_MS,
                t0,
                t0 - 60 * DAY_MS,
            )

    timed(
        "feeds",
        feeds,
        "INSERT INTO feeds (id, url, title, site_url, etag, body_hash, last_checked_at,"
        " last_success_at, primed_at, newest_timestamp_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )

    languages = ["en"] * 6 + ["zh", "ja", "ru", "de"]
    n_groups = plan.chats // 5
    n_private = plan.chats - n_groups
    chat_ids = [private_id(k) for k in range(n_private)] + [group_id(k) for k in range(n_groups)]

    def chats() -> Any:
        for k, chat_id in enumerate(chat_ids):
            digest = k % 10 == 0
            kind = "private" if chat_id > 0 else ("supergroup" if k % 2 == 0 else "group")
            yield (
                chat_id,
                kind,
                "" if chat_id > 0 else f"Group {k}",
                languages[k % len(languages)],
                8 if digest else None,
                0 if digest else None,
                t0 + DAY_MS if digest else None,
                t0 - 20 * DAY_MS,
            )

    timed(
        "chats",
        chats,
        "INSERT INTO chats (id, kind, title, language, digest_hour, digest_minute,"
        " next_digest_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )

    def subscriptions() -> Any:
        for k, chat_id in enumerate(chat_ids):
            count = rng.choices((1, 2, 3, 4, 5), weights=(30, 25, 20, 15, 10))[0]
            chosen = {k % plan.feeds}  # every feed has subscribers
            while len(chosen) < count:
                chosen.add(int(plan.feeds * rng.random() ** 3))  # popular feeds first
            for feed in sorted(chosen):
                mode = "digest" if rng.random() < 0.1 else "instant"
                yield (chat_id, feed + 1, mode, t0 - 10 * DAY_MS)

    timed(
        "subscriptions",
        subscriptions,
        "INSERT INTO subscriptions (chat_id, feed_id, mode, created_at) VALUES (?, ?, ?, ?)",
    )

    def keywords() -> Any:
        for k, chat_id in enumerate(chat_ids):
            if k % 20 != 7:
                continue
            for position in range(1 + k % 3):
                word = VOCABULARY[(k * 7 + position * 31) % len(VOCABULARY)]
                yield (chat_id, position, word, int(position == 2))

    timed(
        "keywords",
        keywords,
        "INSERT INTO keywords (chat_id, position, text, exclude) VALUES (?, ?, ?, ?)",
    )

    def stories() -> Any:
        per_feed = plan.stories // plan.feeds
        for feed in range(plan.feeds):
            gap = plan.gap_ms(feed)
            extra = 1 if feed < plan.stories % plan.feeds else 0
            for j in range(per_feed + extra):
                title, link, summary = story_texts(text, feed, j)
                published = t0 - j * gap
                seen = published + 120_000
                present = t0 - 600_000 if j < ITEMS_IN_FEED else t0 - (j - ITEMS_IN_FEED) * gap
                yield (
                    feed + 1,
                    identity_key({"id": plan.guid(feed, j)}, "", "", ""),
                    published,
                    title,
                    link,
                    summary,
                    link,  # the normalized link: these links are already in normal form
                    " ".join(title.casefold().split()),
                    min(seen, t0),
                    max(present, min(seen, t0)),
                )

    timed(
        "stories",
        stories,
        "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary, link_key,"
        " title_key, first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    conn.execute("PRAGMA journal_mode = WAL")  # as the bot keeps it
    conn.close()
    return timings


def prepare_run(path: str, plan: Plan, feeds: FeedHostProcess, interval: int) -> int:
    """Point every feed at this run's ports and make every feed due now. Returns now (ms)."""
    now = int(time.time() * 1000)
    rng = random.Random(plan.seed + 1)
    sql = (
        "UPDATE feeds SET url = ?, next_check_at = ?, last_checked_at = ?,"
        " last_success_at = ? WHERE id = ?"
    )
    rows = [
        (
            feeds.url(feed),
            now - rng.randrange(0, interval * 1000),
            now - interval * 2000,
            now - interval * 2000,
            feed + 1,
        )
        for feed in range(plan.feeds)
    ]
    if is_postgresql(path):
        writer = Reader(path, write=True)
        try:
            writer.executemany(sql, rows)
        finally:
            writer.close()
        return now
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return now


def counts(path: str) -> dict[str, int]:
    reader = Reader(path)
    try:
        return {
            table: int(reader.one(f"SELECT COUNT(*) FROM {table}")[0])
            for table in ("feeds", "chats", "subscriptions", "keywords", "stories", "outbox")
        }
    finally:
        reader.close()


# --------------------------------------------------------------------------------------------
# One run of the bot


@dataclass
class StartResult:
    label: str
    started_s: float | None  # spawn to `event=started`
    first_get_updates_s: float | None  # spawn to the fake's first getUpdates
    rss_mb: float
    hwm_mb: float


@dataclass
class CycleResult:
    concurrency: int
    per_host_concurrency: int
    interval: int
    hosts: int
    seconds: float | None  # start until every feed's last_checked_at was set
    checked: int
    feeds: int
    failures: int
    errors: dict[str, int]
    timeline: list[tuple[float, int]]  # (seconds since start, feeds checked)
    feeds_per_second: float
    rss_mb: float
    hwm_mb: float
    stories_new: int
    alerts_queued: int
    alerts_sent: int
    requests_to_feeds: int
    feeds_answered_200: int
    feeds_checked_twice: int  # feeds the host saw two or more requests for
    bot_cpu_seconds: float  # the bot's user + system CPU from `started` to the cycle's end
    messages_accepted: int  # by the fake during the run
    flood_refused: int  # 429s the fake's flood control gave during the run
    stop_code: int | None
    stop_seconds: float
    problems: dict[str, int] = field(default_factory=dict)
    drained_seconds: float | None = None  # cycle end until the outbox was empty (--drain)
    rss_drained_mb: float = float("nan")
    hwm_drained_mb: float = float("nan")
    chats_sent: int = 0  # distinct chats messages were sent to
    database_cpu_seconds: float = 0.0  # PostgreSQL's processes serving the bot, same span


def import_seconds(rounds: int = 3) -> float:
    """Wall time of `python -c 'import bot.cli, bot.telegram.app'` (best of `rounds`)."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run(
            [PYTHON, "-c", "import bot.cli, bot.telegram.app"],
            cwd=REPO,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - began)
    return best


def watch_start(
    bot: BotProcess, fake: FakeApiProcess, timeout: float
) -> tuple[float | None, float | None]:
    """Seconds from spawn to `event=started` and to the fake's next getUpdates (its arrival,
    seen by polling the fake's request counter every 20 ms)."""
    polls_before = fake.stats()["by_method"].get("getupdates", 0)
    first: float | None = None
    deadline = bot.spawned_at + timeout
    while time.monotonic() < deadline and bot.alive():
        if first is None and fake.stats()["by_method"].get("getupdates", 0) > polls_before:
            first = time.monotonic() - bot.spawned_at
        if first is not None and bot.started_at is not None:
            break
        time.sleep(0.02)
    started = None if bot.started_at is None else bot.started_at - bot.spawned_at
    return started, first


def measure_start(
    label: str, database: str, fake: FakeApiProcess, log: Path, timeout: float = 60.0
) -> StartResult:
    env = bot_environment(token=fake.token, base_url=fake.base_url, database=database)
    bot = BotProcess(env, log)
    bot.start()
    try:
        started, first = watch_start(bot, fake, timeout)
        time.sleep(1.0)  # let the first jobs run before reading memory
        rss, hwm = rss_mb(bot.pid)
    finally:
        bot.stop()
    return StartResult(
        label=label, started_s=started, first_get_updates_s=first, rss_mb=rss, hwm_mb=hwm
    )


def run_cycle(
    plan: Plan,
    database: str,
    fake: FakeApiProcess,
    feeds: FeedHostProcess,
    log: Path,
    timeout: float,
    prefix: Sequence[str] = (),
    *,
    config: Path | None = None,
    drain: bool = False,
) -> tuple[StartResult, CycleResult]:
    """One poll cycle; with `drain`, then on until the outbox is empty."""
    settings = load_settings(None, {})
    poll = settings.poll
    start_ms = prepare_run(database, plan, feeds, poll.interval)
    feeds.reset_stats()
    fake_before = fake.stats()
    env = bot_environment(token=fake.token, base_url=fake.base_url, database=database)
    if config is not None:
        env["NEWS_NOTIFIER_CONFIG"] = str(config)
    bot = BotProcess(env, log, prefix)
    bot.start()
    timeline: list[tuple[float, int]] = []
    db = Reader(database)
    server_cpu = is_postgresql(database)
    try:
        started, first = watch_start(bot, fake, 120)
        if started is None:
            raise SystemExit(f"the bot did not start; see {log}")
        rss_start, hwm_start = rss_mb(bot.pid)
        cpu_start = cpu_seconds(bot.pid)
        database_cpu_start = postgresql_server_cpu(database) if server_cpu else 0.0
        target = db.one(
            "SELECT COUNT(*) FROM feeds WHERE status = 'active'"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = feeds.id)"
        )[0]
        done_at = None
        deadline = bot.spawned_at + timeout
        while time.monotonic() < deadline and bot.alive():
            checked = db.one("SELECT COUNT(*) FROM feeds WHERE last_checked_at >= ?", (start_ms,))[
                0
            ]
            now = time.monotonic()
            timeline.append((round(now - bot.spawned_at, 2), checked))
            if checked >= target:
                done_at = now
                break
            time.sleep(0.25)
        cpu_cycle = cpu_seconds(bot.pid) - cpu_start
        database_cpu = (postgresql_server_cpu(database) - database_cpu_start) if server_cpu else 0.0
        time.sleep(2.0)  # checks in flight finish writing, the sender keeps going
        rss_cycle, hwm_cycle = rss_mb(bot.pid)
        row = db.one(
            "SELECT COUNT(*) FROM feeds WHERE last_checked_at >= ? AND consecutive_failures > 0",
            (start_ms,),
        )
        failures = row[0]
        errors = dict(
            db.all(
                "SELECT last_error, COUNT(*) FROM feeds WHERE consecutive_failures > 0"
                " GROUP BY last_error"
            )
        )
        new = db.one("SELECT COUNT(*) FROM stories WHERE first_seen_at >= ?", (start_ms,))[0]
        queued, sent = db.one(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), 0)"
            " FROM outbox WHERE kind = 'alert'"
        )
        drained = None
        rss_drained = hwm_drained = float("nan")
        chats_sent = 0
        if drain:
            began = time.monotonic()
            while time.monotonic() < began + timeout and bot.alive():
                pending = db.one("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0]
                if not pending:
                    drained = time.monotonic() - began
                    break
                time.sleep(0.5)
            time.sleep(2.0)
            rss_drained, hwm_drained = rss_mb(bot.pid)
            chats_sent = db.one("SELECT COUNT(DISTINCT chat_id) FROM outbox WHERE status = 'sent'")[
                0
            ]
        feed_stats = feeds.stats()
        fake_after = fake.stats()
    finally:
        db.close()
        code, stop_seconds = bot.stop(120)
    cycle_seconds = None if done_at is None else done_at - bot.spawned_at
    checked = timeline[-1][1] if timeline else 0
    start = StartResult(
        label=f"{plan.feeds:,} feeds / {plan.chats:,} chats / {plan.stories:,} stories",
        started_s=started,
        first_get_updates_s=first,
        rss_mb=rss_start,
        hwm_mb=hwm_start,
    )
    cycle = CycleResult(
        concurrency=poll.concurrency,
        per_host_concurrency=poll.per_host_concurrency,
        interval=poll.interval,
        hosts=plan.hosts,
        seconds=cycle_seconds,
        checked=checked,
        feeds=target,
        failures=failures,
        errors=errors,
        timeline=timeline,
        feeds_per_second=(
            checked / (cycle_seconds - started) if cycle_seconds and started else float("nan")
        ),
        rss_mb=rss_cycle,
        hwm_mb=hwm_cycle,
        stories_new=new,
        alerts_queued=queued,
        alerts_sent=sent,
        requests_to_feeds=feed_stats["requests"],
        feeds_answered_200=feed_stats["feeds_answered_200"],
        feeds_checked_twice=feed_stats["feeds_hit_twice"],
        bot_cpu_seconds=cpu_cycle,
        messages_accepted=fake_after["messages"] - fake_before["messages"],
        flood_refused=fake_after["flood_refused"] - fake_before["flood_refused"],
        stop_code=code,
        stop_seconds=stop_seconds,
        problems=bot.problems(),
        drained_seconds=drained,
        rss_drained_mb=rss_drained,
        hwm_drained_mb=hwm_drained,
        chats_sent=chats_sent,
        database_cpu_seconds=database_cpu,
    )
    return start, cycle


def print_profile(path: Path, limit: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# Running it all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--stories", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=100, help="loopback feed hosts (max 254)")
    parser.add_argument("--changed", type=float, default=0.05, help="fraction of feeds changed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycle-timeout", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument(
        "--cache", metavar="PATH", help="keep the built database here and reuse it next time"
    )
    parser.add_argument("--profile", action="store_true", help="also run the cycle under cProfile")
    parser.add_argument(
        "--fixed-poller",
        action="store_true",
        help="also run the cycle with the proposed Poller.tick (patched in the bot's process)",
    )
    parser.add_argument(
        "--fixed-sender",
        action="store_true",
        help="also run the cycle with the proposed Sender.wake (patched in the bot's process)",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="also run the cycle with the sender's pace raised (a settings file) against the "
        "fake with its limits off, on until every alert is sent: memory after many chats",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    parser.add_argument(
        "--database",
        help="a postgresql:// URL: the bot runs in a scratch schema of it (the database built "
        "in SQLite, then copied by `news-notifier migrate-db`); or a file path: the SQLite "
        "database is built there and kept (default: a temporary file)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 254:
        parser.error("--hosts: 1 to 254")
    postgresql = is_postgresql(args.database)
    if postgresql and (args.profile or args.fixed_poller or args.fixed_sender or args.drain):
        parser.error("--profile, --fixed-poller, --fixed-sender and --drain are SQLite's only")

    print(f"machine: {machine()}, Python {sys.version.split()[0]}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; store on {backend_name(args.database)}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-scale-") as folder,
        ScratchDatabases(args.database if postgresql else None, folder) as databases,
    ):
        work = Path(folder)
        built = str(work / "scale.sqlite3") if postgresql or not args.database else args.database
        plan, build = _database(args, built)
        database = built
        if postgresql:
            database = databases.new("scale")
            build["migrate-db to PostgreSQL"] = migrate_to(built, database)
        size_built = disk_mb(database)
        rows = counts(database)
        print(
            "database: "
            + ", ".join(f"{table} {n:,}" for table, n in rows.items())
            + f"; {size_built['total']:.0f} MB on disk"
        )
        if build:
            print("  built in " + ", ".join(f"{k} {v:.1f} s" for k, v in build.items()))

        print("starting the feed host and the fake Bot API (child processes)...")
        feeds = FeedHostProcess(plan)
        feeds.start()
        n_groups = plan.chats // 5
        fake = FakeApiProcess(privates=plan.chats - n_groups, groups=n_groups)
        fake.start()
        try:
            imports = import_seconds()
            print(f"import bot.cli + bot.telegram.app: {imports:.2f} s (best of 3)")
            empty = databases.new("empty") if postgresql else str(work / "empty.sqlite3")
            asyncio.run(create_schema(empty))
            baseline = measure_start("empty database", empty, fake, work / "empty.log")
            pristine = str(work / "pristine.sqlite3")
            if args.profile or args.fixed_poller or args.fixed_sender or args.drain:
                shutil.copyfile(database, pristine)
            start, cycle = run_cycle(
                plan, database, fake, feeds, work / "bot.log", args.cycle_timeout
            )
            size_after = disk_mb(database)
            by_object = space_by_object(database)

            def rerun(
                name: str,
                prefix: list[str],
                api: FakeApiProcess = fake,
                config: Path | None = None,
            ) -> CycleResult:
                shutil.copyfile(pristine, database)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(database + suffix)
                return run_cycle(
                    plan,
                    database,
                    api,
                    feeds,
                    work / f"{name}.log",
                    args.cycle_timeout,
                    prefix,
                    config=config,
                    drain=config is not None,
                )[1]

            fixed = None
            if args.fixed_poller:
                fixed = rerun("fixed-poller", ["-c", FIXED_POLLER + RUN_BOT])
            fixed_sender = None
            if args.fixed_sender:
                fixed_sender = rerun("fixed-sender", ["-c", FIXED_SENDER + RUN_BOT])
            drained = None
            if args.drain:
                fast = work / "fast.toml"
                fast.write_text(
                    f"[delivery]\nglobal_per_second = {FAST_PACE}\nmax_in_flight = 64\n"
                )
                unlimited = FakeApiProcess(
                    privates=plan.chats - n_groups,
                    groups=n_groups,
                    limits=FloodLimits(enabled=False),
                )
                unlimited.start()
                try:
                    drained = rerun("drain", [], unlimited, fast)
                finally:
                    unlimited.stop()
            profile_text = ""
            if args.profile:
                prof = work / "bot.prof"
                profiled_cycle = rerun("profiled", ["-m", "cProfile", "-o", str(prof)])
                profile_text = f"cycle under cProfile: {profiled_cycle.seconds} s\n" + (
                    print_profile(prof) if prof.exists() else "(no profile written)"
                )
            log_tail = (work / "bot.log").read_text(errors="replace").splitlines()[-15:]
        finally:
            fake.stop()
            feeds.stop()

    verdicts = report(imports, baseline, start, cycle, size_built, size_after)
    if by_object:
        print(
            "  largest tables and indexes: "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in by_object.items())
        )
    if fixed is not None:
        print_fixed("the proposed Poller.tick (--fixed-poller)", cycle, fixed)
    if fixed_sender is not None:
        print_fixed("the proposed Sender.wake (--fixed-sender)", cycle, fixed_sender)
    if drained is not None:
        print_drained(drained)
    if args.profile:
        print("\ncProfile of the bot's main thread during one cycle:")
        print(profile_text)
    if cycle.seconds is None or cycle.stop_code != 0:
        print("last lines of the bot's log:")
        print("\n".join("  " + line for line in log_tail))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "plan": asdict(plan),
                    "rows": rows,
                    "build_seconds": build,
                    "import_seconds": imports,
                    "baseline": asdict(baseline),
                    "start": asdict(start),
                    "cycle": asdict(cycle),
                    "disk_mb_built": size_built,
                    "disk_mb_after": size_after,
                    "disk_mb_by_object": by_object,
                    "cycle_fixed_poller": asdict(fixed) if fixed else None,
                    "cycle_fixed_sender": asdict(fixed_sender) if fixed_sender else None,
                    "cycle_drained": asdict(drained) if drained else None,
                },
                indent=1,
            )
        )
    return verdicts.exit_code()


def migrate_to(source: str, url: str) -> float:
    """Copy the built SQLite database into PostgreSQL with the bot's own `migrate-db` (the
    same rows on both backends); seconds it took."""
    began = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "-m", "bot", "migrate-db", "--to", url],
        cwd=REPO,
        env={**os.environ, "NEWS_NOTIFIER_DATABASE": source},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"migrate-db failed: {result.stderr or result.stdout}")
    return time.perf_counter() - began


def _database(args: argparse.Namespace, database: str) -> tuple[Plan, dict[str, float]]:
    """Build the database (or copy it from the cache); the plan it was built with."""
    meta_path = Path(f"{args.cache}.json") if args.cache else None
    wanted = {
        "feeds": args.feeds,
        "chats": args.chats,
        "stories": args.stories,
        "hosts": args.hosts,
        "changed": args.changed,
        "seed": args.seed,
    }
    if args.cache and meta_path and meta_path.exists() and Path(args.cache).exists():
        meta = json.loads(meta_path.read_text())
        if {k: meta[k] for k in wanted} == wanted:
            print(f"database: copied from the cache {args.cache}")
            shutil.copyfile(args.cache, database)
            return Plan(**meta), {}
    plan = Plan(**wanted, t0_ms=int(time.time() * 1000))
    print(
        f"building the database: {plan.feeds:,} feeds, {plan.chats:,} chats, "
        f"{plan.stories:,} stories..."
    )
    began = time.perf_counter()
    timings = build_database(database, plan)
    timings["total"] = time.perf_counter() - began
    if args.cache and meta_path:
        shutil.copyfile(database, args.cache)
        meta_path.write_text(json.dumps(asdict(plan)))
    return plan, timings


def print_drained(c: CycleResult) -> None:
    when = "did not finish" if c.drained_seconds is None else f"{c.drained_seconds:.0f} s"
    print(
        f"\nthe cycle, then every alert sent (sender pace {FAST_PACE}/s by a settings file, the "
        f"fake's limits off): {c.alerts_queued:,} alerts to {c.chats_sent:,} chats, outbox empty "
        f"{when} after the cycle; VmRSS {c.rss_mb:.0f} MB after the cycle, "
        f"{c.rss_drained_mb:.0f} MB when drained (peak VmHWM {c.hwm_drained_mb:.0f} MB)"
    )


def print_fixed(what: str, stock: CycleResult, fixed: CycleResult) -> None:
    def seconds(value: float | None) -> str:
        return "did not finish" if value is None else f"{value:.1f} s"

    print(f"\n{what}, patched in the bot's process, vs stock:")
    for name, c in (("stock", stock), ("fixed", fixed)):
        print(
            f"  {name}: cycle {seconds(c.seconds)}, {c.feeds_per_second:.0f} feeds/s, "
            f"{c.requests_to_feeds:,} feed requests ({c.feeds_checked_twice:,} feeds twice), "
            f"bot CPU {c.bot_cpu_seconds:.1f} s, VmHWM {c.hwm_mb:.0f} MB, "
            f"alerts sent during the cycle {c.alerts_sent:,} of {c.alerts_queued:,} "
            f"(the fake accepted {c.messages_accepted:,}, 429s {c.flood_refused}), "
            f"failed checks {c.failures}, exit {c.stop_code}"
        )


def report(
    imports: float,
    baseline: StartResult,
    start: StartResult,
    cycle: CycleResult,
    size_built: dict[str, float],
    size_after: dict[str, float],
) -> Verdicts:
    def seconds(value: float | None) -> str:
        return "did not happen" if value is None else f"{value:.2f} s"

    print("\nstart-up (spawn of `python -m bot run` to `event=started`; goal < 5 s):")
    for result in (baseline, start):
        print(
            f"  {result.label}: {seconds(result.started_s)} "
            f"(first getUpdates at {seconds(result.first_get_updates_s)}), "
            f"RSS {result.rss_mb:.0f} MB"
        )
    print(f"  of which Python imports: about {imports:.2f} s")
    print("\nresident memory of the bot (goal < 250 MB):")
    print(f"  after start: VmRSS {start.rss_mb:.0f} MB")
    print(f"  after one poll cycle: VmRSS {cycle.rss_mb:.0f} MB, peak VmHWM {cycle.hwm_mb:.0f} MB")
    print(
        f"\none poll cycle (poll.concurrency {cycle.concurrency}, per host "
        f"{cycle.per_host_concurrency}, {cycle.hosts} hosts, interval {cycle.interval} s):"
    )
    print(
        f"  every feed checked {seconds(cycle.seconds)} after spawn "
        f"({cycle.checked:,}/{cycle.feeds:,} feeds; "
        f"{cycle.feeds_per_second:.0f} feeds/s after start-up)"
    )
    marks = [(t, n) for t, n in cycle.timeline if n]
    if marks:
        for fraction in (0.25, 0.5, 0.75):
            t = next((t for t, n in marks if n >= fraction * cycle.feeds), None)
            if t is not None:
                print(f"    {fraction:.0%} of feeds checked at {t:.1f} s")
    print(
        f"  feed requests {cycle.requests_to_feeds:,}, of which "
        f"{cycle.feeds_answered_200:,} feeds answered a body (the rest 304); "
        f"{cycle.failures} failed checks {cycle.errors or ''}"
    )
    per_request = 1000 / max(1, cycle.requests_to_feeds)
    print(
        f"  feeds requested twice or more: {cycle.feeds_checked_twice:,}; the bot's CPU from "
        f"start to the cycle's end: {cycle.bot_cpu_seconds:.1f} s "
        f"({cycle.bot_cpu_seconds * per_request:.2f} ms per request)"
    )
    if cycle.database_cpu_seconds:
        both = cycle.bot_cpu_seconds + cycle.database_cpu_seconds
        print(
            f"  PostgreSQL's processes serving the bot, same span: "
            f"{cycle.database_cpu_seconds:.1f} s; bot + server {both:.1f} s "
            f"({both * per_request:.2f} ms per request)"
        )
    print(
        f"  new stories {cycle.stories_new:,}, alerts queued {cycle.alerts_queued:,}, "
        f"sent by the end {cycle.alerts_sent:,} (paced at 30/s); the fake accepted "
        f"{cycle.messages_accepted:,} messages, flood-control 429s {cycle.flood_refused}"
    )
    print(f"  SIGTERM: exit code {cycle.stop_code} after {cycle.stop_seconds:.1f} s")
    if cycle.problems:
        print(f"  warnings/errors in the bot's log: {cycle.problems}")
    print("\ndatabase on disk:")
    print(
        "  built: "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in size_built.items() if k != "total")
        + f" = {size_built['total']:.0f} MB"
    )
    print(
        "  after the cycle: "
        + ", ".join(f"{k} {v:.1f} MB" for k, v in size_after.items() if k != "total")
        + f" = {size_after['total']:.0f} MB"
    )
    return judge(baseline, start, cycle)


def judge(baseline: StartResult, start: StartResult, cycle: CycleResult) -> Verdicts:
    """The goals, and what the cycle must have done: every feed checked, once, none failed;
    a changed feed's new stories recorded; no 429; a clean stop."""
    verdicts = Verdicts()
    for result in (baseline, start):
        verdicts.check(
            f"goal: start-up < {GOAL_START_SECONDS:.0f} s ({result.label})",
            result.started_s is not None and result.started_s < GOAL_START_SECONDS,
            "did not start" if result.started_s is None else f"{result.started_s:.2f} s",
        )
    verdicts.check(
        f"goal: RSS < {GOAL_RSS_MB:.0f} MB (peak VmHWM after the cycle)",
        cycle.hwm_mb < GOAL_RSS_MB,
        f"{cycle.hwm_mb:.0f} MB",
    )
    verdicts.check(
        "check: every feed checked once, none failed",
        cycle.seconds is not None
        and cycle.failures == 0
        and cycle.feeds_checked_twice == 0
        and cycle.requests_to_feeds == cycle.feeds,
        f"{cycle.checked:,} of {cycle.feeds:,} checked, {cycle.requests_to_feeds:,} requests, "
        f"{cycle.feeds_checked_twice} twice, {cycle.failures} failed",
    )
    new = NEW_PER_CHANGED_FEED * cycle.feeds_answered_200
    verdicts.check(
        "check: each changed feed's new stories recorded",
        cycle.stories_new == new,
        f"{cycle.stories_new:,} new, expected {new:,}",
    )
    verdicts.check(
        "check: no 429 from the fake", cycle.flood_refused == 0, f"{cycle.flood_refused}"
    )
    verdicts.check(
        "check: SIGTERM ends the bot with exit 0", cycle.stop_code == 0, f"exit {cycle.stop_code}"
    )
    return verdicts


if __name__ == "__main__":
    raise SystemExit(main())
