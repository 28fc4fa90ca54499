"""Which first word of a command names another chat (bot/telegram/targets.py)."""

from __future__ import annotations

import pytest

from bot.telegram.targets import TargetChat, split_target


def split(text: str) -> tuple[str | None, list[str], str]:
    """As the command wrapper calls it: the words after the command, and their text."""
    return split_target(text.split(), text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "@mychannel https://a.test/f.xml",
            ("@mychannel", ["https://a.test/f.xml"], "https://a.test/f.xml"),
        ),
        ("@My_Channel_2", ("@My_Channel_2", [], "")),
        ("-1001234567890 1 digest", ("-1001234567890", ["1", "digest"], "1 digest")),
        ("-4001", ("-4001", [], "")),
        # The rest keeps its spacing and quotes: /keywords parses phrases from it.
        (
            '@news add  "two words"   -x',
            ("@news", ["add", '"two', 'words"', "-x"], 'add  "two words"   -x'),
        ),
    ],
)
def test_a_username_or_a_negative_id_first_is_a_target(
    text: str, expected: tuple[str | None, list[str], str]
) -> None:
    assert split(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2",  # /unsubscribe 2: a subscription's number
        "1 digest",  # /mode 1 digest
        "1001234567890",  # a positive id is a user, never a target
        "-0",
        "-01",
        "-x",  # /keywords -x is not a target (and not a valid /keywords either)
        "-12345678901234567",  # longer than any chat id
        "@abc",  # shorter than any username
        "@" + "a" * 33,  # longer than any username
        "@1channel",  # usernames start with a letter
        "@my-channel",
        "@",
        "https://a.test/@mychannel",
        "add @mychannel",  # only the first word may be a target
        "at 08:00 Asia/Shanghai",
        "－1001234567890",  # a full-width minus
        "-١٢٣",  # digits of another script
    ],
)
def test_anything_else_is_the_commands_own_argument(text: str) -> None:
    assert split(text) == (None, text.split(), text)


def test_replies_name_a_target_by_title_and_username() -> None:
    assert TargetChat(-100, "channel", "News", "mynews").name == "News (@mynews)"
    assert TargetChat(-100, "channel", "News", "").name == "News"
    assert TargetChat(-100, "channel", "", "mynews").name == "@mynews"
    assert TargetChat(-100, "group", "", "").name == "-100"
