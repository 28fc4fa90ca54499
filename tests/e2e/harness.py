"""The real bot (python-telegram-bot, aiohttp transport, store, poller, sender) against the
fake Bot API and the local feed host, inside the test's event loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.clock import Clock
from bot.config import Settings
from bot.runtime import Runtime
from bot.store import Store
from bot.telegram.app import run
from tests.conftest import make_settings
from tests.fakes.telegram_api import FakeTelegram


@dataclass
class RunningBot:
    settings: Settings
    store: Store
    runtime: Runtime
    fake: FakeTelegram

    async def subscriptions(self, chat_id: int) -> list[str]:
        return [s.feed_url for s in await self.store.chats.subscriptions(chat_id)]


def bot_settings(tmp_path: Path, fake: FakeTelegram, **env: str) -> Settings:
    settings = make_settings(
        tmp_path, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.base_url, **env
    )
    # Short long-polls so a test's stop does not wait for one; fast shutdown.
    return dataclasses.replace(
        settings,
        telegram=dataclasses.replace(settings.telegram, polling_timeout=1, admin_cache_seconds=0),
        delivery=dataclasses.replace(settings.delivery, shutdown_grace_seconds=2),
    )


@asynccontextmanager
async def running_bot(
    settings: Settings, fake: FakeTelegram, clock: Clock | None = None
) -> AsyncIterator[RunningBot]:
    store = await Store.open(settings.database.path)
    stop = asyncio.Event()
    started: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run(settings, store, clock=clock, stop=stop, ready=started.set_result)
    )
    try:
        done, _ = await asyncio.wait(
            {task, started}, timeout=15, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # start-up failed: raise its error
        runtime = started.result()
        yield RunningBot(settings, store, runtime, fake)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            await store.close()
