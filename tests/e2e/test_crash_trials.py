"""Crash trials: `news-notifier run` killed with SIGKILL at random moments, then restarted on
the same database, 20 times (5 trials for each of 4 moments), with a seeded generator.

Each trial gets a fresh database: 48 to 80 chats (mostly private, 3-8 groups), 5 feeds on
the local feed host, 1 to 3 subscriptions a chat (some in digest mode), a daily digest that
fell due a minute or two ago for about a quarter of the chats, and new stories on every feed;
two feeds publish one more story once the first alerts arrive, so their next poll and
dedupe write overlap the fan-out. The child is killed at one of these moments, drawn at
random:

- polling: 0-300 ms after the feed host got the child's first poll (fetches, parsing, the
  first dedupe writes, the first alerts), or 0-1.5 s after the child logged `event=started`
  (the end of start-up; its first poll tick comes one interval, 1 s, after start:
  bot/telegram/jobs.py asks for first=0.0, which the JobQueue's interval trigger turns into
  one interval later);
- dedupe: 0-80 ms after the feed host answered a poll with new stories (the first wave, or
  the second one published during the fan-out), while `record_check` writes the seen set
  and the outbox;
- fan-out: when a random 5-90 % of the owed alerts had arrived at the fake Bot API;
- digest: 4.85-5.1 s after the child logged `event=started` (its first digest tick, 5 s
  after start, queues one digest per chat, one transaction each), or 0-30 ms after it
  logged `event=digests_queued`, or 0-30 ms after the first daily digest arrived.

In about a third of the trials the restarted child is killed again, 0-1.5 s after it
started (while it resends what the outbox still holds, and its first poll). The last child
runs until every owed message arrived and is stopped with SIGINT or SIGTERM (exit 0). Then,
per trial:

- every owed alert (chat subscribed in instant mode × story published on that feed) arrived
  at least once, every due digest at least once, nothing else arrived;
- duplicates (an alert, or a chat's daily digest, arriving more than once) stay within
  PER_KILL_BOUND per kill (derived below), and no message arrived more than kills + 1 times;
- `PRAGMA integrity_check` is 'ok', the outbox holds only sent rows (one per owed message),
  each story is stored once, each digest chat's schedule moved past the digest it got.

The child paces faster than Telegram (settings file; the fake's limits are raised with it)
so a fan-out takes about a second. Trials run LANES at a time: a child's first digest tick
comes 5 s after it started, so one trial takes 8-12 s on a quiet machine, mostly waiting;
most of the CPU is the children's start-up (about 0.8 s each). They share the test's fake
Bot API and feed host; each has its own chat ids, feed paths and database. The seed is in
every assertion message; CRASH_TRIALS_SEED=<seed> repeats a run's draws (kill timings still
vary with the machine's load).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import Entry
from bot.store import Store
from tests.databases import Databases, integrity
from tests.e2e.child import Child, Children
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram, FloodLimits, SentMessage
from tests.helpers import record_entries

SEED = int(os.environ.get("CRASH_TRIALS_SEED") or random.SystemRandom().randrange(2**32))

PHASES = ("polling", "dedupe", "fan-out", "digest")
TRIALS_PER_PHASE = 5
LANES = 5  # trials of one test running side by side
STAGGER = 0.5  # seconds between two trials' starts: their children's imports do not collide
FEEDS = 5

# The child's pace (settings file). The fake keeps the same limits per chat; its overall
# limit is LANES times the child's, since LANES children share it.
RATE = 200.0  # delivery.global_per_second
CHAT_RATE = 20.0  # delivery.chat_per_second
GROUP_PER_MINUTE = 600.0  # delivery.group_per_minute
MAX_IN_FLIGHT = 8  # delivery.max_in_flight
# The children's settings file: that pace, and long-polls short enough that a stop does
# not wait for one.
SETTINGS = (
    "[telegram]\n"
    "polling_timeout = 1\n"
    "[delivery]\n"
    f"global_per_second = {RATE}\n"
    f"chat_per_second = {CHAT_RATE}\n"
    f"group_per_minute = {GROUP_PER_MINUTE}\n"
    f"max_in_flight = {MAX_IN_FLIGHT}\n"
    "shutdown_grace_seconds = 5\n"
)
# The sender records deliveries in batches this often (bot.delivery.sender.FLUSH_EVERY),
# written out, not imported: a slower flush means more resends after a kill, which is what
# these trials must notice.
FLUSH_SECONDS = 0.05
# The fake answers each sendMessage this late, so messages are in flight when a kill comes.
SEND_DELAY = 0.02
# What one kill can make the restart send again: only messages Telegram took that the
# outbox does not yet say were sent (a row is marked only after Telegram accepted it; alerts
# and digests are queued in the same transaction as what decided them, so a kill before
# COMMIT leaves nothing to resend and one after it leaves pending rows, not sent ones):
# - in flight: at most max_in_flight requests are open (the sender's semaphore), and the
#   fake records a message before it answers, so all of them may have arrived;
# - answered but not yet marked: marks are written every FLUSH_SECONDS, so at RATE messages
#   a second one batch accumulating plus one batch being written when the kill came,
#   2 * ceil(RATE * FLUSH_SECONDS).
# 8 + 2 * 10 = 28. Daily digests go through the same outbox and sender: same bound.
PER_KILL_BOUND = MAX_IN_FLIGHT + 2 * math.ceil(RATE * FLUSH_SECONDS)

# bot/digests/render.py DigestTexts (English): "<b>Daily digest</b> · {date} ({zone})". Every
# digest here lists a story: an empty one would be one line without the header.
DIGEST_HEADER = "Daily digest"
# Per phase, what a kill waits for and the range its delay after that is drawn from.
ANCHORS = {
    "polling": {"start": (0.0, 1.5), "first poll": (0.0, 0.3)},
    "dedupe": {"first poll": (0.0, 0.08), "wave 2 poll": (0.0, 0.08)},
    "fan-out": {"alerts": (0.0, 0.0)},
    "digest": {
        "start": (4.85, 5.1),  # the first digest tick, 5 s after start: during fire_due
        "digests queued": (0.0, 0.03),
        "first digest": (0.0, 0.03),
    },
}
STORY_KEY = re.compile(r"\[(t\d+-f\d+-s\d+)\]")
POLL = 0.005  # seconds between two looks for a kill moment (the fake, feed host, a log)
SLOW_POLL = 0.05  # ... for anything else (the test's own CPU is the children's too)
START_SECONDS = 45.0  # a kill moment's anchor, at worst, on a loaded 2-core machine
DELIVERY_SECONDS = 60.0  # the last child delivering what is owed, at worst


async def until(condition: Callable[[], bool], within: float, every: float = POLL) -> bool:
    """Whether `condition` came true within `within` seconds (looked at `every` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for _ in range(math.ceil(within / every)):
        if condition():
            return True
        if loop.time() >= deadline:
            break
        await asyncio.sleep(every)
    return condition()


# --------------------------------------------------------------------------------------------
# A trial's plan: chats, subscriptions, digests, stories and kill moments, all drawn from the
# trial's own generator


@dataclass(frozen=True)
class Story:
    key: str  # t<trial>-f<feed>-s<n>, in the title
    feed: int
    item: FeedItem


@dataclass
class Plan:
    label: str  # "<phase> #<n>"
    number: int  # unique within a test: chat ids and feed paths derive from it
    phase: str
    chats: list[int]  # private chats > 0, groups < 0
    subscriptions: dict[int, dict[int, str]]  # chat -> feed -> mode
    digest_chats: list[int]
    wave1: dict[int, list[Story]]  # feed -> stories served from the start
    wave2: dict[int, list[Story]]  # feed -> stories published once alerts arrive
    wave2_delay: float
    anchor: str  # one of ANCHORS[phase]: what the kill waits for
    kill_delay: float  # after the anchor
    fan_out_fraction: float
    second_kill: float | None  # seconds after the restart logged event=started
    stop_signal: signal.Signals
    owed: set[tuple[int, str]] = field(init=False)  # (chat, story key) alerts
    digest_set: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.digest_set = set(self.digest_chats)
        self.owed = {
            (chat, story.key)
            for chat, feeds in self.subscriptions.items()
            for feed, mode in feeds.items()
            if mode == "instant"
            for story in self.stories(feed)
        }

    def path(self, feed: int) -> str:
        return f"/trial{self.number}/feed{feed}.xml"

    def stories(self, feed: int) -> list[Story]:
        return self.wave1[feed] + self.wave2.get(feed, [])

    def describe(self) -> str:
        anchor = f"{self.fan_out_fraction:.0%} of " if self.phase == "fan-out" else ""
        second = f", second kill {self.second_kill:.2f}s" if self.second_kill is not None else ""
        return (
            f"{self.label}: {len(self.chats)} chats ({sum(c < 0 for c in self.chats)} groups),"
            f" {len(self.owed)} alerts + {len(self.digest_chats)} digests owed; kill"
            f" {self.kill_delay:.3f}s after {anchor}{self.anchor}{second}"
        )


def make_plan(phase: str, number: int, now: datetime) -> Plan:
    rng = random.Random(f"{SEED}:{phase}:{number}")
    base = (number + 1) * 10_000
    private = [base + i for i in range(1, rng.randint(45, 72) + 1)]
    groups = [-(base + i) for i in range(1, rng.randint(3, 8) + 1)]
    chats = private + groups
    subscriptions = {
        chat: {
            feed: "digest" if rng.random() < 0.15 else "instant"
            for feed in rng.sample(range(FEEDS), rng.randint(1, 3))
        }
        for chat in chats
    }
    digest_chats = [chat for chat in chats if rng.random() < 0.25] or rng.sample(chats, 3)

    def story(feed: int, n: int, minutes_ago: float) -> Story:
        key = f"t{number}-f{feed}-s{n}"
        item = FeedItem(
            f"[{key}] Story {n} of feed {feed}",
            f"https://news.test/{SEED}/{key}",
            guid=key,
            pub_date=now - timedelta(minutes=minutes_ago),
            description=f"<p>What happened in story {key}. Every chat owed it gets it.</p>",
        )
        return Story(key, feed, item)

    wave1 = {
        feed: [story(feed, n, 30 - n) for n in range(rng.randint(1, 2))] for feed in range(FEEDS)
    }
    wave2 = {feed: [story(feed, 9, 1)] for feed in rng.sample(range(FEEDS), 2)}
    anchor = rng.choice(sorted(ANCHORS[phase]))
    low, high = ANCHORS[phase][anchor]
    return Plan(
        label=f"{phase} #{number}",
        number=number,
        phase=phase,
        chats=chats,
        subscriptions=subscriptions,
        digest_chats=digest_chats,
        wave1=wave1,
        wave2=wave2,
        wave2_delay=rng.uniform(0.0, 0.3),
        anchor=anchor,
        kill_delay=rng.uniform(low, high),
        fan_out_fraction=rng.uniform(0.05, 0.9),
        second_kill=rng.uniform(0.0, 1.5) if rng.random() < 0.35 else None,
        stop_signal=signal.SIGINT if number % 2 else signal.SIGTERM,
    )


def publish(feed_server: FeedServer, plan: Plan, feed: int, stories: list[Story]) -> None:
    feed_server.publish(
        plan.path(feed),
        [story.item for story in reversed(stories)],  # newest first, as feeds do
        title=f"Trial {plan.number} feed {feed}",
    )


async def prepare(database: str, plan: Plan, feed_server: FeedServer) -> int:
    """The trial's database, written by the test process before the child starts. Returns
    the instant the digests fell due: the last whole minute at least a minute ago (well
    within the default 3 hours' grace), the schedule having been set ten minutes before."""
    now = int(time.time() * 1000)
    due = now - now % 60_000 - 60_000
    at = datetime.fromtimestamp(due / 1000, UTC)
    store = await Store.open(str(database))
    try:
        feed_ids = [
            await store.feeds.add(
                feed_server.url(plan.path(feed)),
                title=f"Trial {plan.number} feed {feed}",
                site_url="",
                now_ms=now,
            )
            for feed in range(FEEDS)
        ]
        for chat in plan.chats:
            kind = "private" if chat > 0 else "group"
            await store.chats.upsert(
                chat, kind=kind, title=f"chat {chat}", language="en", now_ms=now
            )
            for feed in plan.subscriptions[chat]:
                await store.chats.subscribe(chat, feed_ids[feed], thread_id=None, now_ms=now)
            for subscription in await store.chats.subscriptions(chat):
                feed = feed_ids.index(subscription.feed_id)
                if plan.subscriptions[chat][feed] == "digest":
                    await store.chats.set_mode(chat, subscription.id, "digest")
        for chat in plan.digest_chats:
            await store.chats.set_digest(
                chat,
                hour=at.hour,
                minute=at.minute,
                timezone="UTC",
                thread_id=None,
                now_ms=due - 600_000,
                next_due_ms=due,
            )
        # Each feed had one story found an hour before the digest fell due (so every digest
        # lists something), and was primed then: what it serves from now on is news.
        for feed, feed_id in enumerate(feed_ids):
            old = Entry(
                feed_id=feed_id,
                timestamp_id=due - 7_200_000,
                identity=f"t{plan.number}-f{feed}-old",
                title=f"An earlier story of feed {feed}",
                link=f"https://news.test/{SEED}/t{plan.number}-f{feed}-old",
                lead_html="<p>Found before the digest fell due.</p>",
            )
            await record_entries(
                store,
                feed_id,
                [old],
                {old.identity: "Found before the digest fell due."},
                now_ms=due - 3_600_000,
                next_check_at=now,
            )
    finally:
        await store.close()
    return due


# --------------------------------------------------------------------------------------------
# What arrived, sorted out per trial


@dataclass
class Arrivals:
    alerts: Counter[tuple[int, str]] = field(default_factory=Counter)  # owed ones
    digests: Counter[int] = field(default_factory=Counter)  # daily digests per chat
    unexpected: list[str] = field(default_factory=list)

    def alert_count(self) -> int:
        return sum(self.alerts.values())

    def digest_count(self) -> int:
        return sum(self.digests.values())


class Ledger:
    """fake.sent read as it grows and sorted out by the trial each chat belongs to."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.read = 0
        self.owners: dict[int, tuple[Plan, Arrivals]] = {}
        self.strays: list[str] = []

    def add(self, plan: Plan) -> Arrivals:
        arrivals = Arrivals()
        self.owners.update(dict.fromkeys(plan.chats, (plan, arrivals)))
        return arrivals

    def update(self) -> None:
        sent = self.fake.sent
        for message in sent[self.read :]:
            self.sort_out(message)
        self.read = len(sent)

    def sort_out(self, message: SentMessage) -> None:
        owner = self.owners.get(message.chat_id)
        if owner is None:
            self.strays.append(f"{message.chat_id}: {message.text[:80]!r}")
            return
        plan, arrivals = owner
        match = STORY_KEY.search(message.text)
        if message.text.startswith(DIGEST_HEADER) and message.chat_id in plan.digest_set:
            arrivals.digests[message.chat_id] += 1
        elif match and (message.chat_id, match.group(1)) in plan.owed:
            arrivals.alerts[(message.chat_id, match.group(1))] += 1
        else:
            arrivals.unexpected.append(f"{message.chat_id}: {message.text[:80]!r}")


async def database_state(database: str) -> tuple[str, Counter[str], int, list[tuple]]:
    """integrity_check, outbox rows by status and kind, stories, digest schedules. Read
    after the last child exited (the test then holds the database's lock)."""
    store = await Store.open(database)
    try:
        check = await integrity(store)
        rows = await store.db.fetchall(
            "SELECT status, kind, COUNT(*) FROM outbox GROUP BY status, kind"
        )
        [stories] = await store.db.fetchall("SELECT COUNT(*) FROM stories")
        schedules = await store.db.fetchall(
            "SELECT id, last_digest_at, next_digest_at FROM chats"
            " WHERE digest_hour IS NOT NULL ORDER BY id"
        )
        outbox = Counter({f"{row[0]} {row[1]}": row[2] for row in rows})
        return check, outbox, stories[0], [tuple(row) for row in schedules]
    finally:
        await store.close()


async def crashed_state(database: str, check: bool = True) -> tuple[str, Counter[str]]:
    """integrity_check and outbox rows by status and kind right after a kill, read-only
    (SQLite: nothing is checkpointed, so the restart finds the database as the kill left
    it)."""
    if not database.startswith("postgresql://"):
        return await asyncio.to_thread(_crashed_sqlite, database, check)
    store = await Store.open(database, exclusive=False, read_only=True)
    try:
        rows = await store.db.fetchall(
            "SELECT status, kind, COUNT(*) FROM outbox GROUP BY status, kind"
        )
        return "ok", Counter({f"{status} {kind}": n for status, kind, n in rows})
    finally:
        await store.close()


async def outbox_drained(database: str, within: float) -> bool:
    """Whether the running child leaves no outbox row pending within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        _, outbox = await crashed_state(database, check=False)
        if not any(key.startswith("pending") for key in outbox):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(SLOW_POLL)


def _crashed_sqlite(database: str, check: bool) -> tuple[str, Counter[str]]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        [(verdict,)] = conn.execute("PRAGMA integrity_check").fetchall() if check else [("",)]
        rows = conn.execute("SELECT status, kind, COUNT(*) FROM outbox GROUP BY status, kind")
        return verdict, Counter({f"{status} {kind}": n for status, kind, n in rows})


# --------------------------------------------------------------------------------------------
# One trial


@dataclass
class Trial:
    plan: Plan
    ledger: Ledger
    arrivals: Arrivals
    feed_server: FeedServer
    children: Children
    database: str
    wave2_published: bool = False
    wave2_hits: dict[int, int] = field(default_factory=dict)  # feed -> hits when published
    kills: list[str] = field(default_factory=list)  # what had arrived at each kill
    crashed_checks: list[str] = field(default_factory=list)  # integrity_check after each

    def alerts(self) -> int:
        self.ledger.update()
        return self.arrivals.alert_count()

    def digests(self) -> int:
        self.ledger.update()
        return self.arrivals.digest_count()

    def everything_arrived(self) -> bool:
        self.ledger.update()  # the ledger counts owed alerts and due digests only
        alerts, digests = self.arrivals.alerts, self.arrivals.digests
        return len(alerts) == len(self.plan.owed) and len(digests) == len(self.plan.digest_chats)

    def publish_wave2(self) -> None:
        if self.wave2_published:
            return
        for feed in self.plan.wave2:
            self.wave2_hits[feed] = self.feed_server.hits(self.plan.path(feed))
            publish(self.feed_server, self.plan, feed, self.plan.stories(feed))
        self.wave2_published = True

    async def wave2_when_alerts_arrive(self) -> None:
        if await until(lambda: self.alerts() > 0, START_SECONDS, SLOW_POLL):
            await asyncio.sleep(self.plan.wave2_delay)
        self.publish_wave2()

    def anchor(self, child: Child) -> Callable[[], bool]:
        """The kill comes kill_delay after this holds."""
        plan, feeds = self.plan, self.feed_server
        if plan.anchor == "start":
            return child.logged("started")
        if plan.anchor == "first poll":
            return lambda: any(feeds.hits(plan.path(feed)) for feed in range(FEEDS))
        if plan.anchor == "wave 2 poll":
            return lambda: (
                self.wave2_published
                and any(
                    feeds.hits(plan.path(feed)) > hits for feed, hits in self.wave2_hits.items()
                )
            )
        if plan.anchor == "alerts":
            return lambda: self.alerts() >= plan.fan_out_fraction * len(plan.owed)
        if plan.anchor == "digests queued":
            return child.logged("digests_queued")
        assert plan.anchor == "first digest", plan.anchor
        return lambda: self.digests() > 0

    async def kill_at_moment(self, child: Child) -> None:
        if not await until(self.anchor(child), START_SECONDS):
            raise AssertionError(
                f"seed {SEED}, {self.plan.describe()}: no kill moment: timed out waiting for"
                f" {self.plan.anchor}; output:\n{child.output()[-3000:]}"
            )
        await asyncio.sleep(self.plan.kill_delay)
        await self.kill(child)

    async def kill(self, child: Child) -> None:
        assert child.process.returncode is None, (
            f"seed {SEED}, {self.plan.describe()}: the child exited before its kill:"
            f" {child.process.returncode}; output:\n{child.output()[-3000:]}"
        )
        os.kill(child.process.pid, signal.SIGKILL)
        assert await child.exit_code(10) == -signal.SIGKILL
        check, outbox = await crashed_state(self.database)
        self.crashed_checks.append(check)
        polls = sum(self.feed_server.hits(self.plan.path(feed)) for feed in range(FEEDS))
        queued: Counter[str] = Counter()
        for key, count in outbox.items():
            queued[key.split()[1]] += count
        plan = self.plan
        self.kills.append(
            f"{polls} polls; outbox: {queued['alert']} alerts ({outbox['sent alert']} marked"
            f" sent), {queued['digest']} digests ({outbox['sent digest']}); arrived:"
            f" {self.alerts()}/{len(plan.owed)} alerts, {self.digests()}/{len(plan.digest_chats)}"
            " digests"
        )


async def run_trial(
    plan: Plan,
    ledger: Ledger,
    fake: FakeTelegram,
    feed_server: FeedServer,
    children: Children,
    databases: Databases,
) -> tuple[str, list[str]]:
    """One trial; returns its report line and what went wrong (empty when all held)."""
    started = time.monotonic()
    database = databases.new(f"trial{plan.number}")
    for feed in range(FEEDS):
        publish(feed_server, plan, feed, plan.wave1[feed])
    due = await prepare(database, plan, feed_server)
    for chat in plan.chats:
        if chat > 0:
            fake.private_chat(fake.add_user(chat, f"User {chat}"))
        else:
            fake.add_group(chat, f"Group {chat}")
    trial = Trial(plan, ledger, ledger.add(plan), feed_server, children, database)
    name = f"trial{plan.number}"

    first = await children.start(database, f"{name}-run1")
    publisher = asyncio.create_task(trial.wave2_when_alerts_arrive())
    try:
        await trial.kill_at_moment(first)
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)
    trial.publish_wave2()  # the kill may have come first: the restart finds it
    killed = time.monotonic()

    last = await children.start(database, f"{name}-run2")
    if plan.second_kill is not None:
        started_again = await until(last.logged("started"), START_SECONDS, SLOW_POLL)
        assert started_again, f"seed {SEED}, {plan.describe()}: {last.output()[-3000:]}"
        await asyncio.sleep(plan.second_kill)
        await trial.kill(last)
        last = await children.start(database, f"{name}-run3")
    arrived = await until(trial.everything_arrived, DELIVERY_SECONDS, SLOW_POLL)
    # Everything may have arrived before the last kill with rows still pending (sent, the
    # kill came before they were marked): the last child owes them again, so the stop
    # waits until it has worked through them rather than cutting it off mid-way.
    drained = arrived and await outbox_drained(database, DELIVERY_SECONDS)
    delivered = time.monotonic()
    # Everything may have arrived before the last kill: a child asked to stop while Python
    # is still importing cannot answer with the bot's clean stop.
    started_last = await until(last.logged("started"), START_SECONDS, SLOW_POLL)
    assert started_last, f"seed {SEED}, {plan.describe()}: {last.output()[-3000:]}"
    last.process.send_signal(plan.stop_signal)
    code = await last.exit_code(15)

    ledger.update()
    alerts, digests = trial.arrivals.alerts, trial.arrivals.digests
    duplicates = sum(n - 1 for n in alerts.values()) + sum(n - 1 for n in digests.values())
    bound = PER_KILL_BOUND * len(trial.kills)
    most = max([*alerts.values(), *digests.values()], default=0)
    check, outbox, stories, schedules = await database_state(database)
    published = FEEDS + sum(len(plan.stories(feed)) for feed in range(FEEDS))  # + the old ones
    problems = []
    if not arrived:
        problems.append(f"not everything arrived within {DELIVERY_SECONDS}s of the restart")
    elif not drained:
        problems.append(f"outbox rows still pending {DELIVERY_SECONDS}s after all arrived")
    if code != 0:
        problems.append(f"{plan.stop_signal.name}: exit code {code}; {last.output()[-2000:]}")
    if set(alerts) != plan.owed:
        problems.append(f"alerts lost: {sorted(plan.owed - set(alerts))[:10]}")
    if set(digests) != set(plan.digest_chats):
        problems.append(f"digests lost: {sorted(set(plan.digest_chats) - set(digests))[:10]}")
    if trial.arrivals.unexpected:
        problems.append(f"unexpected messages: {trial.arrivals.unexpected[:5]}")
    if duplicates > bound:
        problems.append(f"{duplicates} duplicates, above the bound {bound}")
    if most > len(trial.kills) + 1:
        problems.append(f"a message arrived {most} times after {len(trial.kills)} kill(s)")
    if check != "ok" or any(c != "ok" for c in trial.crashed_checks):
        problems.append(f"integrity_check: {check} at the end, {trial.crashed_checks} at kills")
    expected_outbox = Counter({"sent alert": len(plan.owed), "sent digest": len(plan.digest_chats)})
    if outbox != expected_outbox:
        problems.append(f"outbox {dict(outbox)}, expected {dict(expected_outbox)}")
    if stories != published:
        problems.append(f"{stories} stories stored, {published} published")
    stuck = [row for row in schedules if row[1] != due or row[2] <= due]
    if stuck:
        problems.append(f"digest schedules not moved on from {due}: {stuck[:5]}")
    report = (
        f"{plan.describe()}\n    at kill: {'; at kill 2: '.join(trial.kills)}\n    ->"
        f" {duplicates} duplicates"
        f" (bound {bound}, most copies {most}); {time.monotonic() - started:.1f}s (to kill"
        f" {killed - started:.1f}, restart to delivered {delivered - killed:.1f},"
        f" stop {time.monotonic() - delivered:.1f})"
    )
    return report, problems


@pytest.mark.parametrize("phase", PHASES)
async def test_kill_9_at_random_moments_then_restart_owes_nothing_and_repeats_within_bound(
    phase: str, tmp_path: Path, databases: Databases, feed_server: FeedServer
) -> None:
    limits = FloodLimits(
        chat_per_second=CHAT_RATE,
        group_per_minute=int(GROUP_PER_MINUTE),
        global_per_second=RATE * LANES,
        global_burst=30 * LANES,
    )
    lanes = asyncio.Semaphore(LANES)
    async with FakeTelegram(limits=limits) as fake:
        fake.delay(SEND_DELAY, methods=["sendMessage"])
        ledger = Ledger(fake)
        children = Children(tmp_path, fake, SETTINGS, note=f"seed {SEED}: ")

        async def trial(number: int) -> tuple[str, list[str]]:
            await asyncio.sleep(number * STAGGER)
            async with lanes:
                plan = make_plan(phase, number, datetime.now(UTC))
                report, problems = await run_trial(
                    plan, ledger, fake, feed_server, children, databases
                )
                return report, [f"{plan.label}: {problem}" for problem in problems]

        try:
            async with asyncio.TaskGroup() as group:  # one trial failing stops the others
                tasks = [group.create_task(trial(n)) for n in range(TRIALS_PER_PHASE)]
        finally:
            await children.kill_all()
        results = [task.result() for task in tasks]
        ledger.update()
        retry_after = fake.retry_after_count
    summary = "\n".join(report for report, _ in results)
    print(f"\nseed {SEED}, phase {phase}:\n{summary}")
    failures = [problem for _, problems in results for problem in problems]
    failures += [f"a message to no trial's chat: {stray}" for stray in ledger.strays[:5]]
    if retry_after:
        failures.append(f"the fake answered {retry_after} flood waits (429)")
    assert not failures, f"seed {SEED}, phase {phase}:\n" + "\n".join(failures) + "\n" + summary
