"""What a Prometheus scrape of /metrics costs the bot, by outbox backlog, on both backends.

    .venv/bin/python bench/metrics.py                       # the figures in bench/README.md
    .venv/bin/python bench/metrics.py --pending 0 1000 --scrapes 50   # a quick look

A Store (real migrations; SQLite in a temporary folder, PostgreSQL in a scratch schema of
the test database) gets `--sent` rows already sent (the outbox keeps them for the
duplicate window) and, in turn, each `--pending` count of pending rows. For each, the bot's
own Metrics (bot/metrics.py) with the runtime's outbox reader (bot/runtime.py,
outbox_backlog) is scraped `--scrapes` times:

- render: prometheus_client's generate_latest of the registry alone (no database);
- scrape: Metrics.scrape(), what /metrics does per request: the outbox's depth and oldest
  pending row read from the store (OutboxStore.backlog), then rendered;
- http: GET /metrics on the bot's listener (bot/listener.py) over loopback, the client in
  the same process (its CPU is counted too).

Each reports wall time p50 and p99 and the process's CPU time per scrape; the last column
is the share of one core a scrape every 15 s (Prometheus' default interval) takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from prometheus_client import generate_latest

from bench.common import Verdicts, machine_with_versions
from bot.clock import SystemClock
from bot.config import ListenAddress
from bot.errors import FailureKind
from bot.listener import Listener
from bot.metrics import Metrics
from bot.runtime import outbox_backlog
from bot.store import Store
from bot.store.outbox import BACKLOG_COUNT_CAP
from tests.databases import Databases

SCRAPE_INTERVAL = 15.0  # seconds: Prometheus' default scrape_interval
# Goal: a scrape every 15 s takes under 1% of a core at any backlog (150 ms of CPU).
CPU_GOAL_MS = 150.0
CHUNK = 100_000  # rows per INSERT


def fill_sql(backend: str, first: int, count: int, status: str) -> str:
    """Rows first..first+count-1 of the outbox, as notices in `status` (numbers only)."""
    last = first + count - 1
    values = (
        f"i, 'notice', 'x', '{status}', i, i, " + ("i" if status == "sent" else "NULL") + " FROM "
    )
    columns = "INSERT INTO outbox (chat_id, kind, text, status, not_before, created_at, sent_at)"
    if backend == "postgresql":
        return f"{columns} SELECT {values} generate_series({first}, {last}) AS g(i)"
    return (
        f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last})"
        f" {columns} SELECT {values} n"
    )


async def fill(store: Store, backend: str, first: int, count: int, status: str) -> None:
    """Insert in chunks: one statement over a million rows passes PostgreSQL's statement
    timeout on a loaded machine."""
    for start in range(first, first + count, CHUNK):
        async with store.db.transaction() as conn:
            chunk = min(CHUNK, first + count - start)
            await conn.execute(fill_sql(backend, start, chunk, status))


async def timed(action: Callable[[], Awaitable[object]], times: int) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, CPU ms per call) over `times` calls after two to warm up."""
    for _ in range(2):
        await action()
    walls = []
    cpu = time.process_time()
    for _ in range(times):
        started = time.perf_counter()
        await action()
        walls.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / times
    walls.sort()
    p99 = walls[min(len(walls) - 1, int(len(walls) * 0.99))]
    return statistics.median(walls), p99, cpu_ms


def busy_metrics() -> Metrics:
    """A registry with every series counting, as on a bot that has run a while."""
    metrics = Metrics()
    metrics.feed_checks.inc(123_456)
    for kind in FailureKind:
        metrics.feed_failed(kind)
    metrics.messages_sent.labels("alert").inc(1_000_000)
    for lag in (0.001, 0.02, 0.3):
        metrics.loop_lag.observe(lag)
    return metrics


def judge(verdicts: Verdicts, label: str, figures: tuple[float, float, float]) -> None:
    cpu = figures[2]
    verdicts.check(
        f"goal: {label} under {CPU_GOAL_MS:.0f} ms CPU", cpu < CPU_GOAL_MS, f"{cpu:.2f} ms"
    )


def row(label: str, figures: tuple[float, float, float]) -> str:
    p50, p99, cpu = figures
    share = cpu / (SCRAPE_INTERVAL * 1000) * 100
    return f"| {label} | {p50:.2f} | {p99:.2f} | {cpu:.2f} | {share:.4f}% |"


async def bench_backend(
    backend: str, args: argparse.Namespace, folder: Path, verdicts: Verdicts
) -> list[str]:
    databases = Databases(backend, folder)
    store = await Store.open(databases.new())
    lines: list[str] = []
    try:
        await fill(store, backend, 1, args.sent, "sent")
        metrics = busy_metrics()
        clock = SystemClock()
        metrics.read_outbox_with(lambda: outbox_backlog(store, clock))
        listener = Listener(ListenAddress("127.0.0.1", 0), max_body_bytes=1 << 20)
        listener.add_routes(metrics.routes())
        await listener.start()
        url = listener.base_url + "/metrics"
        async with aiohttp.ClientSession() as session:

            async def get() -> bytes:
                async with session.get(url) as response:
                    return await response.read()

            size = len(await get())
            render = await timed(lambda: asyncio.sleep(0, generate_latest(metrics.registry)), 200)
            lines.append(row(f"{backend}: render only ({size:,} bytes)", render))
            added = 0
            for pending in args.pending:
                if pending > added:
                    await fill(store, backend, args.sent + added + 1, pending - added, "pending")
                    added = pending
                if backend == "postgresql":
                    await store.db.execute("ANALYZE outbox")
                depth = (await store.outbox.backlog())[0]
                verdicts.check(
                    f"check: {backend} depth at {pending:,} pending",
                    depth == min(pending, BACKLOG_COUNT_CAP),
                    f"{depth:,}",
                )
                scrape = await timed(metrics.scrape, args.scrapes)
                http = await timed(get, args.scrapes)
                lines.append(row(f"{backend}: scrape, {pending:,} pending", scrape))
                judge(verdicts, f"{backend} scrape at {pending:,} pending", scrape)
                lines.append(row(f"{backend}: http GET, {pending:,} pending", http))
        await listener.stop()
    finally:
        await store.close()
        databases.drop()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sent", type=int, default=200_000)
    parser.add_argument("--pending", type=int, nargs="+", default=[0, 10_000, 100_000, 1_000_000])
    parser.add_argument("--scrapes", type=int, default=100)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(machine_with_versions("prometheus_client", "aiohttp", "aiosqlite", "asyncpg"))
    print(f"outbox: {args.sent:,} sent rows; {args.scrapes} scrapes each")
    print("| what | wall p50 ms | wall p99 ms | CPU ms per scrape | one core, every 15 s |")
    print("|---|---|---|---|---|")
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends:
            for line in await bench_backend(backend, args, Path(folder), verdicts):
                print(line, flush=True)
    sys.exit(verdicts.exit_code())


if __name__ == "__main__":
    asyncio.run(main())
