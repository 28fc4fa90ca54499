"""What runs on python-telegram-bot's JobQueue: the poller's and the digests' ticks,
housekeeping, and the database file's check while nothing writes."""

from __future__ import annotations

import contextlib
import logging

from telegram.ext import JobQueue

from bot.clock import DAY_MS, HOUR_MS
from bot.store import DatabaseLostError, DatabaseUnavailableError
from bot.telegram.context import BotContext
from bot.usecases.instances import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)

POLL_TICK_SECONDS = 1.0
# Daily digests are checked this often; one falls due at most this late after its minute.
DIGEST_TICK_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 3600
# The database file's identity and folder are checked this often when nothing writes
# (every write checks the identity itself).
DATABASE_CHECK_SECONDS = 30.0


def schedule_jobs(job_queue: JobQueue[BotContext]) -> None:
    # first=0.1, not 0: PTB's JobQueue takes first=0 as "after one interval".
    job_queue.run_repeating(poll_tick, interval=POLL_TICK_SECONDS, first=0.1, name="poll")
    # A 10,000-chat minute takes longer than a tick (bench/digest.py: 6 s). Two
    # instances let the next tick run and return at once (fire_due's lock) instead of
    # APScheduler logging "maximum number of running instances reached" every tick.
    job_queue.run_repeating(
        digest_tick,
        interval=DIGEST_TICK_SECONDS,
        first=0.1,
        name="digests",
        job_kwargs={"max_instances": 2},
    )
    job_queue.run_repeating(
        housekeeping, interval=HOUSEKEEPING_SECONDS, first=60.0, name="housekeeping"
    )
    job_queue.run_repeating(database_check, interval=DATABASE_CHECK_SECONDS, name="database_check")
    job_queue.run_repeating(heartbeat, interval=HEARTBEAT_SECONDS, name="heartbeat")


async def poll_tick(context: BotContext) -> None:
    await context.runtime.poller.tick()


async def digest_tick(context: BotContext) -> None:
    await context.runtime.digests.fire_due()


async def heartbeat(context: BotContext) -> None:
    """This instance is alive (/stats shows when it last said so); dead ones are reaped."""
    with contextlib.suppress(DatabaseUnavailableError):
        await context.runtime.presence.beat()


async def housekeeping(context: BotContext) -> None:
    """Forget what no promise needs any more (old seen stories, old outbox rows)."""
    rt = context.runtime
    now = rt.clock.now_ms()
    stories = await rt.store.stories.purge(
        older_than_ms=now - int(rt.settings.dedupe.retention_days * DAY_MS)
    )
    keep_ms = max(7 * DAY_MS, int(rt.settings.delivery.duplicate_title_hours * HOUR_MS))
    rows = await rt.store.outbox.purge(older_than_ms=now - keep_ms)
    log.info("event=housekeeping stories_forgotten=%d outbox_rows_forgotten=%d", stories, rows)


async def database_check(context: BotContext) -> None:
    """Notice a deleted or replaced database file, or a folder gone read-only, while the
    bot is idle. The store reports it and its on_lost stops the run loop."""
    with contextlib.suppress(DatabaseLostError):
        await context.runtime.store.db.check()
