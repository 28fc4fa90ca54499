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
