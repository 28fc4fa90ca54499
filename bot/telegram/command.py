"""What every command shares: the Request a handler is given, the `command` wrapper that
makes it (allowed users, chat remembered, the chat it names resolved, admin check, errors
answered) and the reply.

Every command answers: a wrong argument gets a text that shows the right form (UserError →
the user's language), and an unexpected failure gets a short apology, never silence.

A setting command may name another chat first (`/list @mychannel`, targets.py): the
wrapper resolves it once, so the handler acts on `request.chat_id`, that chat, while its
replies (`request.respond`) go to the chat the command came from, headed with the name of
the chat it acted on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from telegram import Chat, Message, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.errors import DatabaseUnavailableError, FeedError, UserError
from bot.i18n import failure_reply, language_of, t
from bot.telegram.context import BotContext
from bot.telegram.targets import TargetChat, TargetRefused, resolve_target, split_target

log = logging.getLogger(__name__)

Handler = Callable[[Update, BotContext], Awaitable[None]]
MAX_ARGUMENT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler needs to know about one command."""

    chat_id: int  # the chat it is about: where it was sent, or the target it names
    thread_id: int | None
    language: str  # of the chat it was sent in, where the replies go
    args: list[str]  # without the target
    text: str  # everything after the command (and the target), as typed
    message: Message
    update: Update
    resumed: bool = False  # the chat had been paused (blocked, removed) and is active again
    target: TargetChat | None = None  # the other chat the command named, checked

    def named(self, text: str) -> str:
        """A reply's text; for a command aimed at another chat, headed with its name."""
        return headed(self.language, self.target, text)

    async def respond(self, text: str, **kwargs: object) -> Message | None:
        """Reply in the chat the command came from (see `named`)."""
        return await reply(self.message, self.named(text), **kwargs)


def headed(language: str, target: TargetChat | None, text: str) -> str:
    """`text` about `target` shown in another chat: headed with its name (None: as is)."""
    if target is None:
        return text
    return f"{t(language, 'target.header', name=target.name)}\n{text}"


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


def command(
    *, changes: bool = False, targets: bool = False
) -> Callable[[Callable[..., Awaitable[None]]], Handler]:
    """Wrap a handler: allowed users, chat remembered, admin check (`changes`), errors
    answered; with `targets`, the command may name another chat first."""

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
            try:
                language, resumed = await remember_chat(context, chat, language_code)
            except DatabaseUnavailableError:
                await reply(message, t(language_of(language_code), "error.database_unavailable"))
                return
            text = argument_text(message)
            # A document's caption (/import) reaches no CommandHandler: no context.args.
            args = text.split() if context.args is None else list(context.args)
            request = Request(
                chat.id, thread_of(message), language, args, text, message, update, resumed
            )
            await answer(request, context, handler, changes=changes, targets=targets)

        run.__name__ = handler.__name__
        return run

    return wrap


async def answer(
    request: Request,
    context: BotContext,
    handler: Callable[..., Awaitable[None]],
    *,
    changes: bool,
    targets: bool = False,
) -> None:
    """Run the handler, turning what went wrong into a reply in the chat's language."""
    language = request.language
    try:
        if len(request.text) > MAX_ARGUMENT_CHARS:
            raise UserError("error.argument_too_long", length=len(request.text))
        if targets:
            request = await aimed(request, context)
        if changes and not await may_change(request, context):
            await request.respond(t(language, "auth.not_admin"))
            return
        await handler(request, context)
    except TargetRefused as refused:
        await request.respond(refused.text(language))
    except FeedError as error:
        await request.respond(failure_reply(language, error.failure, given=request.text))
    except UserError as error:
        await request.respond(t(language, error.key, **error.values))
    except DatabaseUnavailableError:  # the store said so in its log; the user is told too
        await request.respond(t(language, "error.database_unavailable"))
    except Exception:
        log.exception("event=handler_crashed handler=%s chat=%d", handler.__name__, request.chat_id)
        await request.respond(t(language, "error.internal"))


async def aimed(request: Request, context: BotContext) -> Request:
    """The request as it is about the chat it names first, once the user was found to
    administer it and the bot to be able to post there (TargetRefused says what is
    missing); unchanged when it names none. No thread: the topic the command was sent in
    is not the target's."""
    given, args, text = split_target(request.args, request.text)
    if given is None:
        return request
    target = await resolve_target(context.bot, context.access, given, acting_user(request))
    await remember_target(context, target)
    log.info("event=command_targeted chat=%d target=%d", request.message.chat_id, target.id)
    return replace(request, chat_id=target.id, thread_id=None, args=args, text=text, target=target)


async def remember_target(context: BotContext, target: TargetChat) -> None:
    """Store the chat a command or a press names, as a command sent there would, but for
    its language: the user speaks in another chat, so the chat's stays as it was."""
    await context.runtime.chats.remember(
        target.id, kind=target.kind, title=target.title or target.username, language_code=None
    )


def acting_user(request: Request) -> int | None:
    """Who sent the command, when Telegram says: not for a channel's post, nor for a message
    sent on behalf of a chat (an anonymous admin, a user posting as their channel)."""
    user = request.update.effective_user
    if user is None or user.is_bot or request.message.sender_chat is not None:
        return None
    return user.id


async def may_change(request: Request, context: BotContext) -> bool:
    """Whether the sender may change the chat the request is about: the chat it came from
    by its rules (access.may_change); a target was checked when it was resolved."""
    if request.target is not None:
        return True
    return await context.access.may_change(request.update, context.bot)
