"""/settings: one message with buttons for a chat's choices (bot/usecases/choices.py):
pictures, link previews, silent alerts, language, daily digest time.

The message says how each choice stands; its buttons change one each. A press is checked
as the command that changes the same would be (administrators only in groups and
channels; for a menu about another chat, that chat's administrators), then stored, and
the message is redrawn in place. Anyone may send /settings: reading is for everyone.
"""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from bot.i18n import t
from bot.telegram.command import Request, command, headed, thread_of
from bot.telegram.context import BotContext
from bot.telegram.handlers import edit_menu, press_allowed, read_press
from bot.usecases.choices import Choices

# The daily digest times offered as buttons, in the chat's zone; others by /digest at.
DIGEST_TIMES = ("07:00", "08:00", "12:00", "18:00", "21:00")
# What a button carries: "cfg:<chat id>:<change>" (at most 27 bytes of Telegram's 64).
# A change is a flag's letter and 1 or 0 (on, off), "l" and a language's letter, or "d"
# and a digest time (HHMM) or "off".
FLAG_CODES = {"p": "pictures", "w": "link_preview", "s": "silent"}
LANGUAGE_CODES = {"a": "", "e": "en", "z": "zh"}
DIGEST_CODES = {"off": None, **{time.replace(":", ""): time for time in DIGEST_TIMES}}
SETTINGS_DATA = re.compile(
    r"cfg:(-?[1-9][0-9]{0,15}):([pws][01]|l[aez]|d(?:" + "|".join(DIGEST_CODES) + "))"
)
CHOSEN = "✓ "  # marks the language and digest time in effect


@command(targets=True)
async def settings(request: Request, context: BotContext) -> None:
    choices = await context.runtime.choices.current(request.chat_id)
    await request.respond(
        menu_text(request.language, choices),
        reply_markup=menu_buttons(request.language, request.chat_id, choices),
    )


def menu_text(language: str, choices: Choices) -> str:
    def state(on: bool) -> str:
        return t(language, "settings.on" if on else "settings.off")

    named = t(language, f"settings.language.{choices.language}")
    auto = t(language, "settings.language_auto", name=named)
    shown = named if choices.language_choice else auto
    if choices.digest_time is None:
        digest = t(language, "settings.digest_off", zone=choices.zone)
    else:
        digest = t(language, "settings.digest_at", time=choices.digest_time, zone=choices.zone)
    return t(
        language,
        "settings.menu",
        pictures_html=state(choices.pictures),
        previews_html=state(choices.link_preview),
        silent_html=state(choices.silent),
        language_html=shown,
        digest_html=digest,
    )


def menu_buttons(language: str, chat_id: int, choices: Choices) -> InlineKeyboardMarkup:
    def button(label: str, change: str, chosen: bool = False) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            CHOSEN + label if chosen else label, callback_data=f"cfg:{chat_id}:{change}"
        )

    rows = []
    for letter, name in FLAG_CODES.items():
        on = choices.flag(name)  # the button turns it the other way
        rows.append(
            [
                button(
                    t(language, f"settings.{name}_{'off' if on else 'on'}"),
                    f"{letter}{int(not on)}",
                )
            ]
        )
    languages = []
    for letter, choice in LANGUAGE_CODES.items():
        label = t(language, f"settings.language.{choice}" if choice else "settings.automatic")
        languages.append(button(label, f"l{letter}", choice == choices.language_choice))
    rows.append(languages)
    times = [
        button(time or t(language, "settings.no_digest"), f"d{code}", time == choices.digest_time)
        for code, time in DIGEST_CODES.items()
    ]
    rows += [times[:3], times[3:]]
    return InlineKeyboardMarkup(rows)


async def settings_button(update: Update, context: BotContext) -> None:
    """A press on the /settings message: one choice changed, the message redrawn."""
    press_data = await read_press(update, context, SETTINGS_DATA)
    if press_data is None:
        return
    query, chat, match = press_data
    chat_id, change = int(match[1]), match[2]
    press = await press_allowed(update, context, chat_id)
    if press is None:
        return
    await query.answer()
    # A digest set from the menu in a forum topic goes to that topic, as /digest at does.
    message = query.message
    topic = thread_of(message) if press.target is None and isinstance(message, Message) else None
    await make_change(context, chat_id, change, query.from_user.language_code, topic)
    language = press.language
    if press.target is None:  # a new language for this chat: the menu speaks it at once
        language = await context.runtime.chats.reply_language(
            chat.id, query.from_user.language_code
        )
    choices = await context.runtime.choices.current(chat_id)
    await edit_menu(
        query,
        headed(language, press.target, menu_text(language, choices)),
        parse_mode=ParseMode.HTML,
        reply_markup=menu_buttons(language, chat_id, choices),
    )


async def make_change(
    context: BotContext, chat_id: int, change: str, language_code: str | None, topic: int | None
) -> None:
    """Store what a button (SETTINGS_DATA) chose."""
    choices = context.runtime.choices
    kind, value = change[0], change[1:]
    if kind in FLAG_CODES:
        await choices.set_flag(chat_id, FLAG_CODES[kind], value == "1")
    elif kind == "l":
        await choices.choose_language(chat_id, LANGUAGE_CODES[value], language_code)
    else:
        await choices.set_digest_time(chat_id, DIGEST_CODES[value], topic)
