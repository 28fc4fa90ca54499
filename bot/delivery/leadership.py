"""Leadership: of several `news-notifier run` processes on one PostgreSQL database, exactly one
sends (Telegram's limits belong to the bot token, not to a process) and takes updates by long
polling (Telegram answers 409 to a second getUpdates). The others stand by: they check feeds
and make digests like the leader, and try for the lead every second. On SQLite the one bot
leads from its start to its stop.

The leader holds an advisory lock on a connection of its own (bot/store/postgres.py says how
fast a dead or cut-off leader's lock is freed: within about 9 s). Its life:

- Elected: the "sent" marks it still holds from an earlier leadership are written first
  (else it does not try), then the lock is taken, then the sender starts by reading the
  whole outbox (a notice may have been missed while no one listened), then updates.
- Deposed (the lock's connection closed, or a ping went unanswered): the sender halts at
  once, before anything is awaited (no new send starts), updates stop, sends in flight get
  DEPOSED_GRACE to finish and their marks are written if the database answers, else kept.
  Only then is the lead tried again, once those marks are written.

Why no message goes twice beyond the in-flight rule (tests/e2e/test_crash.py): a row is
sent again only by a leader that loads it while it is still pending. The old leader stops
starting sends when its lock's connection closes (a restart of PostgreSQL, a killed
process: at once) or within 3 s of a cut (its ping), while the server frees the lock only
when that session ends (at once, or after 8 s of silence): so the two never send together,
and what the next leader sends again is what the old one had in flight or had not yet
marked (FLUSH_EVERY's worth; a cut of the network costs up to the 3 s of sends before the
ping fails). The old leader itself sends none of it again: it reads the outbox afresh, and
only after its own marks are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from bot.delivery.sender import Sender
from bot.store import Database, DatabaseLostError, DatabaseUnavailableError

log = logging.getLogger(__name__)

TRY_EVERY = 1.0  # seconds between a standby's tries for the lead (a leader's pings)
# Seconds a deposed leader's sends in flight get to finish: well within the 8 s before a cut
# off leader's lock can be taken by another (1 s to the ping, 2 s for its answer, this).
DEPOSED_GRACE = 2.0

# Command replies when every bot serves updates (webhook mode behind a load balancer): they
# count against the same per-bot limits as alerts, so each standby paces its replies within
# a fixed share of the overall rate and the leader sends within the rest (budget_share). A
# share rather than replies through the leader: a standby answers at once, with no trip
# through the database, and a command burst at one bot waits at most burst / (share × 30)
# seconds (10 commands at 3 a second: 3.3 s). Replies and alerts to one chat are not paced
# against each other across bots; Telegram's per-chat limit is 1 a second and a command's
# reply is one message. The live bots are counted every BUDGET_EVERY seconds.
STANDBY_REPLY_SHARE = 0.1
LEADER_MIN_SHARE = 0.5  # alerts keep at least half of the rate, however many bots run
BUDGET_EVERY = 5.0

Role = Literal["leader", "standby"]


def budget_share(instances: int, *, leading: bool, replies_everywhere: bool) -> float:
    """This bot's share of the overall rate. In long-polling mode only the leader takes
    updates, so its replies already share the sender's pacer: it keeps the whole rate."""
    if not replies_everywhere or instances <= 1:
        return 1.0
    standby = min(STANDBY_REPLY_SHARE, (1.0 - LEADER_MIN_SHARE) / (instances - 1))
    return 1.0 - (instances - 1) * standby if leading else standby


Callback = Callable[[], Awaitable[None]]


class Leadership:
    """Elects this bot when it may lead, deposes it when it may not; `run` it until stopped.

    `on_elected` and `on_deposed` are what the Telegram layer starts and stops with the
    lead (getUpdates in long-polling mode, the notices of imports a kill cut short).
    """

    def __init__(
        self,
        db: Database,
        sender: Sender,
        *,
        try_every: float = TRY_EVERY,
        grace: float = DEPOSED_GRACE,
        replies_everywhere: bool = False,
    ) -> None:
        self.db = db
        self.sender = sender
        self.replies_everywhere = replies_everywhere  # webhook mode: every bot answers
        self._budget_at = 0.0
        self.try_every = try_every
        self.grace = grace
        self.on_elected: list[Callback] = []
        self.on_deposed: list[Callback] = []
        self.elections = 0
        self._leading = False
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        db.on_leadership_lost = self._lost_now
        db.on_outbox_rows = sender.wake  # a NOTIFY from any bot's writer of outbox rows

    @property
    def role(self) -> Role:
        return "leader" if self._leading else "standby"

    async def start(self) -> None:
        """Try for the lead once now (a bot alone leads before it takes its first update),
        then every `try_every` seconds in the background."""
        await self._campaign_safely()
        if not self._leading:
            log.info("event=leadership role=standby database=%s", self.db.location)
        self._task = asyncio.create_task(self._run(), name="leadership")

    async def stop(self, grace: float) -> None:
        """A clean stop: stop trying, and if leading, stop updates and the sender (sends in
        flight get `grace`), record what was sent, and let the lock go for a standby."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if not self._leading:
            return
        await self._step_down(grace, reason="stopping")
        with contextlib.suppress(DatabaseUnavailableError, DatabaseLostError):
            await self.db.resign()

    # --- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            waits = [asyncio.ensure_future(e.wait()) for e in (self._stopping, self._lost)]
            try:
                await asyncio.wait(
                    waits, timeout=self.try_every, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiter in waits:
                    waiter.cancel()
            if self._stopping.is_set():
                return
            if self.db.lost is not None:
                return  # the run loop stops on it (Database.on_lost)
            await self._campaign_safely()
            await self._share_budget()

    async def _campaign_safely(self) -> None:
        try:
            await self._campaign()
        except (DatabaseUnavailableError, DatabaseLostError):
            pass  # said by the store, once; tried again at the next turn
        except Exception:
            log.exception("event=leadership_failed")

    async def _campaign(self) -> None:
        """One turn: a leader checks its lock, a standby tries to take it."""
        self._lost.clear()
        if self._leading:
            if await self.db.still_leading():
                return
            await self._step_down(self.grace, reason="lock lost")
        if self.sender.unrecorded:
            await self.sender.flush()  # raises while the database cannot be reached
        if await self.db.lead():
            await self._elect()

    async def _share_budget(self) -> None:
        """Every BUDGET_EVERY seconds in webhook mode: this bot's share of the rate, from the
        number of bots running now."""
        loop = asyncio.get_running_loop()
        if not self.replies_everywhere or loop.time() - self._budget_at < BUDGET_EVERY:
            return
        self._budget_at = loop.time()
        with contextlib.suppress(DatabaseUnavailableError, DatabaseLostError):
            instances = await self.db.live_instances()
            share = budget_share(
                instances, leading=self._leading, replies_everywhere=self.replies_everywhere
            )
            if share != self.sender.pacer.share:
                self.sender.pacer.take_share(share)
                log.info("event=send_budget instances=%d share=%.2f", instances, share)

    def _lost_now(self) -> None:
        """The store saw the lock's connection close: no new send from now on."""
        self.sender.halt()
        self._lost.set()

    async def _elect(self) -> None:
        self._leading = True
        self.elections += 1
        log.info("event=leadership role=leader database=%s", self.db.location)
        await self.sender.start()
        for callback in self.on_elected:
            try:
                await callback()
            except Exception:
                log.exception("event=leader_start_failed")

    async def _step_down(self, grace: float, *, reason: str) -> None:
        """Stop sending (at once) and taking updates; finish what is in flight within
        `grace`; write the marks if the database answers, else keep them."""
        self._leading = False
        self.sender.halt()
        if reason != "stopping":
            log.warning("event=leadership_lost reason=%r action=%r", reason, "standing by")
        for callback in self.on_deposed:
            try:
                await callback()
            except Exception:
                log.exception("event=leader_stop_failed")
        try:
            await self.sender.stop(grace)
        except DatabaseUnavailableError:
            log.info("event=sent_marks_kept count=%d", self.sender.unrecorded)
        except DatabaseLostError:
            pass  # reported where it was found; the run loop stops on it
