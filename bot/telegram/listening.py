"""The bot's HTTP listener in the running bot: built once by `run` when listener.listen
(NEWS_NOTIFIER_LISTEN) is set, with every part's routes, then started before updates are
taken and stopped before the poller (bot/telegram/app.py, start and stop_in_order).

`build_listener` is the one place routes are collected: a part that serves HTTP adds one
line there (aiohttp freezes the router when the listener starts).
"""

from __future__ import annotations

from bot.config import Settings
from bot.listener import Listener
from bot.runtime import Runtime


def build_listener(settings: Settings, runtime: Runtime) -> Listener | None:
    """The listener with /healthz (Runtime.health) and every part's routes; None when no
    address is set (nothing listens, no port is taken)."""
    address = settings.listener.listen
    if address is None:
        return None
    # A WebSub delivery carries a whole feed: the same cap as a fetched one.
    listener = Listener(
        address, max_body_bytes=settings.fetch.max_body_bytes, healthy=runtime.health
    )
    # One line per part that serves HTTP (Telegram's webhook and /metrics join here).
    if runtime.websub is not None:
        listener.add_routes(runtime.websub.routes())  # /websub/<token>: hubs' callbacks
    return listener
