"""A strict, fast fake of the Telegram Bot API for end-to-end tests and benchmarks.

The fake is an aiohttp.web server on 127.0.0.1 (random port). Start it inside the test's
event loop:

    async with FakeTelegram() as fake:
        bot = telegram.Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
        alice = fake.add_user(1001, "Alice")
        chat = fake.private_chat(alice)
        fake.user_command(chat, alice, "start")          # an update for getUpdates
        [alert] = await fake.wait_for_messages(chat.id, 1)
        assert alert.text == "..."; assert "<b>" in alert.html

What it checks, like Telegram does (and where noted, stricter), one module per part:
- spec.py: every method, parameter and value against the Bot API spec
  (shared/telegram-bot-api/api.json); unknown parameters and object fields are refused.
- entities.py: HTML parse_mode with Telegram's tags, entities and error texts, the 4096
  UTF-16 code unit limit counted after parsing, empty text after parsing; unknown named
  entities and more than 100 entities are refused.
- floods.py: flood control (see FloodLimits).
- methods.py: what each method does and refuses: chat state (blocked, kicked, migrated,
  deactivated, unknown chats: a chat must be known to the fake, through add_*/private_chat
  or an injected update), sendChatAction's action, answerCallbackQuery's text...

What the test controls: controls.py (users, chats and the faults it injects: block, kick,
deactivate_user, forget_chat, migrate, force_retry_after, fail_next, fail_for, delay,
answer_slowly, drop_next) and users.py (what users do: messages, commands, files, button
presses). Every request and every sent message is recorded (`fake.requests`, `fake.sent`,
`fake.messages(chat_id)`): state.py holds it all, server.py serves it (FakeTelegram).

For benchmarks, FakeTelegramProcess (process.py) runs the server in a child process so that
its CPU time is not counted as the client's.
"""

from tests.fakes.telegram_api.entities import (
    MESSAGE_LIMIT,
    finish_entities,
    parse_html,
    render_html,
    utf16_len,
)
from tests.fakes.telegram_api.floods import FloodControl, FloodLimits
from tests.fakes.telegram_api.process import FakeTelegramProcess
from tests.fakes.telegram_api.server import FakeTelegram
from tests.fakes.telegram_api.spec import ApiSpec
from tests.fakes.telegram_api.state import Chat, RecordedRequest, SentMessage, User

__all__ = [
    "MESSAGE_LIMIT",
    "ApiSpec",
    "Chat",
    "FakeTelegram",
    "FakeTelegramProcess",
    "FloodControl",
    "FloodLimits",
    "RecordedRequest",
    "SentMessage",
    "User",
    "finish_entities",
    "parse_html",
    "render_html",
    "utf16_len",
]
