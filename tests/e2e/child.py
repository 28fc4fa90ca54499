"""The real `news-notifier run` (python -m bot run) as a child process of the test, against
the fake Bot API and the local feed host running in the test's event loop, so that a test
can kill it (SIGKILL), stop it (SIGINT, SIGTERM) and start it again on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tests.fakes.telegram_api import FakeTelegram
from tests.paths import REPO

Output = int | IO[bytes]  # what asyncio.create_subprocess_exec takes for stdout and stderr


class Child:
    """One `news-notifier run`; its output (stdout and stderr) goes to a file."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, note: str = "") -> None:
        self.process = process
        self.log = log
        self.note = note  # starts the message of exit_code's timeout (a seed, say)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, event: str) -> Callable[[], bool]:
        return lambda: f"event={event} " in self.output()

    async def exit_code(self, within: float) -> int:
        try:
            async with asyncio.timeout(within):
                return await self.process.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.note}news-notifier run (pid {self.pid}) still running after {within}s;"
                f" output:\n{self.output()[-3000:]}"
            ) from None


class Children:
    """Starts children with a settings file (TOML text) against the fake; whatever a test
    leaves running is killed by kill_all (call it in teardown). Feeds are polled every
    second and may be on loopback; each start names the database it runs on."""

    def __init__(
        self, tmp_path: Path, fake: FakeTelegram, settings: str, *, note: str = ""
    ) -> None:
        self.tmp_path = tmp_path
        self.note = note
        config = tmp_path / "settings.toml"
        config.write_text(settings)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NEWS_NOTIFIER_")},
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_BASE_URL": fake.base_url,
            "NEWS_NOTIFIER_CONFIG": str(config),
            "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWS_NOTIFIER_POLL_INTERVAL": "1",
        }
        self.started: list[Child] = []

    async def spawn(
        self, database: Path | str, stdout: Output, stderr: Output
    ) -> asyncio.subprocess.Process:
        """A bare `news-notifier run` on `database`, left to the caller (not in kill_all)."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=REPO,
            env={**self.env, "NEWS_NOTIFIER_DATABASE": str(database)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )

    async def start(self, database: Path | str, name: str) -> Child:
        """A child on `database`, its output in tmp_path/<name>.log."""
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as output:
            process = await self.spawn(database, output, asyncio.subprocess.STDOUT)
        child = Child(process, log, self.note)
        self.started.append(child)
        return child

    async def kill_all(self) -> None:
        for child in self.started:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
