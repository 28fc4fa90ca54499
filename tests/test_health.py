"""`news-notifier healthcheck`, run as the container runs it: exit 0 only when the database
answers and feeds are being checked."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import pytest

from bot.errors import DatabaseLostError
from bot.health import running_health
from bot.store import FeedUpdate, Store
from tests.paths import REPO

MINUTE_MS = 60_000


async def healthcheck(database: Path, **env: str) -> tuple[int, str]:
    """Exit status and output of the real command, in its own process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "healthcheck",
        cwd=REPO,
        env={**os.environ, "NEWS_NOTIFIER_DATABASE": str(database), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def add_feed(store: Store, url: str, *, checked_ago_ms: int | None) -> None:
    """A feed with a subscriber, last checked that long ago (None: never)."""
    created = now_ms() - 3 * 3_600_000
    await store.chats.upsert(1, kind="private", title="Alice", language="en", now_ms=created)
    feed_id = await store.feeds.add(url, title="Feed", site_url="", now_ms=created)
    await store.chats.subscribe(1, feed_id, thread_id=None, now_ms=created)
    if checked_ago_ms is not None:
        checked = now_ms() - checked_ago_ms
        await store.feeds.record_success(
            feed_id, FeedUpdate(now_ms=checked, next_check_at=checked + 5 * MINUTE_MS)
        )


async def test_a_missing_database_is_unhealthy(tmp_path: Path) -> None:
    code, out = await healthcheck(tmp_path / "nowhere" / "bot.sqlite3")
    assert code == 1 and "does not exist" in out
    assert not (tmp_path / "nowhere").exists()  # the check creates nothing


async def test_a_fresh_database_without_feeds_is_healthy(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    await (await Store.open(str(database))).close()
    code, out = await healthcheck(database)
    assert (code, out.strip()) == (0, "healthy: database answers; no feeds to check yet")


async def test_a_recent_check_is_healthy_even_beside_the_running_bot(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    # The store stays open, holding the process lock as the running bot does.
    async with await Store.open(str(database)) as store:
        await add_feed(store, "https://a.test/feed", checked_ago_ms=MINUTE_MS)
        code, out = await healthcheck(database)
    assert code == 0, out
    match = re.fullmatch(r"healthy: 1 feeds; last check (\d+) s ago\n", out)
    assert match and 60 <= int(match.group(1)) < 90, out


async def test_no_check_for_longer_than_the_setting_is_unhealthy(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    async with await Store.open(str(database)) as store:
        await add_feed(store, "https://a.test/feed", checked_ago_ms=40 * MINUTE_MS)
    code, out = await healthcheck(database)  # the default allows 1800 s
    match = re.fullmatch(r"unhealthy: no feed checked for (\d+) s\n", out)
    assert code == 1 and match and 2400 <= int(match.group(1)) < 2430, out

    config = tmp_path / "settings.toml"
    config.write_text("[health]\nmax_silence_seconds = 3600\n")
    code, out = await healthcheck(database, NEWS_NOTIFIER_CONFIG=str(config))
    assert code == 0, out


async def test_feeds_never_checked_are_unhealthy(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    async with await Store.open(str(database)) as store:
        await add_feed(store, "https://a.test/feed", checked_ago_ms=None)
    code, out = await healthcheck(database)
    assert code == 1 and "none checked yet" in out


@pytest.mark.parametrize(
    "content",
    [b"this is not a database" * 100, b"SQLite format 3\x00" + bytes(4080), b""],
    ids=["garbage", "truncated-header", "empty"],
)
async def test_a_corrupt_file_is_unhealthy(tmp_path: Path, content: bytes) -> None:
    database = tmp_path / "bot.sqlite3"
    database.write_bytes(content)
    code, out = await healthcheck(database)
    assert code == 1 and out.startswith("unhealthy: database"), out
    assert database.read_bytes() == content  # looked at, never changed


async def test_a_directory_in_place_of_the_file_is_unhealthy(tmp_path: Path) -> None:
    code, out = await healthcheck(tmp_path)
    assert code == 1 and out.startswith("unhealthy:"), out


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
async def test_an_unreadable_file_is_unhealthy(tmp_path: Path) -> None:
    database = tmp_path / "bot.sqlite3"
    async with await Store.open(str(database)) as store:
        await add_feed(store, "https://a.test/feed", checked_ago_ms=MINUTE_MS)
    database.chmod(0)
    try:
        code, out = await healthcheck(database)
    finally:
        database.chmod(0o600)
    assert code == 1 and "unhealthy: database" in out, out


async def test_an_unreadable_folder_is_unhealthy_even_for_root(tmp_path: Path) -> None:
    """A file that cannot be opened, without needing a non-root user: its path runs through
    a regular file, as when a volume is mounted wrong."""
    not_a_folder = tmp_path / "volume"
    not_a_folder.write_text("a file where the folder should be")
    code, out = await healthcheck(not_a_folder / "bot.sqlite3")
    assert code == 1 and out.startswith("unhealthy:"), out


# --- the running bot's /healthz verdict (bot/health.py, running_health) ---------------------


async def test_the_running_bots_verdict_uses_the_same_rule_and_its_own_store(
    store: Store,
) -> None:
    assert await running_health(store, now_ms(), 1800) == (
        True,
        "healthy: database answers; no feeds to check yet",
    )
    await add_feed(store, "https://a.test/feed", checked_ago_ms=40 * MINUTE_MS)
    ok, text = await running_health(store, now_ms(), 1800)
    assert not ok and text.startswith("unhealthy: no feed checked for 24"), text
    assert (await running_health(store, now_ms(), 3600))[0] is True


async def test_a_lost_or_silent_database_is_unhealthy(store: Store) -> None:
    store.db.lost = DatabaseLostError("bot.sqlite3", "deleted")
    try:
        assert await running_health(store, now_ms(), 1800) == (
            False,
            "unhealthy: database lost (database bot.sqlite3: deleted)",
        )
    finally:
        store.db.lost = None
    await store.close()
    ok, text = await running_health(store, now_ms(), 1800)
    assert not ok and text.startswith("unhealthy: database does not answer ("), text


async def checked_feed(store: Store, url: str, *, checked_ago_ms: int, due_in_ms: int) -> None:
    await add_feed(store, url, checked_ago_ms=None)
    feed = await store.feeds.by_url(url)
    assert feed is not None
    checked = now_ms() - checked_ago_ms
    update = FeedUpdate(now_ms=checked, next_check_at=now_ms() + due_in_ms)
    await store.feeds.record_success(feed.id, update)


async def test_a_long_quiet_spell_with_nothing_due_is_healthy(store: Store) -> None:
    """A feed its hub pushes is polled hourly: 50 minutes without a check, nothing due."""
    await checked_feed(
        store, "https://a.test/pushed", checked_ago_ms=50 * MINUTE_MS, due_in_ms=MINUTE_MS
    )
    ok, text = await running_health(store, now_ms(), 1800)
    assert ok and text.startswith("healthy: 1 feeds; last check 30"), text


async def test_a_feed_left_overdue_is_unhealthy_though_others_are_checked(store: Store) -> None:
    await checked_feed(store, "https://a.test/fresh", checked_ago_ms=MINUTE_MS, due_in_ms=MINUTE_MS)
    await checked_feed(
        store, "https://a.test/stuck", checked_ago_ms=2 * MINUTE_MS, due_in_ms=-40 * MINUTE_MS
    )
    ok, text = await running_health(store, now_ms(), 1800)
    assert not ok and text.startswith("unhealthy: a feed due 24"), text
