"""The `news-notifier` command: run, preview, healthcheck, export-opml, import-opml."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.errors import UserError
from bot.store import DatabaseLockedError, Store

log = logging.getLogger("bot.cli")
EXIT_USAGE = 2


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


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.telegram.token:
        print(
            "news-notifier: no bot token: set TELEGRAM_BOT_TOKEN (from @BotFather) "
            "or telegram.token in a settings file",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        store = await Store.open(settings.database.path)
    except DatabaseLockedError as error:
        print(f"news-notifier: {error}", file=sys.stderr)
        return EXIT_USAGE
    from bot.telegram.app import run

    try:
        await run(settings, store)
    finally:
        await store.close()
    return 0


async def cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from bot.preview import preview

    try:
        for alert in await preview(args.source, settings, limit=max(1, args.limit)):
            print(alert)
            print()
    except UserError as error:
        from bot.delivery.format import html_to_plain
        from bot.telegram.i18n import t

        print(
            f"news-notifier: {html_to_plain(t('en', error.key, **error.values))}", file=sys.stderr
        )
        return 1
    return 0


async def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from bot.health import check_health

    ok, message = await check_health(settings)
    print(message)
    return 0 if ok else 1


COMMANDS = {"run": cmd_run, "preview": cmd_preview, "healthcheck": cmd_healthcheck}
