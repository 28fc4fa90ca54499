"""What the sender holds in memory once a due minute of digests is in the outbox.

    .venv/bin/python bench/outbox_load.py                    # 39,375 digest parts + 100,000 alerts
    .venv/bin/python bench/outbox_load.py --parts 4000 --alerts 10000   # a quick look

The outbox of a temporary Store (real migrations, WAL) is filled the way a busy minute
leaves it: `--parts` digest parts (what one fire_due for 10,000 chats queues: 39,375 parts
of 6,344 characters on average, bench/digest.py; a fifth of them Chinese) and `--alerts`
alert rows (a story id, no text) for `--chats` chats. Then a Sender (not started, so nothing
is sent) runs its refill, the load of pending rows (up to sender.MAX_QUEUED) into its
per-chat queues, under tracemalloc: the peak during the load and what stays allocated after
it (the queues the sender keeps until the rows are sent, at 30 messages a second for about
78 minutes here), plus the load's wall time and the process's peak RSS (the build's
executemany of the texts included).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from telegram import Bot

from bench.common import Verdicts, maxrss_mib
from bot.clock import FakeClock
from bot.delivery.sender import MAX_QUEUED, Sender
from bot.store import Store
from tests.conftest import make_settings

NOW_MS = 1_740_812_400_000
EN_LINE = '• <a href="https://www.example.com/news/2025/03/01/story">A headline of the day</a>\n'
ZH_LINE = (
    '• <a href="https://www.example.cn/a/20250301/1.html">克里姆林宫称正在准备俄美专家级会谈</a>\n'
)


def part(rng: random.Random, chars: int) -> str:
    line = ZH_LINE if rng.random() < 0.2 else EN_LINE
    text = line * (chars // len(line) + 1)
    return text[: chars - 6] + f"{rng.randrange(10**6):06}"  # distinct texts


async def fill(store: Store, parts: int, alerts: int, chats: int, chars: int) -> None:
    rng = random.Random(1)
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO chats (id, kind, title, language, status, created_at)"
            " VALUES (?, 'private', '', 'en', 'active', 0)",
            [(chat_id,) for chat_id in range(1, chats + 1)],
        )
        await conn.execute(
            "INSERT INTO feeds (id, url, title, site_url, created_at, next_check_at)"
            " VALUES (1, 'https://feeds.test/a', 'A', '', 0, 0)"
        )
        await conn.executemany(
            "INSERT INTO stories (id, feed_id, timestamp_id, identity, title, link, summary,"
            " first_seen_at, last_present_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    n,
                    NOW_MS - n,
                    f"id-{n}",
                    f"Story {n}",
                    f"https://n.test/{n}",
                    "A summary.",
                    NOW_MS,
                    NOW_MS,
                )
                for n in range(1, 1001)
            ],
        )
        await conn.executemany(
            "INSERT INTO outbox (chat_id, kind, text, not_before, created_at)"
            " VALUES (?, 'digest', ?, ?, ?)",
            [(1 + n % chats, part(rng, chars), NOW_MS, NOW_MS) for n in range(parts)],
        )
        await conn.executemany(
            "INSERT INTO outbox (chat_id, kind, story_id, not_before, created_at)"
            " VALUES (?, 'alert', ?, ?, ?)",
            [(1 + n % chats, 1 + (n // chats) % 1000, NOW_MS, NOW_MS) for n in range(alerts)],
        )


async def main_async(args: argparse.Namespace, verdicts: Verdicts) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as folder:
        settings = make_settings(Path(folder))
        store = await Store.open(settings.database.path)
        try:
            started = time.perf_counter()
            await fill(store, args.parts, args.alerts, args.chats, args.chars)
            print(
                f"outbox: {args.parts} digest parts of {args.chars} characters and"
                f" {args.alerts} alerts for {args.chats} chats, built in"
                f" {time.perf_counter() - started:.1f} s"
            )
            sender = Sender(store, Bot("123:bench"), settings.delivery, FakeClock(NOW_MS))
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            started = time.perf_counter()
            await sender._refill()
            wall = time.perf_counter() - started
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"sender refill: {sender.queued} rows queued in {wall:.2f} s (under"
                f" tracemalloc); held after the load {(current - before) / 2**20:.1f} MiB,"
                f" peak during it {(peak - before) / 2**20:.1f} MiB;"
                f" ru_maxrss {maxrss_mib():.0f} MiB"
            )
            expected = min(args.parts + args.alerts, MAX_QUEUED)
            verdicts.check(
                f"check: the refill holds every row up to the cap ({MAX_QUEUED:,})",
                sender.queued == expected,
                f"{sender.queued:,} queued, expected {expected:,}",
            )
        finally:
            await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", type=int, default=39_375)
    parser.add_argument("--chars", type=int, default=6_344)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=10_000)
    verdicts = Verdicts()
    asyncio.run(main_async(parser.parse_args(), verdicts))
    return verdicts.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
