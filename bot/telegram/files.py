"""A chat's feeds as a file: /export sends them as OPML, /import subscribes to an OPML file's
feeds (checked in the background, with a progress message a restart can finish)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from functools import partial

from telegram import Bot, Document, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.errors import UserError
from bot.i18n import t
from bot.opml import (
    ImportReport,
    OpmlDocument,
    OpmlFeed,
    build_opml,
    import_feeds,
    kilobytes,
    parse_opml,
)
from bot.reports import import_summary
from bot.store import Store
from bot.telegram.command import Request, command
from bot.telegram.context import BotContext

log = logging.getLogger(__name__)

# A document whose caption is the command: CommandHandler only looks at message text.
IMPORT_CAPTION = re.compile(r"^/import(?:@(\w+))?(?:\s|$)", re.IGNORECASE)
# Progress edits: often enough to show life, rarely enough to stay far below the per-chat
# limit (edits count against it too). Module-level so tests can shorten it.
PROGRESS_EVERY = 2.0


# --- /export -----------------------------------------------------------------------------


@command(targets=True)
async def export_(request: Request, context: BotContext) -> None:
    """Anyone may read a chat's feeds, so anyone may export them (another chat's: its
    administrators, as every command that names a chat)."""
    rt = context.runtime
    feeds = await rt.store.stats.exported_feeds(request.chat_id)
    if not feeds:
        await request.respond(t(request.language, "list.empty"))
        return
    chat = request.update.effective_chat
    name = request.target.name if request.target else chat.effective_name if chat else None
    title = f"news-notifier: {name}" if name else ""
    document = build_opml(
        [OpmlFeed(f.url, f.title, site_url=f.site_url) for f in feeds],
        title=title or "news-notifier subscriptions",
    )
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    try:
        await request.message.reply_document(
            document,
            filename=f"news-notifier-{day}.opml",
            caption=request.named(t(request.language, "export.caption", count=len(feeds))),
            parse_mode=ParseMode.HTML,
            do_quote=False,
        )
    except TelegramError as error:
        log.warning("event=export_failed chat=%d error=%r", request.chat_id, str(error))


# --- /import -----------------------------------------------------------------------------


def attached_document(message: Message) -> Document | None:
    """The file /import is about: on the message itself, or on the message it answers."""
    if message.document:
        return message.document
    replied = message.reply_to_message
    return replied.document if replied else None


@command(changes=True, targets=True)
async def import_(request: Request, context: BotContext) -> None:
    """Check the file here; the feeds are checked in the background (see run_import)."""
    document = attached_document(request.message)
    if document is None:
        raise UserError("import.usage")
    busy = context.bot_data.importing
    # One import at a time into a chat, and one progress message at a time in a chat (the
    # imports table keeps one per chat): an import for a channel shows its progress here.
    chats = {request.chat_id, request.message.chat_id}
    if busy & chats:
        raise UserError("import.busy")
    limits = context.runtime.settings.opml
    opml = parse_opml(
        await download(document, limits.max_bytes),
        max_bytes=limits.max_bytes,
        max_feeds=limits.max_feeds,
    )
    busy.update(chats)
    # In the background: updates of one chat are handled in order, and a 200-feed import
    # must not hold the chat's other commands for a minute.
    context.application.create_task(
        run_import(request, context, opml), update=request.update, name="import"
    )


async def import_document(update: Update, context: BotContext) -> None:
    """A document captioned /import: the same as /import, unless addressed to another bot."""
    message = update.effective_message
    match = IMPORT_CAPTION.match(message.caption or "") if message else None
    if match is None:
        return
    addressee = match.group(1)
    if addressee and addressee.lower() != (context.bot.username or "").lower():
        return
    await import_(update, context)


async def download(document: Document, max_bytes: int) -> bytes:
    """The file's bytes; its announced size is checked before anything is downloaded."""
    limit_kb = kilobytes(max_bytes)
    if document.file_size and document.file_size > max_bytes:
        raise UserError("opml.too_large", size_kb=kilobytes(document.file_size), limit_kb=limit_kb)
    try:
        file = await document.get_file()
        return bytes(await file.download_as_bytearray())
    except BadRequest as error:
        if "too big" in str(error).lower():  # over Telegram's 20 MB download limit
            raise UserError("opml.too_large", size_kb=20 * 1024, limit_kb=limit_kb) from None
        raise UserError("import.download_failed") from None
    except TelegramError as error:
        log.warning("event=import_download_failed error=%r", str(error))
        raise UserError("import.download_failed") from None


class Progress:
    """One message, edited as the import goes: at most every PROGRESS_EVERY seconds."""

    def __init__(self, request: Request, message: Message | None, total: int) -> None:
        self.message = message
        self.language = request.language
        self.named = request.named  # an import into another chat names it
        self.total = total
        self.shown = 0
        self.last_edit = time.monotonic()

    async def update(self, report: ImportReport) -> None:
        now = time.monotonic()
        if now - self.last_edit < PROGRESS_EVERY:
            return
        self.last_edit = now  # before the await: the other workers must not edit too
        await self._show("import.progress", report.checked)

    async def finish(self, report: ImportReport) -> None:
        await self._show("import.progress_done", report.checked, force=True)

    async def _show(self, key: str, done: int, *, force: bool = False) -> None:
        if self.message is None or (done == self.shown and not force):
            return
        self.shown = done
        try:
            text = self.named(t(self.language, key, done=done, total=self.total))
            await self.message.edit_text(text, parse_mode=ParseMode.HTML)
        except TelegramError as error:  # a lost progress edit is no reason to stop importing
            log.warning("event=import_progress_failed error=%r", str(error))


async def run_import(request: Request, context: BotContext, opml: OpmlDocument) -> None:
    rt = context.runtime
    app = context.application
    lang = request.language
    total = len(opml.feeds)
    started = None
    try:
        started = await request.respond(t(lang, "import.progress", done=0, total=total))
        if started is not None:  # kept until the import ends: a kill leaves it for the next start
            await rt.store.imports.begin(
                started.chat_id,  # where the message is: this chat, for a channel's import too
                started.message_id,
                language=lang,
                total=total,
                now_ms=rt.clock.now_ms(),
            )
        progress = Progress(request, started, total)
        subscribe = partial(
            rt.subscriptions.subscribe_unless_subscribed,
            request.chat_id,
            thread_id=request.thread_id,
        )
        report = await import_feeds(
            subscribe,
            opml.feeds,
            on_checked=progress.update,
            keep_going=lambda: app.running,  # the bot is stopping: start no further checks
        )
        log.info(
            "event=import chat=%d total=%d added=%d already=%d failed=%d not_checked=%d",
            request.chat_id,
            total,
            len(report.added),
            len(report.already),
            len(report.failures),
            report.not_checked,
        )
        await progress.finish(report)
        if started is not None:  # done: no longer an import a restart must tell about
            await rt.store.imports.end(started.chat_id)
        await request.respond(import_summary(lang, report))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("event=import_crashed chat=%d", request.chat_id)
        await request.respond(t(lang, "error.internal"))
    finally:
        context.bot_data.importing.difference_update({request.chat_id, request.message.chat_id})
        if started is not None:
            await rt.store.imports.end(started.chat_id)


async def tell_interrupted_imports(bot: Bot, store: Store) -> None:
    """At start, before updates are taken: each import a kill cut short has its progress
    message ("checked 81 of 200…") replaced by what happened and how to finish."""
    for unfinished in await store.imports.unfinished():
        try:
            await bot.edit_message_text(
                t(unfinished.language, "import.interrupted", total=unfinished.total),
                chat_id=unfinished.chat_id,
                message_id=unfinished.message_id,
            )
        except TelegramError as error:  # deleted, or the chat gone: nobody left to tell
            log.warning(
                "event=import_notice_failed chat=%d error=%r", unfinished.chat_id, str(error)
            )
        await store.imports.end(unfinished.chat_id)
        log.info("event=import_interrupted chat=%d total=%d", unfinished.chat_id, unfinished.total)
