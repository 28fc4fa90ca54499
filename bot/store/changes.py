"""Keyword changes made by any instance, told to every instance (PostgreSQL LISTEN/NOTIFY).

Each instance keeps every chat's keywords in memory (bot/filters.py, KeywordIndex) to route
new stories. With several instances on one database, a change made through one must reach
the others' indexes within a second, so:

- the transaction that changes a chat's keywords sends `pg_notify(channel, chat id)`;
  PostgreSQL delivers it, after the commit and only if it commits, to every session
  listening on the channel, the sender's own included;
- each instance listens on a connection of its own (`KeywordChanges.follow`) and reloads
  that chat's keywords from the database, one notification after the other (so the last
  read is the newest state, however changes and reads interleave);
- a notification may have been missed whenever the listening connection was down: each
  time it is made (the first time too: the index was loaded before it listened) the whole
  index is reloaded after LISTEN, so nothing committed before or after is lost.

The channel is per schema (`nn_keywords_` and the md5 of its name: channel names are at
most 63 bytes), so bots on separate schemas of one database do not hear each other.
SQLite runs one instance, which changes its own index: nothing is sent or listened to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

import asyncpg

from bot.errors import DatabaseUnavailableError
from bot.store.db import Connection, Database
from bot.store.postgres import CONNECT_TIMEOUT, CONNECTION_ERRORS, PostgresDatabase

log = logging.getLogger(__name__)

CHANNEL = "'nn_keywords_' || md5(current_schema())"  # SQL: this schema's channel
# The listening connection is asked for a sign of life this often: a connection cut without
# a word (a network partition) is noticed within this, and the index reloaded once back.
PING_SECONDS = 5.0
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # between attempts to listen again

ChatChanged = Callable[[int], Awaitable[None]]
AllChanged = Callable[[], Awaitable[None]]


async def tell_keywords_changed(conn: Connection, chat_ids: Iterable[int]) -> None:
    """In the changing transaction: every instance reloads these chats' keywords once it
    commits (nothing on SQLite: one instance, which updates its own index)."""
    if conn.dialect != "postgresql":
        return
    for chat_id in chat_ids:
        await conn.execute(f"SELECT pg_notify({CHANNEL}, ?)", (str(chat_id),))


class KeywordChanges:
    """The keyword changes every instance makes, as they commit (PostgreSQL only)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listening = asyncio.Event()  # set while a LISTEN is in place (tests wait on it)
        self.backend_pid: int | None = None  # the listening session's, for pg_stat_activity

    @property
    def shared(self) -> bool:
        """Whether other instances may change keywords (PostgreSQL): else nothing to follow."""
        return isinstance(self.db, PostgresDatabase)

    async def follow(self, on_chat: ChatChanged, on_missed: AllChanged) -> None:
        """Call `on_chat(chat_id)` for each change, `on_missed()` whenever changes may have
        been missed (each time listening starts). Runs until cancelled."""
        if not isinstance(self.db, PostgresDatabase):
            return
        attempt = 0
        while True:
            try:
                await self._listen(self.db.url, on_chat, on_missed)
                attempt = 0
            except (*CONNECTION_ERRORS, asyncpg.PostgresError, DatabaseUnavailableError) as error:
                # A reload that failed is done again, whole, once listening again.
                log.warning("event=keyword_changes_lost error=%r", str(error) or type(error))
            finally:
                self.listening.clear()
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            attempt += 1

    async def _listen(self, url: str, on_chat: ChatChanged, on_missed: AllChanged) -> None:
        """One listening connection, until it is lost."""
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        try:
            changed: asyncio.Queue[str] = asyncio.Queue()
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            channel = await conn.fetchval(f"SELECT {CHANNEL}")
            await conn.add_listener(channel, lambda *args: changed.put_nowait(args[-1]))
            await on_missed()  # whatever committed before LISTEN: read now
            self.backend_pid = conn.get_server_pid()
            self.listening.set()
            while not lost.is_set():
                try:
                    payload = await asyncio.wait_for(changed.get(), PING_SECONDS)
                except TimeoutError:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_SECONDS)
                    continue
                await _tell(on_chat, _drain(payload, changed))
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                conn.terminate()


def _drain(first: str, queue: asyncio.Queue[str]) -> list[int]:
    """The chat ids of `first` and of what else is waiting, each once, in order."""
    payloads = [first]
    while not queue.empty():
        payloads.append(queue.get_nowait())
    ids: dict[int, None] = {}
    for payload in payloads:
        with contextlib.suppress(ValueError):
            ids[int(payload)] = None
    return list(ids)


async def _tell(on_chat: ChatChanged, chat_ids: list[int]) -> None:
    for chat_id in chat_ids:
        await on_chat(chat_id)
