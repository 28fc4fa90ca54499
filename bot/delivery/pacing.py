"""One budget for Telegram's limits, shared by the sender (alerts, digests) and command replies.

Telegram allows about 30 messages a second in all, one a second to one chat and twenty a
minute to one group. The pacer spaces messages evenly (no bursts for any window to catch)
and remembers, per chat, when the next message may go; a flood wait (429 retry_after) moves
only that chat's time.

python-telegram-bot's AIORateLimiter is not used: it pauses every chat on one flood wait and
does not pace private chats. `PacedRateLimiter` plugs this pacer into PTB for replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.config import DeliverySettings

log = logging.getLogger(__name__)

# Bot API methods that put a new message in a chat (what Telegram's limits count).
_SENDING_PREFIXES = ("send", "copymessage", "forwardmessage")


class Pacer:
    def __init__(self, settings: DeliverySettings) -> None:
        self.global_per_second = settings.global_per_second
        self.global_gap = 1.0 / settings.global_per_second
        self.share = 1.0
        self.private_gap = 1.0 / settings.chat_per_second
        self.group_gap = max(self.private_gap, 60.0 / settings.group_per_minute)
        self.next_global = 0.0
        self._next_chat: dict[int, float] = {}

    def take_share(self, share: float) -> None:
        """Use `share` (0 < share <= 1) of the bot's overall rate: the rest belongs to other
        bots sending for the same token (bot/delivery/leadership.py, budget_share)."""
        self.share = share
        self.global_gap = 1.0 / (self.global_per_second * share)

    def gap(self, chat_id: int) -> float:
        """Groups, supergroups and channels have negative ids; users' chats positive."""
        return self.group_gap if chat_id < 0 else self.private_gap

    def chat_ready_at(self, chat_id: int) -> float:
        return self._next_chat.get(chat_id, 0.0)

    def earliest(self, chat_id: int) -> float:
        return max(self.next_global, self.chat_ready_at(chat_id))

    def book(self, chat_id: int, now: float) -> None:
        """A message to `chat_id` starts now: take its slot in both budgets."""
        # A wake-up a little late keeps the planned spacing (slots stay `gap` apart on the
        # schedule, so no window holds more than the rate); later than a gap, start afresh.
        if now - self.next_global < self.global_gap:
            self.next_global = max(now - self.global_gap, self.next_global) + self.global_gap
        else:
            self.next_global = now + self.global_gap
        self._next_chat[chat_id] = max(now + self.gap(chat_id), self._next_chat.get(chat_id, 0))
        if len(self._next_chat) > 200_000:  # forget chats whose slot has long passed
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}

    def hold(self, chat_id: int, until: float) -> None:
        """Nothing more to this chat before `until` (a flood wait, a retry backoff)."""
        self._next_chat[chat_id] = max(until, self._next_chat.get(chat_id, 0.0))

    def move(self, old_chat_id: int, new_chat_id: int) -> None:
        if old_chat_id in self._next_chat:
            self.hold(new_chat_id, self._next_chat.pop(old_chat_id))

    async def acquire(self, chat_id: int) -> None:
        """Wait for this chat's next slot (and the global one), then book it."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            start = self.earliest(chat_id)
            if start <= now:
                self.book(chat_id, now)
                return
            await asyncio.sleep(start - now)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class PacedRateLimiter(BaseRateLimiter[int]):
    """Paces the Application bot's messages (command replies) with the shared Pacer.

    A 429 holds only the chat it names, then the call is tried again (up to max_retries).
    """

    def __init__(self, pacer: Pacer, max_retries: int = 2) -> None:
        self.pacer = pacer
        self.max_retries = max_retries
        # Told of every 429 (the app wires it to the metrics' flood waits of replies).
        self.on_flood_wait: Callable[[], None] | None = None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[Any] | None]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[Any] | None:
        chat_id = data.get("chat_id")
        method = endpoint.lower()
        # A chat action ("typing…") is not a message: pacing it would delay the reply.
        paced = (
            isinstance(chat_id, int)
            and method.startswith(_SENDING_PREFIXES)
            and method != "sendchataction"
        )
        for attempt in range(self.max_retries + 1):
            if paced:
                await self.pacer.acquire(chat_id)  # type: ignore[arg-type]
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if self.on_flood_wait is not None:
                    self.on_flood_wait()
                if attempt >= self.max_retries or not isinstance(chat_id, int):
                    raise
                wait = _seconds(error.retry_after)
                log.warning(
                    "event=flood_wait chat=%s retry_after=%.0f method=%s", chat_id, wait, endpoint
                )
                self.pacer.hold(chat_id, asyncio.get_running_loop().time() + wait)
        raise AssertionError("unreachable")
