"""The context every handler and job is given, typed (python-telegram-bot's ContextTypes, as
its contexttypesbot.py example does): `context.runtime` is the bot's Runtime, and
`context.bot_data` a BotData, never a dictionary read by key.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot, JobQueue

from bot.runtime import Runtime
from bot.telegram.access import Access


class BotData:
    """What the Application keeps for the whole run (its bot_data). python-telegram-bot
    makes it with no arguments before the runtime exists; `attach` completes it."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None
        self._access: Access | None = None
        # Every command name a CommandHandler takes: the catch-all for unknown commands
        # leaves these alone.
        self.commands: set[str] = set()
        self.importing: set[int] = set()  # chats with an /import running

    def attach(self, runtime: Runtime) -> None:
        self._runtime = runtime
        telegram = runtime.settings.telegram
        self._access = Access(telegram.allowed_users, telegram.admin_cache_seconds)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("no runtime attached to the application yet")
        return self._runtime

    @property
    def access(self) -> Access:
        if self._access is None:
            raise RuntimeError("no runtime attached to the application yet")
        return self._access


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    @property
    def runtime(self) -> Runtime:
        return self.bot_data.runtime

    @property
    def access(self) -> Access:
        return self.bot_data.access


CONTEXT_TYPES = ContextTypes(context=BotContext, bot_data=BotData)
BotApplication: TypeAlias = Application[
    ExtBot[None], BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[BotContext]
]
