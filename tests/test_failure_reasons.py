"""Why a feed failed, in the reader's language: the reasons a check stores (feeds.last_error),
the kinds of "not a feed", and every text that shows them (/subscribe's reply, the /list
health line, the paused notice, /import's summary).

Chinese texts carry no English words besides proper nouns (HTTP, DNS, RSS…) and the values
put in them (addresses, exception names); English texts are the ones the bot always sent.
"""

from __future__ import annotations

import re

import pytest

from bot.feeds.check import describe
from bot.feeds.fetch import FetchError, FetchErrorKind
from bot.feeds.parse import NotAFeedError, parse_feed
from bot.opml import Failure, ImportReport
from bot.telegram.i18n import t
from bot.telegram.ops import failure_reason, import_summary

PROPER_NOUNS = {"HTTP", "HTTPS", "DNS", "RSS", "Atom", "RDF", "JSON", "HTML", "OPML", "Gone"}
URL = "https://news.example.com/feed.xml"


def english_words(text: str, *values: str) -> list[str]:
    """Runs of 3+ ASCII letters in `text` once URLs, the given values and markup are gone."""
    text = re.sub(r"https?://\S+", " ", text)
    for value in values:
        if value:
            text = text.replace(value, " ")
    text = re.sub(r"</?\w+>", " ", text)
    return [word for word in re.findall(r"[A-Za-z]{3,}", text) if word not in PROPER_NOUNS]


# --- the reasons a failed check stores -------------------------------------------------


def stored_reasons() -> list[tuple[str, str]]:
    """(stored reason, the part of it that is a value: an exception's name) for every kind."""
    reasons = [
        (describe(FetchError(kind, "detail for the log", status=503)), "")
        for kind in FetchErrorKind
    ]
    reasons += [
        (describe(FetchError(FetchErrorKind.HTTP_STATUS, "x", status=404)), ""),
        (describe(NotAFeedError("html")), ""),
        (describe(RecursionError("deep")), "RecursionError"),
        ("internal error", ""),  # the poller's, for a check that crashed
        ("HTTP 410 Gone", ""),  # the store's, for a feed marked gone
    ]
    return reasons


def test_stored_reasons_are_the_codes_older_versions_stored() -> None:
    # feeds.last_error keeps its values: rows written before this change read the same.
    assert sorted(reason for reason, _ in stored_reasons()) == sorted(
        [
            "invalid url",
            "bad scheme",
            "address not allowed",
            "dns",
            "connection",
            "timeout",
            "too large",
            "too many redirects",
            "HTTP 503",
            "gone",
            "tls",
            "HTTP 404",
            "not a feed",
            "RecursionError",
            "internal error",
            "HTTP 410 Gone",
        ]
    )


@pytest.mark.parametrize(("reason", "value"), stored_reasons())
def test_health_texts_show_the_reason_in_chinese(reason: str, value: str) -> None:
    for key, values in [
        ("list.failing", {"failures": 3}),
        ("list.paused", {}),
        ("notice.feed_paused", {"title": "新闻", "url": URL}),
    ]:
        zh = t("zh", key, error=reason, **values)
        assert not english_words(zh, value), (reason, key, zh)


@pytest.mark.parametrize(("reason", "value"), stored_reasons())
def test_health_texts_in_english_are_unchanged(reason: str, value: str) -> None:
    assert t("en", "list.failing", error=reason, failures=3) == (
        f"   ⚠️ failing: {reason} (3 checks in a row)"
    )
    assert t("en", "list.paused", error=reason) == (f"   ⏸ paused after failing for days: {reason}")
    assert t("en", "notice.feed_paused", error=reason, title="News", url=URL) == (
        f"⏸ <b>News</b> has failed for days ({reason}), so checks are paused. "
        f"This chat will be told if it recovers. {URL}"
    )


def test_one_failure_is_one_check() -> None:
    assert t("en", "list.failing", error="timeout", failures=1) == (
        "   ⚠️ failing: timeout (1 check in a row)"
    )
    assert t("en", "list.failing", error="timeout", failures=2).endswith("(2 checks in a row)")
    assert (
        t("zh", "list.failing", error="timeout", failures=1)
        == "   ⚠️ 获取失败：响应超时（连续 1 次）"
    )


def test_connection_failure_in_chinese() -> None:
    assert t("zh", "list.failing", error="connection", failures=3) == (
        "   ⚠️ 获取失败：连接失败（连续 3 次）"
    )


def test_a_crashed_check_names_the_exception_as_a_value() -> None:
    assert t("zh", "list.paused", error="RecursionError") == (
        "   ⏸ 连续多日失败，已暂停：内部错误（RecursionError）"
    )
    assert t("zh", "list.paused", error="HTTP 410 Gone").endswith("HTTP 410（已永久删除）")


def test_unknown_stored_reasons_are_shown_as_they_are() -> None:
    for lang in ("en", "zh"):
        assert "something odd <x>" not in t(lang, "list.paused", error="something odd <x>")
        assert "something odd &lt;x&gt;" in t(lang, "list.paused", error="something odd <x>")
        assert "?" in t(lang, "list.paused", error="?")


# --- kinds of "not a feed" ---------------------------------------------------------------

ENGLISH_DETAILS = {
    "html": "an HTML page",
    "json": "a JSON document",
    "empty": "an empty document",
    "other": "a document of another kind",
}


def not_a_feed_errors() -> list[tuple[NotAFeedError, str, str]]:
    """(error, its English detail as the bot always showed it, the value inside it)."""
    bodies = {
        "html": b"<!DOCTYPE html><html><body>Our news</body></html>",
        "json": b'{"items": []}',
        "empty": b" \n ",
        "other": b"GIF89a\x01\x00\x01\x00",
    }
    errors = []
    for kind, body in bodies.items():
        with pytest.raises(NotAFeedError) as caught:
            parse_feed(body, url=URL)
        errors.append((caught.value, ENGLISH_DETAILS[kind], ""))
    return errors


@pytest.mark.parametrize(("error", "english", "value"), not_a_feed_errors())
def test_not_a_feed_reply_and_import_reason(error: NotAFeedError, english: str, value: str) -> None:
    assert error.key == "feed.not_a_feed"
    assert t("en", error.key, **error.values) == (
        f"That address does not give a news feed (RSS, Atom or RDF): it is {english}. "
        "Look for an RSS or Atom link on the site."
    )
    assert failure_reason("en", error.key, error.values) == f"not a feed: {english}"
    zh = t("zh", error.key, **error.values)
    assert zh.startswith("该地址不是新闻订阅源") and not english_words(zh, value), zh
    short = failure_reason("zh", error.key, error.values)
    assert short.startswith("不是订阅源：") and not english_words(short, value), short


def test_unreadable_document_names_the_parser_error_as_a_value() -> None:
    error = NotAFeedError("unreadable", "ValueError")
    test_not_a_feed_reply_and_import_reason(
        error, "an unreadable document (ValueError)", "ValueError"
    )
    assert "无法读取" in t("zh", error.key, **error.values)


def test_every_kind_has_a_text_in_both_languages() -> None:
    for kind in NotAFeedError.KINDS:
        error = NotAFeedError(kind, "ValueError" if kind == "unreadable" else "")
        zh = t("zh", error.key, **error.values)
        assert not english_words(zh, "ValueError"), zh
        assert f"it is {kind}." not in t("en", error.key, **error.values)


def test_homepage_in_chinese() -> None:
    with pytest.raises(NotAFeedError) as caught:
        parse_feed(b"<!doctype html><html><head><title>Home</title></head></html>", url=URL)
    assert t("zh", "feed.not_a_feed", **caught.value.values) == (
        "该地址不是新闻订阅源（RSS、Atom 或 RDF）：它是HTML 网页。请在网站上寻找 RSS 或 Atom 链接。"
    )


@pytest.mark.parametrize("english", sorted({*ENGLISH_DETAILS.values(), "empty document"}))
def test_english_details_from_older_versions_are_translated(english: str) -> None:
    zh = t("zh", "feed.not_a_feed", detail=english)
    assert not english_words(zh), zh
    assert english.removeprefix("an ").removeprefix("a ") in t(
        "en", "feed.not_a_feed", detail=english
    )


def test_import_summary_groups_failures_by_reason_in_chinese() -> None:
    report = ImportReport(total=5)
    html = NotAFeedError("html")
    for n in range(3):
        report.failures.append(Failure(f"https://a.test/{n}", html.key, dict(html.values)))
    report.failures.append(Failure("https://a.test/j", "feed.not_a_feed", {"detail": "json"}))
    report.failures.append(Failure("https://a.test/x", "feed.connection", {"given": "x"}))
    zh = import_summary("zh", report)
    assert "<b>不是订阅源：HTML 网页</b>：3" in zh and "<b>不是订阅源：JSON 文档</b>：1" in zh
    assert "<b>连接失败</b>：1" in zh
    assert not english_words(zh), zh
    en = import_summary("en", report)
    assert (
        "<b>not a feed: an HTML page</b>: 3" in en and "<b>not a feed: a JSON document</b>: 1" in en
    )


# --- too long ------------------------------------------------------------------------------


def test_too_long_does_not_assume_a_feed_address() -> None:
    en = t("en", "error.argument_too_long", length=5000)
    zh = t("zh", "error.argument_too_long", length=5000)
    assert "too long (5000 characters)" in en and "feed" not in en
    assert "5000" in zh and "订阅源" not in zh
