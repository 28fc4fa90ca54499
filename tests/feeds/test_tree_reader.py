"""bot/feeds/tree_reader.py reads a well-formed document exactly as feedparser.parse does, for
every key the bot reads, or says it cannot (None) and feedparser reads it: the plain reader
(bot/feeds/plain_reader.py) for the common feed, else the walk into feedparser's handler.

The proof is every document of ../shared/feeds (the 300-document crawl and the 30 real
feeds with their quirks) read both ways, plus documents made to hit the cases the walk
must not get wrong: elements it leaves out holding one it must not (an Atom author's
link), a namespace feedparser does not know under a prefix it does, declarations on a
left-out element, media titles before the entry's title, xml:base, XHTML content.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from bot.feeds import parse, tree_reader
from bot.feeds.parse import parse_feed
from bot.feeds.plain_reader import NotPlain, read_plain
from bot.feeds.tree_reader import PARSER_OPTIONS, read_feed
from tests.paths import SHARED

# What bot/feeds/parse.py and bot/feeds/entry.py read of feedparser's result.
ENTRY_KEYS = (
    "title",
    "link",
    "links",
    "id",
    "summary",
    "description",
    "content",
    "published_parsed",
    "updated_parsed",
    "created_parsed",
    "media_content",
    "media_thumbnail",
    "enclosures",
)
FEED_KEYS = ("title", "link", "links", "ttl")
DOCUMENTS = sorted(
    [*(SHARED / "feeds/crawl-sample").glob("*.dat"), *(SHARED / "feeds/real-world").iterdir()]
)


def feedparsers(body: bytes, headers: dict[str, str] | None = None) -> Any:
    return feedparser.parse(
        body, response_headers=headers or {}, sanitize_html=False, resolve_relative_uris=False
    )


def differences(expected: Any, got: Any) -> list[str]:
    found = []
    for key in ("version", "encoding"):
        if expected.get(key) != got.get(key):
            found.append(f"{key}: {expected.get(key)!r} != {got.get(key)!r}")
    if bool(expected.get("bozo")) != bool(got.get("bozo")):
        found.append(f"bozo: {expected.get('bozo_exception')!r} / {got.get('bozo_exception')!r}")
    for key in FEED_KEYS:
        if expected["feed"].get(key) != got["feed"].get(key):
            found.append(f"feed.{key}: {expected['feed'].get(key)!r} != {got['feed'].get(key)!r}")
    if len(expected["entries"]) != len(got["entries"]):
        found.append(f"entries: {len(expected['entries'])} != {len(got['entries'])}")
        return found
    for number, (want, have) in enumerate(zip(expected["entries"], got["entries"], strict=True)):
        for key in ENTRY_KEYS:
            if read(want, key) != read(have, key):
                found.append(f"entry {number} {key}: {want.get(key)!r} != {have.get(key)!r}")
    return found


def read(entry: Any, key: str) -> Any:
    """What the bot reads of an entry's key: of a content item, its value alone."""
    if key == "content":
        return [item.get("value") for item in entry.get("content") or []]
    return entry.get(key)


def test_every_shared_document_reads_the_same_both_ways(reading: str) -> None:
    read, declined, wrong = 0, [], {}
    for path in DOCUMENTS:
        body = path.read_bytes()
        got = read_feed(body, {})
        if got is None:
            declined.append(path.name)
            continue
        read += 1
        found = differences(feedparsers(body), got)
        if found:
            wrong[path.name] = found[:3]
    assert not wrong, wrong
    # The documents the XML parser rejects (12 of them, feedparser reads them loosely) and
    # the one whose DOCTYPE declares entities are declined; every other one is read.
    assert read >= 315 and len(declined) <= 15, declined


def test_every_shared_document_reads_the_same_with_an_http_charset(reading: str) -> None:
    """The HTTP charset goes through feedparser's own encoding rules (convert_to_utf8)."""
    for path in DOCUMENTS[::10]:
        body = path.read_bytes()
        for content_type in ("text/xml", "application/rss+xml; charset=iso-8859-1"):
            headers = {"content-type": content_type}
            got = read_feed(body, headers)
            if got is not None:
                assert not differences(feedparsers(body, headers), got), (path.name, content_type)


ATOM = "http://www.w3.org/2005/Atom"
MEDIA = "http://search.yahoo.com/mrss/"


def atom(entries: str, *, declarations: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="{ATOM}"{declarations}>'
        "<title>Example</title><link href='https://example.com/'/>"
        "<link rel='hub' href='https://hub.example.com/'/><id>urn:feed</id>"
        f"{entries}</feed>"
    ).encode()


def rss(items: str, *, declarations: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"{declarations}><channel>'
        "<title>Example</title><link>https://example.com/</link><ttl>15</ttl>"
        "<image><url>https://example.com/logo.png</url><title>Logo</title>"
        "<link>https://example.com/logo</link></image>"
        f"{items}</channel></rss>"
    ).encode()


MADE_UP = {
    "an author's link is the entry's": atom(
        "<entry><title>One</title><id>urn:1</id><author><name>A</name>"
        "<link href='https://example.com/author'/></author><updated>2024-05-01T10:00:00Z</updated>"
        "</entry>"
    ),
    "content:encoded under a prefix of its own": rss(
        "<item><title>Two</title><guid>g2</guid><c:encoded>&lt;p&gt;Lead&lt;/p&gt;</c:encoded>"
        "<x:description>not read</x:description></item>",
        declarations=' xmlns:c="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:x="http://example.com/unknown"',
    ),
    "a known module under an unknown namespace": rss(
        "<item><title>Three</title><content:encoded>&lt;b&gt;x&lt;/b&gt;</content:encoded>"
        "<link>https://example.com/3</link></item>",
        declarations=' xmlns:content="http://purl.org/rss/1.0/modules/content"',
    ),
    "declarations on a left-out element": rss(
        "<item><title>Four</title><a:info xmlns:a='http://example.com/a'"
        " xmlns:xlink='http://www.w3.org/1999/xlink'><a:b/></a:info>"
        "<y:title xmlns:y='http://example.com/a'>Other</y:title>"
        "<link>https://example.com/4</link></item>"
    ),
    "media titles before and after the title": rss(
        f"<item xmlns:media='{MEDIA}'><media:group><media:title>Media</media:title>"
        "<media:description>About</media:description>"
        "<media:content url='https://example.com/4.jpg' medium='image' width='800'>"
        "<media:title>Inner</media:title><media:thumbnail url='https://example.com/t.jpg'/>"
        "</media:content></media:group><title>Five</title><description>Lead</description>"
        "<media:title>Late</media:title><pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate></item>"
    ),
    "xml:base and relative links": atom(
        "<entry xml:base='https://example.com/blog/'>"
        "<title type='html'>&lt;b&gt;Six&lt;/b&gt;</title>"
        "<link href='six.html'/><id>six</id><published>2024-05-01T10:00:00Z</published>"
        "<summary>Short</summary><content type='html'>&lt;p&gt;Long&lt;/p&gt;</content></entry>"
    ),
    "XHTML content and a second summary": atom(
        "<entry><title type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'>Se<b>ven</b>"
        "</div></title><id>urn:7</id><summary>First</summary><summary>Second</summary>"
        "<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>Para &amp; "
        "<a href='/x'>link</a></p><!-- note --></div></content></entry>"
    ),
    "guids, enclosures, licences and sources": rss(
        "<item><guid isPermaLink='True'>https://example.com/8</guid><title>Eight</title>"
        "<enclosure url='https://example.com/8.jpg' type='image/jpeg' length='1'/>"
        "<source url='https://other.example.com/rss'>Other</source>"
        "<cc:license xmlns:cc='http://web.resource.org/cc/' rdf:resource='https://cc.org/by'"
        " xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'/>"
        "<category>News</category><comments>https://example.com/8#c</comments></item>"
        "<item><guid>https://example.com/9</guid><title>Nine</title>"
        "<link>https://example.com/9?a=1&amp;b=2</link><dc:date xmlns:dc="
        "'http://purl.org/dc/elements/1.1/'>2024-05-01T10:00:00+02:00</dc:date></item>"
    ),
    "a second summary is content": atom(
        "<entry><title>Eleven</title><id>urn:11</id><summary>One</summary>"
        "<summary type='html'>&lt;p&gt;Two&lt;/p&gt;</summary></entry>"
        "<entry><title>Twelve</title><id>urn:12</id><content type='html'>C</content>"
        "<summary>After content</summary></entry>"
    ),
    "a source's title and the entry's": atom(
        "<entry><title></title><source><title>Elsewhere</title><id>urn:s</id></source>"
        "<title>Thirteen</title><id>urn:13</id></entry>"
    ),
    "a media:title leaves the title depth alone": rss(
        f"<item xmlns:media='{MEDIA}' xmlns:dc='http://purl.org/dc/elements/1.1/'>"
        "<title></title><media:title>Media</media:title><dc:title>Dublin</dc:title></item>"
    ),
    "a source's title blocks a deeper media:title": atom(
        f"<entry xmlns:media='{MEDIA}'><source><title>Elsewhere</title></source>"
        "<media:group><media:title>Media</media:title></media:group><id>urn:18</id></entry>"
    ),
    "an xml:base on an element the bot does not read": atom(
        "<entry><title>Nineteen</title><category term='x' xml:base='https://c.example/d/'/>"
        "<link href='nineteen.html'/><id>urn:19</id></entry>"
    ),
    "an image holding what feedparser does not expect there": rss(
        "<item><title>T</title></item>"
    ).replace(
        b"</image>",
        b"<copyright>c</copyright><link>https://elsewhere.example/</link><title>I</title></image>",
    ),
    "xml:base that feedparser does not restore": atom(
        "<entry><title>Fourteen</title><content type='html' xml:base='https://a.example/x/'>"
        "C</content><link href='fourteen.html'/><id>fourteen</id></entry>"
        "<entry><title>Fifteen</title><link href='/fifteen'/><id>urn:15</id></entry>"
    ),
    "a feed summary makes the next description content": rss(
        "<item><description>Lead</description><content:encoded>Body</content:encoded>"
        "<guid isPermaLink='false'>g16</guid></item>",
        declarations=' xmlns:content="http://purl.org/rss/1.0/modules/content/"',
    ).replace(
        b"<ttl>15</ttl>",
        b"<ttl>15</ttl><itunes:summary xmlns:itunes='http://www.itunes.com/dtds/podcast-1.0.dtd'>"
        b"S</itunes:summary><description>D</description>",
    ),
    "RSS 1.0": (
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b'<channel rdf:about="https://example.com/"><title>RDF</title>'
        b"<link>https://example.com/</link><description>d</description></channel>"
        b'<item rdf:about="https://example.com/17"><title>Seventeen</title>'
        b"<link>https://example.com/17</link><dc:date>2024-05-01T10:00:00Z</dc:date></item>"
        b"</rdf:RDF>"
    ),
    "mojibake and cp1252 controls in a title": rss(
        "<item><title>Caf\u00c3\u00a9 \u0093quoted\u0094</title><guid>g10</guid></item>"
    ),
}


@pytest.fixture(params=["plain or walked", "walked"])
def reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs twice: as the bot reads (the plain reader first), and with every
    document walked into feedparser's handler, so both readings are held to feedparser."""
    if request.param == "walked":

        def not_plain(root: object) -> None:
            raise NotPlain("walked for the test")

        monkeypatch.setattr(tree_reader, "read_plain", not_plain)
    return str(request.param)


@pytest.mark.parametrize("name", sorted(MADE_UP))
def test_made_up_documents_read_the_same_both_ways(name: str, reading: str) -> None:
    body = MADE_UP[name]
    got = read_feed(body, {})
    assert got is not None, name
    assert not differences(feedparsers(body), got)


def test_most_shared_feeds_are_plain() -> None:
    """The plain reader takes the common feed, or the speed is not there."""
    plain = 0
    for path in DOCUMENTS:
        try:
            read_plain(etree.fromstring(path.read_bytes(), etree.XMLParser(**PARSER_OPTIONS)))
        except (NotPlain, etree.XMLSyntaxError, ValueError):
            continue
        plain += 1
    assert plain >= 270, plain


@pytest.mark.parametrize(
    "body",
    [
        b"",
        rss("<item><title>Fish & chips</title></item>"),  # a bare "&": not XML
        rss("<item><title>Caf&eacute;</title></item>"),  # an HTML entity: not XML
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY who "Alice">]><rss version="2.0">'
        b"<channel><title>&who;</title></channel></rss>",  # entities to expand
        b"<html><body><p>Not a feed</p></body>",  # not well-formed
    ],
)
def test_what_only_feedparser_can_read_is_left_to_it(body: bytes) -> None:
    assert read_feed(body, {}) is None


def test_parse_feed_reads_a_well_formed_feed_without_feedparser_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("feedparser.parse ran on a well-formed feed")

    monkeypatch.setattr(parse.feedparser, "parse", must_not_run)
    document = parse_feed(MADE_UP["xml:base and relative links"], url="https://example.com/f")
    assert document.title == "Example"
    assert document.hubs == ("https://hub.example.com/",)
    assert [entry["link"] for entry in document.entries] == ["https://example.com/blog/six.html"]


def test_the_shared_documents_are_there() -> None:
    assert len(DOCUMENTS) >= 330, Path(SHARED)


# Mutations of the shared documents: the cases the made-up documents did not think of
# (found this way: an xml:base on an element the walk left out).
MUTATION_NAMES = (
    "title", "link", "guid", "description", "pubDate", "summary", "id", "updated", "source",
    "enclosure", "category", "image", f"{{{MEDIA}}}title", f"{{{MEDIA}}}thumbnail",
    f"{{{MEDIA}}}content", f"{{{MEDIA}}}description", "{http://purl.org/dc/elements/1.1/}date",
    "{http://purl.org/rss/1.0/modules/content/}encoded", "textInput", "author", "name", "url",
    "ttl", "copyright", "lastBuildDate", "width", "content", "body", "abstract",
    f"{{{ATOM}}}link", f"{{{MEDIA}}}group", "{http://web.resource.org/cc/}license",
    "{http://purl.org/dc/terms/}created", "{http://purl.org/dc/elements/1.1/}description",
    "{http://purl.org/dc/elements/1.1/}title", "{http://www.itunes.com/dtds/podcast-1.0.dtd}summary",
)  # fmt: skip
MUTATION_TEXTS = (
    "",
    " x ",
    "Caf\u00c3\u00a9",
    "https://e.example/a?b=1&amp;c=2",
    "&lt;b&gt;b&lt;/b&gt;",
    "rel/p",
)


def mutated(root: Any, rng: random.Random, changes: int = 4, in_items: float = 0.8) -> Any:
    """The tree with one to `changes` changes, each in an item or entry with the probability
    `in_items`, else anywhere: a child copied, removed or moved, a new element (a name the
    bot reads, a text, maybe a type, url, href or isPermaLink), an xml:base, an emptied text,
    one the bot reads put inside one it does not, a foreign attribute. (bench/reading_fuzz.py
    runs it at length.)"""
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    items = [el for el in elements if etree.QName(el).localname in ("item", "entry")] or elements
    for _ in range(rng.randint(1, changes)):
        target = rng.choice(items if rng.random() < in_items else elements)
        change = rng.randrange(7)
        if change == 0 and len(target):
            target.insert(rng.randrange(len(target) + 1), copy.deepcopy(rng.choice(list(target))))
        elif change == 1 and len(target):
            target.remove(rng.choice(list(target)))
        elif change == 2:
            name = rng.choice(MUTATION_NAMES)
            namespace = etree.QName(target).namespace
            if name[0] != "{" and namespace and "Atom" in namespace:
                name = f"{{{namespace}}}{name}"
            added = etree.Element(name)
            added.text = rng.choice(MUTATION_TEXTS)
            for attribute, values in (
                ("type", ["html", "text", "xhtml", "application/octet-stream"]),
                ("url", ["https://e.example/x.jpg"]),
                ("href", ["rel/x"]),
                ("isPermaLink", ["true", "false", "True"]),
            ):
                if rng.random() < 0.25:
                    added.set(attribute, rng.choice(values))
            target.insert(rng.randrange(len(target) + 1), added)
        elif change == 3:
            base = rng.choice(["https://b.example/d/", "rel/", ""])
            target.set("{http://www.w3.org/XML/1998/namespace}base", base)
        elif change == 4:
            target.text = rng.choice(["", "  ", None])
        elif change == 5:
            host = etree.SubElement(target, rng.choice(["category", "author", "{urn:u}thing"]))
            etree.SubElement(host, rng.choice(MUTATION_NAMES)).text = "inner"
        else:
            target.set("{urn:u}x", "v")
    return root


def test_mutated_shared_documents_read_the_same_both_ways(reading: str) -> None:
    rng = random.Random(20261206)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    wrong = {}
    for path in DOCUMENTS[::6]:
        try:
            root = etree.fromstring(path.read_bytes(), parser)
        except etree.XMLSyntaxError:
            continue
        for number in range(2):
            body = etree.tostring(mutated(copy.deepcopy(root), rng), xml_declaration=True)
            got = read_feed(body, {})
            found = [] if got is None else differences(feedparsers(body), got)
            if found:
                wrong[f"{path.name} #{number}"] = found[:2]
    assert not wrong, wrong
