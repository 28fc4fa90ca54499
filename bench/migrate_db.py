"""How long `news-notifier migrate-db` keeps a bot down: one SQLite database at the issue's
scale copied into an empty PostgreSQL schema.

    .venv/bin/python bench/migrate_db.py                      # 10,000 feeds, 100,000 chats
    .venv/bin/python bench/migrate_db.py --scale 0.1          # a tenth of everything

The SQLite database is made with the bot's migrations (Store.open), then filled with plain
SQL: feeds with their polling state, chats (a tenth with a daily digest), two subscriptions
per chat, keywords for a fifth of the chats, 50 stories per feed, and an outbox of sent
alerts with a pending tail, counters. The target is a new schema of the PostgreSQL test
database (--postgresql, default NEWS_NOTIFIER_TEST_POSTGRESQL or
postgresql://root@127.0.0.1:5432/test), dropped after. The command runs as an operator
runs it, in a child process; the figures are its wall time and CPU time (the child's own:
reading SQLite and encoding COPY; the server's work is in the wall time only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine
from bot.store import Store

NOW = 1_796_000_000_000


def sizes(scale: float) -> dict[str, int]:
    base = {"feeds": 10_000, "chats": 100_000, "outbox": 300_000}
    return {name: max(1, int(count * scale)) for name, count in base.items()} | {
        "stories_per_feed": 50
    }


def fill(path: str, size: dict[str, int]) -> dict[str, int]:
    """The bot's tables at this size, through plain SQL; returns rows per table."""
    rng = random.Random(13)
    feeds, chats = size["feeds"], size["chats"]
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO feeds (id, url, title, etag, next_check_at, last_checked_at,"
            " primed_at, newest_timestamp_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((i, f"https://feeds{i % 97}.test/{i}.xml", f"Feed {i}", f'"e{i}"', NOW + i,
              NOW, NOW - 1, NOW, NOW) for i in range(1, feeds + 1)),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO chats (id, kind, title, digest_hour, digest_minute, timezone,"
            " next_digest_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((c, "private", f"chat {c}", *((8, 0, "Europe/Berlin", NOW) if c % 10 == 0
              else (None, None, None, None)), NOW) for c in range(1, chats + 1)),
        )  # fmt: skip
        conn.executemany(
            "INSERT OR IGNORE INTO subscriptions (chat_id, feed_id, created_at, given_url)"
            " VALUES (?, ?, ?, '')",
            ((c, rng.randint(1, feeds), NOW) for c in range(1, chats + 1) for _ in range(2)),
        )
        conn.executemany(
            "INSERT INTO keywords (chat_id, position, text, exclude) VALUES (?, ?, ?, ?)",
            ((c, p, f"word{p}", p % 2) for c in range(1, chats + 1, 5) for p in range(3)),
        )
        per_feed = size["stories_per_feed"]
        conn.executemany(
            "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, summary,"
            " first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((f, f"id-{f}-{n}", NOW - n * 60_000, f"Story {n} of feed {f}",
              f"https://n.test/{f}/{n}", "A summary of about a hundred characters. " * 2,
              NOW, NOW) for f in range(1, feeds + 1) for n in range(per_feed)),
        )  # fmt: skip
        stories = feeds * per_feed
        outbox = size["outbox"]
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (chat_id, kind, story_id, status, not_before,"
            " created_at, sent_at) VALUES (?, 'alert', ?, ?, ?, ?, ?)",
            ((rng.randint(1, chats), rng.randint(1, stories),
              "pending" if n >= outbox * 0.95 else "sent", NOW, NOW, NOW)
             for n in range(outbox)),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO counters (name, hour, count) VALUES (?, ?, ?)",
            ((name, NOW - h * 3_600_000, h) for name in ("sent", "flood_wait") for h in range(720)),
        )
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    conn.close()
    return counts


async def schema(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--postgresql",
        default=os.environ.get(
            "NEWS_NOTIFIER_TEST_POSTGRESQL", "postgresql://root@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = str(Path(folder) / "bot.sqlite3")
        asyncio.run(close_after_open(source))
        started = time.perf_counter()
        counts = fill(source, sizes(args.scale))
        made = time.perf_counter() - started
        name = f"bench_{uuid.uuid4().hex[:12]}"
        asyncio.run(schema(args.postgresql, f"CREATE SCHEMA {name}"))
        try:
            wall, cpu, output = migrate(source, f"{args.postgresql}?search_path={name}")
        finally:
            asyncio.run(schema(args.postgresql, f"DROP SCHEMA {name} CASCADE"))
        size_mb = Path(source).stat().st_size / 2**20
    rows = sum(n for t, n in counts.items() if t != "schema_migrations")
    print(f"machine: {machine()}")
    print(f"SQLite database: {size_mb:.0f} MB, {rows:,} rows (made in {made:.1f} s)")
    print(output.rstrip())
    print(f"migrate-db: {wall:.1f} s wall, {cpu:.1f} s CPU in its process, "
          f"{rows / wall:,.0f} rows/s")  # fmt: skip


async def close_after_open(path: str) -> None:
    await (await Store.open(path)).close()


def migrate(source: str, target: str) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate-db", "--to", target],
        env={**os.environ, "NEWS_NOTIFIER_DATABASE": source},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"migrate-db failed: {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout


if __name__ == "__main__":
    main()
