"""The runtime: every long-lived part of the bot, built once and shared by the Telegram
handlers and jobs (bot/telegram/context.py reaches it as `context.runtime`).

Its feed-checking half, `Ingestion`, is built alone by `news-notifier import-opml`: the
command line checks and subscribes with the same pipeline, use cases and keyword routing
as the running bot, not with a copy of its wiring.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

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
from bot.routing import make_router
from bot.store import Store
from bot.usecases.chats import Chats
from bot.usecases.choices import ChatChoices
from bot.usecases.keywords import KeywordFilters
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
    pipeline = FeedPipeline(store, fetcher, settings, clock, make_router(index), executor)
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

    async def count_too_fast(self, dropped: int) -> None:
        """Updates dropped because their chat sent faster than it can be answered (/stats)."""
        await self.store.outbox.bump_counter("too_fast", self.clock.now_ms(), by=dropped)


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
    sender = Sender(
        store,
        sender_bot,
        settings.delivery,
        clock,
        pacer=pacer,
        link_preview=settings.telegram.link_preview,
        default_zone=settings.digest.timezone,
        chats=chats,
    )
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
    return Runtime(
        **vars(ingestion),  # the ingestion half's parts, as built above
        poller=Poller(store, ingestion.pipeline, settings, clock),
        sender=sender,
        # With a webhook every bot answers commands (behind a load balancer).
        leadership=Leadership(
            store.db, sender, replies_everywhere=settings.listener.webhook_url is not None
        ),
        digests=digests,
        chats=chats,
        choices=choices,
        websub=websub,
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
