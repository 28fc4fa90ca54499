"""Command replies from several bots count against the one bot token's limits: each bot's
share of the overall rate (bot/delivery/leadership.py, budget_share) and the pacer keeping it."""

from __future__ import annotations

import dataclasses

import pytest

from bot.delivery.leadership import budget_share
from bot.delivery.pacing import Pacer
from tests.conftest import make_settings


@pytest.mark.parametrize("instances", [2, 3, 5, 6, 11, 50])
def test_the_shares_of_all_bots_add_up_to_the_whole_rate(instances: int) -> None:
    leader = budget_share(instances, leading=True, replies_everywhere=True)
    standby = budget_share(instances, leading=False, replies_everywhere=True)
    total = leader + (instances - 1) * standby
    assert total == pytest.approx(1.0)
    assert leader >= 0.5  # alerts keep at least half
    assert 0 < standby <= 0.1


def test_long_polling_keeps_the_whole_rate_for_the_leader() -> None:
    # Only the leader takes updates: its replies share the sender's pacer already.
    assert budget_share(3, leading=True, replies_everywhere=False) == 1.0
    assert budget_share(1, leading=True, replies_everywhere=True) == 1.0


def test_a_pacer_with_a_share_spaces_its_messages_wider(tmp_path: object) -> None:
    settings = make_settings(tmp_path)  # type: ignore[arg-type]
    delivery = dataclasses.replace(settings.delivery, global_per_second=30)
    pacer = Pacer(delivery)
    pacer.take_share(0.1)  # a standby in webhook mode: 3 replies a second
    starts = []
    now = 0.0
    for chat in range(1, 11):  # ten commands from ten chats at once
        start = pacer.earliest(chat)
        now = max(now, start)
        pacer.book(chat, now)
        starts.append(now)
    assert starts[-1] - starts[0] == pytest.approx(9 / 3)  # the tenth reply 3 s after the first
