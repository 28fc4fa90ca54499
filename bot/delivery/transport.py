"""An aiohttp transport for python-telegram-bot.

PTB's default HTTPXRequest spends about ten times more CPU per call than aiohttp does, which
is what limits a fan-out of one story to thousands of chats. AiohttpRequest implements PTB's
BaseRequest contract (telegram/request/_baserequest.py) so it can be handed to
`telegram.Bot(request=..., get_updates_request=...)` or to
`ApplicationBuilder().request(...).get_updates_request(...)`.

Parameters are sent as one JSON object (`application/json`, which the Bot API accepts for
every method), or as multipart/form-data of `RequestData.json_parameters` and
`RequestData.multipart_data` when files are uploaded, as HTTPXRequest sends them. HTTPXRequest
posts an urlencoded form instead, which costs about 0.05 ms more CPU per message (0.41
against 0.36 ms in all; bench/README, Fan-out).
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Final

import aiohttp
from telegram.error import NetworkError
from telegram.request import BaseRequest, RequestData

from bot.delivery.outcome import NotSent, NotSentTimedOut, OutcomeUnknown, OutcomeUnknownTimedOut

_JSON: Final = "application/json"
# PTB's DefaultValue class, reached through the public DEFAULT_NONE instead of a private import.
_DefaultValue: Final = type(BaseRequest.DEFAULT_NONE)
_POOL_TIMEOUT_MESSAGE: Final = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* "
    "sent to Telegram. Consider adjusting the connection pool size or the pool timeout."
)

Timeout = float | None


@functools.lru_cache(maxsize=64)
def _client_timeout(
    connect: Timeout, read: Timeout, write: Timeout, has_body: bool
) -> aiohttp.ClientTimeout:
    """The aiohttp timeout for one request (cached: the same few combinations recur).

    aiohttp has no write timeout, and its sock_read timer starts only once the whole body is
    written, so a peer that stops reading would hold a request forever. Requests with a body
    therefore get a `total` cap, the sum of the phases; downloads (no body) keep none, so a
    big file is bounded only by each read.
    """
    total = None
    if has_body and None not in (connect, read, write):
        total = connect + read + write  # type: ignore[operator]
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect, sock_read=read)


class AiohttpRequest(BaseRequest):
    """python-telegram-bot transport on one aiohttp ClientSession.

    The session is created by `initialize()` and closed by `shutdown()` unless one was given
    to the constructor, in which case its owner keeps it alive and closes it.

    Timeouts follow PTB's meaning: `connect_timeout` bounds establishing a connection,
    `read_timeout` each wait for response bytes (getUpdates passes its long-poll timeout on
    top of it), `write_timeout` sending a request (`media_write_timeout` when it uploads
    files and no write timeout was passed), `pool_timeout` the wait for a free slot
    when `connection_pool_size` requests are already in flight. Timeouts raise
    `telegram.error.TimedOut`, other transport failures `telegram.error.NetworkError`, each
    as one of bot.delivery.outcome's classes: NotSent when the request never reached
    Telegram, OutcomeUnknown when it went out and no answer came (see `transport_failure`).
    """

    __slots__ = (
        "_connect_timeout",
        "_media_write_timeout",
        "_owns_session",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_session",
        "_slots",
        "_write_timeout",
    )

    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: Timeout = 5.0,
        write_timeout: Timeout = 5.0,
        connect_timeout: Timeout = 5.0,
        pool_timeout: Timeout = 1.0,
        session: aiohttp.ClientSession | None = None,
        media_write_timeout: Timeout = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session = session
        self._owns_session = session is None
        # Our own slot count rather than the connector's limit, so that waiting for a free
        # connection can be told apart from a slow connect, as HTTPXRequest does.
        self._slots = asyncio.Semaphore(connection_pool_size)

    @property
    def read_timeout(self) -> Timeout:
        """The default read timeout; PTB adds the long-poll timeout to it for getUpdates."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Create the session (again, after a shutdown) unless the caller provided one."""
        if self._owns_session and (self._session is None or self._session.closed):
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0),
                headers={"User-Agent": self.USER_AGENT},
            )
            # A new session means nothing is in flight: start with fresh slots, bound to
            # the loop that runs from now on.
            self._slots = asyncio.Semaphore(self._pool_size)

    async def shutdown(self) -> None:
        """Close the session if this object owns it; safe to call more than once."""
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Timeout | object = BaseRequest.DEFAULT_NONE,
        write_timeout: Timeout | object = BaseRequest.DEFAULT_NONE,
        connect_timeout: Timeout | object = BaseRequest.DEFAULT_NONE,
        pool_timeout: Timeout | object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request and return the HTTP status and the raw body (see BaseRequest)."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")

        uploads_files = request_data is not None and request_data.contains_files
        body, content_type = _encode_body(request_data)
        timeout = _client_timeout(
            self._given_or(connect_timeout, self._connect_timeout),
            self._given_or(read_timeout, self._read_timeout),
            # As in HTTPXRequest, uploads get their own, longer default write timeout.
            self._given_or(
                write_timeout, self._media_write_timeout if uploads_files else self._write_timeout
            ),
            body is not None,
        )
        headers = None if self._owns_session else {"User-Agent": self.USER_AGENT}
        if content_type is not None:
            headers = {**(headers or {}), "Content-Type": content_type}

        await self._acquire_slot(self._given_or(pool_timeout, self._pool_timeout))
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from exc
        finally:
            self._slots.release()

    async def _acquire_slot(self, pool_timeout: Timeout) -> None:
        """Wait at most `pool_timeout` seconds for one of the `connection_pool_size` slots."""
        if not self._slots.locked():
            await self._slots.acquire()  # free slot: returns without suspending
            return
        try:
            async with asyncio.timeout(pool_timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise NotSentTimedOut(_POOL_TIMEOUT_MESSAGE) from exc

    @staticmethod
    def _given_or(value: Timeout | object, default: Timeout) -> Timeout:
        """PTB passes DEFAULT_NONE for 'not given': then the instance's default applies."""
        if isinstance(value, _DefaultValue):
            return default
        return value  # type: ignore[return-value]


def transport_failure(error: TimeoutError | aiohttp.ClientError) -> NetworkError:
    """The error to raise for an aiohttp failure: whether the request may have reached Telegram.

    Only failures before the request could be written are NotSent: no connection (refused,
    unreachable, DNS, TLS, connect timeout), a bad URL, or a connection found closed while
    writing (a server cannot act on a request it did not get whole). Anything later, a
    timeout waiting for the answer (or the total cap) or a connection lost before the answer,
    is OutcomeUnknown: aiohttp cannot tell whether the server had read the request.
    """
    # The class name says more than the message for errors like ServerDisconnected.
    detail = f"aiohttp.{type(error).__name__}: {error}"
    if isinstance(error, aiohttp.ConnectionTimeoutError):  # before TimeoutError: it is one
        return NotSentTimedOut(f"Connect timeout; request was not sent ({detail})")
    if isinstance(error, TimeoutError):
        return OutcomeUnknownTimedOut("Timed out after the request went out; no answer came")
    if isinstance(
        error,
        aiohttp.ClientConnectorError | aiohttp.ClientConnectionResetError | aiohttp.InvalidURL,
    ):
        return NotSent(detail)
    return OutcomeUnknown(detail)


def _encode_body(
    request_data: RequestData | None,
) -> tuple[bytes | aiohttp.FormData | None, str | None]:
    """The request body and its content type: JSON, or multipart when files are uploaded."""
    if request_data is None:
        return None, None
    if request_data.contains_files:
        form = aiohttp.FormData()
        for name, value in request_data.json_parameters.items():
            form.add_field(name, value)
        for name, (filename, content, mimetype) in request_data.multipart_data.items():
            form.add_field(name, content, filename=filename, content_type=mimetype)
        return form, None  # aiohttp sets multipart/form-data with its boundary
    parameters = request_data.parameters  # JSON-ready values (PTB converted its objects)
    if not parameters:
        return None, None
    return json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode(), _JSON
