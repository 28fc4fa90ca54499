"""The database file deleted while the bot runs: it must not go on accepting work into a
file nobody can reach (after a restart every subscription would be gone, unannounced). It
refuses the next write, says so in one line, and `news-notifier run` exits non-zero.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import bot.telegram.jobs
from bot.i18n import t
from bot.store import DatabaseLostError
from tests.e2e.child import Children
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.mark.sqlite_only  # a file that can be deleted
async def test_a_subscribe_after_the_database_was_deleted_is_refused_and_the_bot_exits(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.publish("/a.xml", [FeedItem("One", "https://n.test/1", guid="1")], title="A")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    children = Children(tmp_path, fake, "")
    database = tmp_path / "bot.sqlite3"
    try:
        child = await children.start(database, "run")
        fake.user_command(chat, alice, "start")
        await fake.wait_for_messages(chat.id, 1, timeout=30)  # running, the chat known

        os.unlink(database)  # an operator's `rm`, a volume swapped under the container
        fake.user_command(chat, alice, "subscribe", feed_server.url("/a.xml"))
        [_, reply] = await fake.wait_for_messages(chat.id, 2, timeout=30)
        assert "Subscribed" not in reply.text
        assert reply.text == t("en", "error.internal")

        assert await child.exit_code(within=30) == 1
    finally:
        await children.kill_all()
    output = child.output()
    [line] = [line for line in output.splitlines() if "event=database_lost" in line]
    assert " CRITICAL " in line and str(database) in line and "deleted" in line
    assert "Traceback" not in output, output[-3000:]


@pytest.mark.sqlite_only
async def test_an_idle_bot_notices_its_database_file_was_deleted(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The periodic check, sped up: nothing writes, yet the bot stops by itself.
    monkeypatch.setattr(bot.telegram.jobs, "DATABASE_CHECK_SECONDS", 0.2)
    settings = bot_settings(tmp_path, fake)
    with pytest.raises(DatabaseLostError, match="deleted"):
        async with running_bot(settings, fake) as running:
            noticed = asyncio.Event()
            stop_the_bot = running.store.db.on_lost
            assert stop_the_bot is not None

            def on_lost(error: DatabaseLostError) -> None:
                noticed.set()
                stop_the_bot(error)

            running.store.db.on_lost = on_lost
            os.unlink(settings.database.path)
            await asyncio.wait_for(noticed.wait(), 10)
