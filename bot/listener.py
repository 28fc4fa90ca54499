"""The bot's one HTTP listener (NEWS_NOTIFIER_LISTEN): every inbound request comes here.

One aiohttp web application that the other parts register their routes on before it
starts: WebSub callbacks (bot/feeds/websub.py) now; Telegram's webhook and /metrics later.
It serves `/healthz` itself: 200 while the health check the runtime gives it says so, 503
otherwise (a load balancer or container runtime takes the instance out), with the check's
one-line verdict as the body.

In production a reverse proxy terminates TLS and forwards the public URL
(NEWS_NOTIFIER_WEBHOOK_URL) here unchanged (PRODUCT.md, Running it). There is no access
log: a WebSub callback's path is a capability (its token lets a hub in), and the bot's log
must not hand it to whoever reads the log.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from bot.config import ListenAddress

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
# A request still being answered when the listener stops gets this long to finish.
SHUTDOWN_SECONDS = 5.0

# Whether the bot is healthy, and why, as the runtime decides (Runtime.health).
Verdict = tuple[bool, str]
HealthCheck = Callable[[], Verdict | Awaitable[Verdict]]
# A health check that takes longer than this (a database that does not answer) is a no.
HEALTH_TIMEOUT_SECONDS = 5.0


class ListenError(Exception):
    """The listener cannot bind its address (in use, not this machine's, not allowed)."""

    def __init__(self, address: ListenAddress, error: OSError) -> None:
        self.address = address
        self.error = error
        host = f"[{address.host}]" if ":" in address.host else address.host
        reason = error.strerror or str(error)
        super().__init__(
            f"cannot listen on {host}:{address.port} ({reason}): set listener.listen "
            "(NEWS_NOTIFIER_LISTEN) to a free host:port of this machine, or empty for no listener"
        )


class Listener:
    """`add_routes` first, then `await start()`; `await stop()` at the end."""

    def __init__(
        self,
        address: ListenAddress,
        *,
        max_body_bytes: int,
        healthy: HealthCheck | None = None,
    ) -> None:
        self.address = address
        self.healthy = healthy
        # A WebSub delivery carries a whole feed: the same cap as a fetched one.
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_get(HEALTH_PATH, self._health)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Register routes (before start: aiohttp freezes the router then)."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the listener starts")
        self.app.add_routes(list(routes))

    async def start(self) -> None:
        """Bind and serve; ListenError when the address cannot be bound."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, self.address.port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            raise ListenError(self.address, error) from error
        log.info("event=listener_started address=%s", self.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            log.info("event=listener_stopped")

    @property
    def port(self) -> int:
        """The port bound (the one the OS picked when the setting says 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the listener is not started")
        return int(self._runner.addresses[0][1])

    @property
    def base_url(self) -> str:
        """http://host:port as reached on this machine (tests, the log)."""
        host = self.address.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def _health(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                ok, text = await self._verdict()
        except TimeoutError:
            ok, text = False, f"unhealthy: no answer within {HEALTH_TIMEOUT_SECONDS:.0f} s"
        except Exception as error:
            log.exception("event=health_check_failed")
            ok, text = False, f"unhealthy: {type(error).__name__}"
        return web.Response(status=200 if ok else 503, text=text)

    async def _verdict(self) -> Verdict:
        if self.healthy is None:
            return True, "healthy"
        answer = self.healthy()
        if inspect.isawaitable(answer):
            answer = await answer
        return answer
