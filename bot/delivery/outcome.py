"""What a failed call to Telegram says about the message it carried.

Telegram has no idempotency key, so the one thing that matters about a failed send is
whether Telegram may have carried it out:

- NotSent: the request never reached Telegram (connection refused or unreachable, a
  connect or pool timeout, the connection closed while the request was being written).
  Sending it again cannot make a second copy.
- OutcomeUnknown: the request went out and no answer came (the answer timed out, the
  connection closed before it). A slow Telegram still carries out what it received, so
  sending again may make a second copy.

The transport (bot/delivery/transport.py) raises them and the sender (bot/delivery/sender.py)
decides on them. They are python-telegram-bot's NetworkError, and the timeouts its TimedOut,
so PTB's own handling of those (long polling's retries, the error handler) is unchanged.
"""

from __future__ import annotations

from telegram.error import NetworkError, TimedOut


class NotSent(NetworkError):
    """The request never reached Telegram: safe to send again."""


class NotSentTimedOut(TimedOut, NotSent):
    """No connection (or no free slot in the pool) in time: nothing was sent."""


class OutcomeUnknown(NetworkError):
    """The request went out and no answer came: Telegram may have carried it out."""


class OutcomeUnknownTimedOut(TimedOut, OutcomeUnknown):
    """The request went out and the answer did not come in time."""
