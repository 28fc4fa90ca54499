"""`news-notifier run` started while the Bot API cannot be reached, or with a token Telegram
refuses: the real command in a child process (tests/e2e/child.py).

Unreachable is a state of the world (a container that starts before its network): the bot
says so in one line per attempt, tries again with backoff, and starts when Telegram answers.
A refused token is the operator's mistake: one line and exit 2, as for a missing token.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.databases import Databases
from tests.e2e.child import Child, Children
from tests.e2e.test_crash_trials import until
from tests.fakes.telegram_api import FakeTelegram

UNREACHABLE_FOR = 8.0  # seconds the Bot API's address refuses connections (issue 11)
QUIET = '[log]\nlevel = "WARNING"\n'


def refusing_socket() -> socket.socket:
    """A loopback port that refuses connections while this socket lives: bound, not
    listening (and so not taken by another process before the fake listens there)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def children_of(tmp_path: Path, fake: FakeTelegram, settings: str) -> AsyncIterator[Children]:
    children = Children(tmp_path, fake, settings)
    try:
        yield children
    finally:
        await children.kill_all()


def attempts(child: Child) -> list[str]:
    return [line for line in child.output().splitlines() if "event=telegram_unreachable" in line]


async def test_started_while_telegram_is_unreachable_it_retries_then_runs(
    tmp_path: Path, databases: Databases
) -> None:
    with refusing_socket() as blocker:
        port = blocker.getsockname()[1]
        fake = FakeTelegram(port=port)
        async with children_of(tmp_path, fake, "") as children:
            child = await children.start(databases.new(), "run")
            await asyncio.sleep(UNREACHABLE_FOR)
            assert child.process.returncode is None, child.output()
            refused = len(attempts(child))
            assert refused >= 2, child.output()

            blocker.close()  # the address answers from now on
            async with fake:
                alice = fake.add_user(1001, "Alice")
                chat = fake.private_chat(alice)
                fake.user_command(chat, alice, "start")
                [welcome] = await fake.wait_for_messages(chat.id, 1, timeout=40)
                assert "News Notifier" in welcome.text
                child.process.send_signal(signal.SIGTERM)
                assert await child.exit_code(10) == 0, child.output()[-3000:]
    output = child.output()
    assert "Traceback" not in output, output
    lines = attempts(child)
    assert len(lines) >= refused and f"127.0.0.1:{port}" in lines[0], lines
    assert all("retry_in=" in line for line in lines), lines
    assert "event=started" in output


async def test_a_stop_while_telegram_is_unreachable_exits_0_at_once(
    tmp_path: Path, databases: Databases
) -> None:
    with refusing_socket() as blocker:
        fake = FakeTelegram(port=blocker.getsockname()[1])
        async with children_of(tmp_path, fake, "") as children:
            child = await children.start(databases.new(), "run")
            assert await until(lambda: len(attempts(child)) >= 2, 15), child.output()
            child.process.send_signal(signal.SIGINT)
            assert await child.exit_code(5) == 0, child.output()
            assert "Traceback" not in child.output()


async def test_a_stop_while_telegram_does_not_answer_exits_0_at_once(
    tmp_path: Path, databases: Databases
) -> None:
    """No answer at all (a network that drops packets): the stop does not wait for it."""
    async with FakeTelegram() as fake, children_of(tmp_path, fake, "") as children:
        fake.delay(60, methods=["getMe"])
        child = await children.start(databases.new(), "run")
        # Counted when asked (wait_for_request would see it only once answered).
        assert await until(lambda: fake.request_counts["getme"] >= 1, 15), child.output()
        child.process.send_signal(signal.SIGTERM)
        assert await child.exit_code(5) == 0, child.output()
        assert "Traceback" not in child.output()


async def test_a_token_telegram_refuses_exits_2_with_one_line(
    tmp_path: Path, databases: Databases
) -> None:
    async with FakeTelegram() as fake, children_of(tmp_path, fake, QUIET) as children:
        wrong = "987654321:AAHthisTOKENisNOTknownTOtheFAKEserver00"
        children.env["TELEGRAM_BOT_TOKEN"] = wrong
        child = await children.start(databases.new(), "run")
        assert await child.exit_code(20) == 2, child.output()
    output = child.output()
    [line] = output.strip().splitlines()
    assert line.startswith("news-notifier: ") and "TELEGRAM_BOT_TOKEN" in line, line
    assert wrong.split(":")[1] not in output
