"""Why a feed failed, in the reader's language: the typed reason a check stores
(feeds.last_error holds FeedFailure.code), the kinds of "not a feed", and every text that
shows them (/subscribe's reply, the /list health line, the paused notice, /import's summary).

Chinese texts carry no English words besides proper nouns (HTTP, DNS, RSS…) and the values
put in them (addresses, exception names).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import NOT_A_FEED_KINDS, FailureKind, FeedFailure, NotAFeedError
from bot.feeds.parse import parse_feed
from bot.i18n import FAILURES, failure_reason, failure_reply, t
from bot.opml import Failure, ImportReport
from bot.reports import import_summary
from bot.store import Store
from bot.store import db as db_module

PROPER_NOUNS = {
    "HTTP",
    "HTTPS",
    "http",
    "https",
    "DNS",
    "RSS",
    "Atom",
    "RDF",
    "JSON",
    "HTML",
    "OPML",
    "Gone",
}
URL = "https://news.example.com/feed.xml"


def english_words(text: str, *values: str) -> list[str]:
    """Runs of 3+ ASCII letters in `text` once URLs, the given values and markup are gone."""
    text = re.sub(r"https?://\S+", " ", text)
    for value in values:
        if value:
            text = text.replace(value, " ")
    text = re.sub(r"</?\w+>|/\w+|\w+://", " ", text)  # markup, commands, schemes
    return [word for word in re.findall(r"[A-Za-z]{3,}", text) if word not in PROPER_NOUNS]


def every_failure() -> list[FeedFailure]:
    """One failure of every kind, with the values the fetcher and parser give them."""
    failures = []
    for kind in FailureKind:
        if kind in (FailureKind.HTTP_STATUS, FailureKind.GONE):
            failures.append(
                FeedFailure(kind, status=404 if kind is FailureKind.HTTP_STATUS else 410)
            )
        elif kind is FailureKind.TOO_LARGE:
            failures.append(FeedFailure(kind, detail=str(5 * 1_048_576)))
        elif kind is FailureKind.NOT_A_FEED:
            failures += [NotAFeedError(what).failure for what in NOT_A_FEED_KINDS]
        elif kind is FailureKind.INTERNAL:
            failures += [FeedFailure(kind), FeedFailure(kind, detail="RecursionError")]
        else:
            failures.append(FeedFailure(kind))
    return failures


# --- the typed reason and its stored code ---------------------------------------------------


@pytest.mark.parametrize("failure", every_failure(), ids=lambda f: f.code)
def test_a_failure_reads_back_from_its_code(failure: FeedFailure) -> None:
    assert FeedFailure.from_code(failure.code) == failure


def test_codes_name_kind_and_value() -> None:
    assert FeedFailure(FailureKind.TIMEOUT).code == "timeout"
    assert FeedFailure(FailureKind.HTTP_STATUS, status=503).code == "http_status:503"
    assert (
        NotAFeedError("unreadable", "ExpatError").failure.code == "not_a_feed:unreadable:ExpatError"
    )
    odd = FeedFailure.from_code("something odd")  # from a newer version, say
    assert odd == FeedFailure(FailureKind.UNKNOWN, detail="something odd")
    assert odd.code == "something odd"
    assert failure_reason("zh", odd) == "something odd"  # shown as it is


def test_every_kind_has_one_text_in_each_language() -> None:
    assert set(FAILURES) == set(FailureKind)
    for texts in FAILURES.values():
        assert set(texts) == {"en", "zh"}


@pytest.mark.parametrize("failure", every_failure(), ids=lambda f: f.code)
def test_chinese_texts_carry_no_english(failure: FeedFailure) -> None:
    value = failure.detail.partition(":")[2] or (
        failure.detail if failure.kind is FailureKind.INTERNAL else ""
    )
    reason = failure_reason("zh", failure)
    assert not english_words(reason, value), reason
    assert not english_words(failure_reply("zh", failure, given=URL), value)
    for key, values in [
        ("list.failing", {"failures": 3}),
        ("list.paused", {}),
        ("notice.feed_paused", {"title": "新闻", "url": URL}),
    ]:
        zh = t("zh", key, error=reason, **values)
        assert not english_words(zh, value), (failure, key, zh)


def test_health_lines_in_english() -> None:
    connection = failure_reason("en", FeedFailure(FailureKind.CONNECTION))
    assert t("en", "list.failing", error=connection, failures=1) == (
        "   ⚠️ failing: connection (1 check in a row)"
    )
    timeout = failure_reason("en", FeedFailure(FailureKind.TIMEOUT))
    assert t("en", "list.failing", error=timeout, failures=2).endswith("(2 checks in a row)")
    http = failure_reason("en", FeedFailure(FailureKind.HTTP_STATUS, status=404))
    assert t("en", "list.paused", error=http) == "   ⏸ paused after failing for days: HTTP 404"


def test_health_lines_in_chinese() -> None:
    connection = failure_reason("zh", FeedFailure(FailureKind.CONNECTION))
    assert t("zh", "list.failing", error=connection, failures=3) == (
        "   ⚠️ 获取失败：连接失败（连续 3 次）"
    )
    crash = failure_reason("zh", FeedFailure(FailureKind.INTERNAL, detail="RecursionError"))
    assert t("zh", "list.paused", error=crash) == (
        "   ⏸ 连续多日失败，已暂停：内部错误（RecursionError）"
    )
    gone = failure_reason("zh", FeedFailure(FailureKind.GONE, status=410))
    assert gone.endswith("（HTTP 410）")


def test_replies_say_what_to_do() -> None:
    invalid = failure_reply("en", FeedFailure(FailureKind.INVALID_URL), given="not a url")
    assert "not a web address" in invalid and "<code>not a url</code>" in invalid
    scheme = failure_reply("en", FeedFailure(FailureKind.BAD_SCHEME), given="ftp://x.test/f")
    assert "not <code>ftp:</code>" in scheme
    large = failure_reply("zh", FeedFailure(FailureKind.TOO_LARGE, detail=str(5 * 1_048_576)))
    assert large == "订阅源太大（超过 5.0 MB）。"
    hostile = failure_reply("en", FeedFailure(FailureKind.INVALID_URL), given="<b>x</b>")
    assert "&lt;b&gt;x&lt;/b&gt;" in hostile


# --- kinds of "not a feed" ---------------------------------------------------------------

ENGLISH_WHAT = {
    "html": "an HTML page",
    "json": "a JSON document",
    "empty": "an empty document",
    "other": "a document of another kind",
}


def not_a_feed_errors() -> list[tuple[NotAFeedError, str]]:
    """(error from the real parser, its English description)."""
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
        errors.append((caught.value, ENGLISH_WHAT[kind]))
    return errors


@pytest.mark.parametrize(("error", "english"), not_a_feed_errors())
def test_not_a_feed_reply_and_reason(error: NotAFeedError, english: str) -> None:
    assert failure_reply("en", error.failure) == (
        f"That address does not give a news feed (RSS, Atom or RDF): it is {english}. "
        "Look for an RSS or Atom link on the site."
    )
    assert failure_reason("en", error.failure) == f"not a feed: {english}"
    zh = failure_reply("zh", error.failure)
    assert zh.startswith("该地址不是新闻订阅源") and not english_words(zh), zh
    short = failure_reason("zh", error.failure)
    assert short.startswith("不是订阅源：") and not english_words(short), short


def test_unreadable_document_names_the_parser_error_as_a_value() -> None:
    failure = NotAFeedError("unreadable", "ValueError").failure
    assert failure_reason("en", failure) == "not a feed: an unreadable document (ValueError)"
    assert "无法读取" in failure_reply("zh", failure)


def test_homepage_in_chinese() -> None:
    with pytest.raises(NotAFeedError) as caught:
        parse_feed(b"<!doctype html><html><head><title>Home</title></head></html>", url=URL)
    assert failure_reply("zh", caught.value.failure) == (
        "该地址不是新闻订阅源（RSS、Atom 或 RDF）：它是HTML 网页。请在网站上寻找 RSS 或 Atom 链接。"
    )


def test_import_summary_groups_failures_by_reason_in_chinese() -> None:
    report = ImportReport(total=5)
    html = NotAFeedError("html").failure
    for n in range(3):
        report.failures.append(Failure(f"https://a.test/{n}", feed_failure=html))
    report.failures.append(Failure("https://a.test/j", feed_failure=NotAFeedError("json").failure))
    connection = FeedFailure(FailureKind.CONNECTION)
    report.failures.append(Failure("https://a.test/x", feed_failure=connection))
    zh = import_summary("zh", report)
    assert "<b>不是订阅源：HTML 网页</b>：3" in zh and "<b>不是订阅源：JSON 文档</b>：1" in zh
    assert "<b>连接失败</b>：1" in zh
    assert not english_words(zh), zh
    en = import_summary("en", report)
    assert (
        "<b>not a feed: an HTML page</b>: 3" in en and "<b>not a feed: a JSON document</b>: 1" in en
    )


# --- reasons stored by older versions -------------------------------------------------------

LEGACY = {
    "connection": "connection",
    "too large": "too_large",
    "too many redirects": "too_many_redirects",
    "address not allowed": "address_not_allowed",
    "dns": "dns",
    "HTTP 404": "http_status:404",
    "HTTP 503": "http_status:503",
    "HTTP 410 Gone": "gone:410",
    "not a feed": "not_a_feed",
    "internal error": "internal",
    "RecursionError": "internal:RecursionError",
}


async def test_the_migration_turns_stored_phrases_into_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "old.sqlite3")
    # A database of the version before 0005 (the later migrations not applied either).
    shipped = db_module.migrations()
    monkeypatch.setattr(db_module, "migrations", lambda _dialect="sqlite": shipped[:4])
    store = await Store.open(path)
    monkeypatch.setattr(db_module, "migrations", lambda _dialect="sqlite": shipped)
    try:
        for n, phrase in enumerate(LEGACY):
            await store.db.execute(
                "INSERT INTO feeds (url, last_error, created_at) VALUES (?, ?, 0)",
                (f"https://f.test/{n}", phrase),
            )
    finally:
        await store.close()
    store = await Store.open(path)  # 0005 and the later ones run, over the old phrases
    try:
        rows = await store.db.fetchall("SELECT url, last_error FROM feeds ORDER BY id")
    finally:
        await store.close()
    assert [row[1] for row in rows] == list(LEGACY.values())
    for code in LEGACY.values():
        assert FeedFailure.from_code(code).kind is not FailureKind.INTERNAL or code.startswith(
            "internal"
        )


# --- too long ------------------------------------------------------------------------------


def test_too_long_does_not_assume_a_feed_address() -> None:
    en = t("en", "error.argument_too_long", length=5000)
    zh = t("zh", "error.argument_too_long", length=5000)
    assert "too long (5000 characters)" in en and "feed" not in en
    assert "5000" in zh and "订阅源" not in zh
