"""This process as one instance among those sharing a database.

Several `news-notifier run` processes may serve one PostgreSQL database (issue 14). Each is
an instance with an id made once per process start (`process_instance`): its feed leases
carry it (bot/store/feeds.py), and its row in the instances table says where it runs, since
when, its role (leader or standby, written by whoever decides it) and its last heartbeat,
for `/stats`.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    host: str
    pid: int


@functools.cache
def _instance_of(pid: int) -> Instance:
    host = socket.gethostname() or "localhost"
    # host and pid say where it runs; the random part keeps ids unique across restarts
    # (a pid comes back) and containers (every one may be pid 1 on a host named alike).
    return Instance(f"{host}:{pid}:{secrets.token_hex(4)}", host, pid)


def process_instance() -> Instance:
    """This process's instance, made at its first use after the process started (a
    forked child gets its own: the cache is keyed by pid)."""
    return _instance_of(os.getpid())
