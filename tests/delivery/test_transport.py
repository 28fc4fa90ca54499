"""AiohttpRequest: python-telegram-bot's transport contract, on loopback only."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.error import NetworkError, TimedOut
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest, RequestData

from bot.delivery.outcome import NotSent, NotSentTimedOut, OutcomeUnknown, OutcomeUnknownTimedOut
from bot.delivery.transport import AiohttpRequest, _encode_body, transport_failure
from tests.fakes.telegram_api import ApiSpec, FakeTelegram

SPEC = ApiSpec.load()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(spec=SPEC) as server:
        server.limits.enabled = False
        yield server


def bot_with(fake: FakeTelegram, request: telegram.request.BaseRequest) -> telegram.Bot:
    return telegram.Bot(
        fake.token,
        base_url=fake.base_url,
        base_file_url=fake.base_file_url,
        request=request,
        get_updates_request=AiohttpRequest(read_timeout=0.5),
    )


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def exercise(bot: telegram.Bot, chat_id: int) -> None:
    """Calls covering form fields, JSON-serialized objects, booleans, lists and an upload."""
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Open", url="https://example.org/")]])
    await bot.send_message(
        chat_id,
        "<b>Title</b> — 标题 &amp; ✓",
        parse_mode="HTML",
        disable_notification=True,
        reply_markup=markup,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    await bot.set_my_commands([("start", "Start"), ("list", "List")], language_code="en")
    await bot.send_document(chat_id, b"\x00\x01binary\xff", filename="data.bin", caption="ü")


async def test_telegram_gets_the_same_parameters_as_from_httpx(fake):
    chat = fake.private_chat(fake.add_user(1001))

    async with bot_with(fake, HTTPXRequest()) as httpx_bot:
        await exercise(httpx_bot, chat.id)
    async with bot_with(fake, AiohttpRequest()) as aiohttp_bot:
        await exercise(aiohttp_bot, chat.id)

    calls = [r for r in fake.requests if r.method != "getMe"]
    assert all(r.status == 200 for r in calls), [r.description for r in calls]
    via_httpx, via_aiohttp = calls[:3], calls[3:]
    assert [r.params for r in via_aiohttp[:2]] == [r.params for r in via_httpx[:2]]
    upload_httpx, upload_aiohttp = via_httpx[2].params, via_aiohttp[2].params
    assert upload_aiohttp["document"] == upload_httpx["document"]
    assert upload_aiohttp["document"].data == b"\x00\x01binary\xff"
    assert upload_aiohttp["caption"] == upload_httpx["caption"] == "ü"
    first, second = fake.messages(chat.id)[0::2]
    assert first.html == second.html == "<b>Title</b> — 标题 &amp; ✓"


def test_bodies_are_json_and_uploads_stay_multipart() -> None:
    # RequestParameter is how PTB itself builds RequestData (telegram.Bot._post).
    from telegram import InputFile
    from telegram.request._requestparameter import RequestParameter

    data = RequestData(
        [
            RequestParameter.from_input("chat_id", -1001),
            RequestParameter.from_input("text", "<b>标题</b> & ✓"),
            RequestParameter.from_input("disable_notification", True),
            RequestParameter.from_input(
                "link_preview_options", LinkPreviewOptions(is_disabled=True)
            ),
        ]
    )
    body, content_type = _encode_body(data)
    assert content_type == "application/json"
    assert isinstance(body, bytes)
    assert json.loads(body) == {
        "chat_id": -1001,
        "text": "<b>标题</b> & ✓",
        "disable_notification": True,
        "link_preview_options": {"is_disabled": True},
    }
    upload = RequestData(
        [
            RequestParameter.from_input("chat_id", 5),
            RequestParameter.from_input("document", InputFile(b"x", filename="a.bin")),
        ]
    )
    form, content_type = _encode_body(upload)
    assert isinstance(form, aiohttp.FormData) and content_type is None
    assert _encode_body(None) == (None, None)


async def test_a_slow_answer_times_out(fake):
    fake.delay(3.0, methods={"getChat"})
    async with bot_with(fake, AiohttpRequest(read_timeout=0.2)) as bot:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await bot.get_chat(1)
        assert time.monotonic() - started < 2


async def test_a_per_call_read_timeout_overrides_the_default(fake):
    fake.private_chat(fake.add_user(1001))
    fake.delay(0.4, methods={"sendMessage"})
    async with bot_with(fake, AiohttpRequest(read_timeout=0.1)) as bot:
        message = await bot.send_message(1001, "patient", read_timeout=2.0)
    assert message.text == "patient"


async def test_long_polling_gets_its_longer_read_timeout(fake):
    # The getUpdates request's default read timeout (1 s) is shorter than the long poll;
    # PTB adds the poll's timeout to it, and the transport must honour that per call.
    bot = telegram.Bot(
        fake.token, base_url=fake.base_url, get_updates_request=AiohttpRequest(read_timeout=1)
    )
    async with bot:
        started = time.monotonic()
        assert await bot.get_updates(timeout=2) == ()
        assert time.monotonic() - started >= 1.9


async def test_connection_refused_is_a_network_error_and_not_sent():
    url = f"http://127.0.0.1:{free_port()}/bot1:x/getMe"
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError, match="ClientConnectorError") as caught:
            await request.post(url, RequestData())
    assert isinstance(caught.value, NotSent)
    assert not isinstance(caught.value, TimedOut | OutcomeUnknown)


@asynccontextmanager
async def telegram_that(
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tiny server on loopback that reads each request's body, then leaves the answer to
    `answer`; yields the sendMessage URL and the bodies it read."""
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        received.append(await request.read())
        return await answer(request)

    app = web.Application()
    app.router.add_post("/bot1:x/sendMessage", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/bot1:x/sendMessage", received
    finally:
        await runner.cleanup()


def message_data() -> RequestData:
    from telegram.request._requestparameter import RequestParameter

    return RequestData(
        [RequestParameter.from_input("chat_id", 1), RequestParameter.from_input("text", "hi")]
    )


async def test_a_request_read_and_never_answered_has_an_unknown_outcome():
    async def never(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with telegram_that(never) as (url, received), AiohttpRequest(read_timeout=0.3) as request:
        with pytest.raises(OutcomeUnknownTimedOut) as caught:
            await request.post(url, message_data())
    assert isinstance(caught.value, TimedOut) and isinstance(caught.value, OutcomeUnknown)
    assert not isinstance(caught.value, NotSent)
    assert [json.loads(body) for body in received] == [{"chat_id": 1, "text": "hi"}]


async def test_a_connection_closed_after_the_request_was_read_has_an_unknown_outcome():
    async def hang_up(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()  # never reaches the client

    async with telegram_that(hang_up) as (url, received), AiohttpRequest() as request:
        with pytest.raises(OutcomeUnknown, match="ServerDisconnectedError") as caught:
            await request.post(url, message_data())
    assert not isinstance(caught.value, TimedOut | NotSent)
    assert len(received) == 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), NotSentTimedOut),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), NotSent),
        (aiohttp.InvalidURL("nope"), NotSent),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), OutcomeUnknownTimedOut),
        (TimeoutError(), OutcomeUnknownTimedOut),  # the total cap
        (aiohttp.ServerDisconnectedError(), OutcomeUnknown),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), OutcomeUnknown),
        (aiohttp.ClientPayloadError("Response payload is not completed"), OutcomeUnknown),
    ],
)
def test_each_aiohttp_failure_says_whether_the_request_may_have_reached_telegram(
    error: Exception, outcome: type[NetworkError]
) -> None:
    assert type(transport_failure(error)) is outcome  # type: ignore[arg-type]


async def test_a_full_pool_times_out_without_sending(fake):
    fake.delay(0.5, methods={"getChat"})
    fake.private_chat(fake.add_user(1001))
    request = AiohttpRequest(connection_pool_size=1, pool_timeout=0.1)
    async with bot_with(fake, request) as bot:
        first = asyncio.create_task(bot.get_chat(1001))
        await asyncio.sleep(0.05)
        with pytest.raises(NotSentTimedOut, match="Pool timeout"):
            await bot.get_chat(1001)
        assert (await first).id == 1001
    assert fake.request_counts["getchat"] == 1  # the second call never left


async def test_a_stalled_upload_times_out():
    # A server that accepts and never reads: the upload fills the socket buffers and stalls.
    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = AiohttpRequest(read_timeout=0.2, media_write_timeout=0.3, connect_timeout=0.2)
    bot = telegram.Bot("1:x", base_url=f"http://127.0.0.1:{port}/bot", request=request)
    try:
        async with request, asyncio.timeout(10):
            started = time.monotonic()
            with pytest.raises(TimedOut):
                await bot.send_document(1, b"x" * 32_000_000, filename="big.bin")
            assert time.monotonic() - started < 3  # the cap is 0.7 s; load may slow it
    finally:
        server.close()


async def test_owns_its_session_unless_given_one(fake):
    own = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await own.do_request(f"{fake.base_url}{fake.token}/getMe", "POST")
    await own.initialize()
    await own.shutdown()
    await own.shutdown()  # twice is fine
    await own.initialize()  # and it can start again, as PTB's Application may do
    status, _ = await own.do_request(f"{fake.base_url}{fake.token}/getMe", "POST")
    assert status == 200
    await own.shutdown()

    async with aiohttp.ClientSession() as session:
        shared = AiohttpRequest(session=session)
        async with bot_with(fake, shared) as bot:
            assert (await bot.get_me()).username == fake.bot_user.username
        assert not session.closed  # the caller's session outlives the bot


async def test_works_inside_a_polling_application(fake):
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)

    async def start(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_html(f"<b>Hello</b>, {alice.first_name}!")

    app = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(fake.base_url)
        .base_file_url(fake.base_file_url)
        .request(AiohttpRequest())
        .get_updates_request(AiohttpRequest(read_timeout=2.0))
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=1)
        fake.user_command(chat, alice, "start")
        [reply] = await fake.wait_for_messages(chat.id, 1, timeout=5)
        await app.updater.stop()
        await app.stop()

    assert reply.html == "<b>Hello</b>, Alice!"
    assert fake.pending_updates == []  # the update was confirmed, not left for a restart
