"""`news-notifier healthcheck`: is the database reachable, and are feeds being checked?"""

from __future__ import annotations

import time
from pathlib import Path

from bot.config import Settings
from bot.store import Database


def database_exists(path: str) -> bool:
    return Path(path).is_file()


async def check_health(settings: Settings, now_ms: int | None = None) -> tuple[bool, str]:
    path = settings.database.path
    if not database_exists(path):
        return False, f"unhealthy: database {path} does not exist"
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    try:
        db = await Database.open(path, exclusive=False, read_only=True)
    except Exception as error:
        return False, f"unhealthy: database {path} cannot be opened ({error})"
    try:
        row = await db.fetchone(
            "SELECT COUNT(*), MAX(last_checked_at) FROM feeds f WHERE status = 'active'"
            " AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.feed_id = f.id)"
        )
    except Exception as error:
        return False, f"unhealthy: database {path} does not answer ({error})"
    finally:
        await db.close()
    feeds, last_checked = (row[0], row[1]) if row else (0, None)
    if not feeds:
        return True, "healthy: database answers; no feeds to check yet"
    if last_checked is None:
        return False, f"unhealthy: {feeds} feeds, none checked yet"
    silence = (now_ms - last_checked) / 1000
    if silence > settings.health.max_silence_seconds:
        return False, f"unhealthy: no feed checked for {silence:.0f} s"
    return True, f"healthy: {feeds} feeds; last check {silence:.0f} s ago"
