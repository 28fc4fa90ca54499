"""/metrics on the running bot's listener (NEWS_NOTIFIER_LISTEN, no webhook mode): after a
check and a send, the scrape reads what happened: checks, stories found, alerts queued
and sent, a 429, a send error by class, the outbox's depth and oldest pending age, a
failed check by its reason, the instance's role, the event loop's lag."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram
from tests.helpers import free_port

Values = dict[tuple[str, tuple[tuple[str, str], ...]], float]
OUTBOX = "news_notifier_outbox_depth"
FAILURES = "news_notifier_feed_check_failures_total"
SERVER_ERROR = {"class": "server_error"}


@pytest.fixture
async def fake():
    async with FakeTelegram() as server:
        yield server


async def scrape(url: str) -> Values:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(values: Values, name: str, **labels: str) -> float:
    return values[(name, tuple(sorted(labels.items())))]


async def scrape_until(url: str, holds: Callable[[Values], bool]) -> Values:
    """Scrape until `holds` says the figures are there (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        values = await scrape(url)
        if holds(values):
            return values
        assert time.monotonic() < deadline, "the scrape never showed it"
        await asyncio.sleep(0.2)


def story(n: int) -> FeedItem:
    return FeedItem(f"Story {n}", f"https://n.test/{n}", guid=str(n), pub_date=datetime.now(UTC))


async def test_a_scrape_after_a_check_and_a_send_reads_what_happened(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_LISTEN=f"127.0.0.1:{port}")
    feed_server.publish("/a.xml", [story(1)])
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(settings, fake):
        fake.user_command(chat, alice, "subscribe", feed_server.url("/a.xml"))
        await fake.wait_for_messages(chat.id, 1, timeout=10)
        fake.force_retry_after(chat.id, 1)  # the alert's first send answers 429
        feed_server.publish("/a.xml", [story(2), story(1)])
        await fake.wait_for_messages(chat.id, 2, timeout=15)
        # Recorded as sent within a flush (50 ms) of Telegram's answer.
        sent = await scrape_until(metrics, lambda v: value(v, OUTBOX) == 0)

        fake.fail_for(60, methods=["sendMessage"])  # Telegram answers 502 from now on
        feed_server.publish("/a.xml", [story(3), story(2), story(1)])
        stuck = await scrape_until(
            metrics, lambda v: value(v, "news_notifier_send_errors_total", **SERVER_ERROR) >= 1
        )
        feed_server.serve("/a.xml", "down", status=500)
        failed = await scrape_until(
            metrics, lambda v: value(v, FAILURES, reason="http_status") >= 1
        )

    assert value(sent, "news_notifier_messages_sent_total", kind="alert") == 1
    assert value(sent, "news_notifier_alerts_queued_total") == 1
    assert value(sent, "news_notifier_flood_waits_total", path="outbox") == 1
    assert value(sent, "news_notifier_feed_checks_total") >= 1
    # Story 1 was in the feed when it was subscribed: seen, not found new.
    assert value(sent, "news_notifier_stories_found_total") == 1
    assert value(sent, "news_notifier_outbox_depth") == 0
    assert value(sent, "news_notifier_outbox_oldest_age_seconds") == 0
    assert value(sent, "news_notifier_role", role="leader") == 1
    assert value(sent, "news_notifier_role", role="standby") == 0
    assert value(sent, "news_notifier_event_loop_lag_seconds_count") >= 1
    assert value(sent, "process_cpu_seconds_total") > 0

    assert value(stuck, "news_notifier_alerts_queued_total") == 2
    assert value(stuck, "news_notifier_stories_found_total") == 2
    assert value(stuck, "news_notifier_messages_sent_total", kind="alert") == 1
    assert value(stuck, "news_notifier_outbox_depth") == 1
    assert value(stuck, "news_notifier_outbox_oldest_age_seconds") > 0
    assert value(failed, FAILURES, reason="timeout") == 0
    assert value(failed, "news_notifier_webhook_refused_total", reason="wrong") == 0
