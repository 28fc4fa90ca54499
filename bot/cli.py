"""The `news-notifier` command: run, preview, healthcheck, export-opml, import-opml,
migrate-db."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.errors import FeedError, UserError
from bot.store import (
    DatabaseLockedError,
    DatabaseLostError,
    DatabaseRefusedError,
    DatabaseUnavailableError,
    Store,
)
from bot.store.db import is_postgresql, missing, shown_location
from bot.text import html_to_plain

if TYPE_CHECKING:
    from bot.opml import ImportReport, OpmlFeed

log = logging.getLogger("bot.cli")
EXIT_USAGE = 2
# The database file went away (deleted, replaced, read-only) while the bot ran.
EXIT_DATABASE_LOST = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="news-notifier",
        description="A Telegram bot that watches news feeds and tells chats about new stories.",
    )
    parser.add_argument("--version", action="version", version=f"news-notifier {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="TOML settings file (default: $NEWS_NOTIFIER_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the bot (long polling) until SIGINT or SIGTERM")
    preview = commands.add_parser(
        "preview", help="print the alerts the bot would send for a feed's newest entries"
    )
    preview.add_argument("source", metavar="URL_OR_FILE")
    preview.add_argument(
        "--limit",
        type=int,
        default=3,
        metavar="N",
        help="how many of the newest entries (default 3)",
    )
    commands.add_parser(
        "healthcheck", help="exit 0 when the database answers and feeds are being checked"
    )
    export_opml = commands.add_parser(
        "export-opml", help="print a chat's subscriptions as an OPML 2.0 document"
    )
    export_opml.add_argument("chat_id", type=int, metavar="CHAT_ID")
    import_opml = commands.add_parser(
        "import-opml",
        help="subscribe a chat to the feeds of an OPML file, checking each like /subscribe",
    )
    import_opml.add_argument("chat_id", type=int, metavar="CHAT_ID")
    import_opml.add_argument("file", metavar="FILE", help="the OPML file ('-': standard input)")
    migrate_db = commands.add_parser(
        "migrate-db",
        help="copy the configured SQLite database into an empty PostgreSQL database",
    )
    migrate_db.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the PostgreSQL database: postgresql://user@host:5432/name (empty, or new)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        print(f"news-notifier: {error}", file=sys.stderr)
        return EXIT_USAGE
    from bot.logs import setup_logging

    setup_logging(settings.log, settings.telegram.token)
    handler = COMMANDS[args.command]
    try:
        return asyncio.run(handler(args, settings))
    except KeyboardInterrupt:
        return 130


async def open_store(settings: Settings, *, hint: str = "") -> Store | None:
    """The store for a command that writes; None (and one line why) while a bot holds it,
    or when its database server cannot be reached."""
    try:
        return await Store.open(settings.database.path)
    except (DatabaseLockedError, DatabaseRefusedError, DatabaseUnavailableError) as error:
        print(f"news-notifier: {error}{hint}", file=sys.stderr)
        return None


# Start-up while the database server cannot be reached: seconds before each next attempt
# (the last repeats). A container may start before its database is up.
DATABASE_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


async def open_store_when_reachable(settings: Settings, stop: asyncio.Event) -> Store | None:
    """The bot's store, trying again while its server cannot be reached (one log line per
    attempt); None when `stop` came first, another bot holds the database or its server
    refuses the bot (a wrong name, role or password): each said in one line."""
    for attempt in itertools.count(1):
        try:
            # Shared: other bots may run on the same PostgreSQL database (one leads).
            return await Store.open(settings.database.path, shared=True)
        except (DatabaseLockedError, DatabaseRefusedError) as error:
            print(f"news-notifier: {error}", file=sys.stderr)
            return None
        except DatabaseUnavailableError as error:
            delay = DATABASE_BACKOFF[min(attempt, len(DATABASE_BACKOFF)) - 1]
            log.warning(
                "event=database_unreachable attempt=%d error=%r retry_in=%.0fs",
                attempt,
                error.problem,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return None
    raise AssertionError("unreachable")


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.telegram.token:
        print(
            "news-notifier: no bot token: set TELEGRAM_BOT_TOKEN (from @BotFather) "
            "or telegram.token in a settings file",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # run() keeps them on the same event
        loop.add_signal_handler(signum, stop.set)
    store = await open_store_when_reachable(settings, stop)
    if store is None:
        return 0 if stop.is_set() else EXIT_USAGE
    from telegram.error import InvalidToken

    from bot.listener import ListenError
    from bot.telegram.app import run
    from bot.telegram.webhook import WebhookRefusedError

    try:
        await run(settings, store, stop=stop)
    except (ListenError, WebhookRefusedError) as error:
        print(f"news-notifier: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseLostError:
        return EXIT_DATABASE_LOST  # logged at CRITICAL when it was found
    except InvalidToken as error:
        # PTB's own message quotes the token; the answer Telegram gave is its cause.
        answer = str(error.__cause__ or "Unauthorized")
        print(
            f"news-notifier: Telegram refused the bot token ({answer}): check "
            "TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_API_BASE_URL",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        await store.close()
    return 0


async def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from bot.i18n import failure_reply
    from bot.preview import preview

    try:
        alerts = await preview(args.source, settings, limit=max(1, args.limit))
    except FeedError as error:
        text = failure_reply("en", error.failure, given=args.source)
        print(f"news-notifier: {html_to_plain(text)}", file=sys.stderr)
        return 1
    except UserError as error:
        print(f"news-notifier: {plain(error.key, **error.values)}", file=sys.stderr)
        return 1
    if not alerts:  # said, not silence: the file may not be the feed the user meant
        print(f"news-notifier: {plain('preview.empty', given=args.source)}", file=sys.stderr)
        return 1
    for alert in alerts:
        print(alert)
        print()
    return 0


async def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from bot.health import check_health

    ok, message = await check_health(settings)
    print(message)
    return 0 if ok else 1


def plain(key: str, **values: object) -> str:
    """An English text of bot/i18n.py without its Telegram markup."""
    from bot.i18n import t

    return html_to_plain(t("en", key, **values))


async def cmd_export_opml(args: argparse.Namespace, settings: Settings) -> int:
    from bot.opml import OpmlFeed, build_opml

    path = shown_location(settings.database.path)
    if missing(settings.database.path):
        print(f"news-notifier: no database at {path}", file=sys.stderr)
        return 1
    # Read-only and without the process lock: exporting beside a running bot is safe.
    try:
        store = await Store.open(settings.database.path, exclusive=False, read_only=True)
        try:
            title = await store.stats.chat_title(args.chat_id)
            feeds = await store.stats.exported_feeds(args.chat_id)
        finally:
            await store.close()
    except Exception as error:  # sqlite3's or asyncpg's: either way, one line
        print(f"news-notifier: database {path} cannot be read ({error})", file=sys.stderr)
        return 1
    if title is None:
        print(f"news-notifier: chat {args.chat_id} is not known to the bot", file=sys.stderr)
        return 1
    document = build_opml(
        [OpmlFeed(f.url, f.title, site_url=f.site_url) for f in feeds],
        title=f"news-notifier: {title}" if title else "news-notifier subscriptions",
    )
    sys.stdout.buffer.write(document)
    sys.stdout.flush()
    return 0


def read_opml_file(name: str, max_bytes: int) -> bytes:
    """At most max_bytes + 1 bytes: enough for parse_opml to tell the file is too large."""
    if name == "-":
        return sys.stdin.buffer.read(max_bytes + 1)
    with open(name, "rb") as handle:
        return handle.read(max_bytes + 1)


class ProgressBar:
    """`[#######.............]  57/200` on a terminal's stderr; nothing when it is not one."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.quieted: list[tuple[logging.Logger, int]] = []

    def start(self) -> None:
        """Info lines (one per feed checked) would break the bar; the summary tells it all."""
        if self.enabled:
            quiet = logging.getLogger("bot")
            self.quieted.append((quiet, quiet.level))
            quiet.setLevel(max(logging.WARNING, quiet.getEffectiveLevel()))

    async def update(self, report: ImportReport) -> None:
        if not self.enabled:
            return
        filled = self.WIDTH * report.checked // max(self.total, 1)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {report.checked:>{len(str(self.total))}}/{self.total}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
        for logger, level in self.quieted:
            logger.setLevel(level)


async def cmd_import_opml(args: argparse.Namespace, settings: Settings) -> int:
    from bot.opml import OpmlError, parse_opml

    limits = settings.opml
    try:
        data = read_opml_file(args.file, limits.max_bytes)
        document = parse_opml(data, max_bytes=limits.max_bytes, max_feeds=limits.max_feeds)
    except OSError as error:
        print(f"news-notifier: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except OpmlError as error:
        print(f"news-notifier: {plain(error.key, **error.values)}", file=sys.stderr)
        return EXIT_USAGE
    store = await open_store(settings, hint=" (or send the file to the bot with /import)")
    if store is None:
        return EXIT_USAGE
    try:
        if await store.chats.get(args.chat_id) is None:
            print(
                f"news-notifier: chat {args.chat_id} is not known to the bot: "
                "it must have talked to the bot first",
                file=sys.stderr,
            )
            return EXIT_USAGE
        report = await import_into(store, settings, args.chat_id, document.feeds)
    finally:
        await store.close()
    from bot.reports import import_summary

    print(html_to_plain(import_summary("en", report)))
    return 1 if report.failures or report.not_checked else 0


async def import_into(
    store: Store, settings: Settings, chat_id: int, feeds: list[OpmlFeed]
) -> ImportReport:
    """Check and subscribe as the running bot would: the runtime's own ingestion half, so
    stories a check finds new reach the feed's other subscribers (at the bot's next start)
    through their keyword filters like any other story."""
    from bot.opml import import_feeds
    from bot.runtime import build_ingestion

    async with build_ingestion(settings, store) as ingestion:
        bar = ProgressBar(len(feeds))
        bar.start()
        try:
            return await import_feeds(
                lambda url, turn: ingestion.subscriptions.subscribe_unless_subscribed(
                    chat_id, url, thread_id=None, turn=turn
                ),
                feeds,
                on_checked=bar.update,
            )
        finally:
            bar.finish()


async def cmd_migrate_db(args: argparse.Namespace, settings: Settings) -> int:
    """Refusals and failures: one line on stderr, exit 1 (a bad --to: 2). Success: the rows
    of every table, as counted in both databases, on stdout."""
    from bot.config import postgresql_url
    from bot.errors import MigrationError
    from bot.store.migrate import migrate_database

    source = settings.database.path
    try:
        target = postgresql_url(args.to, name="--to")
    except ConfigError as error:
        print(f"news-notifier: {error}", file=sys.stderr)
        return EXIT_USAGE
    if is_postgresql(source):
        print(
            f"news-notifier: migrate-db copies from a SQLite database, and "
            f"NEWS_NOTIFIER_DATABASE is already {shown_location(source)}",
            file=sys.stderr,
        )
        return 1
    if missing(source):
        print(f"news-notifier: no database at {source}", file=sys.stderr)
        return 1
    try:
        counts = await migrate_database(source, target)
    except (
        MigrationError,
        DatabaseLockedError,
        DatabaseRefusedError,
        DatabaseUnavailableError,
    ) as error:
        print(f"news-notifier: {error}", file=sys.stderr)
        return 1
    width = max(len(count.table) for count in counts)
    for count in counts:
        print(f"{count.table:<{width}}  {count.rows:>10}")
    total = sum(count.rows for count in counts)
    print(
        f"copied {total} rows from {source} to {shown_location(target)}; "
        "every table's count matches"
    )
    return 0


COMMANDS = {
    "run": cmd_run,
    "preview": cmd_preview,
    "healthcheck": cmd_healthcheck,
    "export-opml": cmd_export_opml,
    "import-opml": cmd_import_opml,
    "migrate-db": cmd_migrate_db,
}
