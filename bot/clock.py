"""One clock for the whole bot, so tests can move time instead of waiting for it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

# Time in the bot is epoch milliseconds; these are its units.
SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in epoch milliseconds."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1000)

    def set(self, when: datetime) -> None:
        self._now = int(when.timestamp() * 1000)

    def set_ms(self, epoch_ms: int) -> None:
        self._now = epoch_ms


def to_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
