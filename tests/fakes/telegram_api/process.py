"""The fake Bot API in a child process, for benchmarks: its CPU time is not the client's."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Collection
from typing import Any

from tests.fakes.telegram_api.errors import JsonDict
from tests.fakes.telegram_api.server import DEFAULT_TOKEN, FakeTelegram


class FakeTelegramProcess:
    """A FakeTelegram served by a child process, so its CPU is not the client's.

    with FakeTelegramProcess(private_chats=range(1, 1001), limits=FloodLimits(enabled=False)):
        bot = telegram.Bot(fake.token, base_url=fake.base_url)
        ...
        fake.stats()  # {"requests": ..., "messages": ..., "retry_after": ..., "cpu": ...}

    `private_chats` are user ids whose private chats exist from the start (the child cannot
    be set up call by call); other keyword arguments go to FakeTelegram and must be
    picklable (so `clock` stays the default).
    """

    def __init__(self, *, private_chats: Collection[int] = (), **options: Any) -> None:
        self.options = options
        self.private_chats = list(private_chats)
        self.token: str = options.get("token", DEFAULT_TOKEN)
        self.port = 0
        self._context = multiprocessing.get_context("spawn")
        self._connection: Any = None
        self._process: Any = None

    def start(self, timeout: float = 30.0) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_serve_in_process, args=(child, self.private_chats, self.options), daemon=True
        )
        self._process.start()
        self._connection = parent
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError("the fake Bot API process did not start")
        self.port = parent.recv()

    def stats(self) -> JsonDict:
        """FakeTelegram.stats() plus `cpu`: the child's CPU seconds so far."""
        self._connection.send("stats")
        return self._connection.recv()

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self._connection.send("stop")
            self._connection.poll(5)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._process = None

    def __enter__(self) -> FakeTelegramProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"


def _serve_in_process(connection: Any, private_chats: list[int], options: JsonDict) -> None:
    asyncio.run(_serve(connection, private_chats, options))


async def _serve(connection: Any, private_chats: list[int], options: JsonDict) -> None:
    async with FakeTelegram(**options) as fake:
        for user_id in private_chats:
            fake.private_chat(fake.add_user(user_id))
        connection.send(fake.port)
        while True:
            command = await asyncio.to_thread(_receive, connection)
            if command == "stats":
                connection.send({**fake.stats(), "cpu": time.process_time()})
            else:  # "stop", or the parent went away
                break
    with contextlib.suppress(OSError):
        connection.send("stopped")


def _receive(connection: Any) -> str:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return "stop"
