"""This process as one instance among those sharing a database.

Several `news-notifier run` processes may serve one PostgreSQL database (issue 14). Each is
an instance with an id made once per process start (`process_instance`): its feed leases
carry it (bot/store/feeds.py), and its row in the instances table says where it runs, since
when, its role (leader or standby, written by whoever decides it) and its last heartbeat,
for `/stats`.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
from dataclasses import dataclass

from bot.clock import Clock
from bot.store import Store

log = logging.getLogger(__name__)

# Every instance moves its heartbeat this often (bot/telegram/jobs.py runs `beat`).
HEARTBEAT_SECONDS = 5.0
# An instance silent this long is taken for dead even if its database session seems to
# live (a host gone without closing its connections): its row goes, its leases are freed.
# Far above HEARTBEAT_SECONDS, so a busy event loop is never taken for a dead one.
SILENT_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    host: str
    pid: int


def new_instance() -> Instance:
    """A new instance id for a bot starting in this process."""
    host = socket.gethostname() or "localhost"
    pid = os.getpid()
    # host and pid say where it runs; the random part keeps ids unique across restarts
    # (a pid comes back), containers (every one may be pid 1 on a host named alike) and
    # bots started one after another in one process (tests), whose presence locks would
    # otherwise wait for each other.
    return Instance(f"{host}:{pid}:{secrets.token_hex(4)}", host, pid)


@functools.cache
def _instance_of(pid: int) -> Instance:
    return new_instance()


def process_instance() -> Instance:
    """This process's instance, made at its first use after the process started (a
    forked child gets its own: the cache is keyed by pid)."""
    return _instance_of(os.getpid())


class InstancePresence:
    """This instance's row in the instances table, kept alive while it runs.

    `start` registers it and hands back the leases of instances found dead; `beat` (every
    HEARTBEAT_SECONDS, a JobQueue job) moves its heartbeat and looks for dead ones again;
    `stop` removes the row at a clean stop. What leader election writes about the instance
    goes through `set_role`.
    """

    def __init__(self, store: Store, clock: Clock, instance: Instance | None = None) -> None:
        self.store = store
        self.clock = clock
        self.instance = instance or new_instance()  # one per running bot

    @property
    def id(self) -> str:
        return self.instance.id

    async def start(self) -> None:
        await self.store.instances.register(
            self.id, host=self.instance.host, pid=self.instance.pid, now_ms=self.clock.now_ms()
        )
        await self._reap()

    async def beat(self) -> None:
        try:
            await self.store.instances.heartbeat(self.id, now_ms=self.clock.now_ms())
        except LookupError:
            # Taken for dead while it stalled (its leases were handed back), or its presence
            # lock lost with its connection: it lives, and says so again.
            log.warning("event=instance_registered_again instance=%s", self.id)
            await self.start()
            return
        await self._reap()

    async def set_role(self, role: str) -> None:
        await self.store.instances.set_role(self.id, role)

    async def stop(self) -> None:
        await self.store.instances.remove(self.id)

    async def _reap(self) -> None:
        dead = await self.store.instances.reap(
            self.id, now_ms=self.clock.now_ms(), silent_ms=SILENT_SECONDS * 1000
        )
        for other in dead:
            log.warning(
                "event=instance_dead instance=%s action=%r", other, "its leases handed back"
            )
