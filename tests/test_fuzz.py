"""Fuzzing the parts that eat hostile input: summaries, keyword parsing, the feed normalizer
and the alert formatter.

Inputs are random HTML-ish text and real feeds from tests/fixtures/feeds/ (copies of
shared/feeds/real-world/) mutated byte by byte: truncated, cut, with slices duplicated and
tags inserted. Every example runs under a hang detector (a per-call wall-clock bound far
above normal cost; it is not a benchmark).

Hypothesis runs derandomized with no example database, so CI sees the same examples on
every run, and with a fixed number of examples so the file runs in seconds.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import feedparser
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.delivery.format import LINK_CAP, format_alert
from bot.errors import NotAFeedError
from bot.feeds.entry import FUTURE_TOLERANCE_MS, MAX_TITLE_CHARS, normalize_entry
from bot.feeds.pipeline import parse_and_normalize
from bot.filters import Keyword, KeywordError, parse_keywords
from bot.models import Entry
from bot.summary import html_to_text, pick_body, summarize
from bot.text import CAPTION_LIMIT, is_web_link
from tests.fakes.telegram_api import MESSAGE_LIMIT, parse_html, utf16_len
from tests.paths import FIXTURES

FEEDS = FIXTURES / "feeds"
FEED_FILES = sorted(FEEDS.glob("*.xml"))
NOW_MS = 1_740_787_200_000  # 2025-03-01T00:00:00Z
FEED_URL = "https://feeds.test/news/rss.xml"
MAX_INPUT_BYTES = 200_000
HANG_SECONDS = 2.0  # far above what any one call costs: a hang detector, not a benchmark

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH
)
# For examples that run feedparser over a whole document (tens of milliseconds each).
FUZZ_DOCUMENTS = settings(FUZZ, max_examples=40)

T = TypeVar("T")


def timed(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `function`, failing when it does not return within HANG_SECONDS."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    took = time.perf_counter() - started
    assert took < HANG_SECONDS, f"{function.__name__} took {took:.2f} s"
    return result


def is_single_line(text: str) -> bool:
    """One line of visible text: stripped, single spaces only, no control, surrogate or
    zero-width characters (what a summary or title must be before escaping)."""
    return (
        text == text.strip()
        and "  " not in text
        and not any(char.isspace() and char != " " for char in text)
        and not any(unicodedata.category(char) in ("Cc", "Cs") for char in text)
        and not any(char in "\u200b\u2060\ufeff\u00ad" for char in text)
    )


# --- strategies -------------------------------------------------------------------------------

# Characters feeds really carry, weighted toward the awkward: CJK, RTL, astral emoji and ZWJ,
# combining marks, controls, invisible characters, lone surrogates.
_AWKWARD = (
    "\x00\x01\x08\x0b\x0c\x1b\x1f\x7f\x85\xa0\xad\u200b\u200c\u200d\u200e\u202e\u2028\u3000"
    "\ufeff\ufffe\ufffd\u0301\u0300\u05d0\u0627\u4e2d\u6587\u3002\uff01\u300c\u300d\u201c"
    "\u201d&<>\"'.!?;:,\n\r\t "
)
# What feedparser can hand over in a link or guid: anything but lone surrogates (a character
# reference to one makes feedparser itself fail, see below).
awkward_url_char = st.one_of(
    st.sampled_from(_AWKWARD), st.sampled_from(["😀", "𝔘", "\U00020000", "\U0010fffd"])
)
awkward_char = st.one_of(awkward_url_char, st.characters(categories=["Cs"]))
# Emoji that are several code points: ZWJ families, flags, keycaps.
emoji_sequence = st.sampled_from(["👩\u200d👩\u200d👧", "🏳️\u200d🌈", "🇺🇦", "1️⃣"])


def _words(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    letters = st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"])
    return st.lists(st.one_of(letters, chars, emoji_sequence), max_size=40).map("".join)


words = _words(awkward_char)
url_words = _words(awkward_url_char)
_TAGS = [
    "<p>",
    "</p>",
    "<br>",
    "<br/>",
    "<div>",
    "</div>",
    "<b>",
    "</b>",
    "<i>",
    "<a href='x'>",
    "</a>",
    "<script>",
    "</script>",
    "<style>",
    "</style>",
    "<figure>",
    "<figcaption>",
    "</figcaption>",
    "<img src=x>",
    "<h1>",
    "</h1>",
    "<small>",
    "</small>",
    "<span class='caption'>",
    "</span>",
    "<table><tr><td>",
    "</td></tr></table>",
    "<ul><li>",
    "<iframe>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<",
    ">",
    "</",
    "<!",
    "<?",
    "&",
    "&amp;",
    "&lt;p&gt;",
    "&lt;/p&gt;",
    "&nbsp;",
    "&#x1F600;",
    "&#0;",
    "&#xD800;",
    "&bogus;",
    "&amp;lt;b&amp;gt;",
    "\u3000\u3000",
    "\n\n",
    "By Jane Doe",
    "Photo: Getty",
    "Wed, 26 Feb 2025 17:30:53 GMT",
    "资料照：",
    "Mr. Smith said.",
    "U.S. officials",
    "克里姆林宫表示。",
    "Read more",
    "<p>Lead sentence. Second one!</p>",
]
tag = st.sampled_from(_TAGS)


@st.composite
def repeated(draw: st.DrawFn, pieces: st.SearchStrategy[str], most: int = 5000) -> str:
    """A piece repeated many times: long and deep inputs random text rarely reaches."""
    return draw(pieces) * draw(st.integers(1, most))


html_ish = st.lists(
    st.one_of(tag, words, repeated(tag, 2000), repeated(words, 200)), max_size=30
).map("".join)


_INSERTS = [
    b"<p>",
    b"</item>",
    b"<item>",
    b"</entry>",
    b"<entry>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"&",
    b"&amp;",
    b"&#0;",
    b"\x00",
    b"<title>",
    b"</title>",
    b"</channel>",
    b"<link>",
    b"<guid>http://[::1</guid>",
    b"<pubDate>Mon, 99 Foo 2025</pubDate>",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"<script>",
    b"\xe9\x80",
    b"<description>&lt;p&gt;",
    b"<content:encoded><![CDATA[<p>",
    b"\xf0\x9f\x98",
]


def mutate(data: bytes | str, draw: st.DrawFn, inserts: Sequence[Any]) -> Any:
    """Apply 1-6 random mutations: truncation, deletion, duplication of a slice, insertion of
    a tag or of random bytes, a flipped byte."""
    for _ in range(draw(st.integers(1, 6))):
        size = len(data)
        at = draw(st.integers(0, size))
        span = draw(st.integers(0, min(size - at, 4096)))
        kind = draw(st.sampled_from(["truncate", "delete", "duplicate", "insert", "flip"]))
        if kind == "truncate":
            data = data[:at]
        elif kind == "delete":
            data = data[:at] + data[at + span :]
        elif kind == "duplicate":
            to = draw(st.integers(0, size))
            data = data[:to] + data[at : at + span] + data[to:]
        elif kind == "insert":
            piece = draw(st.sampled_from(inserts))
            data = data[:at] + piece + data[at:]
        elif size:
            at = min(at, size - 1)
            if isinstance(data, bytes):
                data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
            else:
                data = data[:at] + draw(awkward_char) + data[at + 1 :]
    return data[:MAX_INPUT_BYTES]


@cache
def _document(path: Path) -> bytes:
    return path.read_bytes()


@st.composite
def mutated_documents(draw: st.DrawFn) -> bytes:
    return mutate(_document(draw(st.sampled_from(FEED_FILES))), draw, _INSERTS)


@cache
def _bodies() -> list[tuple[tuple[str, ...], str | None]]:
    """(contents, description) of every entry of every fixture feed."""
    bodies = []
    for path in FEED_FILES:
        parsed = feedparser.parse(_document(path), sanitize_html=False, resolve_relative_uris=False)
        for entry in parsed.entries:
            contents = tuple(c.get("value") or "" for c in entry.get("content") or [])
            bodies.append((contents, entry.get("summary")))
    return bodies


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[tuple[str, ...], str | None]:
    contents, description = draw(st.sampled_from(_bodies()))
    inserts = [piece.decode("utf-8", "replace") for piece in _INSERTS] + _TAGS
    if contents and draw(st.booleans()):
        contents = tuple(mutate(content, draw, inserts) for content in contents)
    if description is not None and draw(st.booleans()):
        description = mutate(description, draw, inserts)
    return contents, description


# --- summaries --------------------------------------------------------------------------------


def check_summary(html: str, max_chars: int = 300, max_chars_cjk: int = 150) -> str:
    summary = timed(summarize, html, max_chars=max_chars, max_chars_cjk=max_chars_cjk)
    assert isinstance(summary, str)
    assert len(summary) <= max(max_chars, max_chars_cjk)
    assert is_single_line(summary), repr(summary[:200])
    summary.encode("utf-8")  # storable and sendable: no lone surrogates
    if not timed(html_to_text, html):
        assert summary == ""  # a story with no text gets no summary
    return summary


def check_text(html: str) -> str:
    text = timed(html_to_text, html)
    assert isinstance(text, str)
    assert is_single_line(text), repr(text[:200])
    text.encode("utf-8")
    return text


@FUZZ
@given(html_ish, st.integers(40, 400), st.integers(20, 200))
def test_summarize_html_ish(html: str, max_chars: int, max_chars_cjk: int) -> None:
    check_summary(html, max_chars, max_chars_cjk)


@FUZZ
@given(html_ish)
def test_html_to_text_html_ish(html: str) -> None:
    check_text(html)


@FUZZ
@given(st.lists(html_ish, max_size=3), st.one_of(st.none(), html_ish))
def test_pick_body_returns_one_of_its_inputs(contents: list[str], description: str | None) -> None:
    body = timed(pick_body, contents, description)
    assert body in [*contents, description, ""]
    if description and not any(contents):
        assert body == description
    if not description and not any(contents):
        assert body == ""


@FUZZ
@given(mutated_bodies())
def test_summarize_mutated_real_bodies(body: tuple[tuple[str, ...], str | None]) -> None:
    contents, description = body
    lead = timed(pick_body, contents, description)
    assert lead in [*contents, description, ""]
    check_summary(lead)
    check_text(lead)


@FUZZ_DOCUMENTS
@given(mutated_documents())
def test_summarize_whole_mutated_documents(document: bytes) -> None:
    """A whole (mutated) feed given as one body: up to 200 KB of tag soup."""
    html = document.decode("utf-8", "replace")
    check_summary(html)
    check_text(html)


PATHOLOGICAL_HTML = [
    # Deep enough for any recursive walk to overflow. (64K characters of nested <div>s cost
    # lexbor about 0.6 s per parse: quadratic in depth, bounded by the input cap.)
    "<div>" * 4_000,
    "<a>" * 60_000 + "text",
    "<p>" + "Mr. " * 50_000 + "</p>",
    # A line ending in a web address or a link: its label is looked for only a dozen words
    # back, not through 64 K of would-be sentence ends.
    "<p>" + "Mr. " * 16_000 + "via http://example.com/a</p>",
    "<p>" + "Mr. " * 16_000 + "Tags: <a href='/a'>a</a>, <a href='/b'>b</a></p>",
    "<p>" + "." * 200_000,
    "<p>" + "a" * 200_000 + "</p>",
    "&lt;p " + "x" * 199_990,
    "&lt;p&gt;" * 22_000,
    "<!--" * 50_000,
    "<p>" + "，" * 100_000,
    "<br>" * 50_000 + "Text.",
    "<p>" + "👩\u200d👩\u200d👧" * 20_000,
    "\u3000\u3000" * 50_000,
    "<span class='" + "caption " * 20_000 + "'>x</span>",
    "<p>" + "\u0301" * 100_000,
    "<table>" + "<tr><td>1</td></tr>" * 10_000 + "</table>",
]


@pytest.mark.parametrize("html", PATHOLOGICAL_HTML, ids=lambda h: repr(h[:16]))
def test_pathological_html_does_not_hang(html: str) -> None:
    check_summary(html)
    check_text(html)
    timed(pick_body, [html], html)


# --- keywords ---------------------------------------------------------------------------------

_KEYWORD_PIECES = [
    '"',
    "“",
    "”",
    "„",
    "«",
    "»",
    "「",
    "」",
    "『",
    "』",
    "＂",
    "-",
    "－",
    " ",
    "\u3000",
]
keyword_text = st.lists(
    st.one_of(words, st.sampled_from(_KEYWORD_PIECES), repeated(st.sampled_from(_KEYWORD_PIECES))),
    max_size=20,
).map("".join)

PATHOLOGICAL_KEYWORDS = [
    '"' * 10_000,
    "(a+)+$",
    "(a|a)*b" * 1000,
    "-" * 10_000,
    "－" * 10_000,
    '"' + "a " * 5000,
    "「" * 5000 + "」" * 5000,
    '"a" ' * 5000,
    "a " * 20_000,
    "\u200b " * 10_000,
    '-"' * 5000,
    "“" * 10_000 + "”",
]


def check_keywords(text: str | Sequence[str], max_length: int = 64) -> list[Keyword] | None:
    try:
        keywords = timed(parse_keywords, text, max_length)
    except KeywordError:
        return None
    assert isinstance(keywords, list) and keywords
    keys = [keyword.key for keyword in keywords]
    assert len(set(keys)) == len(keys)
    for keyword in keywords:
        assert isinstance(keyword, Keyword)
        assert keyword.text and len(keyword.text) <= max_length
        assert keyword.text == " ".join(keyword.text.split())
        assert keyword.key[0]  # never a keyword that is in every story
    # As shown to the user, the keywords read back as themselves.
    again = timed(parse_keywords, " ".join(k.display() for k in keywords), max_length)
    assert [k.key for k in again] == keys
    return keywords


@FUZZ
@given(keyword_text, st.integers(1, 100))
@example('"' * 10_000, 64)
@example("(a+)+$", 64)
def test_parse_keywords_returns_keywords_or_raises_keyword_error(text: str, limit: int) -> None:
    check_keywords(text, limit)


@FUZZ
@given(st.lists(keyword_text, max_size=8))
def test_parse_keywords_from_split_arguments(args: list[str]) -> None:
    check_keywords(args)


@pytest.mark.parametrize("text", PATHOLOGICAL_KEYWORDS, ids=lambda t: repr(t[:12]))
def test_pathological_keywords_do_not_hang(text: str) -> None:
    check_keywords(text)
    check_keywords(text.split())


# --- the feed normalizer ----------------------------------------------------------------------


@contextmanager
def skipped_entries() -> Iterator[list[logging.LogRecord]]:
    """Records of entries the normalizer had to drop (each one a lost story)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("bot.feeds.pipeline")
    handler = Collect(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def check_entry(entry: Entry) -> None:
    assert isinstance(entry.title, str) and entry.title.strip()
    # One line of visible text (a cut at the length cap may leave a trailing space).
    assert is_single_line(entry.title.rstrip(" ")), repr(entry.title[:100])
    assert len(entry.title) <= MAX_TITLE_CHARS
    assert type(entry.timestamp_id) is int
    assert 0 < entry.timestamp_id <= NOW_MS + FUTURE_TOLERANCE_MS
    assert entry.link == "" or entry.link.startswith(("http://", "https://")), entry.link[:100]
    assert len(entry.identity) == 32 and int(entry.identity, 16) >= 0
    assert isinstance(entry.lead_html, str)


CONTENT_TYPES = [
    None,
    "application/rss+xml; charset=utf-8",
    "application/xml",
    "text/xml",
    "text/html; charset=iso-8859-1",
]


@FUZZ_DOCUMENTS
@given(mutated_documents(), st.sampled_from(CONTENT_TYPES))
def test_normalizer_on_mutated_feeds(document: bytes, content_type: str | None) -> None:
    with skipped_entries() as skipped:
        try:
            parsed = timed(
                parse_and_normalize,
                document,
                url=FEED_URL,
                content_type=content_type,
                feed_id=1,
                now_ms=NOW_MS,
            )
        except NotAFeedError:
            return  # the one failure allowed; anything else fails the test
    assert skipped == [], "an entry was dropped (a lost story)"
    assert len(parsed.document.title) <= 200
    assert is_single_line(parsed.document.title)
    for entry in parsed.entries:
        check_entry(entry)
    # The stories as alerts: summary, then the message Telegram gets.
    for entry in parsed.entries[:10]:
        summary = check_summary(entry.lead_html)
        check_alert(entry, summary, parsed.document.title or FEED_URL, "UTC", None)


@pytest.mark.parametrize("path", FEED_FILES, ids=lambda p: p.name)
def test_normalizer_on_each_real_feed(path: Path) -> None:
    with skipped_entries() as skipped:
        parsed = timed(
            parse_and_normalize,
            _document(path),
            url=FEED_URL,
            content_type=None,
            feed_id=1,
            now_ms=NOW_MS,
        )
    assert skipped == []
    assert parsed.entries
    for entry in parsed.entries:
        check_entry(entry)
        check_alert(entry, check_summary(entry.lead_html), parsed.document.title, "UTC", None)


# --- the alert formatter ----------------------------------------------------------------------


def check_alert(entry: Entry, summary: str, feed_title: str, zone: str, keyword: str | None) -> str:
    """The alert for `entry` must be valid Telegram HTML (strict fake parser) whose only
    formatting is the alert's own: the bold title, linked to the story when it has a web
    link, and the italic footer."""
    html = format_alert(
        title=entry.title,
        summary=summary,
        link=entry.link,
        feed_title=feed_title,
        timestamp_id=entry.timestamp_id,
        zone=zone,
        keyword=keyword,
    )
    plain, entities = parse_html(html, strict_entities=True)
    assert plain.strip()
    by_type = {e["type"]: e for e in entities}
    linked = is_web_link(entry.link) and utf16_len(entry.link) <= LINK_CAP
    assert sorted(by_type) == sorted(["bold", "italic", *(["text_link"] * linked)]), entities
    assert len(entities) == len(by_type)
    bold = by_type["bold"]
    assert bold["offset"] == 0 and bold["length"] > 0
    if linked:  # the title is the link, exactly
        link = by_type["text_link"]
        assert (link["offset"], link["length"], link["url"]) == (0, bold["length"], entry.link)
    return html


def fits(html: str) -> bool:
    plain, _ = parse_html(html)
    return utf16_len(plain) <= MESSAGE_LIMIT


_SCHEMES = ["https://", "http://", "", "//", "javascript:", "mailto:", "ftp://", "HTTPS://"]
_HOSTS = ["news.test", "xn--fa-hia.test", "例え.test", "a b", "news.test:99999", ""]
# Hosts urllib cannot split: feedparser passes them through in an isPermaLink="false" guid.
_BROKEN_HOSTS = ["[::1", "[x]", "[2001:db8::1"]


def links(hosts: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.builds(
            lambda scheme, host, path: scheme + host + path,
            st.sampled_from(_SCHEMES),
            st.sampled_from(hosts),
            st.one_of(
                url_words,
                tag,
                repeated(url_words, 300),
                repeated(st.sampled_from(["😀", "/é", "a"])),
            ),
        ),
    )


link_text = links(_HOSTS)
when = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.utctimetuple()),
)


@st.composite
def raw_entries(draw: st.DrawFn, links: st.SearchStrategy[str] = link_text) -> dict[str, Any]:
    """A feedparser entry as the normalizer sees it, with any text in any field."""
    raw: dict[str, Any] = {
        "title": draw(st.one_of(html_ish, words, repeated(words, 2000))),
        "link": draw(links),
        "id": draw(st.one_of(st.just(""), url_words, links)),
        "summary": draw(html_ish),
        "published_parsed": draw(when),
        "updated_parsed": draw(when),
    }
    if draw(st.booleans()):
        raw["content"] = [{"value": draw(html_ish)} for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        raw["links"] = [{"rel": "alternate", "href": draw(links)}]
    return raw


feed_titles = st.one_of(
    st.just(FEED_URL),
    html_ish.map(lambda t: html_to_text(t)[:200]),  # as parse_feed cleans it
    st.just("https://feeds.test/" + "a" * 2000),  # no title: the feed's URL stands in
)
zones = st.sampled_from(
    ["UTC", "Europe/Berlin", "Asia/Shanghai", "America/St_Johns", "Asia/Kathmandu"]
)


def _keyword(text: str) -> str | None:
    try:
        return parse_keywords(text)[0].display()
    except KeywordError:
        return None


# A keyword as a chat stored it (Telegram sends valid UTF-8: no lone surrogates).
keywords = st.one_of(
    st.none(),
    st.lists(st.one_of(url_words, st.sampled_from(_KEYWORD_PIECES)), max_size=8)
    .map("".join)
    .map(_keyword),
)


def alert_for(raw: dict[str, Any], feed_title: str, zone: str, keyword: str | None) -> str:
    entry = timed(normalize_entry, raw, feed_id=1, feed_url=FEED_URL, now_ms=NOW_MS)
    check_entry(entry)
    return check_alert(entry, check_summary(entry.lead_html), feed_title, zone, keyword)


@FUZZ
@given(raw_entries(), feed_titles, zones, keywords)
def test_alert_is_valid_telegram_html(
    raw: dict[str, Any], feed_title: str, zone: str, keyword: str | None
) -> None:
    alert_for(raw, feed_title, zone, keyword)


# The longest alert a feed can cause with ASCII links (percent-encoded URLs, nearly all real
# links) and no keyword: title, summary and feed name all astral characters (2 UTF-16 units).
_ASTRAL_TITLE = "😀" * 600
_LONGEST_ASCII = {
    "title": _ASTRAL_TITLE,
    "link": "https://news.test/" + "a" * 3000,
    "id": "x",
    "summary": "<p>" + "😀" * 400 + "</p>",
    "published_parsed": None,
}
ascii_links = st.one_of(
    st.just(""),
    st.builds(
        lambda path, n: "https://news.test/" + path * n,
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
        st.integers(0, 600),
    ),
)


@FUZZ
@given(raw_entries(ascii_links), feed_titles, zones)
@example(_LONGEST_ASCII, "😀" * 200, "UTC")
def test_alert_with_an_ascii_link_fits_one_message(
    raw: dict[str, Any], feed_title: str, zone: str
) -> None:
    assert fits(alert_for(raw, feed_title, zone, None))


@FUZZ
@given(raw_entries(), feed_titles, zones, keywords)
@example(
    {"title": "Emoji link", "link": "https://news.test/" + "😀" * 2100, "id": "e", "summary": ""},
    FEED_URL,
    "UTC",
    None,
)
def test_alert_fits_one_message(
    raw: dict[str, Any], feed_title: str, zone: str, keyword: str | None
) -> None:
    assert fits(alert_for(raw, feed_title, zone, keyword))


@FUZZ
@given(raw_entries(), feed_titles, zones, keywords)
@example(_LONGEST_ASCII, "😀" * 200, "UTC", "k" * 64)
def test_alert_as_a_photo_caption_fits_1024(
    raw: dict[str, Any], feed_title: str, zone: str, keyword: str | None
) -> None:
    """A photo's caption holds 1024 UTF-16 units once parsed: the title, footer and
    keyword always fit, the summary is cut to what is left, at a sentence end when one fits."""
    entry = timed(normalize_entry, raw, feed_id=1, feed_url=FEED_URL, now_ms=NOW_MS)
    summary = check_summary(entry.lead_html)
    caption = format_alert(
        title=entry.title,
        summary=summary,
        link=entry.link,
        feed_title=feed_title,
        timestamp_id=entry.timestamp_id,
        zone=zone,
        keyword=keyword,
        limit=CAPTION_LIMIT,
    )
    plain, _entities = parse_html(caption, strict_entities=True)
    assert utf16_len(plain) <= CAPTION_LIMIT
    shown = plain.split("\n\n")[1] if summary and plain.count("\n\n") >= 2 else ""
    assert not shown or summary.startswith(shown.removesuffix("…").rstrip())


@FUZZ
@given(raw_entries(links(_HOSTS + _BROKEN_HOSTS)))
@example({"title": "Story A", "link": "", "id": "http://[::1/story", "summary": "Text."})
def test_normalize_entry_never_raises(raw: dict[str, Any]) -> None:
    check_entry(timed(normalize_entry, raw, feed_id=1, feed_url=FEED_URL, now_ms=NOW_MS))


# --- character references to UTF-16 surrogates -----------------------------------------------

# Emoji written by a CMS as the two halves of their UTF-16 form, or one half alone.
SURROGATE_REFERENCES = [b"&#55357;&#56832;", b"&#xD83D;&#xDE00;", b"&#xD800;", b"&#56832;"]


@st.composite
def documents_with_surrogate_references(draw: st.DrawFn) -> bytes:
    document = _document(draw(st.sampled_from(FEED_FILES)))
    titles = [i for i in range(len(document)) if document.startswith(b"<title", i)]
    at = document.index(b">", draw(st.sampled_from(titles))) + 1
    return document[:at] + draw(st.sampled_from(SURROGATE_REFERENCES)) + document[at:]


@FUZZ_DOCUMENTS
@given(documents_with_surrogate_references())
@example(_document(FEED_FILES[0]).replace(b"<title>", b"<title>&#55357;&#56832;", 2))
def test_normalizer_survives_character_references_to_surrogates(document: bytes) -> None:
    with skipped_entries() as skipped:
        try:
            parsed = timed(
                parse_and_normalize,
                document,
                url=FEED_URL,
                content_type=None,
                feed_id=1,
                now_ms=NOW_MS,
            )
        except NotAFeedError:
            return
    assert skipped == []
    for entry in parsed.entries:
        check_entry(entry)
