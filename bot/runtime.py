"""The runtime: every long-lived part of the bot, built once and shared by the Telegram
handlers and jobs (bot/telegram/context.py reaches it as `context.runtime`).

Its feed-checking half, `Ingestion`, is built alone by `news-notifier import-opml`: the
command line checks and subscribes with the same pipeline, use cases and keyword routing
as the running bot, not with a copy of its wiring.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from telegram import Bot

from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.delivery.leadership import Leadership
from bot.delivery.pacing import Pacer
from bot.delivery.sender import Sender
from bot.digests.scheduler import DigestScheduler
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.feeds.websub import WebSub, push_configured, push_off
from bot.filters import KeywordIndex
from bot.health import running_health
from bot.metrics import Metrics, Role
from bot.routing import make_router
from bot.store import DatabaseLostError, DatabaseUnavailableError, Store
from bot.usecases.chats import Chats
from bot.usecases.choices import ChatChoices
from bot.usecases.instances import InstancePresence
from bot.usecases.keywords import KeywordFilters, KeywordSync
from bot.usecases.subscriptions import Subscriptions

PARSE_THREADS = 2  # feeds are parsed and summarized off the event loop


@dataclass
class Ingestion:
    """Checking feeds and what a chat does with them (subscribe, keywords).

    `async with` it to use it: every chat's keywords are loaded into the index first (a
    story a check finds new goes to the feed's subscribers through their filters); the
    fetcher's connections and the parse threads are closed after.
    """

    settings: Settings
    store: Store
    clock: Clock
    fetcher: Fetcher
    keyword_index: KeywordIndex
    executor: ThreadPoolExecutor
    pipeline: FeedPipeline
    subscriptions: Subscriptions
    keywords: KeywordFilters
    metrics: Metrics  # this bot's own (bot/metrics.py), served at /metrics by the listener

    async def __aenter__(self) -> Ingestion:
        try:
            await self.keywords.load_all()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.fetcher.close()  # its connections open with the first fetch
        finally:
            self.executor.shutdown(wait=False, cancel_futures=True)


def build_ingestion(settings: Settings, store: Store, clock: Clock | None = None) -> Ingestion:
    clock = clock or SystemClock()
    executor = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="parse")
    fetcher = Fetcher(settings.fetch)
    index = KeywordIndex()
    metrics = Metrics()
    pipeline = FeedPipeline(
        store, fetcher, settings, clock, make_router(index), executor, metrics=metrics
    )
    return Ingestion(
        settings=settings,
        store=store,
        clock=clock,
        fetcher=fetcher,
        keyword_index=index,
        executor=executor,
        pipeline=pipeline,
        subscriptions=Subscriptions(store, pipeline, clock),
        keywords=KeywordFilters(store, index, settings.keywords),
        metrics=metrics,
    )


@dataclass
class Runtime(Ingestion):
    """The ingestion half, and what runs beside it: the poller that calls it, the sender
    and digests that drain and fill the outbox, the chats' life cycle, and the leadership
    that runs the sender on one bot of those sharing a database."""

    poller: Poller
    sender: Sender
    leadership: Leadership
    digests: DigestScheduler
    chats: Chats
    choices: ChatChoices  # /settings
    websub: WebSub | None  # None without a public URL and a listener: every feed is polled
    presence: InstancePresence  # this process in the instances table; its id owns the leases
    keyword_sync: KeywordSync  # other instances' keyword changes into this one's index

    async def start_push(self) -> None:
        """WebSub's renewal loop (it serves callbacks on the listener); without push, the
        feeds a hub pushed before are polled at their own rate again."""
        if self.websub is not None:
            await self.websub.start()
        else:
            await push_off(self.store, self.clock.now_ms())

    async def stop_push(self) -> None:
        if self.websub is not None:
            await self.websub.stop()

    async def health(self) -> tuple[bool, str]:
        """Healthy and why, for the listener's /healthz (bot/health.py, running_health)."""
        max_silence = self.settings.health.max_silence_seconds
        return await running_health(self.store, self.clock.now_ms(), max_silence)

    async def take_role(self, role: Role) -> None:
        """This instance leads now, or stands by: said by /metrics and in the instances
        table (/stats). A database that cannot be reached leaves the row to the heartbeat."""
        self.metrics.set_role(role)
        with contextlib.suppress(DatabaseUnavailableError, DatabaseLostError):
            await self.presence.set_role(role.value)

    async def count_too_fast(self, dropped: int) -> None:
        """Updates dropped because their chat sent faster than it can be answered (/stats)."""
        await self.store.outbox.bump_counter("too_fast", self.clock.now_ms(), by=dropped)


async def outbox_backlog(store: Store, clock: Clock) -> tuple[int, float]:
    """The outbox's pending rows and the age in seconds of the oldest (0: none), for
    /metrics: how far behind the sender is."""
    depth, oldest_ms = await store.outbox.backlog()
    age = 0.0 if oldest_ms is None else max(0.0, (clock.now_ms() - oldest_ms) / 1000)
    return depth, age


def build_runtime(
    settings: Settings,
    store: Store,
    sender_bot: Bot,
    pacer: Pacer,
    clock: Clock | None = None,
) -> Runtime:
    ingestion = build_ingestion(settings, store, clock)
    clock = ingestion.clock
    chats = Chats(store, clock)
    sender = build_sender(ingestion, chats, sender_bot, pacer)
    ingestion.metrics.read_outbox_with(partial(outbox_backlog, store, clock))
    # Whatever queues messages wakes the sender, rather than leave them to its next look.
    chats.on_queued = sender.wake
    ingestion.pipeline.on_queued = sender.wake
    ingestion.pipeline.on_health = chats.tell_feed_health
    digests = DigestScheduler(store, settings, clock, on_queued=sender.wake)
    choices = ChatChoices(
        store,
        chats,
        digests,
        default_link_preview=settings.telegram.link_preview,
        default_zone=settings.digest.timezone,
    )
    websub = build_websub(settings, ingestion)
    if websub is not None:
        chats.on_left = websub.wake  # a paused chat may have been a feed's last
    presence = InstancePresence(store, clock)
    return Runtime(
        **vars(ingestion),  # the ingestion half's parts, as built above
        poller=Poller(store, ingestion.pipeline, settings, clock, instance_id=presence.id),
        sender=sender,
        # With a webhook every bot answers commands (behind a load balancer).
        leadership=Leadership(
            store.db, sender, replies_everywhere=settings.listener.webhook_url is not None
        ),
        digests=digests,
        chats=chats,
        choices=choices,
        websub=websub,
        presence=presence,
        keyword_sync=KeywordSync(store, ingestion.keywords),
    )


def build_sender(ingestion: Ingestion, chats: Chats, sender_bot: Bot, pacer: Pacer) -> Sender:
    settings = ingestion.settings
    return Sender(
        ingestion.store,
        sender_bot,
        settings.delivery,
        ingestion.clock,
        pacer=pacer,
        link_preview=settings.telegram.link_preview,
        default_zone=settings.digest.timezone,
        chats=chats,
        metrics=ingestion.metrics,
    )


def build_websub(settings: Settings, ingestion: Ingestion) -> WebSub | None:
    """WebSub push when the bot has a public URL and a listener (README, "WebSub"): hubs
    are discovered in every fetched feed, and the hub is told when the last chat leaves.
    Its routes go on the listener (bot/telegram/listening.py). Polling goes on at the
    slow safety-net rate for pushed feeds (FeedPipeline, safety_net_delay)."""
    if not push_configured(settings):
        return None
    websub = WebSub(
        ingestion.store, ingestion.fetcher, ingestion.pipeline, settings, ingestion.clock
    )
    ingestion.pipeline.on_fetched = websub.observe
    ingestion.subscriptions.on_left = websub.wake
    return websub
