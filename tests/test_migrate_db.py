"""`news-notifier migrate-db --to postgresql://…`: a SQLite database moved into an empty
PostgreSQL one, as an operator runs it (the command in a child process).

The source is the bot's own SQLite database (NEWS_NOTIFIER_DATABASE), filled through the
store as the bot fills it; the target is a fresh schema of the PostgreSQL test database
(tests/databases.py). These tests always need both, whatever the backend parameter is.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.feeds.pipeline import parse_and_normalize
from bot.models import Delivery, Entry, NewStory, Recipient
from bot.store import Store
from bot.store.db import migrations
from bot.store.migrate import NOT_COPIED, TABLES
from tests.databases import Databases
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import record_entries
from tests.test_cli import cli

READER = 1001  # a private chat with keywords and settings, owed two alerts
DIGESTER = 1002  # a private chat that follows the feed in digest mode, owed a notice
GROUP = -1001234567890  # a supergroup with a digest schedule in a forum topic
NOTICE = "A notice that was waiting in the outbox"
FEED_PATH = "/moving.xml"


@pytest.fixture
def postgresql(tmp_path: Path) -> Iterator[Databases]:
    made = Databases("postgresql", tmp_path)
    try:
        yield made
    finally:
        made.drop()


def migrate(source: str, target: str) -> Any:
    return cli("migrate-db", "--to", target, env={"NEWS_NOTIFIER_DATABASE": source})


def items(now: datetime) -> list[FeedItem]:
    return [
        FeedItem(
            f"Kremlin story {n}",
            f"https://news.test/story-{n}",
            guid=f"story-{n}",
            pub_date=now - timedelta(minutes=10 - n),
            description=f"<p>The lead of story {n}.</p>",
        )
        for n in (1, 2, 3)
    ]


def entries_of(feed_url: str, feed_id: int, now_ms: int, served: list[FeedItem]) -> list[Entry]:
    """The entries exactly as the bot makes them when it checks the feed."""
    body = rss_document(served, title="Moving news")
    return parse_and_normalize(
        body, url=feed_url, content_type=None, feed_id=feed_id, now_ms=now_ms
    ).entries


def alert_reader(story: NewStory, recipients: Sequence[Recipient]) -> list[Delivery]:
    return [Delivery(r.chat_id, r.thread_id, "kremlin") for r in recipients if r.chat_id == READER]


async def fill(source: str, feed_url: str, served: list[FeedItem]) -> None:
    """What an operator's database holds: chats with settings, subscriptions (instant,
    digest), keywords, digest schedules, a checked feed with its seen stories, alerts
    sent and alerts and a notice still owed."""
    now = int(time.time() * 1000)
    store = await Store.open(source)
    try:
        feed_id = await store.feeds.add(feed_url, title="Moving news", site_url="", now_ms=now)
        for chat_id, kind in ((READER, "private"), (DIGESTER, "private"), (GROUP, "supergroup")):
            await store.chats.upsert(
                chat_id, kind=kind, title=f"chat {chat_id}", language="en", now_ms=now
            )
            thread_id = 7 if chat_id == GROUP else None
            await store.chats.subscribe(
                chat_id, feed_id, thread_id=thread_id, now_ms=now, given_url=feed_url
            )
        [digest_mode] = await store.chats.subscriptions(DIGESTER)
        await store.chats.set_mode(DIGESTER, digest_mode.id, "digest")
        await store.chats.set_keywords(READER, [("kremlin", False), ("sports", True)])
        await store.chats.set_flag(READER, "pictures", False)
        await store.chats.set_flag(READER, "link_preview", False)
        await store.chats.set_flag(READER, "silent", True)
        await store.chats.choose_language(READER, "en", "en")
        tomorrow = now + 86_400_000
        for chat_id, thread_id in ((DIGESTER, None), (GROUP, 7)):
            await store.chats.set_digest(
                chat_id,
                hour=8,
                minute=30,
                timezone="Europe/Berlin",
                thread_id=thread_id,
                now_ms=now,
                next_due_ms=tomorrow,
            )
        await record_entries(store, feed_id, now_ms=now - 60_000)  # primes the feed
        entries = entries_of(feed_url, feed_id, now, served)
        await record_entries(store, feed_id, entries, now_ms=now, router=alert_reader)
        [[first]] = await store.db.fetchall(
            "SELECT o.id FROM outbox o JOIN stories s ON s.id = o.story_id"
            " WHERE s.title = 'Kremlin story 1'"
        )
        await store.outbox.mark_sent([first], now)  # story 1 reached the reader already
        await store.outbox.enqueue_text(DIGESTER, None, kind="notice", texts=[NOTICE], now_ms=now)
    finally:
        await store.close()


async def fill_the_rest(source: str) -> None:
    """The tables the bot's run fills beside the chats' own: counters, an unfinished
    import, a WebSub subscription."""
    now = int(time.time() * 1000)
    store = await Store.open(source)
    try:
        await store.outbox.bump_counter("flood_wait", now, by=3)
        await store.imports.begin(READER, 555, language="en", total=12, now_ms=now)
        [feed_id] = [row[0] for row in await store.db.fetchall("SELECT id FROM feeds")]
        await store.websub.add(
            feed_id,
            hub="https://hub.test/",
            topic="https://news.test/self",
            token="t0ken",
            callback="https://bot.test/websub/t0ken",
            secret="s3cret",
            now_ms=now,
        )
    finally:
        await store.close()


def sqlite_rows(path: str, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        conn.close()


def sqlite_query(path: str, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def postgresql_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(f"SELECT * FROM {table}")
    finally:
        await conn.close()
    # keywords.exclude is BOOLEAN there, 0/1 in SQLite: compared as SQLite holds it.
    as_sqlite = [tuple(int(v) if isinstance(v, bool) else v for v in row) for row in rows]
    return sorted(as_sqlite, key=repr)


async def empty(url: str) -> bool:
    """No row in any of the bot's tables (which may not exist yet)."""
    conn = await asyncpg.connect(url)
    try:
        for table in TABLES:
            if await conn.fetchval("SELECT to_regclass($1)", table) and await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {table})"
            ):
                return False
        return True
    finally:
        await conn.close()


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def printed_counts(stdout: str) -> dict[str, int]:
    found = {}
    for line in stdout.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in TABLES:
            found[words[0]] = int(words[1])
    return found


def made(path: str) -> str:
    """A new, empty SQLite database of the bot's schema at `path`."""

    async def open_and_close() -> None:
        await (await Store.open(path)).close()

    asyncio.run(open_and_close())
    return path


def test_migrate_db_knows_every_table_of_the_schema(tmp_path: Path) -> None:
    """A migration that adds a table must teach migrate-db to copy it."""
    conn = sqlite3.connect(made(str(tmp_path / "fresh.sqlite3")))
    try:
        names = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    finally:
        conn.close()
    assert names - {"schema_migrations"} == set(TABLES) | set(NOT_COPIED)


async def test_migrate_db_copies_every_row_and_prints_the_counts(
    tmp_path: Path, postgresql: Databases
) -> None:
    source, target = str(tmp_path / "bot.sqlite3"), postgresql.new()
    await fill(source, "https://news.test/moving.xml", items(datetime.now(UTC)))
    await fill_the_rest(source)
    before = digest(source)

    result = await asyncio.to_thread(migrate, source, target)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = {table: len(sqlite_rows(source, table)) for table in TABLES}
    assert printed_counts(result.stdout) == expected
    # The feed's polling state includes its publishing rate (adaptive polling): on record
    # in the source (its second check found three stories), so the rows compared below
    # cover the rate columns.
    [(stories, watched, at)] = sqlite_query(
        source, "SELECT rate_stories, rate_watched_hours, rate_at FROM feeds"
    )
    assert stories == 3.0 and watched > 0 and at is not None
    assert all(expected.values()), expected  # every table had something to copy
    assert f"copied {sum(expected.values())} rows" in result.stdout
    for table in TABLES:
        assert await postgresql_rows(target, table) == sqlite_rows(source, table), table
    assert digest(source) == before  # the source was only read
    # The ids were kept, and the bot's next rows come after them.
    store = await Store.open(target)
    try:
        feed_id = await store.feeds.add(
            "https://news.test/new.xml", title="", site_url="", now_ms=1
        )
        await store.outbox.enqueue_text(READER, None, kind="notice", texts=["new"], now_ms=1)
        [[largest]] = await store.db.fetchall("SELECT MAX(id) FROM outbox WHERE text = 'new'")
    finally:
        await store.close()
    assert feed_id == 2
    assert largest == expected["outbox"] + 1


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Checked every 50 ms for 30 s at most: a bound for a slow machine, not a figure."""
    for _ in range(600):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_after_migrate_db_the_bot_on_postgresql_sends_what_was_owed_once_and_nothing_else(
    tmp_path: Path, postgresql: Databases, feed_server: FeedServer
) -> None:
    served = items(datetime.now(UTC))
    feed_server.publish(FEED_PATH, served, title="Moving news")
    source, target = str(tmp_path / "bot.sqlite3"), postgresql.new()
    await fill(source, feed_server.url(FEED_PATH), served)
    result = await asyncio.to_thread(migrate, source, target)
    assert result.returncode == 0, result.stderr

    async with FakeTelegram() as fake:
        for chat_id in (READER, DIGESTER):
            fake.private_chat(fake.add_user(chat_id, f"User {chat_id}"))
        settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_DATABASE=target)
        started = int(time.time() * 1000)
        async with running_bot(settings, fake) as bot:

            async def settled() -> bool:
                # The feed was checked again on PostgreSQL (whatever it found new would be
                # in the outbox by then) and the outbox is empty: everything owed was sent.
                [[checked]] = await bot.store.db.fetchall("SELECT last_checked_at FROM feeds")
                return checked >= started and await bot.store.outbox.depth() == 0

            await until(settled, "the feed checked and the outbox drained")
            sent = [(m.chat_id, m.text.splitlines()[0]) for m in fake.sent]
            # No row was added: the check found nothing new (the seen set came along).
            rows = await bot.store.db.fetchall(
                "SELECT status, COUNT(*) FROM outbox GROUP BY status"
            )

    assert sorted(sent) == [
        (READER, "Kremlin story 2"),
        (READER, "Kremlin story 3"),
        (DIGESTER, NOTICE),
    ]
    assert [tuple(row) for row in rows] == [("sent", 4)]


async def test_migrate_db_refuses_a_database_that_holds_data(
    tmp_path: Path, postgresql: Databases
) -> None:
    source, target = str(tmp_path / "bot.sqlite3"), postgresql.new()
    await fill(source, "https://news.test/moving.xml", items(datetime.now(UTC)))
    # A bot started on the target once and stopped: its tables exist, empty. That is fine.
    await (await Store.open(target)).close()
    assert (await asyncio.to_thread(migrate, source, target)).returncode == 0
    copied = {table: await postgresql_rows(target, table) for table in TABLES}

    other = str(tmp_path / "other.sqlite3")
    await fill(other, "https://news.test/other.xml", items(datetime.now(UTC)))
    result = await asyncio.to_thread(migrate, other, target)

    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "already holds data" in line and result.stdout == ""
    assert {table: await postgresql_rows(target, table) for table in TABLES} == copied


async def test_migrate_db_refuses_while_a_bot_holds_either_database(
    tmp_path: Path, postgresql: Databases
) -> None:
    source, target = str(tmp_path / "bot.sqlite3"), postgresql.new()
    await fill(source, "https://news.test/moving.xml", items(datetime.now(UTC)))
    for held in (source, target):
        store = await Store.open(held)  # a running bot holds its one-instance lock
        try:
            result = await asyncio.to_thread(migrate, source, target)
        finally:
            await store.close()
        assert result.returncode == 1
        line = result.stderr.strip()
        assert "\n" not in line and "in use by another news-notifier" in line, line
        assert await empty(target)
    # Nothing else stood in the way.
    assert (await asyncio.to_thread(migrate, source, target)).returncode == 0


async def test_migrate_db_refuses_a_source_older_than_this_version(
    tmp_path: Path, postgresql: Databases
) -> None:
    source, target = str(tmp_path / "bot.sqlite3"), postgresql.new()
    conn = sqlite3.connect(await asyncio.to_thread(made, source))
    latest = len(migrations("sqlite"))
    with conn:  # as the previous version left it: without this version's last migration
        conn.execute("DELETE FROM schema_migrations WHERE number = ?", (latest,))
    conn.close()
    result = await asyncio.to_thread(migrate, source, target)
    assert result.returncode == 1
    assert "\n" not in result.stderr.strip() and "start this version of the bot" in result.stderr


@pytest.mark.parametrize(
    ("to", "status", "said"),
    [
        ("mysql://bot:s3cret@db.test/news", 2, "allowed: a postgresql://"),
        ("data/other.sqlite3", 2, "allowed: a postgresql://"),
        ("postgresql://", 2, "allowed: a postgresql://"),
        ("postgresql://root:s3cret@127.0.0.1:5432/no_such_database", 1, "does not exist"),
        ("postgresql://root:s3cret@127.0.0.1:1/test", 1, "cannot be reached"),
    ],
)
def test_migrate_db_refuses_a_bad_url_in_one_line_without_its_password(
    tmp_path: Path, to: str, status: int, said: str
) -> None:
    result = migrate(made(str(tmp_path / "bot.sqlite3")), to)
    assert result.returncode == status
    line = result.stderr.strip()
    assert "\n" not in line and said in line, line
    assert "s3cret" not in line and result.stdout == ""
