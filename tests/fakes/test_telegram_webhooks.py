"""The fake's webhooks, exercised through the real python-telegram-bot Bot: what Telegram
refuses in setWebhook, getUpdates' 409 while a webhook is set, getWebhookInfo, and the
delivery of updates by POST with the secret header, retried until the bot answers 2xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram
from aiohttp import web
from telegram.error import BadRequest, Conflict

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_api.webhooks import SECRET_HEADER

ORIGIN = "https://bot.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        server.webhook_retry_seconds = 0.05
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(fake.token, base_url=fake.base_url) as bot:
        yield bot


class Receiver:
    """A bot's listener that answers each POST with the next status of `answers` (then
    200) and keeps what it received."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.received: list[tuple[dict, str | None]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.headers.get(SECRET_HEADER)))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize(
    ("url", "secret", "error"),
    [
        ("http://bot.example/hook", None, "An HTTPS URL must be provided for webhook"),
        ("https://bot.example:8080/hook", None, "only on ports 80, 88, 443 or 8443"),
        ("https:///hook", None, "Failed to resolve host"),
        (ORIGIN + "/hook", "has space", "secret token contains unallowed characters"),
        (ORIGIN + "/hook", "a+b/c=", "secret token contains unallowed characters"),
        (ORIGIN + "/hook", "x" * 257, "secret token is too long"),
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(
    fake: FakeTelegram, bot: telegram.Bot, url: str, secret: str | None, error: str
) -> None:
    with pytest.raises(BadRequest, match="(?i)" + error):
        await bot.set_webhook(url, secret_token=secret)
    assert fake.webhook_url == ""


async def test_set_webhook_takes_telegrams_ports_and_secret_characters(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    for port in (443, 80, 88, 8443):
        assert await bot.set_webhook(f"https://bot.example:{port}/h", secret_token="A-z_09")
    assert await bot.set_webhook(ORIGIN + "/h", secret_token="s" * 256)
    assert fake.webhook_secret == "s" * 256


async def test_get_updates_answers_409_while_a_webhook_is_set(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    await bot.set_webhook(ORIGIN + "/hook", allowed_updates=["message"])
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    info = await bot.get_webhook_info()
    assert (info.url, info.allowed_updates) == (ORIGIN + "/hook", ("message",))
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == ()


async def test_updates_are_posted_with_the_secret_and_retried_until_answered_2xx(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    receiver = Receiver(500)
    async with receiver as local:
        fake.forward_webhooks(ORIGIN, local)
        first = fake.user_command(chat, alice, "start")
        await bot.set_webhook(ORIGIN + "/hook", secret_token="s3cret")
        second = fake.user_message(chat, alice, "hello")
        await fake.wait_for_webhook_deliveries(3)
        await fake.wait_for(lambda: not fake.pending_updates, what="updates delivered")
        info = await bot.get_webhook_info()
    assert [d.status for d in fake.webhook_deliveries] == [500, 200, 200]
    assert [u for u, _ in receiver.received] == [first, first, second]
    assert {secret for _, secret in receiver.received} == {"s3cret"}
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"


async def test_a_webhook_that_cannot_be_reached_keeps_its_updates(
    fake: FakeTelegram, bot: telegram.Bot
) -> None:
    alice = fake.add_user(1001, "Alice")
    fake.user_command(fake.private_chat(alice), alice, "start")
    fake.forward_webhooks(ORIGIN, "http://127.0.0.1:1")  # nothing listens there
    await bot.set_webhook(ORIGIN + "/hook")
    await fake.wait_for_webhook_deliveries(1)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message and info.last_error_message.startswith("Connection error")
    assert fake.webhook_deliveries[0].status == 0
