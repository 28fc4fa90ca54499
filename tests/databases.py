"""Fresh databases for tests, on either backend.

Tests under tests/store/ and tests/e2e/ run on both SQLite and PostgreSQL (conftest.py
parametrizes them); a test that needs a database asks `Databases.new()` for one: a file in
the test's folder, or a schema of its own in the PostgreSQL test database
(NEWS_NOTIFIER_TEST_POSTGRESQL, default postgresql://root@127.0.0.1:5432/test; `.ci/run`
gives CI a scratch database). A schema is cheap to make and to drop, isolates the test
completely (the bot's one-instance lock is per schema too), and child processes reach it
through the URL alone (`?search_path=`). When PostgreSQL cannot be reached the test fails:
it never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import asyncpg

BACKENDS: Final = ("sqlite", "postgresql")
POSTGRESQL_URL: Final = os.environ.get(
    "NEWS_NOTIFIER_TEST_POSTGRESQL", "postgresql://root@127.0.0.1:5432/test"
)


def _with_schema(url: str, schema: str) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}search_path={schema}"


async def _execute(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRESQL_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(sql: str) -> None:
    """Run one statement on the test database, from sync code or inside a running event
    loop alike (a thread of its own runs a loop of its own)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _execute(sql)).result()


class Databases:
    """Hands out new, empty databases of one backend for one test; drops them after."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self._schemas: list[str] = []

    @property
    def postgresql(self) -> bool:
        return self.backend == "postgresql"

    def new(self, name: str = "bot") -> str:
        """A location for NEWS_NOTIFIER_DATABASE: a SQLite file path, or a PostgreSQL URL
        whose search_path is a new empty schema."""
        if not self.postgresql:
            return str(self.folder / f"{name}.sqlite3")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        _run(f"CREATE SCHEMA {schema}")
        self._schemas.append(schema)
        return _with_schema(POSTGRESQL_URL, schema)

    def drop(self) -> None:
        if self._schemas:
            schemas = ", ".join(self._schemas)
            _run(f"DROP SCHEMA IF EXISTS {schemas} CASCADE")
            self._schemas.clear()


async def integrity(store: Any) -> str:
    """SQLite's integrity_check ('ok' when the file is sound). PostgreSQL keeps its pages
    consistent through any kill of a client by itself: there, always 'ok'."""
    if store.db.dialect != "sqlite":
        return "ok"
    [row] = await store.db.fetchall("PRAGMA integrity_check")
    return str(row[0])


class PrivatePostgres:
    """A PostgreSQL server of one test's own, on a free port, which the test may restart
    (the shared server must not be: other tests use it at the same time). Run as root,
    its files belong to the postgres user, as PostgreSQL insists."""

    def __init__(self) -> None:
        self.bindir = _postgresql_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="news-notifier-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql://root@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=60)

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            f"{self.bindir}/pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-w",
            *extra,
            action,
        )

    def start(self) -> None:
        self._run(
            f"{self.bindir}/initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "root",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self._ctl("start")

    def restart(self) -> None:
        """What an operator's restart does: connections are closed, the server comes back."""
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def _postgresql_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries (initdb) under /usr/lib/postgresql")
    return str(Path(found[-1]).parent)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
