"""An /import killed half-way: at the next start its progress message says it stopped and how
to finish, and sending the same file again skips the feeds the first run had added.

The real `news-notifier run` in a child process (tests/e2e/child.py), killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bot.i18n import t
from bot.opml import OpmlFeed, build_opml
from bot.store import Store
from tests.databases import Databases
from tests.e2e.child import Children
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.telegram_api import FakeTelegram

FEEDS = 40
# Each feed answers after this long: four checks at a time, the import would take 20 s, and
# the kill comes after its first progress edit (bot/telegram/files.py, every 2 s).
SLOW = 2.0


def path(n: int) -> str:
    return f"/slow{n}.xml"


def serve_slowly(feed_server: FeedServer) -> bytes:
    """FEEDS slow feeds, and an OPML file listing them."""
    for n in range(FEEDS):
        document = rss_document([FeedItem(f"Story {n}", f"https://n.test/{n}", guid=str(n))])
        feed_server.trickle(path(n), document, interval=SLOW, count=1)
    urls = [feed_server.url(path(n)) for n in range(FEEDS)]
    return build_opml([OpmlFeed(url, f"Feed {n}") for n, url in enumerate(urls)], title="mine")


async def subscribed(database: str, chat_id: int) -> list[str]:
    """Read while no child runs (the test then holds the database's lock)."""
    store = await Store.open(database)
    try:
        return [s.feed_url for s in await store.chats.subscriptions(chat_id)]
    finally:
        await store.close()


async def test_an_import_killed_half_way_is_told_at_start_and_the_file_again_finishes_it(
    tmp_path: Path, databases: Databases, feed_server: FeedServer
) -> None:
    opml = serve_slowly(feed_server)
    async with FakeTelegram() as fake:
        alice = fake.add_user(1001, "Alice")
        chat = fake.private_chat(alice)
        children = Children(tmp_path, fake, "")
        database = databases.new()
        try:
            first = await children.start(database, "run-1")
            fake.user_document(chat, alice, opml, "feeds.opml", caption="/import")
            [progress] = await fake.wait_for_messages(chat.id, 1, timeout=30)
            await fake.wait_for(lambda: bool(progress.edits), 15, "a progress edit")
            assert "checked" in progress.text and progress.text.endswith("…"), progress.text
            os.kill(first.pid, signal.SIGKILL)
            assert await first.exit_code(10) == -signal.SIGKILL

            added = await subscribed(database, chat.id)
            assert 0 < len(added) < FEEDS, added
            # From now on the feeds already added cannot be checked again (a check would
            # fail) and the others answer at once.
            for n in range(FEEDS):
                if feed_server.url(path(n)) in added:
                    feed_server.serve(path(n), b"", status=404)
                else:
                    feed_server.publish(path(n), [FeedItem(f"Story {n}", f"https://n.test/{n}")])

            second = await children.start(database, "run-2")
            interrupted = t("en", "import.interrupted", total=FEEDS)
            await fake.wait_for(lambda: progress.text == interrupted, 30, "the notice")

            before = len(fake.messages(chat.id))
            fake.user_document(chat, alice, opml, "feeds.opml", caption="/import")
            messages = await fake.wait_for_messages(chat.id, before + 2, timeout=30)
            summary = messages[-1].text
            assert summary.startswith(f"Import finished: {FEEDS} feed(s) in the file"), summary
            assert f"added: {FEEDS - len(added)}" in summary, summary
            assert f"already subscribed: {len(added)}" in summary, summary
            assert "failed: 0" in summary, summary
            second.process.send_signal(signal.SIGTERM)
            assert await second.exit_code(15) == 0, second.output()[-3000:]
        finally:
            await children.kill_all()

    assert await subscribed(database, chat.id) == [feed_server.url(path(n)) for n in range(FEEDS)]
    assert progress.text == interrupted  # told once; the finished import left nothing behind
    store = await Store.open(database)
    try:
        assert await store.imports.unfinished() == []
    finally:
        await store.close()
