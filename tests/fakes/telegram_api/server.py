"""The fake Bot API server: FakeTelegram, an aiohttp app on 127.0.0.1 that tests talk to.

It speaks python-telegram-bot's URL forms: `POST|GET {base_url}<token>/<method>` with
`base_url = http://127.0.0.1:PORT/bot`, and file downloads at
`{base_file_url}<token>/<file_path>`. Each call goes through the transport faults in effect,
the spec check and the method's handler, and is recorded (`fake.requests`); tests read what
happened (`fake.sent`, `fake.messages(chat_id)`) and wait for it (`wait_for_messages`...).
"""

# The wait_* helpers take a `timeout` argument on purpose: tests read better with
# `await fake.wait_for_messages(chat, 2, timeout=3)` than with a context manager around it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.telegram_api.controls import Controls
from tests.fakes.telegram_api.errors import ApiError, JsonDict, bad_request
from tests.fakes.telegram_api.floods import FloodControl, FloodLimits
from tests.fakes.telegram_api.methods import BotMethods, Handler, no_effect
from tests.fakes.telegram_api.spec import ApiSpec, UploadedFile
from tests.fakes.telegram_api.state import RecordedRequest, SentMessage, TransportFault, User
from tests.fakes.telegram_api.users import UserActions

DEFAULT_TOKEN: Final = "123456789:AAHfakeTOKENforTESTSonly0123456789abc"
_STATUS_TEXT: Final = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class FakeTelegram(Controls, UserActions, BotMethods):
    """The fake Bot API server and its test controls. See the package docstring.

    One object for the test, put together from parts that share FakeState (state.py): the
    test's controls (Controls, controls.py), what users do (UserActions, users.py) and the
    Bot API methods (BotMethods, methods.py); this class adds the HTTP server, records
    every call and lets tests read and wait for what happened.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "news_notifier_test_bot",
        bot_name: str = "News Notifier",
        spec: ApiSpec | None = None,
        spec_path: Path | None = None,
        limits: FloodLimits | None = None,
        strict_html_entities: bool = True,
        record_requests: bool = True,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        super().__init__(
            token=token,
            bot_user=User(
                int(token.split(":", 1)[0]),
                bot_name,
                username=bot_username,
                language_code=None,
                is_bot=True,
            ),
            spec=spec or ApiSpec.load(spec_path),
            flood=FloodControl(limits or FloodLimits(), clock),
            clock=clock,
            strict_html_entities=strict_html_entities,
            record_requests=record_requests,
        )
        self._init_webhooks()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._handlers: dict[str, Handler] = self._method_handlers()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # No access log: it would cost more than the fake's own work per request.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True
        self._updates_arrived.set()  # release long polls so shutdown does not wait for them
        await self._stop_webhooks()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's base_url (also TELEGRAM_API_BASE_URL)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # ---- reading what happened -------------------------------------------------------------

    def messages(self, chat_id: int, *, thread_id: int | None = None) -> list[SentMessage]:
        """What the bot sent to a chat (and topic), oldest first, deleted ones included."""
        state = self._chats.get(chat_id)
        if state is None:
            return [m for m in self.sent if m.chat_id == chat_id]
        found = list(state.messages.values())
        if thread_id is not None:
            found = [m for m in found if m.thread_id == thread_id]
        return found

    def requests_for(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method.lower() == method.lower()]

    @property
    def retry_after_count(self) -> int:
        """All 429s answered, forced ones included (per chat: retry_after_by_chat)."""
        return sum(self.retry_after_by_chat.values())

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until `condition()` holds, checked whenever the fake records something."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int = 1,
        timeout: float = 5.0,
        *,
        thread_id: int | None = None,
    ) -> list[SentMessage]:
        """Wait until the bot has sent at least `count` messages to the chat; return them all."""

        def arrived() -> bool:
            return len(self.messages(chat_id, thread_id=thread_id)) >= count

        try:
            await self.wait_for(arrived, timeout, f"{count} message(s) to chat {chat_id}")
        except AssertionError as exc:
            got = [m.text for m in self.messages(chat_id, thread_id=thread_id)]
            raise AssertionError(f"{exc}; got {len(got)}: {got!r}") from None
        return self.messages(chat_id, thread_id=thread_id)

    async def wait_for_request(self, method: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `method` has been called `count` times (any outcome)."""
        name = method.lower()
        await self.wait_for(
            lambda: self.request_counts[name] >= count, timeout, f"{count} call(s) of {method}"
        )

    async def wait_until_updates_consumed(self, timeout: float = 5.0) -> None:
        """Wait until the bot has confirmed every queued update."""
        await self.wait_for(lambda: not self._updates, timeout, "the bot to confirm updates")

    def stats(self) -> JsonDict:
        """Counters, for benchmarks that run the fake in another process."""
        return {
            "requests": sum(self.request_counts.values()),
            "by_method": dict(self.request_counts),
            "messages": len(self.sent),
            "retry_after": self.retry_after_count,
        }

    def my_commands(self, language_code: str = "", scope: JsonDict | None = None) -> list[str]:
        """Command names registered for a language and scope (default scope)."""
        key = json.dumps(scope or {"type": "default"}, sort_keys=True), language_code
        return [c["command"] for c in self.commands.get(key, [])]

    # ---- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        # Read now: a long poll is answered after its client may have gone (killed).
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = peer[1] if peer else 0
        if request.match_info["token"] != self.token:
            return _json_response(ApiError(401, "Unauthorized").payload(), 401)
        method = self.spec.method(request.match_info["method"])
        if method is None:
            self.request_counts[request.match_info["method"].lower()] += 1
            return _json_response(ApiError(404, "Not Found").payload(), 404)
        name = method.name
        self.request_counts[name.lower()] += 1
        fault = self._take_fault(name)
        if self._delay and (self._delay_methods is None or name in self._delay_methods):
            await asyncio.sleep(self._delay)
        if fault is not None and fault.kind == "drop":
            self._record(name, {}, 0, "connection dropped")
            return _drop(request)
        if fault is not None and fault.kind == "fail":
            error = ApiError(fault.status, _STATUS_TEXT.get(fault.status, "Server Error"))
            self._record(name, {}, error.status, error.description)
            return _json_response(error.payload(), error.status)

        params: dict[str, Any] = {}
        slow = self._slow.delay(name, self._clock())
        try:
            form, body = await _read_parameters(request)
            if slow:
                # Received, then carried out late: the handler runs on when the client goes
                # away (aiohttp does not cancel it), so the call takes effect regardless.
                await asyncio.sleep(slow)
            params = {**form, **body}
            params = self.spec.validate(method, form, body)
            result = self._handlers.get(name, no_effect)(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as error:
            self._record(name, params, error.status, error.description, port)
            if fault is not None:  # drop_after: the call took effect, the answer is lost
                return _drop(request)
            return _json_response(error.payload(), error.status)
        self._record(name, params, 200, None, port)
        if fault is not None:
            return _drop(request)
        return _json_response({"ok": True, "result": result}, 200)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return _json_response(ApiError(404, "Not Found").payload(), 404)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    def _take_fault(self, method: str) -> TransportFault | None:
        if not self._faults:
            return None
        now = self._clock()
        self._faults = [f for f in self._faults if f.remaining or (f.until or 0) > now]
        for fault in self._faults:
            if fault.applies(method, now):
                if fault.remaining:
                    fault.remaining -= 1
                return fault
        return None

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        status: int,
        error: str | None,
        port: int = 0,
    ) -> None:
        if self.record_requests:
            self.requests.append(RecordedRequest(method, params, time.time(), status, error, port))
        if self._waiters:
            self._notify()


def _json_response(payload: JsonDict, status: int) -> web.Response:
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering (the client sees a disconnect)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)  # never reaches the client


async def _read_parameters(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Query string and body as (form values, JSON values); a part with a filename is a file."""
    form: dict[str, Any] = dict(request.query) if request.query_string else {}
    body: dict[str, Any] = {}
    content_type = request.content_type
    if content_type == "multipart/form-data":
        reader = await request.multipart()
        uploads: dict[str, UploadedFile] = {}
        async for part in reader:
            if part.name is None:
                continue
            if part.filename is not None:
                data = await part.read()  # type: ignore[union-attr]
                kind = part.headers.get("Content-Type", "application/octet-stream")
                uploads[part.name] = UploadedFile(part.name, part.filename, kind, bytes(data))
            else:
                form[part.name] = await part.text()  # type: ignore[union-attr]
        # Files referenced as attach://name belong to the parameter that names them.
        attached = {m for v in form.values() for m in re.findall(r"attach://([\w\-]+)", v)}
        form.update({k: v for k, v in uploads.items() if k not in attached})
    elif request.can_read_body:
        raw = await request.read()
        if content_type == "application/json":
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise bad_request("can't parse JSON object")
            body = decoded
        elif raw:
            form.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    return form, body
