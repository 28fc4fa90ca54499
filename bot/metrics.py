"""The bot's metrics for Prometheus: this module owns every metric object, and the parts
call it where they already decide what happened (a check's result in the feed pipeline,
a send's outcome in the sender, a webhook request checked), one small call each.

A registry per running bot (`Metrics()`), not prometheus_client's global one: tests and
benches run many bots in one process, and each must count its own.

`/metrics` (Prometheus text format) is served on the bot's listener (bot/listener.py) when
NEWS_NOTIFIER_LISTEN is set, with or without webhook mode. What lives in the database (the
outbox's depth and the age of its oldest pending row) is read at scrape time through the
reader the runtime gives (`read_outbox_with`), so nothing is polled between scrapes; the
rest are counters bumped as events happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from enum import StrEnum

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from bot.delivery.outcome import NotSent, OutcomeUnknown
from bot.errors import FailureKind

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
PREFIX = "news_notifier_"
# Seconds between two looks at the event loop: the lag is how late the look wakes.
LAG_INTERVAL = 0.25
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A scrape waits this long for the database's figures, then answers without them (NaN).
SAMPLE_TIMEOUT = 2.0

# Why a send failed, as the sender decides it (bot/delivery/outcome.py for the first two).
SEND_ERROR_CLASSES = (
    "not_sent",  # never reached Telegram: sent again safely
    "outcome_unknown",  # went out, no answer: Telegram may have it
    "bad_request",  # 400: refused (a photo, HTML, a gone topic, an unreachable chat)
    "forbidden",  # 403: blocked, kicked, no rights
    "migrated",  # the group became a supergroup
    "server_error",  # Telegram answered 5xx
    "other",
)
WEBHOOK_REFUSALS = ("missing", "wrong")  # the secret token header


class Role(StrEnum):
    """Whether this instance is the one sending (PostgreSQL: the leader lock's holder)."""

    LEADER = "leader"
    STANDBY = "standby"


# The outbox's depth and the age in seconds of its oldest pending row (0 when none), read
# from the database at scrape time (the runtime gives it: bot/runtime.py).
OutboxReader = Callable[[], Awaitable[tuple[int, float]]]


def send_error_class(error: Exception) -> str:
    """The class a failed send is counted under (SEND_ERROR_CLASSES)."""
    if isinstance(error, NotSent):
        return "not_sent"
    if isinstance(error, OutcomeUnknown):
        return "outcome_unknown"
    if isinstance(error, ChatMigrated):
        return "migrated"
    if isinstance(error, Forbidden):
        return "forbidden"
    if isinstance(error, BadRequest):
        return "bad_request"
    if isinstance(error, NetworkError):  # python-telegram-bot raises it for 5xx answers
        return "server_error"
    return "other"


class Metrics:
    """One running bot's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # CPU seconds and memory of the process (read from /proc at scrape time).
        ProcessCollector(registry=r)
        self._define_feeds(r)
        self._define_delivery(r)
        self._define_runtime(r)
        self._read_outbox: OutboxReader | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._every_label()
        self.set_role(Role.LEADER)  # SQLite has one instance; PostgreSQL's lock says otherwise

    def _define_feeds(self, r: CollectorRegistry) -> None:
        self.feed_checks = Counter(
            PREFIX + "feed_checks", "Feed checks by the poller (failed ones included)", registry=r
        )
        self.feed_failures = Counter(
            PREFIX + "feed_check_failures",
            "Feed checks that failed, by reason",
            ["reason"],
            registry=r,
        )
        self.stories_found = Counter(
            PREFIX + "stories_found", "Stories new to their feed (polled or pushed)", registry=r
        )
        self.alerts_queued = Counter(
            PREFIX + "alerts_queued", "Alerts queued in the outbox", registry=r
        )

    def _define_delivery(self, r: CollectorRegistry) -> None:
        self.messages_sent = Counter(
            PREFIX + "messages_sent",
            "Messages Telegram accepted from the outbox, by kind (alert, digest, notice)",
            ["kind"],
            registry=r,
        )
        self.flood_waits = Counter(
            PREFIX + "flood_waits",
            "429 Too Many Requests answers from Telegram, by path (outbox, replies)",
            ["path"],
            registry=r,
        )
        self.send_errors = Counter(
            PREFIX + "send_errors", "Failed sends from the outbox, by class", ["class"], registry=r
        )
        self.outbox_depth = Gauge(
            PREFIX + "outbox_depth", "Messages pending in the outbox (read at scrape)", registry=r
        )
        self.outbox_oldest_age = Gauge(
            PREFIX + "outbox_oldest_age_seconds",
            "Age of the oldest pending outbox row, 0 when none (read at scrape)",
            registry=r,
        )

    def _define_runtime(self, r: CollectorRegistry) -> None:
        self.loop_lag = Histogram(
            PREFIX + "event_loop_lag_seconds",
            "How late the event loop runs a task that is due (sleep overshoot)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.webhook_updates = Counter(
            PREFIX + "webhook_updates", "Updates Telegram delivered to the webhook", registry=r
        )
        self.webhook_refused = Counter(
            PREFIX + "webhook_refused",
            "Webhook requests refused (403), by secret token header: missing or wrong",
            ["reason"],
            registry=r,
        )
        self.role = Gauge(
            PREFIX + "role", "1 for this instance's role (leader: sends)", ["role"], registry=r
        )

    def _every_label(self) -> None:
        """Every labelled series exists from the start at 0, so a rate() sees its first."""
        for kind in FailureKind:
            self.feed_failures.labels(kind.value)
        for kind in ("alert", "digest", "notice"):
            self.messages_sent.labels(kind)
        for path in ("outbox", "replies"):
            self.flood_waits.labels(path)
        for name in SEND_ERROR_CLASSES:
            self.send_errors.labels(name)
        for reason in WEBHOOK_REFUSALS:
            self.webhook_refused.labels(reason)

    # --- what the parts call -----------------------------------------------------------

    def set_role(self, role: Role) -> None:
        """This instance became the leader (it sends) or a standby."""
        for each in Role:
            self.role.labels(each.value).set(1 if each is role else 0)

    def feed_failed(self, kind: FailureKind) -> None:
        self.feed_failures.labels(kind.value).inc()

    def send_failed(self, error: Exception) -> None:
        """A send from the outbox failed; a 429 counts as a flood wait instead."""
        if isinstance(error, RetryAfter):
            self.flood_waits.labels("outbox").inc()
        else:
            self.send_errors.labels(send_error_class(error)).inc()

    def read_outbox_with(self, reader: OutboxReader) -> None:
        """Where each scrape reads the outbox's figures."""
        self._read_outbox = reader

    # --- the event loop's lag ------------------------------------------------------------

    def start(self) -> None:
        """Start measuring the event loop's lag (until `stop`)."""
        if self._lag_task is None:
            self._lag_task = asyncio.create_task(self._measure_lag(), name="loop-lag")

    async def stop(self) -> None:
        if self._lag_task is not None:
            task, self._lag_task = self._lag_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            self.loop_lag.observe(max(0.0, loop.time() - due))

    # --- the endpoint -------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """/metrics, for the listener (bot/listener.py)."""
        return [web.get(METRICS_PATH, self._serve)]

    async def scrape(self) -> bytes:
        """The metrics in Prometheus' text format, the database's figures read now."""
        await self._sample()
        return generate_latest(self.registry)

    async def _sample(self) -> None:
        if self._read_outbox is None:
            return
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                depth, age = await self._read_outbox()
        except Exception as error:  # a database that does not answer: the rest still do
            log.warning("event=metrics_outbox_unread error=%r", str(error) or repr(error))
            depth, age = math.nan, math.nan  # unknown, rather than a stale figure
        self.outbox_depth.set(depth)
        self.outbox_oldest_age.set(age)

    async def _serve(self, _request: web.Request) -> web.Response:
        body = await self.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
