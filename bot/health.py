"""Is the bot healthy: does the database answer, and are feeds being checked?

Asked two ways with one rule (`judge`): `news-notifier healthcheck` from beside the bot
(the container's check), and the running bot's own /healthz on its listener
(`running_health`, for a load balancer or an orchestrator's probe)."""

from __future__ import annotations

import time

from bot.config import Settings
from bot.store import CheckActivity, Store
from bot.store.db import missing, shown_location


async def check_health(settings: Settings, now_ms: int | None = None) -> tuple[bool, str]:
    path = shown_location(settings.database.path)
    if missing(settings.database.path):
        return False, f"unhealthy: database {path} does not exist"
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    try:
        # Read-only and without the process lock: it runs beside the bot it checks.
        store = await Store.open(settings.database.path, exclusive=False, read_only=True)
    except Exception as error:
        return False, f"unhealthy: database {path} cannot be opened ({error})"
    try:
        activity = await store.stats.check_activity()
    except Exception as error:
        return False, f"unhealthy: database {path} does not answer ({error})"
    finally:
        await store.close()
    return judge(activity, now_ms, settings.health.max_silence_seconds)


async def running_health(store: Store, now_ms: int, max_silence_seconds: int) -> tuple[bool, str]:
    """The running bot's verdict for /healthz: its own store, not lost, answers a read,
    and feeds are being checked. Telegram's reachability is left out on purpose: an
    outage there is not mended by restarting this instance, and an instance taken out of a
    load balancer for it would also stop taking WebSub deliveries, which are stored and
    sent once Telegram is back."""
    if store.db.lost is not None:
        return False, f"unhealthy: database lost ({store.db.lost})"
    try:
        activity = await store.stats.check_activity()
    except Exception as error:
        return False, f"unhealthy: database does not answer ({type(error).__name__})"
    return judge(activity, now_ms, max_silence_seconds)


def judge(activity: CheckActivity, now_ms: int, max_silence_seconds: int) -> tuple[bool, str]:
    """Unhealthy when a feed has been due for longer than max_silence_seconds: the poller
    is stuck. A quiet spell with nothing due is fine: a feed a WebSub hub pushes is polled
    hourly, a quiet one may be polled as rarely, and the bot is healthy meanwhile."""
    if not activity.feeds:
        return True, "healthy: database answers; no feeds to check yet"
    overdue = (now_ms - (activity.first_due_ms or now_ms)) / 1000
    if activity.last_checked_ms is None:
        if overdue > max_silence_seconds:
            return False, f"unhealthy: {activity.feeds} feeds, none checked yet"
        return True, f"healthy: {activity.feeds} feeds, none due yet"
    silence = (now_ms - activity.last_checked_ms) / 1000
    if overdue > max_silence_seconds:
        if silence > max_silence_seconds:
            return False, f"unhealthy: no feed checked for {silence:.0f} s"
        return False, f"unhealthy: a feed due {overdue:.0f} s ago is not checked yet"
    return True, f"healthy: {activity.feeds} feeds; last check {silence:.0f} s ago"
