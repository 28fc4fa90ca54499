"""Webhook mode: Telegram POSTs each update to the bot's public URL
(NEWS_NOTIFIER_WEBHOOK_URL) instead of the bot long-polling getUpdates.

The updates are served on the bot's one listener (bot/listener.py), at the public URL's
path: the reverse proxy in front of the bot forwards the URL unchanged (README, "Webhook
mode"). Every request must carry `X-Telegram-Bot-Api-Secret-Token` with the secret this
bot registered (compared in constant time); a missing or wrong one gets 403, is counted
(news_notifier_webhook_refused_total) and logged in one line a minute at most, never with
the token. An accepted update goes into `application.update_queue`, where python-telegram-
bot puts polled updates too, so the same handlers run it through the same per-chat update
processor (bot/telegram/ordering.py). It is answered 200 once queued: Telegram waits for
the answer before it sends the next update, and a slow command must not hold back others.

Why not python-telegram-bot's own webhook support (its `webhooks` extra,
`Updater.start_webhook`): it serves on a tornado server of its own, bound to a port of its
own, while this bot has one listener for Telegram, WebSub callbacks, /metrics and /healthz
behind one reverse proxy and one public origin; and its check compares the token with `!=`
and logs a wrong one. What it does with an accepted update is the one line kept here
(`update_queue.put`).

Several instances behind a load balancer each register the same URL and secret at start
(setWebhook is idempotent) and each serves what reaches it. None deletes the webhook when
it stops: the others still serve it, and Telegram keeps updates while none answers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.error import BadRequest

from bot.metrics import Metrics
from bot.telegram.context import BotApplication

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A refused request is logged at most this often (the others in the next line's count): a
# scanner hammering the URL must not flood the log.
REFUSAL_LOG_SECONDS = 60.0
_SECRET_LABEL = b"news-notifier telegram webhook secret v1"


def webhook_secret(bot_token: str) -> str:
    """The secret token registered with setWebhook: HMAC-SHA256 of a fixed label, keyed
    with the bot's token, in hex (64 characters, within Telegram's A-Z a-z 0-9 _ - and 256).

    Derived rather than random or configured: every instance behind a load balancer
    computes the same secret from the token it already has, so any instance's setWebhook
    leaves every other instance's check valid, with nothing more to configure or share. It
    changes when the token is revoked, and cannot be turned back into the token.
    """
    return hmac.new(bot_token.encode(), _SECRET_LABEL, hashlib.sha256).hexdigest()


class WebhookRefusedError(Exception):
    """Telegram would not take the public URL as a webhook (not https, a port it does not
    deliver to, a host it cannot resolve): str() is the one line to print."""

    def __init__(self, url: str, answer: str) -> None:
        super().__init__(
            f"Telegram refused the webhook URL {url} ({answer}): set listener.webhook_url "
            "(NEWS_NOTIFIER_WEBHOOK_URL) to the bot's public https URL on port 443, 80, 88 "
            "or 8443, or empty for long polling"
        )


def webhook_path(url: str) -> str:
    """The path the listener serves the public URL at ("/" for a bare origin)."""
    return urlsplit(url).path or "/"


class Webhook:
    """`routes()` for the listener, `register()` once the application has started."""

    def __init__(
        self,
        app: BotApplication,
        url: str,
        *,
        allowed_updates: Sequence[str],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.url = url
        self.path = webhook_path(url)
        self.allowed_updates = list(allowed_updates)
        self.metrics = metrics
        self._secret = webhook_secret(app.bot.token).encode()
        self._refused_unlogged = 0
        self._refusal_logged_at = -REFUSAL_LOG_SECONDS

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self._on_update)]

    async def register(self) -> None:
        """setWebhook: the public URL, the secret, the update kinds polling asks for.

        Pending updates are kept (drop_pending_updates=False): they are what users sent
        while no instance answered (a restart, a switch from polling), each owed its
        answer, and another instance may not have received them yet.
        """
        try:
            await self.app.bot.set_webhook(
                self.url,
                secret_token=self._secret.decode(),
                allowed_updates=self.allowed_updates,
                drop_pending_updates=False,
            )
        except BadRequest as error:
            raise WebhookRefusedError(self.url, error.message) from error
        log.info("event=webhook_registered path=%s", self.path)

    async def _on_update(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request.headers.get(SECRET_HEADER))
        if refusal is not None:
            self._refused(refusal, request)
            return web.Response(status=403)
        try:
            data = await request.json()
            update = Update.de_json(data, self.app.bot) if isinstance(data, dict) else None
        except Exception:  # not JSON, or not an Update: Telegram never sends that
            update = None
        if update is None:
            return web.Response(status=400, text="not an update")
        await self.app.update_queue.put(update)
        self.metrics.webhook_updates.inc()
        return web.Response()

    def _refusal(self, given: str | None) -> str | None:
        """None when the header carries this bot's secret; else why not (missing, wrong)."""
        if not given:
            return "missing"
        # Constant time: how long a wrong guess takes says nothing of the secret.
        if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._secret):
            return None
        return "wrong"

    def _refused(self, reason: str, request: web.Request) -> None:
        self.metrics.webhook_refused.labels(reason).inc()
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at < REFUSAL_LOG_SECONDS:
            return
        log.warning(
            "event=webhook_refused header=%s from=%s refused_since_last_line=%d",
            reason,
            request.remote,
            self._refused_unlogged,
        )
        self._refusal_logged_at, self._refused_unlogged = now, 0
