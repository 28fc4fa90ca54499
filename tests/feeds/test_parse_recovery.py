"""A document the XML parser rejects is read a second way (libxml2's recovering parser), and
the reading with more well-formed entries is kept (bot/feeds/parse.py).

feedparser alone, after a wrong end tag, loses every later item and makes an untitled story
without a link of the wreck. The recovery must not cost feedparser's good readings (HTML
entities), must not weaken the defences (entities are never expanded, nothing is loaded),
and must not run for a document the XML parser accepted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.feeds import parse
from bot.feeds.parse import parse_feed

URL = "https://news.example.com/feed.xml"


def rss(items: str, *, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{doctype}<rss version="2.0"><channel>'
        "<title>Example news</title><link>https://news.example.com/</link>"
        f"<description>d</description>{items}</channel></rss>"
    ).encode()


def item(title: str, n: int) -> str:
    return (
        f"<item><title>{title}</title><link>https://news.example.com/{n}</link>"
        f"<guid>g{n}</guid><description>&lt;p&gt;Lead {n}.&lt;/p&gt;</description></item>"
    )


MISMATCHED = rss(
    item("Council closes the bridge", 1)
    + "<item><title>Storm warning</titel><guid>g2</guid></item>"
    + item("Schools reopen", 3)
    + item("Budget passes", 4)
)


def titles(body: bytes) -> list[str]:
    return [entry.get("title") for entry in parse_feed(body, url=URL).entries]


def test_items_after_a_mismatched_end_tag_are_recovered() -> None:
    assert titles(MISMATCHED) == [
        "Council closes the bridge",
        "Storm warning",
        "Schools reopen",
        "Budget passes",
    ]
    entries = parse_feed(MISMATCHED, url=URL).entries
    assert entries[2]["link"] == "https://news.example.com/3"
    assert entries[2]["summary"] == "<p>Lead 3.</p>"


def test_wreck_without_title_or_link_is_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even when libxml2 finds nothing better, the loose reading's wreck (an entry with no
    # title and no link, made of the broken item) is not a story.
    monkeypatch.setattr(parse, "_libxml2_reading", lambda body, encoding: None)
    entries = parse_feed(MISMATCHED, url=URL).entries
    assert [entry.get("title") for entry in entries] == [
        "Council closes the bridge",
        "Budget passes",
    ]


def test_html_entities_keep_feedparsers_reading() -> None:
    """XML knows no &nbsp; or &eacute;: the XML parser rejects the document, feedparser's
    loose parser reads them right and loses nothing, so its reading stays."""
    body = rss(item("Caf&eacute;&nbsp;prices rise &amp; fall", 1) + item("Tom & Jerry", 2))
    assert titles(body) == ["Café\xa0prices rise & fall", "Tom & Jerry"]


def test_references_after_the_break_survive_the_recovery() -> None:
    """libxml2 drops every entity reference after its first error (&amp; and &lt; too):
    the recovered reading must still read them, and a bare "&", as feedparser does."""
    body = rss(
        item("Caf&eacute; prices", 1)
        + "<item><title>Broken</titel><guid>g2</guid></item>"
        + item("Tom & Jerry&nbsp;&amp; friends &lt;3", 3)
        + "<item><title><![CDATA[AT&amp;T &lt;b&gt;]]></title><guid>g4</guid></item>"
    )
    entries = parse_feed(body, url=URL).entries
    assert [entry.get("title") for entry in entries] == [
        "Café prices",
        "Broken",
        "Tom & Jerry\xa0& friends <3",
        "AT&amp;T &lt;b&gt;",  # a CDATA section is text as written
    ]
    assert entries[2]["summary"] == "<p>Lead 3.</p>"


def test_a_declared_latin1_document_is_recovered_in_its_encoding() -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>Zürich'
        "</title><item><title>Crème brûlée</titel><guid>a</guid></item>"
        "<item><title>Über den Fluss</title><guid>b</guid></item></channel></rss>"
    ).encode("latin-1")
    parsed = parse_feed(body, url=URL)
    assert parsed.title == "Zürich"
    assert [entry.get("title") for entry in parsed.entries] == ["Crème brûlée", "Über den Fluss"]


def test_recovery_loads_no_external_entity(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    doctype = f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
    body = rss(
        item("File &xxe; here", 1)
        + "<item><title>Broken</titel><guid>g2</guid></item>"
        + item("After", 3),
        doctype=doctype,
    )
    entries = parse_feed(body, url=URL).entries
    assert [entry.get("title") for entry in entries][1:] == ["Broken", "After"]
    assert not any("TOP-SECRET-MARKER" in str(entry) for entry in entries)


def test_recovery_expands_no_entity_bomb() -> None:
    laughs = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    body = rss(
        item("Bomb &lol9;", 1)
        + "<item><title>Broken</titel><guid>g2</guid></item>"
        + item("After", 3),
        doctype=f'<!DOCTYPE rss [<!ENTITY lol0 "lol">{laughs}]>',
    )
    started = time.perf_counter()
    entries = parse_feed(body, url=URL).entries
    # Not a speed goal: a bound no expansion could meet (a billion "lol"s is 3 GB to build),
    # far above what a loaded machine takes to parse a few items (seen: 14 s at load 23).
    assert time.perf_counter() - started < 120
    assert entries and not any("lollol" in str(entry) for entry in entries)


@pytest.mark.parametrize(
    "body",
    [
        rss(item("Healthy", 1)),
        # cp1252 bytes under a utf-8 declaration: feedparser flags it (an encoding
        # override), but its XML parser read the document.
        rss(item("Café crème", 1)).decode().encode("cp1252"),
    ],
    ids=["healthy", "encoding flagged"],
)
def test_a_document_the_xml_parser_accepted_is_not_read_again(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(body: bytes, encoding: str) -> None:
        raise AssertionError("the recovery ran for a well-formed document")

    monkeypatch.setattr(parse, "_libxml2_reading", must_not_run)
    assert len(parse_feed(body, url=URL).entries) == 1
