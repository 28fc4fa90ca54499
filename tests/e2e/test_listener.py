"""The HTTP listener in the running bot (NEWS_NOTIFIER_LISTEN): started by `run` before any
update is taken, serving /healthz with the bot's own verdict, gone when the bot stops; an
address in use stops `news-notifier run` with one line and exit 2, before anything is sent."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from tests.databases import Databases
from tests.e2e.harness import bot_settings, running_bot
from tests.e2e.test_start_offline import QUIET, children_of
from tests.fakes.feed_server import FeedServer
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import free_port


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


async def get(url: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_running_bot_serves_healthz_and_frees_the_port_when_it_stops(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{port}")
    healthz = f"http://127.0.0.1:{port}/healthz"
    feed_server.publish("/a.xml", [])
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(settings, fake):
        assert await get(healthz) == (200, "healthy: database answers; no feeds to check yet")
        fake.user_command(chat, alice, "subscribe", feed_server.url("/a.xml"))
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        status, text = await get(healthz)
        assert status == 200 and text.startswith("healthy: 1 feeds; last check "), text
        assert (await get(f"http://127.0.0.1:{port}/nothing-here"))[0] == 404
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(healthz)


async def test_without_an_address_nothing_listens(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []
    monkeypatch.setattr("bot.listener.Listener.start", lambda self: started.append(self))
    async with running_bot(bot_settings(tmp_path, fake), fake):
        pass
    assert started == []


async def test_an_address_in_use_exits_2_with_one_line_before_taking_updates(
    tmp_path: Path, databases: Databases
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeTelegram() as fake, children_of(tmp_path, fake, QUIET) as children:
            children.env["NEWS_NOTIFIER_LISTEN"] = f"127.0.0.1:{port}"
            child = await children.start(databases.new(), "run")
            assert await child.exit_code(60) == 2, child.output()
            assert fake.requests_for("getUpdates") == []
            assert fake.requests_for("setMyCommands") == []
    [line] = child.output().strip().splitlines()
    assert line.startswith(f"news-notifier: cannot listen on 127.0.0.1:{port} ("), line
    assert "(Address already in use)" in line and "NEWS_NOTIFIER_LISTEN" in line, line
