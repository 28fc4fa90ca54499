"""Webhooks, as Telegram runs them: setWebhook, deleteWebhook, getWebhookInfo, and the
delivery of each update by HTTPS POST to the registered URL.

What Telegram checks, the fake checks: the URL is https on one of the ports Telegram
allows (80, 88, 443, 8443); `secret_token` is 1-256 characters of A-Z, a-z, 0-9, _ and -
(an empty one sets none); while a webhook is set, getUpdates answers 409 (methods.py).

Deliveries go one at a time, oldest update first, with the header
`X-Telegram-Bot-Api-Secret-Token` when a secret was set. An update is forgotten once the
bot answers 2xx; any other answer (or none) is kept as the webhook's last error and the
same update is posted again after `webhook_retry_seconds`, as Telegram does.

The registered URL is the bot's public https URL. A test maps its origin to the bot's
loopback listener with `forward_webhooks` (as the TLS-terminating reverse proxy in front of
a real bot does, README "Webhook mode"): the fake never accepts a plain http URL, so the
bot is tested with the URL it would register in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from tests.fakes.telegram_api.errors import JsonDict, bad_request
from tests.fakes.telegram_api.state import DEFAULT_UPDATES, FakeState

SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PORTS: Final = frozenset({80, 88, 443, 8443})
_SECRET_CHARACTERS: Final = re.compile(r"[A-Za-z0-9_-]*")
SECRET_LIMIT: Final = 256
_UNRESOLVED: Final = "bad webhook: Failed to resolve host: Name or service not known"


@dataclass(frozen=True)
class WebhookDelivery:
    """One POST of an update to the webhook, and the bot's answer (0: no answer)."""

    update_id: int
    status: int
    secret_sent: bool


class Webhooks(FakeState):
    """setWebhook, deleteWebhook, getWebhookInfo and the delivery loop."""

    def _init_webhooks(self) -> None:
        self.webhook_secret = ""
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.webhook_retry_seconds = 0.2
        self._webhook_forward: dict[str, str] = {}
        self._webhook_error: tuple[int, str] | None = None  # (unix time, message)
        self._webhook_task: asyncio.Task[None] | None = None

    # ---- test controls ---------------------------------------------------------------------

    def forward_webhooks(self, origin: str, local: str) -> None:
        """Post what is registered under `origin` (https://bot.example) to `local` instead
        (http://127.0.0.1:PORT): the reverse proxy in front of the bot."""
        self._webhook_forward[origin.rstrip("/")] = local.rstrip("/")

    async def wait_for_webhook_deliveries(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self.wait_for(  # type: ignore[attr-defined]
            lambda: len(self.webhook_deliveries) >= count,
            timeout,
            f"{count} webhook deliveries",
        )

    # ---- the methods -----------------------------------------------------------------------

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = params["url"]
        if not url:
            return self._delete_webhook(params)
        _check_webhook_url(url)
        secret = params.get("secret_token", "")
        if len(secret) > SECRET_LIMIT:
            raise bad_request("secret token is too long")
        if not _SECRET_CHARACTERS.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"]) or DEFAULT_UPDATES
        self.webhook_url, self.webhook_secret = url, secret
        self._webhook_error = None
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_webhooks())
        self._updates_arrived.set()  # a poll waiting now ends (it answers 409 next time)
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url, self.webhook_secret = "", ""
        self._webhook_error = None
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            self._webhook_task = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> JsonDict:
        info: JsonDict = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = 40
            info["allowed_updates"] = sorted(self._allowed_updates)
            if self._webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    async def _stop_webhooks(self) -> None:
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None

    # ---- delivery --------------------------------------------------------------------------

    async def _deliver_webhooks(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                update = self._next_webhook_update()
                if update is None:
                    self._updates_arrived.clear()
                    await self._updates_arrived.wait()
                    continue
                status = await self._post_update(session, update)
                if 200 <= status < 300:
                    with contextlib.suppress(ValueError):
                        self._updates.remove(update)
                else:
                    await asyncio.sleep(self.webhook_retry_seconds)
                if self._waiters:
                    self._notify()

    def _next_webhook_update(self) -> JsonDict | None:
        # Updates of types the bot did not ask for are dropped, as Telegram does.
        while self._updates:
            update = self._updates[0]
            if next(k for k in update if k != "update_id") in self._allowed_updates:
                return update
            self._updates.popleft()
        return None

    async def _post_update(self, session: aiohttp.ClientSession, update: JsonDict) -> int:
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers[SECRET_HEADER] = self.webhook_secret
        try:
            async with session.post(
                self._forwarded(self.webhook_url), data=json.dumps(update), headers=headers
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            status, message = 0, f"Connection error: {type(error).__name__}"
        else:
            message = f"Wrong response from the webhook: {status} {response.reason}"
        if not 200 <= status < 300:
            self._webhook_error = (int(time.time()), message)
        self.webhook_deliveries.append(
            WebhookDelivery(update["update_id"], status, bool(self.webhook_secret))
        )
        return status

    def _forwarded(self, url: str) -> str:
        for origin, local in self._webhook_forward.items():
            if url == origin or url.startswith(origin + "/"):
                return local + url[len(origin) :]
        return url


def _check_webhook_url(url: str) -> None:
    """Telegram's refusals of a webhook URL: https only, on the ports it delivers to."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise bad_request(_UNRESOLVED) from None
    if parts.scheme != "https":
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    if not parts.hostname:
        raise bad_request(_UNRESOLVED)
    if port not in WEBHOOK_PORTS:
        raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
