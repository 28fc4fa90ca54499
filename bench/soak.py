"""Soak: the real bot (`python -m bot run`) for minutes on end, with faults on a schedule.

    .venv/bin/python -m bench.soak                 # 20 minutes (the recorded run)
    .venv/bin/python -m bench.soak --minutes 3 --png /tmp/soak.png     # a trial
    .venv/bin/python -m bench.soak --minutes 8 --tracemalloc --png /tmp/t.png  # what grows
    .venv/bin/python -m bench.soak --plot-only soak.json  # redraw the plot from --json output

Set up by plain SQL before start: `--feeds` feeds (primed: their current items are already
seen, their ETags stored) on 5 loopback hosts, `--chats` chats (3 in 4 private, the rest
groups and supergroups), each subscribed to 1-5 feeds, the first 5 feeds popular (about 40%
of chats each). The fake Bot API (tests/fakes/telegram_api/) runs in this process with
Telegram's limits on (30/s overall, 1/s per chat, 20/min per group); the feed hosts
(tests/fakes/feed_server.py) too. The bot polls every `--poll-interval` seconds.

While it runs:
- a publisher adds a story to a random feed every `--publish-every` seconds (jittered), and
  every 90 s a burst of 3-6 stories to one feed (a popular one every other time), so every
  one of Telegram's limits is reached now and then;
- faults, in cycles of 120 s: a feed answers 500 for 40 s; a feed on another host answers
  6 s late for 40 s; 429 `retry_after` forced for 8 chats (3 times each); the Bot API is down
  for 6 s (502 to every call); 4 connections dropped before the bot's message is read and 2
  after it took effect (the answer lost: the bot cannot know, and sends again);
- every `--sample` seconds: the bot's RSS (VmRSS), stories published, messages delivered.

At the end: publishing and faults stop, the bot gets SIGTERM (it must exit 0), then, if a
story is still unfound or a message unsent, it is started once more to drain and stopped the
same way. Reported: stories published and found (in the database); messages owed (outbox
alert rows, and expected = each story x the chats subscribed to its feed before it was
seen), delivered (the fake's distinct (chat, story) messages), which must be equal, and the
three sets compared; duplicates (a chat got a story twice: at most the answer-lost drops);
flood-wait violations (429s the fake's flood control gave, not forced by the bench: must be
0); memory at start and end and its trend (least-squares slope, MB/min, over the whole run
and its second half); publish-to-delivery latency. Memory over time goes to
bench/soak_memory.png (`--png`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bench.common import Verdicts
from bench.scale import (
    BotProcess,
    bot_environment,
    corpus,
    create_schema,
    linear_slope,
    machine,
    read_only,
    rss_mb,
    snippet,
)
from bot.feeds.entry import identity_key
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, FloodLimits

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PNG = BENCH_DIR / "soak_memory.png"
HOSTS = [f"127.0.2.{h}" for h in range(1, 6)]
ITEMS_KEPT = 30  # items a feed document carries (old ones fall off)
INITIAL_ITEMS = 10
POPULAR_FEEDS = 5
FAULT_CYCLE = 120.0  # seconds
BURST_EVERY = 90.0
MARKER = re.compile(r"\[s(\d{6})\]")

# `--tracemalloc`: the bot runs under tracemalloc (inside its own process; bot/ is not
# edited); a thread takes a snapshot after the warm-up and another shortly before the end,
# and writes the allocations that grew most in between (by line, then the top tracebacks).
TRACEMALLOC = """
import os, runpy, sys, threading, time, tracemalloc
tracemalloc.start(8)

def _watch():
    first_at, second_at = (float(x) for x in os.environ["SOAK_TRACE_AT"].split(","))
    began = time.monotonic()
    time.sleep(max(0.0, first_at - (time.monotonic() - began)))
    first = tracemalloc.take_snapshot()
    time.sleep(max(0.0, second_at - (time.monotonic() - began)))
    second = tracemalloc.take_snapshot()
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, second = first.filter_traces(keep), second.filter_traces(keep)
    lines = [
        f"traced Python memory: {sum(s.size for s in first.statistics('filename')) / 2**20:.2f}"
        f" MB at {first_at:.0f} s, {sum(s.size for s in second.statistics('filename')) / 2**20:.2f}"
        f" MB at {second_at:.0f} s",
        "grew most, by line:",
    ]
    lines += [f"  {stat}" for stat in second.compare_to(first, "lineno")[:15]]
    lines.append("grew most, by traceback:")
    for stat in second.compare_to(first, "traceback")[:4]:
        lines.append(f"  {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks:")
        lines += [f"      {frame}" for frame in stat.traceback.format()[-12:]]
    with open(os.environ["SOAK_TRACE_OUT"], "w") as out:
        out.write("\\n".join(lines) + "\\n")

threading.Thread(target=_watch, name="tracemalloc-watch", daemon=True).start()
sys.argv = ["bot", "run"]
runpy.run_module("bot", run_name="__main__")
"""
HOUR_MS = 3_600_000


# --------------------------------------------------------------------------------------------
# Feed hosts: FeedServers that can also answer late


class SlowableFeedServer(FeedServer):
    """A FeedServer whose paths can be made to answer `slow[path]` seconds late."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.slow: dict[str, float] = {}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        delay = self.slow.get(request.path)
        if delay:
            await asyncio.sleep(delay)
        return await super()._handle(request)


@dataclass
class Published:
    number: int
    feed: int
    at: float  # time.time()


class Feeds:
    """The soak's feeds: their documents, what was published, and their faults."""

    def __init__(self, count: int, seed: int) -> None:
        self.count = count
        self.text = corpus(seed, 100_000)
        self.servers = {host: SlowableFeedServer(host) for host in HOSTS}
        self.items: list[deque[FeedItem]] = [deque(maxlen=ITEMS_KEPT) for _ in range(count)]
        self.versions = [0] * count
        self.failing: set[int] = set()
        self.published: list[Published] = []

    async def start(self) -> None:
        for server in self.servers.values():
            await server.start()

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()

    def host(self, feed: int) -> str:
        return HOSTS[feed % len(HOSTS)]

    def path(self, feed: int) -> str:
        return f"/feeds/{feed}.xml"

    def url(self, feed: int) -> str:
        return self.servers[self.host(feed)].url(self.path(feed))

    def etag(self, feed: int) -> str:
        return f'"{feed}-{self.versions[feed]}"'

    def initial(self, now: float) -> None:
        """Every feed's first document: items already seen (stored before the bot starts)."""
        for feed in range(self.count):
            for j in reversed(range(INITIAL_ITEMS)):
                self.items[feed].appendleft(
                    FeedItem(
                        title=snippet(self.text, feed * 100 + j, 70).capitalize(),
                        link=f"https://news{feed}.example.com/old/{j}.html",
                        guid=f"init-{feed}-{j}",
                        pub_date=datetime.fromtimestamp(now - (j + 1) * 3600, UTC),
                        description=f"<p>{snippet(self.text, feed * 100 + j + 50, 250)}.</p>",
                    )
                )
            self.refresh(feed)

    def publish(self, feed: int) -> Published:
        number = len(self.published) + 1
        now = time.time()
        key = number * 7 + 3
        self.items[feed].appendleft(
            FeedItem(
                title=f"{snippet(self.text, key, 60).capitalize()} [s{number:06d}]",
                link=f"https://news{feed}.example.com/2026/story-{number}.html",
                guid=f"soak-{number}",
                pub_date=datetime.fromtimestamp(now, UTC),
                description=f"<p>{snippet(self.text, key + 1, 280).capitalize()}.</p>",
            )
        )
        self.versions[feed] += 1
        self.refresh(feed)
        story = Published(number, feed, now)
        self.published.append(story)
        return story

    def refresh(self, feed: int) -> None:
        server, path = self.servers[self.host(feed)], self.path(feed)
        if feed in self.failing:
            server.serve(path, "internal error", status=500, content_type="text/plain")
        else:
            server.publish(path, list(self.items[feed]), title=f"Soak {feed}", etag=self.etag(feed))

    def fail(self, feed: int, failing: bool) -> None:
        (self.failing.add if failing else self.failing.discard)(feed)
        self.refresh(feed)

    def set_slow(self, feed: int, seconds: float) -> None:
        self.servers[self.host(feed)].slow[self.path(feed)] = seconds

    def heal(self) -> None:
        for feed in list(self.failing):
            self.fail(feed, False)
        for server in self.servers.values():
            server.slow.clear()


# --------------------------------------------------------------------------------------------
# Chats, the fake Bot API and the database


@dataclass(frozen=True)
class ChatPlan:
    id: int
    kind: str
    feeds: tuple[int, ...]


def plan_chats(chats: int, feeds: int, seed: int) -> list[ChatPlan]:
    rng = random.Random(seed)
    plans = []
    for k in range(chats):
        if k % 4 != 3:
            chat_id, kind = 2_000 + k, "private"
        else:
            chat_id, kind = -(1_002_000_000_000 + k), "supergroup" if k % 8 == 3 else "group"
        wanted = rng.choices((1, 2, 3, 4, 5), weights=(25, 25, 20, 15, 15))[0]
        chosen = {f for f in range(min(POPULAR_FEEDS, feeds)) if rng.random() < 0.4}
        chosen.add(k % feeds)  # every feed has subscribers
        while len(chosen) < wanted:
            chosen.add(rng.randrange(feeds))
        plans.append(ChatPlan(chat_id, kind, tuple(sorted(chosen))[:wanted] or (k % feeds,)))
    return plans


def register_chats(fake: FakeTelegram, chats: Sequence[ChatPlan]) -> None:
    admin = fake.add_user(999, "Admin")
    for chat in chats:
        if chat.kind == "private":
            fake.private_chat(fake.add_user(chat.id, f"User {chat.id}"))
        else:
            fake.add_group(
                chat.id, f"Group {chat.id}", supergroup=chat.kind == "supergroup", creator=admin
            )


def build_database(path: str, feeds: Feeds, chats: Sequence[ChatPlan], now_ms: int) -> None:
    """Feeds (primed, their current items seen), chats and subscriptions, by plain SQL, in
    a database the bot's migrations made."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO feeds (id, url, title, etag, next_check_at, last_checked_at,"
        " last_success_at, primed_at, newest_timestamp_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                feed + 1,
                feeds.url(feed),
                f"Soak {feed}",
                feeds.etag(feed),
                now_ms,
                now_ms - 300_000,
                now_ms - 300_000,
                now_ms - 24 * HOUR_MS,
                now_ms - HOUR_MS,
                now_ms - 48 * HOUR_MS,
            )
            for feed in range(feeds.count)
        ],
    )
    rows = []
    for feed in range(feeds.count):
        for item in feeds.items[feed]:
            assert isinstance(item.pub_date, datetime) and item.guid is not None
            stamp = int(item.pub_date.timestamp() * 1000)
            rows.append(
                (
                    feed + 1,
                    identity_key({"id": item.guid}, "", "", ""),
                    stamp,
                    item.title,
                    item.link,
                    item.link,
                    " ".join(item.title.casefold().split()),
                    stamp + 60_000,
                    now_ms - 300_000,
                )
            )
    conn.executemany(
        "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, link_key,"
        " title_key, first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO chats (id, kind, title, created_at) VALUES (?, ?, ?, ?)",
        [
            (c.id, c.kind, "" if c.kind == "private" else f"Group {c.id}", now_ms - 2 * HOUR_MS)
            for c in chats
        ],
    )
    conn.executemany(
        "INSERT INTO subscriptions (chat_id, feed_id, created_at) VALUES (?, ?, ?)",
        [(c.id, feed + 1, now_ms - HOUR_MS) for c in chats for feed in c.feeds],
    )
    conn.execute("COMMIT")
    conn.close()


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Sample:
    t: float  # seconds since the bot was spawned
    rss_mb: float
    published: int
    delivered: int  # messages the fake accepted
    found: int  # stories the bot recorded
    pending: int  # outbox rows pending


@dataclass
class Faults:
    log: list[tuple[float, str]] = field(default_factory=list)
    spans: list[tuple[float, float, str]] = field(default_factory=list)  # for the plot
    forced_429: int = 0
    dropped_before: int = 0
    dropped_after: int = 0  # answer lost after the message took effect
    outages: int = 0


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.database = str(work / "soak.sqlite3")
        self.rng = random.Random(args.seed)
        self.feeds = Feeds(args.feeds, args.seed)
        self.chats = plan_chats(args.chats, args.feeds, args.seed)
        self.fake = FakeTelegram(limits=FloodLimits())
        self.faults = Faults()
        self.samples: list[Sample] = []
        self.t0 = 0.0  # time.monotonic() at the first spawn
        self.start_ms = 0
        self.stop_running = asyncio.Event()
        self.drain_bot: BotProcess | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # --- background tasks ---

    async def publisher(self) -> None:
        next_burst = BURST_EVERY / 2
        bursts = 0
        while not self.stop_running.is_set():
            pause = self.args.publish_every * self.rng.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_running.wait(), pause)
            if self.stop_running.is_set():
                return
            self.feeds.publish(self.rng.randrange(self.feeds.count))
            if self.elapsed() >= next_burst:
                bursts += 1
                feed = (
                    self.rng.randrange(POPULAR_FEEDS)
                    if bursts % 2
                    else self.rng.randrange(self.feeds.count)
                )
                for _ in range(self.rng.randint(3, 6)):
                    self.feeds.publish(feed)
                next_burst += BURST_EVERY

    async def at(self, when: float) -> bool:
        """Sleep until `when` seconds after spawn; False if the run ends first."""
        delay = when - self.elapsed()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_running.wait(), delay)
        return not self.stop_running.is_set()

    def note(self, text: str, duration: float = 0.0) -> None:
        now = self.elapsed()
        self.faults.log.append((round(now, 1), text))
        if duration:
            self.faults.spans.append((now, now + duration, text))

    async def injector(self, run_seconds: float) -> None:
        cycle = 0
        failing_feeds = [f for f in range(self.feeds.count) if f >= POPULAR_FEEDS]
        groups = [c.id for c in self.chats if c.id < 0]
        privates = [c.id for c in self.chats if c.id > 0]
        while True:
            base = 20.0 + cycle * FAULT_CYCLE
            if base + 100 > run_seconds:
                return
            failing = failing_feeds[(cycle * 7) % len(failing_feeds)]
            slow = failing_feeds[(cycle * 7 + 3) % len(failing_feeds)]
            if not await self.at(base):
                return
            self.feeds.fail(failing, True)
            self.note(f"feed {failing} answers 500 for 40 s", 40)
            if not await self.at(base + 15):
                return
            self.feeds.set_slow(slow, 6.0)
            self.note(f"feed {slow} answers 6 s late for 40 s", 40)
            if not await self.at(base + 35):
                return
            chosen = [privates[(cycle * 4 + i) % len(privates)] for i in range(4)]
            chosen += [groups[(cycle * 4 + i) % len(groups)] for i in range(4)]
            for chat_id in chosen:
                self.fake.force_retry_after(chat_id, 3, times=3)
            self.faults.forced_429 += 3 * len(chosen)
            self.note(f"429 retry_after=3 forced 3 times for 8 chats {chosen}")
            if not await self.at(base + 40):
                return
            self.feeds.fail(failing, False)
            if not await self.at(base + 55):
                return
            self.feeds.set_slow(slow, 0.0)
            self.fake.fail_for(6.0, status=502)
            self.faults.outages += 1
            self.note("Bot API down for 6 s (502 to every call)", 6)
            if not await self.at(base + 80):
                return
            self.fake.drop_next(4, methods=["sendMessage"])
            self.fake.drop_next(2, methods=["sendMessage"], after_processing=True)
            self.faults.dropped_before += 4
            self.faults.dropped_after += 2
            self.note("4 sendMessage connections dropped unread, 2 after taking effect")
            cycle += 1

    async def sampler(self, bot: BotProcess, db: sqlite3.Connection) -> None:
        while not self.stop_running.is_set():
            found, pending = self.progress(db)
            self.samples.append(
                Sample(
                    t=round(self.elapsed(), 2),
                    rss_mb=rss_mb(bot.pid)[0],
                    published=len(self.feeds.published),
                    delivered=len(self.fake.sent),
                    found=found,
                    pending=pending,
                )
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_running.wait(), self.args.sample)

    def progress(self, db: sqlite3.Connection) -> tuple[int, int]:
        found = db.execute(
            "SELECT COUNT(*) FROM stories WHERE first_seen_at >= ?", (self.start_ms,)
        ).fetchone()[0]
        pending = db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
        return found, pending

    # --- the whole run ---

    async def run(self) -> dict[str, object]:
        args = self.args
        run_seconds = args.minutes * 60
        await self.feeds.start()
        await self.fake.start()
        try:
            register_chats(self.fake, self.chats)
            self.feeds.initial(time.time())
            await create_schema(self.database)
            self.start_ms = int(time.time() * 1000)
            build_database(self.database, self.feeds, self.chats, self.start_ms)
            env = bot_environment(
                token=self.fake.token,
                base_url=self.fake.base_url,
                database=self.database,
                NEWS_NOTIFIER_POLL_INTERVAL=str(args.poll_interval),
            )
            prefix: list[str] = []
            if args.tracemalloc:
                prefix = ["-c", TRACEMALLOC]
                env["SOAK_TRACE_OUT"] = str(self.work / "tracemalloc.txt")
                env["SOAK_TRACE_AT"] = f"{min(120.0, run_seconds / 4)},{run_seconds - 45}"
            bot = BotProcess(env, self.work / "bot.log", prefix)
            self.t0 = time.monotonic()
            bot.start()
            started = await asyncio.to_thread(bot.wait_started, 120)
            if started is None:
                raise SystemExit(f"the bot did not start: {self.log_tail()}")
            db = read_only(self.database)  # after the bot opened it: its -wal and -shm exist
            print(f"bot started in {started:.2f} s (pid {bot.pid}); running {args.minutes:g} min")
            tasks = [
                asyncio.create_task(self.publisher()),
                asyncio.create_task(self.injector(run_seconds)),
                asyncio.create_task(self.sampler(bot, db)),
                asyncio.create_task(self.reporter()),
            ]
            await self.at(run_seconds)
            self.stop_running.set()
            await asyncio.gather(*tasks)
            self.fake.clear_faults()
            self.feeds.heal()
            end_rss = rss_mb(bot.pid)
            if args.tracemalloc:  # the snapshots' comparison takes a while under tracemalloc
                trace = self.work / "tracemalloc.txt"
                for _ in range(240):
                    if trace.exists() or not bot.alive():
                        break
                    await asyncio.sleep(0.5)
            self.note("publishing and faults stopped; SIGTERM")
            code1, stop1 = await asyncio.to_thread(bot.stop, 120)
            found, pending = self.progress(db)
            print(
                f"SIGTERM at {run_seconds:.0f} s: exit code {code1} in {stop1:.1f} s; "
                f"{found}/{len(self.feeds.published)} stories found, {pending} messages pending"
            )
            drained, code2, stop2, drain_seconds = None, None, None, 0.0
            if found < len(self.feeds.published) or pending:
                drained, code2, stop2, drain_seconds = await self.drain(env, db)
            result = self.results(db, bot, started, end_rss, code1, stop1)
            result["drain"] = {
                "needed": drained is not None,
                "completed": drained,
                "seconds": drain_seconds,
                "exit_code": code2,
                "stop_seconds": stop2,
            }
            db.close()
            return result
        finally:
            await self.fake.stop()
            await self.feeds.stop()

    async def reporter(self) -> None:
        """One progress line a minute."""
        while not self.stop_running.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_running.wait(), 60)
            if self.samples:
                s = self.samples[-1]
                print(
                    f"  {s.t / 60:5.1f} min: RSS {s.rss_mb:.1f} MB, published {s.published}, "
                    f"found {s.found}, delivered {s.delivered}, pending {s.pending}",
                    flush=True,
                )

    async def drain(
        self, env: dict[str, str], db: sqlite3.Connection
    ) -> tuple[bool, int | None, float, float]:
        """Start the bot once more until every story is found and every message sent."""
        bot = BotProcess(env, self.work / "bot-drain.log")
        began = time.monotonic()
        bot.start()
        await asyncio.to_thread(bot.wait_started, 120)
        done = False
        deadline = began + self.args.drain_timeout
        while time.monotonic() < deadline and bot.alive():
            found, pending = self.progress(db)
            if found >= len(self.feeds.published) and not pending:
                done = True
                break
            await asyncio.sleep(1.0)
        seconds = time.monotonic() - began
        code, stop = await asyncio.to_thread(bot.stop, 120)
        self.drain_bot = bot
        print(
            f"drain run: {'complete' if done else 'NOT complete'} after {seconds:.0f} s; "
            f"SIGTERM: exit code {code} in {stop:.1f} s"
        )
        return done, code, stop, seconds

    def tracemalloc_text(self) -> str | None:
        path = self.work / "tracemalloc.txt"
        return path.read_text() if path.exists() else None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.work / "bot.log").read_text().splitlines()[-20:])
        return ""

    def results(
        self,
        db: sqlite3.Connection,
        bot: BotProcess,
        started: float,
        end_rss: tuple[float, float],
        code: int | None,
        stop_seconds: float,
    ) -> dict[str, object]:
        published = {p.number: p for p in self.feeds.published}
        found = {
            int(m.group(1))
            for (title,) in db.execute(
                "SELECT title FROM stories WHERE first_seen_at >= ?", (self.start_ms,)
            )
            if (m := MARKER.search(title))
        }
        outbox: Counter[tuple[int, int]] = Counter()
        statuses: Counter[str] = Counter()
        for chat_id, title, status in db.execute(
            "SELECT o.chat_id, st.title, o.status FROM outbox o JOIN stories st"
            " ON st.id = o.story_id WHERE o.kind = 'alert'"
        ):
            statuses[status] += 1
            if m := MARKER.search(title):
                outbox[(chat_id, int(m.group(1)))] += 1
        expected = {
            (chat_id, int(m.group(1)))
            for chat_id, title in db.execute(
                "SELECT s.chat_id, st.title FROM stories st JOIN subscriptions s"
                " ON s.feed_id = st.feed_id WHERE st.first_seen_at >= ?"
                " AND s.created_at <= st.first_seen_at AND s.mode = 'instant'",
                (self.start_ms,),
            )
            if (m := MARKER.search(title))
        }
        sends: Counter[tuple[int, int]] = Counter()
        first_sent: dict[tuple[int, int], float] = {}
        other_messages = 0
        for message in self.fake.sent:
            m = MARKER.search(message.text)
            if m is None:
                other_messages += 1
                continue
            key = (message.chat_id, int(m.group(1)))
            sends[key] += 1
            first_sent.setdefault(key, message.sent_at)
        delivered = set(sends)
        duplicates = sum(n - 1 for n in sends.values() if n > 1)
        latencies = sorted(t - published[n].at for (_, n), t in first_sent.items())
        paused = db.execute("SELECT COUNT(*) FROM chats WHERE status != 'active'").fetchone()[0]
        refused = sum(self.fake.flood.refused.values())
        total_429 = self.fake.retry_after_count

        minutes = [s.t / 60 for s in self.samples]
        rss = [s.rss_mb for s in self.samples]
        half = len(self.samples) // 2
        owed = set(outbox)
        drain_bot = self.drain_bot
        return {
            "machine": machine(),
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "settings": {k: v for k, v in vars(self.args).items() if k not in ("png", "json")},
            "chats": {
                "private": sum(c.kind == "private" for c in self.chats),
                "groups": sum(c.kind != "private" for c in self.chats),
                "subscriptions": sum(len(c.feeds) for c in self.chats),
            },
            "started_s": started,
            "stories_published": len(published),
            "stories_found": len(found),
            "stories_missing": sorted(set(published) - found)[:20],
            "owed_outbox_rows": sum(outbox.values()),
            "outbox_status": dict(statuses),
            "owed_expected": len(expected),
            "delivered": len(delivered),
            "equal": owed == expected == delivered,
            "owed_not_delivered": sorted(owed - delivered)[:20],
            "delivered_not_owed": sorted(delivered - owed)[:20],
            "expected_not_in_outbox": sorted(expected - owed)[:20],
            "duplicates": duplicates,
            "duplicate_bound_answer_lost_drops": self.faults.dropped_after,
            "other_messages": other_messages,
            "chats_paused": paused,
            "http_429_total": total_429,
            "http_429_forced_consumed": total_429 - refused,
            "http_429_forced_injected": self.faults.forced_429,
            "flood_wait_violations": refused,
            "bot_flood_wait_events": bot.event_count("flood_wait")
            + (drain_bot.event_count("flood_wait") if drain_bot else 0),
            "latency_s": {
                "median": statistics.median(latencies) if latencies else None,
                "p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
                "max": latencies[-1] if latencies else None,
            },
            "rss_mb": {
                "start": rss[0] if rss else None,
                "end": end_rss[0],
                "max": max(rss) if rss else None,
                "peak_hwm": end_rss[1],
                "slope_mb_per_min": linear_slope(minutes, rss),
                "slope_second_half_mb_per_min": linear_slope(minutes[half:], rss[half:]),
            },
            "exit_code": code,
            "stop_seconds": stop_seconds,
            "faults": {
                "forced_429": self.faults.forced_429,
                "dropped_before": self.faults.dropped_before,
                "dropped_after": self.faults.dropped_after,
                "outages": self.faults.outages,
                "log": self.faults.log,
                "spans": self.faults.spans,
            },
            "bot_log_problems": bot.problems(),
            "bot_log_errors": bot.errors + (drain_bot.errors if drain_bot else []),
            "tracemalloc": self.tracemalloc_text(),
            "drain_log_problems": drain_bot.problems() if drain_bot else {},
            "samples": [asdict(s) for s in self.samples],
        }


# --------------------------------------------------------------------------------------------
# Report and plot


def report(r: dict[str, object]) -> None:
    def get(key: str) -> object:
        return r[key]

    rss = r["rss_mb"]
    latency = r["latency_s"]
    drain = r["drain"]
    assert isinstance(rss, dict) and isinstance(latency, dict) and isinstance(drain, dict)
    print(f"\nmachine: {get('machine')}; {get('date')}")
    print(f"chats: {get('chats')}")
    print(
        f"stories: published {get('stories_published')}, found {get('stories_found')}"
        + (f" (missing e.g. {get('stories_missing')})" if get("stories_missing") else "")
    )
    print(
        f"messages owed: {get('owed_outbox_rows')} outbox alert rows {get('outbox_status')}, "
        f"{get('owed_expected')} expected (stories x subscribed chats)"
    )
    print(f"delivered: {get('delivered')} distinct (chat, story) messages")
    verdict = "EQUAL" if get("equal") else "NOT EQUAL"
    print(f"  owed = expected = delivered: {verdict}")
    for key in ("owed_not_delivered", "delivered_not_owed", "expected_not_in_outbox"):
        if get(key):
            print(f"  {key}: {get(key)}")
    print(
        f"duplicates (same chat and story twice): {get('duplicates')} "
        f"(answer-lost drops injected: {get('duplicate_bound_answer_lost_drops')})"
    )
    print(
        f"429 answers: {get('http_429_total')} in all, {get('http_429_forced_consumed')} forced "
        f"by the bench ({get('http_429_forced_injected')} injected), flood-wait violations "
        f"(unforced 429s): {get('flood_wait_violations')}; the bot logged "
        f"{get('bot_flood_wait_events')} flood waits"
    )
    print(
        f"chats paused by the bot: {get('chats_paused')}; other messages: {get('other_messages')}"
    )
    if latency["median"] is not None:
        print(
            f"publish-to-delivery latency: median {latency['median']:.1f} s, "
            f"p95 {latency['p95']:.1f} s, max {latency['max']:.1f} s"
        )
    print(
        f"memory (VmRSS): start {rss['start']:.1f} MB, end {rss['end']:.1f} MB, max "
        f"{rss['max']:.1f} MB (peak VmHWM {rss['peak_hwm']:.1f} MB); trend "
        f"{rss['slope_mb_per_min']:+.3f} MB/min over the run, "
        f"{rss['slope_second_half_mb_per_min']:+.3f} MB/min over its second half"
    )
    print(f"SIGTERM: exit code {get('exit_code')} in {get('stop_seconds'):.1f} s")
    if drain["needed"]:
        print(
            f"drain run: completed {drain['completed']} in {drain['seconds']:.0f} s, "
            f"exit code {drain['exit_code']} in {drain['stop_seconds']:.1f} s"
        )
    else:
        print("drain run: not needed (everything found and sent before SIGTERM)")
    print(f"warnings and errors in the bot's log: {get('bot_log_problems')}")
    for error in r.get("bot_log_errors") or []:
        print("  " + str(error).replace("\n", "\n  "))
    if r.get("tracemalloc"):
        print(f"tracemalloc (the bot's Python allocations):\n{r['tracemalloc']}")
    if drain["needed"]:
        print(f"  in the drain run's log: {get('drain_log_problems')}")


def plot(r: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = r["samples"]
    trend = r["rss_mb"]
    faults = r["faults"]
    assert isinstance(samples, list) and isinstance(trend, dict) and isinstance(faults, dict)
    minutes = [s["t"] / 60 for s in samples]
    rss = [s["rss_mb"] for s in samples]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 5.6), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for begin, end, text in faults.get("spans", []):
        color = "#f3c9c9" if "500" in text else "#cfe0f3" if "late" in text else "#f7e3b5"
        top.axvspan(begin / 60, end / 60, color=color, alpha=0.6, linewidth=0)
    for when, text in faults["log"]:
        if "429" in text or "dropped" in text:
            top.axvline(when / 60, color="#999999", linestyle=":", linewidth=0.8)
    top.plot(minutes, rss, color="#2c5d8a", linewidth=1.4, label="bot VmRSS")
    if len(minutes) >= 2:
        slope = trend["slope_mb_per_min"]
        mean_x, mean_y = sum(minutes) / len(minutes), sum(rss) / len(rss)
        top.plot(
            [minutes[0], minutes[-1]],
            [mean_y + slope * (minutes[0] - mean_x), mean_y + slope * (minutes[-1] - mean_x)],
            color="#c0392b",
            linestyle="--",
            linewidth=1.1,
            label=f"linear fit: {slope:+.3f} MB/min",
        )
    top.set_ylabel("resident memory (MB)")
    top.set_ylim(0, max(rss) * 1.25)
    top.legend(loc="lower right", fontsize=8)
    top.set_title(
        f"Soak: `python -m bot run` for {minutes[-1]:.0f} min with faults (red: a feed answers "
        "500, blue: a slow feed,\nyellow: Bot API down; dotted: forced 429s, dropped connections)",
        fontsize=9,
    )
    bottom.plot(
        minutes, [s["published"] for s in samples], color="#6a8e3a", label="stories published"
    )
    bottom.set_ylabel("stories published", color="#6a8e3a")
    right = bottom.twinx()
    right.plot(
        minutes, [s["delivered"] for s in samples], color="#8a5a2c", label="messages delivered"
    )
    right.set_ylabel("messages delivered", color="#8a5a2c")
    bottom.set_xlabel("minutes since the bot was started")
    fig.text(0.99, 0.005, str(r["machine"]), ha="right", va="bottom", fontsize=7, color="#666")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--publish-every", type=float, default=2.5, metavar="SECONDS")
    parser.add_argument("--poll-interval", type=int, default=5, metavar="SECONDS")
    parser.add_argument("--sample", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--png", type=Path, default=DEFAULT_PNG)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON")
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="copy the bot's logs into DIR at the end"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="run the bot under tracemalloc and print what grew (slower; not for the figures)",
    )
    parser.add_argument(
        "--plot-only", type=Path, metavar="JSON", help="redraw the plot from a --json file"
    )
    args = parser.parse_args(argv)
    if args.plot_only:
        result = json.loads(args.plot_only.read_text())
        report(result)
        plot(result, args.png)
        print(f"memory plot: {args.png}")
        return judge(result).exit_code()
    if args.feeds < 2 * POPULAR_FEEDS or args.chats < 16:
        parser.error(f"--feeds at least {2 * POPULAR_FEEDS}, --chats at least 16")

    print(f"machine: {machine()}, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as folder:
        soak = Soak(args, Path(folder))
        result = asyncio.run(soak.run())
        if args.keep_logs:  # the bot's own logs, to follow one message through them
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in Path(folder).glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    try:
        plot(result, args.png)
        print(f"memory plot: {args.png}")
    except ModuleNotFoundError as missing:  # matplotlib is the plot's alone, not installed
        print(f"memory plot: not drawn ({missing.name} is not installed)")
    return judge(result).exit_code()


def judge(r: dict[str, object]) -> Verdicts:
    """What a soak must show: every story owed delivered, none twice beyond the answers the
    bench made Telegram lose, no flood-wait violated, a clean stop (and drain)."""
    verdicts = Verdicts()
    verdicts.check(
        "check: owed = expected = delivered",
        bool(r.get("equal")),
        f"owed {r.get('owed_outbox_rows')}, expected {r.get('owed_expected')}, "
        f"delivered {r.get('delivered')}",
    )
    duplicates = int(str(r.get("duplicates") or 0))
    bound = int(str(r.get("duplicate_bound_answer_lost_drops") or 0))
    verdicts.check(
        "check: duplicates within the in-flight bound",
        duplicates <= bound,
        f"{duplicates} duplicates, {bound} answers lost on purpose",
    )
    verdicts.check(
        "check: no flood wait violated",
        not r.get("flood_wait_violations"),
        f"{r.get('flood_wait_violations')} unforced 429s",
    )
    verdicts.check("check: SIGTERM exit 0", r.get("exit_code") == 0, f"exit {r.get('exit_code')}")
    drain = r.get("drain")
    if isinstance(drain, dict) and drain.get("needed"):
        verdicts.check(
            "check: the drain run completed",
            bool(drain.get("completed")) and drain.get("exit_code") == 0,
            f"completed {drain.get('completed')}, exit {drain.get('exit_code')}",
        )
    return verdicts


if __name__ == "__main__":
    raise SystemExit(main())
