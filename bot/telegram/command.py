"""What every command shares: the Request a handler is given, the `command` wrapper that
makes it (allowed users, chat remembered, admin check, errors answered) and the reply.

Every command answers: a wrong argument gets a text that shows the right form (UserError →
the user's language), and an unexpected failure gets a short apology, never silence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Chat, Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.errors import FeedError, UserError
from bot.i18n import failure_reply, language_of, t
from bot.telegram.context import BotContext

log = logging.getLogger(__name__)

Handler = Callable[[Update, BotContext], Awaitable[None]]
MAX_ARGUMENT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler needs to know about one command."""

    chat_id: int
    thread_id: int | None
    language: str
    args: list[str]
    text: str  # everything after the command, as typed
    message: Message
    update: Update
    resumed: bool = False  # the chat had been paused (blocked, removed) and is active again


def argument_text(message: Message) -> str:
    text = message.text or message.caption or ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def thread_of(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


async def reply(message: Message, text: str, **kwargs: object) -> Message | None:
    try:
        return await message.reply_text(text, parse_mode=ParseMode.HTML, do_quote=False, **kwargs)  # type: ignore[arg-type]
    except TelegramError as error:  # the user can't be told; the log must say so
        log.warning("event=reply_failed chat=%d error=%r", message.chat_id, str(error))
        return None


async def remember_chat(
    context: BotContext, chat: Chat, language_code: str | None
) -> tuple[str, bool]:
    """The chat as the store keeps it: its language, and whether it had been paused."""
    return await context.runtime.chats.remember(
        chat.id,
        kind=str(chat.type),
        title=chat.title or chat.full_name or chat.username or "",
        language_code=language_code,
    )


def command(*, changes: bool = False) -> Callable[[Callable[..., Awaitable[None]]], Handler]:
    """Wrap a handler: allowed users, chat remembered, admin check, errors answered."""

    def wrap(handler: Callable[..., Awaitable[None]]) -> Handler:
        async def run(update: Update, context: BotContext) -> None:
            message = update.effective_message
            chat = update.effective_chat
            if message is None or chat is None:
                return
            user = update.effective_user
            language_code = user.language_code if user else None
            # Before remember_chat: a refused command must not store the chat, nor resume a
            # paused one.
            if not await context.access.is_allowed(update, context.bot):
                await reply(message, t(language_of(language_code), "auth.not_allowed"))
                return
            language, resumed = await remember_chat(context, chat, language_code)
            request = Request(
                chat.id,
                thread_of(message),
                language,
                list(context.args or []),
                argument_text(message),
                message,
                update,
                resumed,
            )
            await answer(request, context, handler, changes=changes)

        run.__name__ = handler.__name__
        return run

    return wrap


async def answer(
    request: Request,
    context: BotContext,
    handler: Callable[..., Awaitable[None]],
    *,
    changes: bool,
) -> None:
    """Run the handler, turning what went wrong into a reply in the chat's language."""
    language, message = request.language, request.message
    try:
        if len(request.text) > MAX_ARGUMENT_CHARS:
            raise UserError("error.argument_too_long", length=len(request.text))
        if changes and not await context.access.may_change(request.update, context.bot):
            await reply(message, t(language, "auth.not_admin"))
            return
        await handler(request, context)
    except FeedError as error:
        await reply(message, failure_reply(language, error.failure, given=request.text))
    except UserError as error:
        await reply(message, t(language, error.key, **error.values))
    except Exception:
        log.exception("event=handler_crashed handler=%s chat=%d", handler.__name__, request.chat_id)
        await reply(message, t(language, "error.internal"))
