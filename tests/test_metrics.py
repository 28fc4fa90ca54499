"""bot/metrics.py: a registry per bot, send errors by class, the role, a scrape that
answers when the database does not, and the event loop's lag."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from bot import metrics as metrics_module
from bot.delivery.outcome import NotSentTimedOut, OutcomeUnknown
from bot.metrics import SEND_ERROR_CLASSES, Metrics, Role, send_error_class


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await metrics.scrape()).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_bot_counts_in_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.feed_checks.inc(3)
    assert sample(one, "news_notifier_feed_checks_total") == 3
    assert sample(two, "news_notifier_feed_checks_total") == 0


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (NotSentTimedOut("pool"), "not_sent"),
        (OutcomeUnknown("no answer"), "outcome_unknown"),
        (BadRequest("Bad Request: chat not found"), "bad_request"),
        (Forbidden("Forbidden: bot was blocked by the user"), "forbidden"),
        (ChatMigrated(-100123), "migrated"),
        (NetworkError("Bad Gateway"), "server_error"),
        (TimedOut(), "server_error"),
        (ValueError("a bug"), "other"),
    ],
)
def test_a_failed_send_is_counted_under_its_class(error: Exception, kind: str) -> None:
    metrics = Metrics()
    assert send_error_class(error) == kind
    metrics.send_failed(error)
    assert sample(metrics, "news_notifier_send_errors_total", **{"class": kind}) == 1


def test_a_429_is_a_flood_wait_not_a_send_error() -> None:
    metrics = Metrics()
    metrics.send_failed(RetryAfter(3))
    assert sample(metrics, "news_notifier_flood_waits_total", path="outbox") == 1
    assert {
        sample(metrics, "news_notifier_send_errors_total", **{"class": kind})
        for kind in SEND_ERROR_CLASSES
    } == {0}


def test_the_role_is_leader_until_told_otherwise() -> None:
    metrics = Metrics()
    assert sample(metrics, "news_notifier_role", role="leader") == 1
    metrics.set_role(Role.STANDBY)
    assert sample(metrics, "news_notifier_role", role="leader") == 0
    assert sample(metrics, "news_notifier_role", role="standby") == 1


async def test_a_scrape_reads_the_outbox_then_answers_without_it_when_it_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics = Metrics()
    answers: list[object] = [(7, 12.5), RuntimeError("database down")]

    async def read() -> tuple[int, float]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            await asyncio.sleep(10)
        return answer  # type: ignore[return-value]

    metrics.read_outbox_with(read)
    first = await values(metrics)
    assert first[("news_notifier_outbox_depth", ())] == 7
    assert first[("news_notifier_outbox_oldest_age_seconds", ())] == 12.5
    second = await values(metrics)
    assert math.isnan(second[("news_notifier_outbox_depth", ())])
    assert ("news_notifier_feed_checks_total", ()) in second  # the rest still answer
    monkeypatch.setattr(metrics_module, "SAMPLE_TIMEOUT", 0.05)
    answers.append(None)  # a database that does not answer at all
    started = time.monotonic()
    third = await values(metrics)
    assert time.monotonic() - started < 2
    assert math.isnan(third[("news_notifier_outbox_oldest_age_seconds", ())])


async def test_the_lag_probe_sees_a_blocked_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "LAG_INTERVAL", 0.01)
    metrics = Metrics()
    metrics.start()
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # noqa: ASYNC251 - on purpose: a CPU-bound stage run on the loop
    await asyncio.sleep(0.05)
    await metrics.stop()
    assert (sample(metrics, "news_notifier_event_loop_lag_seconds_count") or 0) >= 3
    assert (sample(metrics, "news_notifier_event_loop_lag_seconds_sum") or 0) >= 0.25
    assert sample(metrics, "news_notifier_event_loop_lag_seconds_bucket", le="0.1") is not None
