"""Several instances polling one PostgreSQL database (issue 14): 1, 2 and 3 poller processes
over 10,000 feeds on loopback feed hosts; checks per second, and CPU per check per instance.

    .venv/bin/python bench/instances.py                         # 10,000 feeds, 1, 2, 3 pollers
    .venv/bin/python bench/instances.py --feeds 2000 --pollers 1 2

Each poller is a process of its own (spawned), built as bot/runtime.py builds the polling half:
Store (its own asyncpg pool on the same schema, exclusive=False: the one-instance lock is the
leader election's business, not the pollers'), Fetcher, FeedPipeline with the real router and
a 2-thread parse executor, and Poller with its own instance id, ticking every second as the
bot's JobQueue does. They share the work only through the feed leases
(FeedStore.claim_due: FOR UPDATE SKIP LOCKED). The feeds are served by FeedServers in one
more process (bench/poll.py's feed host), on 32 loopback addresses.

A run: every feed is made due, --changed of them publish --new-items new stories (the rest
answer 304), the pollers get "go" at once and each ticks until no feed is due or in flight.
The wall time is from "go" to the last poller done; checks per second = feeds / wall. Each
poller reports its checks and its own CPU seconds (time.process_time), so CPU per check is
per instance. The feed host counts requests per feed: a feed fetched twice in a run (two
instances checking it) is reported. A first run with one poller primes every feed (first
fetch: stories recorded as seen), and is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Verdicts, machine_with_versions
from bench.poll import FeedHostProcess, HostPlan, bench_settings
from bot.clock import SystemClock
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import DatabaseUnavailableError, Store

DATABASE = os.environ.get("NEWS_NOTIFIER_BENCH_POSTGRESQL", "postgresql://root@127.0.0.1:5432/test")
TICK_SECONDS = 1.0  # bot/telegram/jobs.py
PARSE_THREADS = 2  # bot/runtime.py


# --- one poller, in a child process ----------------------------------------------------------


@dataclass(frozen=True)
class PollerResult:
    instance: str
    checks: int
    handed_back: int  # checks not recorded (the database did not answer): fetched again
    cpu: float  # the process's CPU seconds during the run
    wall: float  # from "go" to its last check recorded


def poller_main(connection: Connection, url: str, name: str, concurrency: int | None) -> None:
    asyncio.run(_poller(connection, url, name, concurrency))


async def _poller(connection: Connection, url: str, name: str, concurrency: int | None) -> None:
    settings = bench_settings(url, concurrency, None)
    # Checked once per run: a feed's next check comes an hour later.
    hour = dataclasses.replace(settings.poll, interval=3600, min_interval=3600, max_interval=3600)
    settings = dataclasses.replace(settings, poll=hour)
    clock = SystemClock()
    with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="parse") as executor:
        async with await Store.open(url, exclusive=False) as store, Fetcher(settings.fetch) as f:
            pipeline = FeedPipeline(
                store, f, settings, clock, make_router(KeywordIndex()), executor
            )
            poller = Poller(store, pipeline, settings, clock, instance_id=name)
            connection.send("ready")
            while (await asyncio.to_thread(connection.recv)) == "go":
                connection.send(await _run(poller, store, clock))


async def _run(poller: Poller, store: Store, clock: SystemClock) -> PollerResult:
    checks, cpu, began = poller.pipeline.stats.checks, time.process_time(), time.perf_counter()
    handed_back = poller.handed_back
    while True:
        tick = time.perf_counter()
        with contextlib.suppress(DatabaseUnavailableError):  # the bot's JobQueue logs it
            await poller.tick()
        if not poller._in_flight and not await store.feeds.due(clock.now_ms(), 1):
            break
        await asyncio.sleep(max(0.0, TICK_SECONDS - (time.perf_counter() - tick)))
    await poller.wait_idle()
    return PollerResult(
        poller.instance_id,
        poller.pipeline.stats.checks - checks,
        poller.handed_back - handed_back,
        time.process_time() - cpu,
        time.perf_counter() - began,
    )


class PollerProcess:
    def __init__(self, url: str, name: str, concurrency: int | None) -> None:
        context = get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=poller_main, args=(child, url, name, concurrency), daemon=True
        )

    def start(self) -> None:
        self.process.start()
        if not self.connection.poll(120) or self.connection.recv() != "ready":
            raise RuntimeError("a poller process did not start")

    def stop(self) -> None:
        if self.process.is_alive():
            self.connection.send("stop")
            self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()


# --- the runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    pollers: int
    wall: float
    pollers_results: list[PollerResult]
    requests: int
    bodies: int
    host_cpu: float
    twice: int  # feeds fetched more than once in the run


async def prepare(url: str, host: FeedHostProcess) -> None:
    """One feed row per URL, each followed by a private chat of its own: written in bulk
    (three statements), not one subscribe at a time (10,000 × 3 round trips)."""
    now = SystemClock().now_ms()
    async with await Store.open(url, exclusive=False) as store, store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO feeds (id, url, next_check_at, created_at) VALUES (?, ?, ?, ?)",
            [(n, u, now, now) for n, u in enumerate(host.urls, 1)],
        )
        await conn.executemany(
            "INSERT INTO chats (id, kind, title, language, created_at)"
            " VALUES (?, 'private', '', 'en', ?)",
            [(n, now) for n in range(1, len(host.urls) + 1)],
        )
        await conn.executemany(
            "INSERT INTO subscriptions (chat_id, feed_id, created_at) VALUES (?, ?, ?)",
            [(n, n, now) for n in range(1, len(host.urls) + 1)],
        )


async def make_due(url: str) -> None:
    async with await Store.open(url, exclusive=False) as store:
        await store.db.execute("UPDATE feeds SET next_check_at = 0")


def one_run(url: str, host: FeedHostProcess, pollers: list[PollerProcess], args: Any) -> Run:
    rng = random.Random(args.seed + len(pollers))
    changed = rng.sample(range(args.feeds), args.changed)
    host.call("publish", changed, args.new_items, SystemClock().now_ms())
    asyncio.run(make_due(url))
    host.call("reset")
    host_cpu = host.call("stats")["cpu"]
    began = time.perf_counter()
    for poller in pollers:
        poller.connection.send("go")
    results = [poller.connection.recv() for poller in pollers]
    wall = time.perf_counter() - began
    stats = host.call("stats")
    per_feed = host.call("hits")
    return Run(
        len(pollers),
        wall,
        results,
        int(stats["requests"]),
        int(stats["bodies"]),
        stats["cpu"] - host_cpu,
        sum(1 for hits in per_feed if hits > 1),
    )


def measure(args: Any) -> tuple[float, list[Run]]:
    schema = f"bench_instances_{uuid.uuid4().hex[:8]}"
    asyncio.run(_sql(f"CREATE SCHEMA {schema}"))
    url = f"{DATABASE}{'&' if '?' in DATABASE else '?'}search_path={schema}"
    addresses = [f"127.0.0.{2 + n}" for n in range(args.hosts)]
    runs: list[Run] = []
    try:
        with FeedHostProcess(
            HostPlan(addresses, args.feeds, args.items, int(time.time() * 1000))
        ) as host:
            asyncio.run(prepare(url, host))
            priming = time.perf_counter()
            first = PollerProcess(url, "primer", args.concurrency)
            first.start()
            try:
                one_run(url, host, [first], args)
            finally:
                first.stop()
            priming = time.perf_counter() - priming
            for count in args.pollers:
                pollers = [PollerProcess(url, f"p{n + 1}", args.concurrency) for n in range(count)]
                for poller in pollers:
                    poller.start()
                try:
                    for _ in range(args.repeat):
                        runs.append(one_run(url, host, pollers, args))
                finally:
                    for poller in pollers:
                        poller.stop()
    finally:
        asyncio.run(_sql(f"DROP SCHEMA {schema} CASCADE"))
    return priming, runs


async def _sql(statement: str) -> None:
    conn = await asyncpg.connect(DATABASE)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


# --- report ------------------------------------------------------------------------------------


def judge(args: Any, runs: Sequence[Run]) -> int:
    """The correctness the leases promise, per run; the speed figures are reported, not
    judged: on a shared 2-core machine more processes need not mean more checks."""
    verdicts = Verdicts()
    for run in runs:
        name = f"{run.pollers} poller(s)"
        # A check whose record the database did not take is handed back and fetched again:
        # that second fetch is the promise kept (nothing of the first was stored), not two
        # instances checking one feed.
        again = sum(r.handed_back for r in run.pollers_results)
        verdicts.check(
            f"check: {name}: no feed fetched twice but after a check not recorded",
            run.twice <= again,
            f"{run.twice} fetched twice, {again} handed back",
        )
        verdicts.check(
            f"check: {name}: every feed fetched",
            args.feeds <= run.requests <= args.feeds + again,
            f"{run.requests} requests for {args.feeds} feeds",
        )
        # A backlog larger than what one instance claims at once (concurrency × 16) must be
        # shared; a smaller one may all go to the first instance that ticks.
        if run.pollers > 1 and args.feeds > (args.concurrency or 64) * 16:
            shares = [r.checks for r in run.pollers_results]
            verdicts.check(
                f"check: {name}: every instance took a share", min(shares) > 0, f"{shares}"
            )
    return verdicts.exit_code()


def report(args: Any, priming: float, runs: Sequence[Run]) -> None:
    print(
        f"machine: {machine_with_versions('aiohttp', 'asyncpg')}; load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(
        f"instances: {args.feeds:,} feeds on {args.hosts} loopback addresses, {args.items} "
        f"stories each, {args.changed} changed per run ({args.new_items} new stories); "
        f"PostgreSQL {DATABASE.rsplit('@', 1)[-1]}; priming run {priming:.1f} s"
    )
    print(
        f"{'pollers':>7}{'wall s':>8}{'checks/s':>9}{'requests':>9}{'bodies':>7}"
        f"{'twice':>6}{'host cpu s':>11}  per instance: checks, cpu s, cpu ms/check"
    )
    for run in runs:
        per = "; ".join(
            f"{r.instance} {r.checks} {r.cpu:.1f} {1000 * r.cpu / max(r.checks, 1):.2f}"
            + (f" ({r.handed_back} handed back)" if r.handed_back else "")
            for r in run.pollers_results
        )
        print(
            f"{run.pollers:>7}{run.wall:>8.1f}{args.feeds / run.wall:>9.0f}{run.requests:>9}"
            f"{run.bodies:>7}{run.twice:>6}{run.host_cpu:>11.1f}  {per}"
        )
    for count in args.pollers:
        walls = [r.wall for r in runs if r.pollers == count]
        cpu = [p.cpu for r in runs if r.pollers == count for p in r.pollers_results]
        checks = [p.checks for r in runs if r.pollers == count for p in r.pollers_results]
        print(
            f"{count} poller(s): median {args.feeds / statistics.median(walls):.0f} checks/s, "
            f"{1000 * sum(cpu) / max(sum(checks), 1):.2f} ms CPU per check (all instances)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--changed", type=int, default=500, help="feeds changed per run")
    parser.add_argument("--new-items", type=int, default=2)
    parser.add_argument("--pollers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeat", type=int, default=1, help="runs per poller count")
    parser.add_argument("--concurrency", type=int, help="poll.concurrency (default: config)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    priming, runs = measure(args)
    report(args, priming, runs)
    return judge(args, runs)


if __name__ == "__main__":
    sys.exit(main())
