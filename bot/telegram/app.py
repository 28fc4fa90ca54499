"""The python-telegram-bot Application around the runtime (bot/runtime.py): its handlers,
its two Bots (updates and replies; the sender's), and the run loop, from reaching Telegram
at start to a clean stop on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial

from telegram import Bot, BotCommand
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.clock import Clock
from bot.config import Settings
from bot.delivery.pacing import PacedRateLimiter, Pacer
from bot.delivery.transport import AiohttpRequest
from bot.i18n import COMMANDS
from bot.listener import Listener
from bot.runtime import Runtime, build_runtime
from bot.store import Store
from bot.telegram import chat_settings, files, handlers, operators
from bot.telegram.command import Handler
from bot.telegram.context import CONTEXT_TYPES, BotApplication
from bot.telegram.jobs import schedule_jobs
from bot.telegram.listening import build_listener
from bot.telegram.ordering import PerChatUpdateProcessor

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "channel_post", "callback_query", "my_chat_member"]
COMMAND_UPDATES = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
# Start-up while Telegram cannot be reached: seconds before each next attempt (the last one
# repeats).
REACH_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def file_url(base_url: str) -> str:
    """python-telegram-bot's base_file_url beside a base_url: …/bot → …/file/bot."""
    return base_url[: -len("/bot")] + "/file/bot" if base_url.endswith("/bot") else base_url


# Every command, by the names it answers to. /import also comes as a file's caption.
COMMAND_HANDLERS: dict[tuple[str, ...], Handler] = {
    ("start",): handlers.start,
    ("help",): handlers.help_,
    ("subscribe", "sub"): handlers.subscribe,
    ("unsubscribe", "unsub"): handlers.unsubscribe,
    ("list",): handlers.list_,
    ("mode",): handlers.mode,
    ("keywords", "keyword", "kw"): handlers.keywords,
    ("digest",): handlers.digest,
    ("settings",): chat_settings.settings,
    ("export",): files.export_,
    ("import",): files.import_,
    ("stats",): operators.stats,
}


def add_handlers(app: BotApplication) -> None:
    for names, callback in COMMAND_HANDLERS.items():
        app.add_handler(CommandHandler(list(names), callback, filters=COMMAND_UPDATES))
    app.bot_data.commands.update(name for names in COMMAND_HANDLERS for name in names)
    app.add_handler(CallbackQueryHandler(handlers.unsubscribe_button, pattern=r"^unsub:"))
    app.add_handler(CallbackQueryHandler(handlers.feed_choice_button, pattern=r"^feed:"))
    app.add_handler(CallbackQueryHandler(chat_settings.settings_button, pattern=r"^cfg:"))
    app.add_handler(ChatMemberHandler(handlers.chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, handlers.migrated))
    app.add_handler(MessageHandler(filters.COMMAND & COMMAND_UPDATES, handlers.unknown), group=1)
    app.add_handler(
        MessageHandler(
            filters.Document.ALL & filters.CaptionRegex(files.IMPORT_CAPTION) & COMMAND_UPDATES,
            files.import_document,
        )
    )
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


def build_application(settings: Settings, pacer: Pacer) -> BotApplication:
    tg = settings.telegram
    return (
        ApplicationBuilder()
        .context_types(CONTEXT_TYPES)
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
    ready: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the bot until SIGINT/SIGTERM (or `stop` is set), then stop cleanly.

    Order on stop: stop taking updates and deliveries, stop starting feed checks, let checks
    and sends in flight finish (bounded), record what was sent; the caller closes the
    database. A listener address that cannot be bound raises ListenError before any update
    is taken.
    A database found lost (file deleted or replaced, storage read-only) stops it the same
    way, and then its DatabaseLostError is raised.
    """
    stop = stop or asyncio.Event()
    stop_on_signals_and_loss(store, stop)
    pacer = Pacer(settings.delivery)
    app = build_application(settings, pacer)
    sender_bot = build_sender_bot(settings)
    if not await reach_telegram([app.bot, sender_bot], settings.telegram.api_base_url, stop):
        log.info("event=stopped before_start=1")
        return
    runtime = build_runtime(settings, store, sender_bot, pacer, clock)
    wire(app, runtime)
    listener = build_listener(settings, runtime)
    # The runtime entered last: its keywords load once the bots are up (and the bots are
    # closed if loading fails); its fetcher and parse threads close first, after the stop.
    async with sender_bot, app, runtime, stopping(listener):
        await start(app, runtime, listener)
        log.info("event=started bot=@%s", app.bot.username)
        if ready:
            ready(runtime)
        await stop.wait()
        await stop_in_order(app, runtime, listener)
    log.info("event=stopped")
    if store.db.lost:
        raise store.db.lost


def stop_on_signals_and_loss(store: Store, stop: asyncio.Event) -> None:
    """SIGINT, SIGTERM and a database found lost all set `stop`."""
    store.db.on_lost = lambda _error: stop.set()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass


def wire(app: BotApplication, runtime: Runtime) -> None:
    """Give the handlers the runtime, and the update processor its answer to floods."""
    app.bot_data.attach(runtime)
    add_handlers(app)
    updates = app.update_processor
    assert isinstance(updates, PerChatUpdateProcessor)
    # A chat sending faster than it can be answered: told to slow down, the drops counted.
    updates.refused = partial(handlers.too_fast, app)
    updates.count = runtime.count_too_fast


@contextlib.asynccontextmanager
async def stopping(listener: Listener | None) -> AsyncIterator[None]:
    """The listener stopped whatever happens (stop_in_order stops it first, in its turn)."""
    try:
        yield
    finally:
        if listener is not None:
            await listener.stop()


async def start(app: BotApplication, runtime: Runtime, listener: Listener | None) -> None:
    """Everything before the first update is taken: the listener (first: an address in use
    stops the start before anything is sent), the command menus, WebSub's renewals, the
    application, the leadership (a leader: the imports a kill cut short told, the sender,
    then updates), then the jobs."""
    if listener is not None:
        await listener.start()
    # Long-lived start-up data (keyword index, caches) out of the collector's way.
    gc.freeze()
    await register_commands(app.bot)
    await runtime.start_push()
    await app.start()
    assert app.job_queue is not None
    leadership = runtime.leadership
    leadership.on_elected.append(partial(lead, app, runtime))
    leadership.on_deposed.append(partial(stop_updates, app))
    await leadership.start()
    schedule_jobs(app.job_queue)


async def lead(app: BotApplication, runtime: Runtime) -> None:
    """What the leader does beside sending (it is the one bot that does): tell the imports a
    kill cut short, and take updates (Telegram answers 409 to a second getUpdates)."""
    await files.tell_interrupted_imports(app.bot, runtime.store)
    assert app.updater is not None
    if not app.updater.running:
        await app.updater.start_polling(
            allowed_updates=ALLOWED_UPDATES,
            timeout=runtime.settings.telegram.polling_timeout,
            drop_pending_updates=False,
            error_callback=log_polling_error,
        )


async def stop_updates(app: BotApplication) -> None:
    """No more getUpdates from this bot (it no longer leads, or stops)."""
    assert app.updater is not None
    if app.updater.running:
        await app.updater.stop()


async def stop_in_order(app: BotApplication, runtime: Runtime, listener: Listener | None) -> None:
    """Stop taking updates, stop asking hubs, stop taking deliveries (a request being
    answered finishes: its stories reach the outbox), stop sending (sends in flight finish
    within the grace, what was sent is recorded, the lead goes to a standby), stop starting
    feed checks and let those in flight finish (within the grace), stop the application."""
    log.info("event=stopping")
    await stop_updates(app)
    await runtime.stop_push()  # no more requests to hubs (a hub's verification would fail)
    if listener is not None:
        await listener.stop()
    grace = runtime.settings.delivery.shutdown_grace_seconds
    await runtime.leadership.stop(grace)
    await runtime.poller.stop(grace)
    await app.stop()
