"""Telegram's flood control: how many messages a bot may send, per chat and overall.

FloodControl admits or refuses each message-creating call under FloodLimits; a refused call
is answered 429 "Too Many Requests: retry after N" with ResponseParameters.retry_after.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.telegram_api.errors import ApiError


@dataclass
class FloodLimits:
    """Telegram's broadcast limits, per bot. Changes apply at once (fields are read per send).

    - one chat: `chat_per_second` sustained with bursts of `chat_burst` (a token bucket).
      Telegram asks for at most one message a second per chat and tolerates short bursts;
      the default burst of 2 absorbs timer jitter of a bot that paces itself at 1/s, while a
      third message in the same second is refused.
    - one group, supergroup or channel (negative chat id): at most `group_per_minute`
      messages in any 60 seconds (a sliding window), on top of the per-chat bucket.
    - all chats together: `global_per_second` with bursts of `global_burst`.
    Only methods that create messages (send*, copy*, forward*) count; a refused call does
    not. Set `enabled = False` for throughput benchmarks.
    """

    enabled: bool = True
    chat_per_second: float = 1.0
    chat_burst: int = 2
    group_per_minute: int = 20
    global_per_second: float = 30.0
    global_burst: int = 30


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float

    def wait(self, now: float, rate: float, capacity: float) -> float:
        """Seconds until one token is available (0 when one is), after refilling."""
        self.tokens = min(capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / rate


class FloodControl:
    """Admits or refuses each message-creating call; counts refusals per chat."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._chats: dict[int, _Bucket] = {}
        self._groups: dict[int, deque[float]] = {}
        self._global = _Bucket(float(limits.global_burst), clock())
        self.refused: Counter[int] = Counter()

    def admit(self, chat_id: int) -> int:
        """0 if the message may go now (and count it), else Telegram's retry_after seconds."""
        limits = self.limits
        if not limits.enabled:
            return 0
        now = self._clock()
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Bucket(float(limits.chat_burst), now)
        wait = max(
            chat.wait(now, limits.chat_per_second, limits.chat_burst),
            self._global.wait(now, limits.global_per_second, limits.global_burst),
        )
        window = None
        if chat_id < 0:
            window = self._groups.setdefault(chat_id, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                wait = max(wait, window[0] + 60 - now)
        if wait > 0:
            self.refused[chat_id] += 1
            return max(1, math.ceil(wait))
        chat.tokens -= 1
        self._global.tokens -= 1
        if window is not None:
            window.append(now)
        return 0


def too_many_requests(retry_after: int) -> ApiError:
    """Telegram's answer to a message over the limits: 429 with retry_after seconds."""
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )
