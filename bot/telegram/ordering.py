"""Updates of one chat are handled in order; different chats are handled concurrently, and
no chat can make another wait.

A user who sends `/subscribe URL` and then `/mode 1 digest` expects the second to see the
first's result, while a slow feed check in one chat must not hold up every other chat.

python-telegram-bot takes a slot of its own semaphore before `do_process_update` runs, so an
update waiting for its chat's turn would hold a slot that another chat needs: one chat's
backlog would fill them all. Its semaphore is therefore made too wide ever to block, and the
bound on handlers running at once is taken here, only when the chat's turn has come.

Nor may one chat queue work without bound. Telegram lets the bot send a chat one message a
second (a group twenty a minute: the Pacer's gap), so a chat that sends commands faster than
that cannot be answered anyway. Each chat has a budget of commands, refilled at the pace its
replies may go and holding at most COMMAND_BURST; a command beyond it is dropped, and so is
any input beyond MAX_WAITING updates of the chat already waiting. The first drop of a burst
is answered with one "slow down" reply (`refused`, wired by the app); every drop is counted
(`count`: the `too_fast` counter of /stats).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

from bot.delivery.pacing import Pacer

log = logging.getLogger(__name__)

RUNNING = 32  # handlers running at once, across all chats
COMMAND_BURST = 5  # commands of one chat taken at once before its pace applies
MAX_WAITING = 20  # updates of one chat waiting for their turn (any kind of input)
COUNT_EVERY = 1.0  # seconds: drops are added to the store's counters at most this often
FORGET_AFTER = 10_000  # chats remembered before rested ones are swept out
# python-telegram-bot's semaphore: wider than any number of updates that can be waiting.
_NEVER_BLOCKS = 1 << 30


@dataclass(slots=True)
class ChatLane:
    """One chat's turn (its lock), what waits for it, and its budget of commands."""

    stamp: float  # when `budget` was last brought up to date
    budget: float = COMMAND_BURST
    waiting: int = 0  # updates holding or waiting for the lock
    warned: bool = False  # this burst's first drop was answered
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def refill(self, now: float, per_second: float) -> None:
        self.budget = min(COMMAND_BURST, self.budget + (now - self.stamp) * per_second)
        self.stamp = now

    def rested(self, now: float, per_second: float) -> bool:
        """Nothing waits and the budget is whole again: the lane is as good as new."""
        return not self.waiting and self.budget + (now - self.stamp) * per_second >= COMMAND_BURST


def is_input(update: Update) -> bool:
    """What a user can send at will: a button press, a message with text, caption or file.
    Member changes and service messages (a group's migration) are never dropped."""
    if update.callback_query is not None:
        return True
    message = update.message or update.channel_post
    return message is not None and bool(
        message.text or message.caption or message.effective_attachment
    )


def is_command(update: Update) -> bool:
    """A command for this bot: `/name`, or `/name@thisbot` (not one for another bot)."""
    message = update.message or update.channel_post
    text = (message.text or message.caption or "") if message else ""
    if not text.startswith("/"):
        return False
    _name, _, addressee = text.split(maxsplit=1)[0].partition("@")
    if not addressee:
        return True
    try:
        username = update.get_bot().username
    except RuntimeError:  # no bot attached: cannot be another bot's either
        return True
    return addressee.lower() == (username or "").lower()


class PerChatUpdateProcessor(BaseUpdateProcessor):
    def __init__(self, pacer: Pacer, running: int = RUNNING) -> None:
        super().__init__(_NEVER_BLOCKS)
        self.pacer = pacer
        self._running = asyncio.Semaphore(running)
        self._lanes: dict[int, ChatLane] = {}
        # Wired by the app: the "slow down" reply (True: the first drop of a burst) or, for
        # a button press, its answer; and the store's counter.
        self.refused: Callable[[Update, bool], None] | None = None
        self.count: Callable[[int], Awaitable[None]] | None = None
        self.dropped = 0  # since start
        self._uncounted = 0
        self._counting: asyncio.Task[None] | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            async with self._running:
                await coroutine
            return
        assert isinstance(update, Update)
        lane = self._lane(chat.id)
        if not self._admit(update, chat.id, lane):
            self._drop(update, chat.id, lane, coroutine)
            return
        lane.waiting += 1
        try:
            async with lane.lock, self._running:
                await coroutine
        finally:
            lane.waiting -= 1
            if lane.rested(asyncio.get_running_loop().time(), self._pace(chat.id)):
                self._lanes.pop(chat.id, None)

    def _pace(self, chat_id: int) -> float:
        """Commands a second the chat's replies allow."""
        return 1.0 / self.pacer.gap(chat_id)

    def _lane(self, chat_id: int) -> ChatLane:
        lane = self._lanes.get(chat_id)
        if lane is None:
            now = asyncio.get_running_loop().time()
            if len(self._lanes) >= FORGET_AFTER:
                self._lanes = {
                    c: kept
                    for c, kept in self._lanes.items()
                    if not kept.rested(now, self._pace(c))
                }
            lane = self._lanes[chat_id] = ChatLane(stamp=now)
        return lane

    def _admit(self, update: Update, chat_id: int, lane: ChatLane) -> bool:
        if not is_input(update):
            return True
        command = is_command(update)
        if command:
            lane.refill(asyncio.get_running_loop().time(), self._pace(chat_id))
            if lane.budget >= COMMAND_BURST:  # the chat was quiet: a new burst may be told
                lane.warned = False
        if lane.waiting >= MAX_WAITING or (command and lane.budget < 1):
            return False
        if command:
            lane.budget -= 1
        return True

    def _drop(
        self, update: Update, chat_id: int, lane: ChatLane, coroutine: Awaitable[Any]
    ) -> None:
        if asyncio.iscoroutine(coroutine):
            coroutine.close()  # never started: python-telegram-bot's handling of the update
        self.dropped += 1
        self._uncounted += 1
        if self._counting is None and self.count is not None:
            self._counting = asyncio.create_task(self._count_later())
        tell = not lane.warned
        if tell:
            lane.warned = True
            log.warning("event=chat_too_fast chat=%d waiting=%d", chat_id, lane.waiting)
        else:
            log.debug("event=update_dropped chat=%d", chat_id)
        if self.refused is not None and (tell or update.callback_query is not None):
            self.refused(update, tell)

    async def _count_later(self) -> None:
        await asyncio.sleep(COUNT_EVERY)
        self._counting = None
        await self._write_count()

    async def _write_count(self) -> None:
        count, self._uncounted = self._uncounted, 0
        if count and self.count is not None:
            try:
                await self.count(count)
            except Exception:  # a lost count is no reason to stop handling updates
                log.exception("event=counter_failed name=too_fast")

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        """The drops not yet counted are counted now (the store is still open)."""
        if self._counting is not None:
            self._counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._counting
            self._counting = None
        await self._write_count()
