"""Wiring: the store, fetcher, poller, sender and handlers around one python-telegram-bot
Application, and the run loop with a clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from telegram import Bot, BotCommand, Chat
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.clock import DAY_MS, HOUR_MS, Clock, SystemClock
from bot.config import Settings
from bot.delivery.pacing import PacedRateLimiter, Pacer
from bot.delivery.sender import Sender
from bot.delivery.transport import AiohttpRequest
from bot.digests.scheduler import DigestScheduler
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.i18n import COMMANDS, failure_reason, language_of, t
from bot.routing import make_router
from bot.store import DatabaseLostError, Feed, Store
from bot.telegram import handlers, ops
from bot.telegram.ordering import PerChatUpdateProcessor
from bot.usecases.keywords import KeywordFilters
from bot.usecases.subscriptions import Subscriptions

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "channel_post", "callback_query", "my_chat_member"]
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
HOUSEKEEPING_SECONDS = 3600
# The database file's identity and folder are checked this often when nothing writes
# (every write checks the identity itself).
DATABASE_CHECK_SECONDS = 30.0
# Start-up while Telegram cannot be reached: seconds before each next attempt (the last one
# repeats).
REACH_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# Daily digests are checked this often; one falls due at most this late after its minute.
DIGEST_TICK_SECONDS = 5.0


def file_url(base_url: str) -> str:
    """python-telegram-bot's base_file_url beside a base_url: …/bot → …/file/bot."""
    return base_url[: -len("/bot")] + "/file/bot" if base_url.endswith("/bot") else base_url


@dataclass
class BotRuntime:
    """Everything the handlers and jobs share, reachable as bot_data["runtime"]."""

    settings: Settings
    store: Store
    clock: Clock
    fetcher: Fetcher
    keyword_index: KeywordIndex
    pipeline: FeedPipeline
    subscriptions: Subscriptions
    keywords: KeywordFilters
    poller: Poller
    sender: Sender
    digests: DigestScheduler
    admins: handlers.AdminCache
    executor: ThreadPoolExecutor
    known_chats: dict[int, str] = field(default_factory=dict)

    async def remember_chat(self, chat: Chat, language_code: str | None) -> tuple[str, bool]:
        """Store the chat (once per process, or when its language changes).

        Returns its language and whether it had been paused: a chat that sends a command
        can be reached again, so its subscriptions resume.
        """
        language = language_of(language_code) if language_code else self.known_chats.get(chat.id)
        if language is None:
            stored = await self.store.chats.get(chat.id)
            language = stored.language if stored else "en"
        resumed = False
        if self.known_chats.get(chat.id) != language:
            title = chat.title or chat.full_name or chat.username or ""
            await self.store.chats.upsert(
                chat.id,
                kind=str(chat.type),
                title=title,
                language=language,
                now_ms=self.clock.now_ms(),
            )
            resumed = await self.store.chats.set_status(chat.id, "active")
            self.known_chats[chat.id] = language
        return language, resumed

    def forget_chat(self, chat_id: int) -> None:
        """The chat was paused: the next command from it must look it up again."""
        self.known_chats.pop(chat_id, None)

    async def on_feed_health(self, feed: Feed, failing: bool) -> None:
        """Tell a feed's subscribers, once, that it was paused or gone, or that it recovered."""
        current = await self.store.feeds.get(feed.id) or feed
        if failing:
            key = "notice.feed_gone" if current.status == "gone" else "notice.feed_paused"
        else:
            key = "notice.feed_recovered"
        failure = current.failure
        for chat_id, thread_id, language in await self.store.feeds.subscriber_languages(feed.id):
            text = t(
                language,
                key,
                title=current.display_title,
                url=current.url,
                error=failure_reason(language, failure) if failure else "?",
            )
            await self.store.outbox.enqueue_text(
                chat_id, thread_id, kind="notice", texts=[text], now_ms=self.clock.now_ms()
            )
        self.sender.wake()

    async def count_too_fast(self, dropped: int) -> None:
        """Updates dropped because their chat sent faster than it can be answered (/stats)."""
        await self.store.outbox.bump_counter("too_fast", self.clock.now_ms(), by=dropped)

    async def on_chat_unreachable(self, chat_id: int) -> None:
        self.forget_chat(chat_id)


def build_runtime(
    settings: Settings,
    store: Store,
    sender_bot: Bot,
    pacer: Pacer,
    clock: Clock | None = None,
) -> BotRuntime:
    clock = clock or SystemClock()
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="parse")
    fetcher = Fetcher(settings.fetch)
    index = KeywordIndex()
    sender = Sender(
        store,
        sender_bot,
        settings.delivery,
        clock,
        pacer=pacer,
        link_preview=settings.telegram.link_preview,
        default_zone=settings.digest.timezone,
    )
    pipeline = FeedPipeline(
        store, fetcher, settings, clock, make_router(index), executor, on_queued=sender.wake
    )
    runtime = BotRuntime(
        settings=settings,
        store=store,
        clock=clock,
        fetcher=fetcher,
        keyword_index=index,
        pipeline=pipeline,
        subscriptions=Subscriptions(store, pipeline, clock),
        keywords=KeywordFilters(store, index, settings.keywords),
        poller=Poller(store, pipeline, settings, clock),
        sender=sender,
        digests=DigestScheduler(store, settings, clock, on_queued=sender.wake),
        admins=handlers.AdminCache(settings.telegram.admin_cache_seconds),
        executor=executor,
    )
    pipeline.on_health = runtime.on_feed_health
    sender.on_unreachable = runtime.on_chat_unreachable
    return runtime


def add_handlers(app: Application) -> None:
    commands = {
        ("start",): handlers.start,
        ("help",): handlers.help_,
        ("subscribe", "sub"): handlers.subscribe,
        ("unsubscribe", "unsub"): handlers.unsubscribe,
        ("list",): handlers.list_,
        ("mode",): handlers.mode,
        ("keywords", "keyword", "kw"): handlers.keywords,
        ("digest",): handlers.digest,
    }
    for names, callback in commands.items():
        app.add_handler(CommandHandler(list(names), callback, filters=COMMAND_UPDATES))
    app.bot_data["commands"] = {name for names in commands for name in names}
    app.add_handler(CallbackQueryHandler(handlers.unsubscribe_button, pattern=r"^unsub:"))
    app.add_handler(CallbackQueryHandler(handlers.feed_choice_button, pattern=r"^feed:"))
    app.add_handler(ChatMemberHandler(handlers.chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, handlers.migrated))
    app.add_handler(MessageHandler(filters.COMMAND & COMMAND_UPDATES, handlers.unknown), group=1)
    ops.register(app)
    # Last: the presses no handler above takes are answered too.
    app.add_handler(CallbackQueryHandler(handlers.unknown_button))
    app.add_error_handler(handlers.on_error)


def telegram_request(
    settings: Settings, *, pool: int, read_timeout: float = 10.0
) -> AiohttpRequest:
    return AiohttpRequest(
        connection_pool_size=pool,
        read_timeout=read_timeout,
        write_timeout=20.0,
        connect_timeout=10.0,
        pool_timeout=5.0,
    )


def build_application(settings: Settings, pacer: Pacer) -> Application:
    tg = settings.telegram
    return (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(tg.api_base_url)
        .base_file_url(file_url(tg.api_base_url))
        .request(telegram_request(settings, pool=16))
        .get_updates_request(
            telegram_request(settings, pool=1, read_timeout=float(tg.polling_timeout) + 10)
        )
        # Replies to commands, paced with the same budget as the Sender's alerts.
        .rate_limiter(PacedRateLimiter(pacer, max_retries=2))
        .concurrent_updates(PerChatUpdateProcessor(pacer))
        .build()
    )


def build_sender_bot(settings: Settings) -> Bot:
    tg = settings.telegram
    pool = settings.delivery.max_in_flight + 4
    # A message Telegram has not answered may still be delivered: the sender waits long for
    # the answer, since each wait that runs out may cost a second copy (Sender docstring).
    read_timeout = settings.delivery.answer_timeout_seconds
    return Bot(
        tg.token,
        base_url=tg.api_base_url,
        base_file_url=file_url(tg.api_base_url),
        request=telegram_request(settings, pool=pool, read_timeout=read_timeout),
    )


async def poll_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.application.bot_data["runtime"].poller.tick()


async def digest_tick(context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.application.bot_data["runtime"].digests.fire_due()


async def housekeeping(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Forget what no promise needs any more (old seen stories, old outbox rows)."""
    rt: BotRuntime = context.application.bot_data["runtime"]
    now = rt.clock.now_ms()
    stories = await rt.store.stories.purge(
        older_than_ms=now - int(rt.settings.dedupe.retention_days * DAY_MS)
    )
    keep_ms = max(7 * DAY_MS, int(rt.settings.delivery.duplicate_title_hours * HOUR_MS))
    rows = await rt.store.outbox.purge(older_than_ms=now - keep_ms)
    log.info("event=housekeeping stories_forgotten=%d outbox_rows_forgotten=%d", stories, rows)


async def database_check(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Notice a deleted or replaced database file, or a folder gone read-only, while the
    bot is idle. The store reports it and its on_lost stops the run loop."""
    with contextlib.suppress(DatabaseLostError):
        context.application.bot_data["runtime"].store.db.check_file()


def log_polling_error(error: TelegramError) -> None:
    """getUpdates failed (Telegram down or unreachable). python-telegram-bot tries again by
    itself, backing off up to 30 s; without this it logs a full traceback every time."""
    log.warning("event=get_updates_failed error=%r", str(error))


async def reach_telegram(bots: Sequence[Bot], api_url: str, stop: asyncio.Event) -> bool:
    """Initialize the bots (getMe), trying again with backoff while Telegram cannot be
    reached, one log line per failed attempt: a container may start before its network.

    False when `stop` was set first. A refused token (InvalidToken) is raised at once: no
    retry mends it. Whatever happens short of success, the bots' connections are closed.
    """
    reached = False
    stopped = asyncio.ensure_future(stop.wait())
    try:
        for attempt in itertools.count(1):
            trying = asyncio.ensure_future(_initialize(bots))
            await asyncio.wait({trying, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not trying.done():  # SIGINT/SIGTERM while an attempt waits for an answer
                trying.cancel()
                with contextlib.suppress(asyncio.CancelledError, TelegramError):
                    await trying
                return False
            error = trying.exception()
            if error is None:
                reached = True
                if attempt > 1:
                    log.info("event=telegram_reached attempts=%d", attempt)
                return True
            if not is_transient(error):
                raise error
            delay = REACH_BACKOFF[min(attempt, len(REACH_BACKOFF)) - 1]
            log.warning(
                "event=telegram_unreachable url=%s attempt=%d error=%r retry_in=%.0fs",
                api_url,
                attempt,
                str(error),
                delay,
            )
            await asyncio.wait({stopped}, timeout=delay)
            if stopped.done():
                return False
        raise AssertionError("unreachable")
    finally:
        stopped.cancel()
        if not reached:
            for bot in bots:
                await bot.shutdown()


async def _initialize(bots: Sequence[Bot]) -> None:
    for bot in bots:
        await bot.initialize()


def is_transient(error: BaseException) -> bool:
    """Telegram unreachable, slow, overloaded (5xx) or asking to wait: worth another try.
    A 400 (BadRequest is a NetworkError too) or a refused token is not."""
    if isinstance(error, RetryAfter):
        return True
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


async def register_commands(bot: Bot) -> None:
    for language, entries in COMMANDS.items():
        commands = [BotCommand(name, description) for name, description in entries]
        await bot.set_my_commands(commands, language_code=None if language == "en" else language)


async def run(
    settings: Settings,
    store: Store,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[BotRuntime], None] | None = None,
) -> None:
    """Run the bot until SIGINT/SIGTERM (or `stop` is set), then stop cleanly.

    Order on stop: stop taking updates, stop starting feed checks, let checks and sends in
    flight finish (bounded), record what was sent; the caller closes the database.
    A database found lost (file deleted or replaced, storage read-only) stops it the same
    way, and then its DatabaseLostError is raised.
    """
    stop = stop or asyncio.Event()
    store.db.on_lost = lambda _error: stop.set()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    pacer = Pacer(settings.delivery)
    app = build_application(settings, pacer)
    sender_bot = build_sender_bot(settings)
    if not await reach_telegram([app.bot, sender_bot], settings.telegram.api_base_url, stop):
        log.info("event=stopped before_start=1")
        return
    runtime = build_runtime(settings, store, sender_bot, pacer, clock)
    app.bot_data["runtime"] = runtime
    add_handlers(app)
    updates = app.update_processor
    assert isinstance(updates, PerChatUpdateProcessor)
    # A chat sending faster than it can be answered: told to slow down, the drops counted.
    updates.refused = partial(handlers.too_fast, app)
    updates.count = runtime.count_too_fast
    async with runtime.fetcher, sender_bot, app:
        await runtime.keywords.load_all()
        # Long-lived start-up data (keyword index, caches) out of the collector's way.
        gc.freeze()
        await register_commands(app.bot)
        await ops.tell_interrupted_imports(app.bot, store)
        await runtime.sender.start()
        await app.start()
        assert app.updater is not None and app.job_queue is not None
        await app.updater.start_polling(
            allowed_updates=ALLOWED_UPDATES,
            timeout=settings.telegram.polling_timeout,
            drop_pending_updates=False,
            error_callback=log_polling_error,
        )
        # first=0.1, not 0: PTB's JobQueue takes first=0 as "after one interval".
        app.job_queue.run_repeating(poll_tick, interval=1.0, first=0.1, name="poll")
        # A 10,000-chat minute takes longer than a tick (bench/digest.py: 6 s). Two
        # instances let the next tick run and return at once (fire_due's lock) instead of
        # APScheduler logging "maximum number of running instances reached" every tick.
        app.job_queue.run_repeating(
            digest_tick,
            interval=DIGEST_TICK_SECONDS,
            first=0.1,
            name="digests",
            job_kwargs={"max_instances": 2},
        )
        app.job_queue.run_repeating(
            housekeeping, interval=HOUSEKEEPING_SECONDS, first=60.0, name="housekeeping"
        )
        app.job_queue.run_repeating(
            database_check, interval=DATABASE_CHECK_SECONDS, name="database_check"
        )
        log.info("event=started bot=@%s", app.bot.username)
        if ready:
            ready(runtime)
        await stop.wait()
        log.info("event=stopping")
        await app.updater.stop()
        grace = settings.delivery.shutdown_grace_seconds
        await runtime.poller.stop(grace)
        # Deliveries it cannot record in a lost database are reported there already.
        with contextlib.suppress(DatabaseLostError):
            await runtime.sender.stop(grace)
        await app.stop()
    runtime.executor.shutdown(wait=False, cancel_futures=True)
    log.info("event=stopped")
    if store.db.lost:
        raise store.db.lost
