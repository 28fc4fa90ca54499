"""The chat's commands and buttons, and what Telegram tells of the chat itself (the bot
blocked or added back, a group upgraded): parse, call one use case, reply.

Each command is wrapped by command.command (allowed users, chat remembered, errors
answered); /export, /import are in files.py and /stats in operators.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram import (
    CallbackQuery,
    Chat,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ChatAction, ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, TelegramError

from bot.delivery.format import format_time
from bot.errors import (
    FailureKind,
    FeedError,
    FeedFailure,
    FeedLinkError,
    SeveralFeedsError,
    UserError,
)
from bot.i18n import failure_reason, failure_reply, language_of, t
from bot.telegram.command import (
    Request,
    command,
    headed,
    may_change,
    remember_chat,
    remember_target,
    reply,
)
from bot.telegram.context import BotApplication, BotContext
from bot.telegram.targets import TargetChat, TargetRefused, resolve_target
from bot.text import ENTITY_LIMIT, clip, entity_count, html_to_plain

if TYPE_CHECKING:
    from bot.usecases.subscriptions import Subscribed

log = logging.getLogger(__name__)

# Buttons in the /unsubscribe menu: more make a wall no one scrolls (the rest by number).
MAX_BUTTONS = 50


# A check that takes longer than this shows "typing…" until it ends (a slow feed can take
# up to fetch.total_timeout); a quick one shows nothing, so no "typing…" outlives the reply.
TYPING_AFTER = 1.0
TYPING_EVERY = 4.5  # Telegram shows a chat action for 5 s


@contextlib.asynccontextmanager
async def typing_while_slow(
    context: BotContext, chat_id: int, thread_id: int | None
) -> AsyncIterator[None]:
    async def keep_typing() -> None:
        await asyncio.sleep(TYPING_AFTER)
        while True:
            with contextlib.suppress(TelegramError):
                await context.bot.send_chat_action(
                    chat_id, ChatAction.TYPING, message_thread_id=thread_id
                )
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- commands ---------------------------------------------------------------------------


@command()
async def start(request: Request, context: BotContext) -> None:
    rt = context.runtime
    if request.resumed:
        count = await rt.store.chats.count_subscriptions(request.chat_id)
        await request.respond(t(request.language, "start.resumed", count=count))
    await request.respond(t(request.language, "help"))


@command()
async def help_(request: Request, context: BotContext) -> None:
    await request.respond(t(request.language, "help"))


@command(changes=True, targets=True)
async def subscribe(request: Request, context: BotContext) -> None:
    if not request.text:
        raise UserError("subscribe.usage")
    if len(request.args) > 1:
        raise FeedError(FeedFailure(FailureKind.INVALID_URL))
    try:
        async with typing_while_slow(context, request.chat_id, request.thread_id):
            result = await context.runtime.subscriptions.subscribe(
                request.chat_id, request.text, thread_id=request.thread_id
            )
    except (SeveralFeedsError, FeedLinkError) as page:
        await answer_page(request, context, page)
        return
    await request.respond(
        subscribed_text(request.language, result),
        link_preview_options=NO_PREVIEW,
    )


@command(changes=True, targets=True)
async def unsubscribe(request: Request, context: BotContext) -> None:
    rt = context.runtime
    if not request.text:
        subscriptions = await rt.store.chats.subscriptions(request.chat_id)
        if not subscriptions:
            await request.respond(t(request.language, "list.empty"))
            return
        # A menu for another chat (a target) names it: the press is checked against it.
        aimed = f"{request.chat_id}:" if request.target else ""
        buttons = [
            [
                InlineKeyboardButton(
                    f"{n}. {s.feed_title or s.feed_url}"[:60],
                    callback_data=f"unsub:{aimed}{s.id}",
                )
            ]
            for n, s in enumerate(subscriptions[:MAX_BUTTONS], start=1)
        ]
        buttons.append(
            [
                InlineKeyboardButton(
                    t(request.language, "unsubscribe.cancel"), callback_data="unsub:cancel"
                )
            ]
        )
        text = t(request.language, "unsubscribe.choose")
        if len(subscriptions) > MAX_BUTTONS:
            more = t(
                request.language, "unsubscribe.more", shown=MAX_BUTTONS, count=len(subscriptions)
            )
            text = f"{text}\n{more}"
        await request.respond(text, reply_markup=InlineKeyboardMarkup(buttons))
        return
    if len(request.args) > 1:
        raise UserError("unsubscribe.usage")
    removed = await rt.subscriptions.unsubscribe(request.chat_id, request.text)
    await request.respond(
        t(request.language, "unsubscribe.done", title=removed.feed_title or removed.feed_url),
    )


# What the /unsubscribe menu's buttons carry: the subscription, after the chat it is of
# when the menu is for another chat. ASCII digits only: "²" is a digit to str.isdigit() but
# no int(), and a client may send any data it likes.
UNSUBSCRIBE_DATA = re.compile(r"unsub:(?:(-?[1-9][0-9]{0,15}):)?(cancel|[0-9]{1,18})")


async def unsubscribe_button(update: Update, context: BotContext) -> None:
    press_data = await read_press(update, context, UNSUBSCRIBE_DATA)
    if press_data is None:
        return
    query, chat, match = press_data
    rt = context.runtime
    chat_id = int(match[1]) if match[1] else chat.id
    press = await press_allowed(update, context, chat_id)
    if press is None:
        return
    choice = match[2]
    cancelled = press.named(t(press.language, "unsubscribe.cancelled"))
    if choice == "cancel":
        await query.answer()
        await edit_menu(query, cancelled, parse_mode=ParseMode.HTML)
        return
    subscriptions = {s.id: s for s in await rt.store.chats.subscriptions(chat_id)}
    chosen = subscriptions.get(int(choice))
    await query.answer()
    if chosen is None:  # gone since the menu was sent (another press, /unsubscribe N)
        await edit_menu(query, cancelled, parse_mode=ParseMode.HTML)
        return
    await rt.store.chats.unsubscribe(chat_id, chosen.id)
    await edit_menu(
        query,
        press.named(
            t(press.language, "unsubscribe.done", title=chosen.feed_title or chosen.feed_url)
        ),
        parse_mode=ParseMode.HTML,
    )


@dataclass(frozen=True, slots=True)
class Press:
    """A button press allowed to change the chat its menu is about."""

    language: str  # of the menu's chat, for the answer
    target: TargetChat | None  # the chat the menu is about, when another one (checked)

    def named(self, text: str) -> str:
        return headed(self.language, self.target, text)


async def press_allowed(update: Update, context: BotContext, chat_id: int) -> Press | None:
    """A button press that changes `chat_id`, when the presser may make it; else None, the
    press answered with why not. A menu's own chat has its rules (access.may_change); a
    menu made for another chat, by a command that named it, has its presser checked as that
    command checked its sender (targets.py)."""
    query = update.callback_query
    menu = update.effective_chat
    assert query is not None and menu is not None
    user = query.from_user
    language = await context.runtime.chats.reply_language(menu.id, user.language_code)
    refusal, target = None, None
    if not await context.access.is_allowed(update, context.bot):
        refusal = t(language, "auth.not_allowed")
    elif chat_id == menu.id:
        if not await context.access.may_change(update, context.bot):
            refusal = t(language, "auth.not_admin")
    else:
        try:
            target = await resolve_target(context.bot, context.access, str(chat_id), user.id)
            await remember_target(context, target)
        except TargetRefused as refused:
            refusal = refused.text(language)
    if refusal is None:
        return Press(language, target)
    # A press is answered in at most 200 characters of plain text.
    await query.answer(clip(html_to_plain(refusal), 200), show_alert=True)
    return None


async def edit_menu(query: CallbackQuery, text: str, **kwargs: Any) -> None:
    """Replace a menu by what its button did. A second tap on the same button, sent before
    the first edit reached the client, finds the message already so: nothing to report."""
    try:
        await query.edit_message_text(text, **kwargs)
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            raise
        log.debug("event=menu_unchanged chat=%s", query.message.chat_id if query.message else "?")


async def read_press(
    update: Update, context: BotContext, data: re.Pattern[str]
) -> tuple[CallbackQuery, Chat, re.Match[str]] | None:
    """A button press whose data `data` matches, with its chat; any other press (forged or
    stale data, no chat) is answered as unknown and gives None."""
    query = update.callback_query
    if query is None:
        return None
    chat = update.effective_chat
    match = data.fullmatch(query.data or "")
    if chat is None or match is None:
        await unknown_button(update, context)
        return None
    return query, chat, match


async def unknown_button(update: Update, context: BotContext) -> None:
    """A press whose data no handler takes: a modified client, or a button of a menu the bot
    no longer makes. Answered all the same, so the client stops waiting on the button."""
    query = update.callback_query
    if query is None:
        return
    chat = update.effective_chat
    log.debug(
        "event=callback_unknown chat=%s data=%r", chat.id if chat else "?", (query.data or "")[:64]
    )
    try:
        await query.answer()
    except TelegramError as error:  # too old, or answered already: nothing left to do
        log.debug("event=callback_answer_failed error=%r", str(error))


@command(targets=True)
async def list_(request: Request, context: BotContext) -> None:
    subscriptions = await context.runtime.store.chats.subscriptions(request.chat_id)
    if not subscriptions:
        await request.respond(t(request.language, "list.empty"))
        return
    lang = request.language
    lines = [t(lang, "list.header", count=len(subscriptions))]
    for number, s in enumerate(subscriptions, start=1):
        lines.append(
            t(
                lang,
                "list.item",
                number=number,
                title=s.feed_title or s.feed_url,
                url=s.feed_url,
                mode=t(lang, f"mode.{s.mode}"),
            )
        )
        reason = failure_reason(lang, s.feed_failure) if s.feed_failure else "?"
        if s.feed_status == "gone":
            lines.append(t(lang, "list.gone"))
        elif s.feed_status == "paused":
            lines.append(t(lang, "list.paused", error=reason))
        elif s.feed_failures:
            lines.append(t(lang, "list.failing", error=reason, failures=s.feed_failures))
    for part in split_lines(lines):
        await request.respond(part, link_preview_options=LinkPreviewOptions(is_disabled=True))


def split_lines(lines: list[str], limit: int = 4000) -> list[str]:
    """Join lines into messages under Telegram's limits, splitting between lines: at most
    `limit` characters, and ENTITY_LIMIT entities (Telegram drops formatting past them)."""
    parts: list[str] = []
    current = ""
    entities = 0
    for line in lines:
        in_line = entity_count(line)
        if current and (len(current) + len(line) + 1 > limit or entities + in_line > ENTITY_LIMIT):
            parts.append(current)
            current, entities = "", 0
        current = f"{current}\n{line}" if current else line
        entities += in_line
    if current:
        parts.append(current)
    return parts


@command(changes=True, targets=True)
async def mode(request: Request, context: BotContext) -> None:
    subscription, chosen = await context.runtime.subscriptions.set_mode(
        request.chat_id, request.args
    )
    await request.respond(
        t(
            request.language,
            "mode.done",
            title=subscription.feed_title or subscription.feed_url,
            mode=t(request.language, f"mode.{chosen}"),
        ),
    )


KEYWORD_ACTIONS = ("add", "remove", "clear")


@command(targets=True)
async def keywords(request: Request, context: BotContext) -> None:
    """/keywords shows; add/remove/clear change (administrators only in groups)."""
    filters_ = context.runtime.keywords
    lang = request.language
    action = request.args[0].lower() if request.args else ""
    rest = request.text.split(maxsplit=1)[1] if len(request.args) > 1 else ""
    if not action:
        await request.respond(describe_keywords(lang, await filters_.current(request.chat_id)))
        return
    if action not in KEYWORD_ACTIONS:
        raise UserError("keywords.usage")
    if not await may_change(request, context):
        await request.respond(t(lang, "auth.not_admin"))
        return
    if action == "clear":
        if rest:
            raise UserError("keywords.usage")
        await filters_.clear(request.chat_id)
        await request.respond(t(lang, "keywords.cleared"))
        return
    if not rest:
        raise UserError("keywords.empty")
    if action == "add":
        added, already = await filters_.add(request.chat_id, rest)
        lines = []
        if added:
            lines.append(t(lang, "keywords.added", added=" ".join(k.display() for k in added)))
        if already:
            lines.append(
                t(lang, "keywords.already", already=" ".join(k.display() for k in already))
            )
    else:
        removed, missing = await filters_.remove(request.chat_id, rest)
        lines = []
        if removed:
            lines.append(
                t(lang, "keywords.removed", removed=" ".join(k.display() for k in removed))
            )
        if missing:
            lines.append(
                t(lang, "keywords.not_found", missing=" ".join(k.display() for k in missing))
            )
    current = await filters_.current(request.chat_id)
    lines.append(describe_keywords(lang, current))
    await request.respond("\n\n".join(lines))


def describe_keywords(lang: str, current: list) -> str:
    if not current:
        return t(lang, "keywords.none")
    includes = " ".join(k.display() for k in current if not k.exclude)
    excludes = " ".join(k.display() for k in current if k.exclude)
    return t(
        lang,
        "keywords.show",
        includes=includes or t(lang, "keywords.any"),
        excludes=excludes or t(lang, "keywords.nothing"),
    )


@command(targets=True)
async def digest(request: Request, context: BotContext) -> None:
    """/digest (now), /digest at HH:MM [Area/City], /digest off."""
    digests = context.runtime.digests
    lang = request.language
    action = request.args[0].lower() if request.args else ""
    if not action:
        await digests.send_now(request.chat_id, thread_id=request.thread_id)
        if request.target is not None:  # the digest goes there: say so here
            await request.respond(t(lang, "digest.queued"))
        return
    if action not in ("at", "off"):
        raise UserError("digest.usage")
    if not await may_change(request, context):
        await request.respond(t(lang, "auth.not_admin"))
        return
    if action == "off":
        if len(request.args) > 1:
            raise UserError("digest.usage")
        was_on = await digests.turn_off(request.chat_id)
        await request.respond(t(lang, "digest.off" if was_on else "digest.was_off"))
        return
    schedule = await digests.set_schedule(
        request.chat_id, request.args[1:], thread_id=request.thread_id
    )
    await request.respond(
        t(
            lang,
            "digest.scheduled",
            time=f"{schedule.hour:02d}:{schedule.minute:02d}",
            zone=schedule.zone,
            next=format_time(schedule.next_due_ms, schedule.zone),
        ),
    )


async def unknown(update: Update, context: BotContext) -> None:
    """A command the bot does not have: answered in private chats and when addressed to it."""
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None or not message.text:
        return
    first = message.text.split(maxsplit=1)[0]
    name = first[1:].split("@", 1)[0].lower()
    if name in context.bot_data.commands:
        return  # handled by its own CommandHandler
    addressed = (
        "@" in first and first.split("@", 1)[1].lower() == (context.bot.username or "").lower()
    )
    if chat.type == ChatType.PRIVATE or addressed:
        user = update.effective_user
        await reply(
            message, t(language_of(user.language_code if user else None), "unknown_command")
        )


def too_fast(application: BotApplication, update: Update, tell: bool) -> None:
    """ordering.py dropped `update`: its chat sends faster than the bot may answer. The first
    drop of a burst (`tell`) is answered with one "slow down"; a dropped button press is
    answered in any case, so the client stops waiting on it."""
    application.create_task(answer_too_fast(application, update, tell), update=update)


async def answer_too_fast(application: BotApplication, update: Update, tell: bool) -> None:
    chat = update.effective_chat
    user = update.effective_user
    if chat is None:
        return
    rt = application.bot_data.runtime
    language = rt.chats.language(chat.id) or language_of(user.language_code if user else None)
    if update.callback_query is not None:
        text = t(language, "flood.slow_down_button") if tell else None
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer(text)
        return
    message = update.effective_message
    if message is not None:
        per_minute = round(60 / rt.sender.pacer.gap(chat.id))
        await reply(message, t(language, "flood.slow_down", per_minute=per_minute))


async def chat_member(update: Update, context: BotContext) -> None:
    """The bot was blocked, removed or added back: pause or resume the chat."""
    change: ChatMemberUpdated | None = update.my_chat_member
    if change is None:
        return
    chats = context.runtime.chats
    status = change.new_chat_member.status
    chat: Chat = change.chat
    if status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT):
        paused = await chats.pause(chat.id)
        if paused.changed:
            log.info(
                "event=chat_paused chat=%d reason=%s dropped=%d", chat.id, status, paused.dropped
            )
    elif status in (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR):
        chats.forget(chat.id)  # look it up again: it may have been paused
        _language, resumed = await remember_chat(
            context, chat, change.from_user.language_code if change.from_user else None
        )
        if resumed:
            log.info("event=chat_resumed chat=%d", chat.id)


async def migrated(update: Update, context: BotContext) -> None:
    """A service message: the group became a supergroup."""
    message = update.effective_message
    if message is not None and message.migrate_to_chat_id:
        await context.runtime.chats.migrate(message.chat_id, message.migrate_to_chat_id)


# --- /subscribe with a web page's address: the feed it leads to (issue 15, part 4) -------
# The search itself is bot/feeds/discover.py; here only its answers: the feed found, the
# feed link that failed, or buttons to pick one of several (kept by Subscriptions.offers).

# What a choice's buttons carry: the offer's token and the feed's number in it (answer_page).
FEED_CHOICE_DATA = re.compile(r"feed:([0-9a-f]{8}):([0-9]{1,2})")
# Title and address as shown in a choice: six of them stay far inside one message.
CHOICE_TITLE_CHARS = 100
CHOICE_URL_CHARS = 300
# The answers name a feed's address: a preview of its XML would only take room.
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def subscribed_text(language: str, result: Subscribed) -> str:
    """The answer to a subscribe; a feed found on a page is named with its address."""
    if result.page_url is None:
        key = "subscribe.done" if result.created else "subscribe.already"
    else:
        key = "subscribe.found" if result.created else "subscribe.found_already"
    return t(language, key, title=result.title, url=result.url, count=result.entries)


async def answer_page(
    request: Request, context: BotContext, page: SeveralFeedsError | FeedLinkError
) -> None:
    """A page that leads to several feeds: offer them. One whose feed link failed: say
    where the link points and why that feed cannot be used."""
    language = request.language
    if isinstance(page, FeedLinkError):
        reason = failure_reply(language, page.failure, given=page.link)
        text = t(language, "discover.link_failed", url=clip(page.link, 200), reason_html=reason)
        await request.respond(text)
        return
    subscriptions = context.runtime.subscriptions
    token = subscriptions.offer(
        request.chat_id, request.thread_id, page, shown_in=request.message.chat_id
    )
    lines = [t(language, "discover.choose", count=len(page.feeds))]
    for number, feed in enumerate(page.feeds, start=1):
        lines.append(
            t(
                language,
                "discover.option",
                number=number,
                title=clip(feed.title, CHOICE_TITLE_CHARS),
                url=clip(feed.url, CHOICE_URL_CHARS),
            )
        )
    buttons = [
        [InlineKeyboardButton(f"{n}. {feed.title}"[:60], callback_data=f"feed:{token}:{n - 1}")]
        for n, feed in enumerate(page.feeds, start=1)
    ]
    await request.respond(
        "\n".join(lines),
        reply_markup=InlineKeyboardMarkup(buttons),
        link_preview_options=NO_PREVIEW,
    )


async def feed_choice_button(update: Update, context: BotContext) -> None:
    """A feed picked from a page's offer: subscribed like /subscribe with its address, and
    the offer replaced by the answer. An expired offer says so, in the alert and in place."""
    press_data = await read_press(update, context, FEED_CHOICE_DATA)
    if press_data is None:
        return
    query, chat, match = press_data
    rt = context.runtime
    try:
        picked = rt.subscriptions.choice(chat.id, match[1], int(match[2]))
    except UserError as error:
        language = await rt.chats.reply_language(chat.id, query.from_user.language_code)
        await query.answer(t(language, error.key)[:200], show_alert=True)
        await edit_menu(query, t(language, error.key), parse_mode=ParseMode.HTML)
        return
    press = await press_allowed(update, context, picked.chat_id)
    if press is None:
        return
    language = press.language
    await query.answer()  # the check may take a while: the client stops waiting now
    try:
        result = await rt.subscriptions.subscribe_choice(picked.chat_id, picked)
        text = subscribed_text(language, result)
    except FeedError as error:
        text = failure_reply(language, error.failure, given=picked.url)
    except UserError as error:
        text = t(language, error.key, **error.values)
    except Exception:
        log.exception("event=feed_choice_crashed chat=%d", chat.id)
        text = t(language, "error.internal")
    await edit_menu(
        query, press.named(text), parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
    )


async def on_error(update: object, context: BotContext) -> None:
    log.error("event=update_failed error=%r", context.error, exc_info=context.error)
