"""Helpers the benchmarks share: the machine they ran on, peak RSS, and servers run in a
spawned child process and spoken to over a Pipe (as the fake Bot API's
FakeTelegramProcess, tests/fakes/telegram_api/process.py, does)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import resource
import subprocess
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

# --------------------------------------------------------------------------------------------
# The machine


def lscpu_model(default: str) -> str:
    """The CPU's "Model name" as lscpu tells it; `default` when lscpu cannot."""
    model = default
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    return model


def machine() -> str:
    """Cores (and how many this process may use) and the CPU model."""
    model = lscpu_model(platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model}"


def machine_with_versions(*packages: str) -> str:
    """The CPU model from /proc/cpuinfo, cores, Python and the given packages' versions."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = ", ".join(f"{package} {metadata.version(package)}" for package in packages)
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}"


def maxrss_bytes() -> int:
    """The process's peak RSS so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------------------------
# A server in a spawned child process
#
# The owner is a FakeTelegramProcess or anything else with its `_context` (a spawn context),
# `_connection`, `_process` and `stop()`. The child gets its end of the Pipe first, sends one
# message once it serves (its port, say), then answers commands until "stop".


def start_child(
    owner: Any, target: Callable[..., None], args: Sequence[Any], timeout: float, what: str
) -> Any:
    """Start target(connection, *args) in a child process; returns its first message."""
    parent, child = owner._context.Pipe()
    owner._process = owner._context.Process(target=target, args=(child, *args), daemon=True)
    owner._process.start()
    owner._connection = parent
    if not parent.poll(timeout):
        owner.stop()
        raise RuntimeError(f"{what} did not start")
    return parent.recv()


def stop_child(owner: Any) -> None:
    """Ask the child to stop, and end it if it does not."""
    if owner._process is None:
        return
    with contextlib.suppress(OSError, EOFError):
        owner._connection.send("stop")
        owner._connection.poll(5)
    owner._process.join(5)
    if owner._process.is_alive():
        owner._process.terminate()
        owner._process.join(5)
    owner._process = None


async def answer_commands(connection: Any, answers: Mapping[str, Callable[[], Any]]) -> None:
    """In the child: send answers[command]() for each command, until one it does not know
    ("stop", or "stop" for a parent that went away)."""
    while True:
        command = await asyncio.to_thread(receive, connection)
        if command not in answers:
            break
        connection.send(answers[command]())


def receive(connection: Any) -> str:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return "stop"


# --------------------------------------------------------------------------------------------
# Verdicts: a bench's goals and correctness checks decide its exit status


class Verdicts:
    """The goals and correctness checks one bench run judged. Each `check` prints one line
    (PASS or FAIL, the name, the figure behind it); `exit_code()` prints the tally and is 1
    when any failed, so `make bench` and CI stop on a missed goal or a wrong result, not
    only on a crash."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        print(f"[{'PASS' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)
        return ok

    def exit_code(self) -> int:
        total = self.passed + len(self.failed)
        if self.failed:
            print(f"verdicts: {len(self.failed)} of {total} FAILED: " + "; ".join(self.failed))
            return 1
        print(f"verdicts: all {total} passed")
        return 0


# --------------------------------------------------------------------------------------------
# Where a bench's database lives: --database (a SQLite file path or a postgresql:// URL)

DATABASE_HELP = (
    "a SQLite file path, or a postgresql:// URL: the bench then works in a scratch schema of "
    "that database it creates and drops (default: a temporary SQLite file)"
)


def is_postgresql(location: str | None) -> bool:
    return bool(location) and str(location).startswith(("postgresql://", "postgres://"))


def backend_name(location: str | None) -> str:
    return "PostgreSQL" if is_postgresql(location) else "SQLite"


def _with_search_path(url: str, schema: str) -> str:
    """The URL of one schema; its connections carry the schema's name as application_name
    (asyncpg passes unknown URL parameters on as server settings), so that
    `postgresql_server_cpu` can find the server processes that worked for them."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}search_path={schema}&application_name={schema}"


def postgresql_server_cpu(url: str) -> float:
    """CPU seconds (user + system) the PostgreSQL server processes now connected with this
    schema's application_name have spent: the server's share of a bench's work, which the
    bench's own process_time() does not see. Read from /proc (the server runs here); a
    connection closed meanwhile takes its seconds with it, so read it while the pool is open."""
    from urllib.parse import parse_qs, urlsplit

    name = parse_qs(urlsplit(url).query).get("application_name", [""])[0]
    if not name:
        return 0.0
    pids: list[int] = []

    async def find() -> None:
        import asyncpg

        conn = await asyncpg.connect(url.split("?", 1)[0], timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
            )
            pids.extend(int(row["pid"]) for row in rows)
        finally:
            await conn.close()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, find()).result()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / ticks


def _run_postgresql(url: str, sql: str) -> None:
    """One statement on `url`, from sync code or inside a running loop alike (a thread of
    its own runs a loop of its own)."""
    import asyncpg  # a dependency of the package; imported only for PostgreSQL runs

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


class ScratchDatabases:
    """Fresh, empty databases for one bench run on the backend `--database` names: files in
    a temporary folder (or the one file given), or new schemas of the PostgreSQL database
    given, each dropped by `drop()` (the bot's one-instance lock is per schema, and the
    schema reaches a child process through the URL alone)."""

    def __init__(self, location: str | None, folder: str) -> None:
        self.location = location
        self.folder = folder
        self._schemas: list[str] = []
        self._files = 0

    @property
    def postgresql(self) -> bool:
        return is_postgresql(self.location)

    def new(self, name: str = "bench") -> str:
        if self.postgresql:
            assert self.location is not None
            schema = f"bench_{name}_{os.getpid()}_{len(self._schemas)}"
            _run_postgresql(self.location, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            _run_postgresql(self.location, f"CREATE SCHEMA {schema}")
            self._schemas.append(schema)
            return _with_search_path(self.location, schema)
        self._files += 1
        if self.location and self._files == 1:
            return self.location
        return os.path.join(self.folder, f"{name}-{self._files}.sqlite3")

    def drop(self) -> None:
        while self._schemas:
            assert self.location is not None
            _run_postgresql(self.location, f"DROP SCHEMA IF EXISTS {self._schemas.pop()} CASCADE")

    def __enter__(self) -> ScratchDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()
