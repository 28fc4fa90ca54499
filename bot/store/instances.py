"""Instances: one row per running bot process on this database, and finding the dead ones.

An instance registers at start, moves its heartbeat every few seconds and removes its row at
a clean stop. One killed leaves its row and its feed leases behind; `reap` finds it dead and
hands its leases back at once, so its feeds are checked again without waiting for the
leases to run out:

- on PostgreSQL each instance holds a session advisory lock of its own id on a connection of
  its own (`register`) for as long as it lives: PostgreSQL drops it when the process dies
  (its socket closes), so a lock another instance can take means its holder is gone;
- on SQLite one instance runs at a time (the file lock): any other row is a dead one's;
- on either, an instance silent for longer than `silent_ms` (a host that vanished without
  closing its connections) is taken for dead too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import asyncpg

from bot.store.db import Database
from bot.store.postgres import CONNECT_TIMEOUT, CONNECTION_ERRORS, PostgresDatabase, lock_key


@dataclass(frozen=True, slots=True)
class InstanceRow:
    id: str
    host: str
    pid: int
    started_at: int
    heartbeat_at: int
    role: str  # 'leader', 'standby', or '' until someone says


class InstanceStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._presence: asyncpg.Connection | None = None  # PostgreSQL: holds our lock

    async def register(self, instance_id: str, *, host: str, pid: int, now_ms: int) -> None:
        """Record this instance as running (and, on PostgreSQL, take its presence lock)."""
        if isinstance(self.db, PostgresDatabase) and (
            self._presence is None or self._presence.is_closed()
        ):
            presence = await asyncpg.connect(self.db.url, timeout=CONNECT_TIMEOUT)
            await presence.execute("SELECT pg_advisory_lock($1)", _presence_key(instance_id))
            self._presence = presence
        await self.db.execute(
            "INSERT INTO instances (id, host, pid, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET heartbeat_at = ?",
            (instance_id, host, pid, now_ms, now_ms, now_ms),
        )

    async def heartbeat(self, instance_id: str, *, now_ms: int) -> None:
        """Move the heartbeat. LookupError when the instance must register again: its row
        was removed (taken for dead while it stalled) or its presence lock went with its
        connection (PostgreSQL restarted), and others would take it for dead."""
        if self._presence is not None and self._presence.is_closed():
            raise LookupError(instance_id)
        changed = await self.db.execute(
            "UPDATE instances SET heartbeat_at = ? WHERE id = ?", (now_ms, instance_id)
        )
        if not changed:  # reaped while it stalled: it is alive after all
            row = await self.db.fetchone("SELECT 1 FROM instances WHERE id = ?", (instance_id,))
            if row is None:
                raise LookupError(instance_id)

    async def set_role(self, instance_id: str, role: str) -> None:
        """Say what the instance does now ('leader', 'standby'): shown by /stats."""
        await self.db.execute("UPDATE instances SET role = ? WHERE id = ?", (role, instance_id))

    async def all(self) -> list[InstanceRow]:
        rows = await self.db.fetchall(
            "SELECT id, host, pid, started_at, heartbeat_at, role FROM instances"
            " ORDER BY started_at, id"
        )
        return [InstanceRow(*row) for row in rows]

    async def reap(self, instance_id: str, *, now_ms: int, silent_ms: int) -> list[str]:
        """Find the other instances that are dead; hand their feed leases back and remove
        their rows. Returns their ids."""
        dead = []
        for other in await self.all():
            if other.id != instance_id and await self._is_dead(other, now_ms - silent_ms):
                dead.append(other.id)
        for other_id in dead:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
                    (other_id,),
                )
                await conn.execute("DELETE FROM instances WHERE id = ?", (other_id,))
        return dead

    async def _is_dead(self, other: InstanceRow, silent_before: int) -> bool:
        if other.heartbeat_at < silent_before or self.db.dialect == "sqlite":
            return True
        if self._presence is None:
            return False  # not registered: cannot tell
        key = _presence_key(other.id)
        if not await self._presence.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return False  # its holder's session lives
        await self._presence.execute("SELECT pg_advisory_unlock($1)", key)
        return True

    async def remove(self, instance_id: str) -> None:
        """A clean stop: the row goes, and the presence lock with its connection."""
        try:
            await self.db.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
        finally:
            presence, self._presence = self._presence, None
            if presence is not None:
                with contextlib.suppress(*CONNECTION_ERRORS):
                    await presence.close()


def _presence_key(instance_id: str) -> int:
    return lock_key(f"instance:{instance_id}")
