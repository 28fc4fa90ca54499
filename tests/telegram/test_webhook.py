"""Webhook mode through the fake Bot API: the bot registers its public URL with a secret
and the update kinds polling asks for, the fake POSTs updates there (through its stand-in
for the reverse proxy) and the bot answers them; requests with a wrong or missing secret
get 403 and are counted; a bot back in polling mode deletes the webhook and polls."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from telegram import Bot

from bot.config import ConfigError, Settings, load_settings
from bot.telegram.app import ALLOWED_UPDATES
from bot.telegram.webhook import (
    SECRET_HEADER,
    WebhookRefusedError,
    webhook_path,
    webhook_secret,
)
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import free_port

ORIGIN = "https://bot.example"
PUBLIC_URL = ORIGIN + "/telegram/updates"


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


def webhook_settings(tmp_path: Path, fake: FakeTelegram) -> tuple[Settings, str]:
    """Settings for webhook mode, and the listener's local origin (the proxy's target)."""
    port = free_port()
    settings = bot_settings(
        tmp_path,
        fake,
        NEWS_NOTIFIER_WEBHOOK_URL=PUBLIC_URL,
        NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{port}",
    )
    local = f"http://127.0.0.1:{port}"
    fake.forward_webhooks(ORIGIN, local)
    return settings, local


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        return response.status


async def metric_values(local: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(local + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_secret_is_the_same_for_one_token_and_within_telegrams_rules() -> None:
    secret = webhook_secret("123:abc")
    assert secret == webhook_secret("123:abc") != webhook_secret("123:abd")
    assert len(secret) == 64 and secret.isalnum() and "abc" not in secret
    assert webhook_path("https://bot.example") == "/"
    assert webhook_path("https://bot.example:8443/tg/hook?x=1") == "/tg/hook"


async def test_webhook_mode_registers_and_answers_a_start_the_fake_posted(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    settings, local = webhook_settings(tmp_path, fake)
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    # Sent while no instance answered: kept, not dropped, and answered once the bot is up.
    fake.user_command(chat, alice, "help")
    async with running_bot(settings, fake):
        assert fake.webhook_url == PUBLIC_URL
        assert fake.webhook_secret == webhook_secret(fake.token)
        [registered] = fake.requests_for("setWebhook")
        assert registered.params["allowed_updates"] == ALLOWED_UPDATES
        assert not registered.params.get("drop_pending_updates")
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        fake.user_command(chat, alice, "start")
        replies = await fake.wait_for_messages(chat.id, 2, timeout=10)
        assert "/subscribe" in replies[1].text
        values = await metric_values(local)
    assert fake.requests_for("getUpdates") == []
    assert fake.requests_for("deleteWebhook") == []  # the other instances still serve it
    assert [(d.status, d.secret_sent) for d in fake.webhook_deliveries] == [(200, True)] * 2
    assert values[("news_notifier_webhook_updates_total", ())] == 2
    assert fake.pending_updates == []


async def test_wrong_and_missing_secrets_get_403_are_counted_and_logged_without_the_token(
    tmp_path: Path, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    settings, local = webhook_settings(tmp_path, fake)
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    update = fake.user_command(chat, alice, "start")
    body = json.dumps(update).encode()
    url = local + webhook_path(PUBLIC_URL)
    guess = webhook_secret(fake.token)[:-1] + "0"
    typed = {"Content-Type": "application/json"}
    caplog.set_level(logging.WARNING, logger="bot.telegram.webhook")
    async with running_bot(settings, fake):
        await fake.wait_for_messages(chat.id, 1, timeout=10)  # the fake's delivery
        assert await post(url, body, typed) == 403
        assert await post(url, body, {**typed, SECRET_HEADER: ""}) == 403
        assert await post(url, body, {**typed, SECRET_HEADER: guess}) == 403
        assert await post(url, body, {**typed, SECRET_HEADER: "short"}) == 403
        values = await metric_values(local)
        right = {**typed, SECRET_HEADER: webhook_secret(fake.token)}
        assert await post(url, b"not json", right) == 400
    assert values[("news_notifier_webhook_refused_total", (("reason", "missing"),))] == 2
    assert values[("news_notifier_webhook_refused_total", (("reason", "wrong"),))] == 2
    assert len(fake.messages(chat.id)) == 1  # the refused copies were not handled
    refusals = [r.getMessage() for r in caplog.records if "webhook_refused" in r.getMessage()]
    assert len(refusals) == 1, refusals  # one line a minute at most
    assert "header=missing" in refusals[0]
    logged = caplog.text
    assert webhook_secret(fake.token) not in logged and guess not in logged
    assert fake.token not in logged


async def test_polling_mode_deletes_a_webhook_left_set_and_polls(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        assert await bot.set_webhook(PUBLIC_URL, secret_token="left-from-webhook-mode")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    fake.user_command(chat, alice, "start")  # pending while the webhook was set
    async with running_bot(bot_settings(tmp_path, fake), fake):
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        assert fake.webhook_url == ""
        [deleted] = fake.requests_for("deleteWebhook")
        assert not deleted.params.get("drop_pending_updates")
    polls = fake.requests_for("getUpdates")
    assert polls and polls[0].status == 200
    assert not [p for p in polls if "webhook is active" in (p.description or "")]


@pytest.mark.parametrize("path", ["/metrics", "/healthz/", "/websub", "/websub/abc"])
def test_a_webhook_path_the_listener_serves_itself_is_refused(path: str) -> None:
    environ = {"NEWS_NOTIFIER_WEBHOOK_URL": ORIGIN + path, "NEWS_NOTIFIER_LISTEN": "[::1]:80"}
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ)
    assert "which the listener serves itself" in str(error.value)
    assert "\n" not in str(error.value)
    for fine in ("", "/", "/telegram", "/metrics-telegram"):
        environ["NEWS_NOTIFIER_WEBHOOK_URL"] = ORIGIN + fine
        assert load_settings(None, environ).listener.webhook_url == ORIGIN + fine


async def test_a_url_telegram_refuses_stops_the_start_with_its_reason(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    settings = bot_settings(
        tmp_path,
        fake,
        NEWS_NOTIFIER_WEBHOOK_URL="https://bot.example:8080/telegram",
        NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{free_port()}",
    )
    with pytest.raises(WebhookRefusedError) as refused:
        async with running_bot(settings, fake):
            pass
    line = str(refused.value)
    assert "only on ports 80, 88, 443 or 8443" in line, line
    assert "NEWS_NOTIFIER_WEBHOOK_URL" in line and "\n" not in line
    assert fake.requests_for("getUpdates") == [] and fake.webhook_url == ""
