"""A UTF-8 feed with a few bad bytes loses those bytes, not its whole text.

feedparser tries the declared encoding strictly and, on the first bad byte, decodes the whole
document in a fallback encoding (windows-1252, iso-8859-2): every other non-ASCII character
becomes mojibake. parse_feed repairs such a document first: each invalid sequence becomes
U+FFFD and the rest reads as the UTF-8 it is. A document that is not UTF-8 at all (Latin-1
or cp1252 bytes under a utf-8 label) still gets feedparser's fallback.
"""

from __future__ import annotations

import codecs

import pytest

from bot.feeds.parse import parse_feed
from tests.paths import SHARED

LINUXSOFT = SHARED / "feeds" / "real-world" / "cs_linuxsoft_invalidutf8_rss2.xml"
URL = "https://news.example.com/feed.xml"


@pytest.mark.skipif(not LINUXSOFT.exists(), reason="../shared/feeds is not beside the repository")
def test_real_feed_with_one_invalid_sequence_reads_as_czech() -> None:
    body = LINUXSOFT.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # the quirk this test is about: one bad sequence (byte ~1807)
    parsed = parse_feed(body, url="http://www.linuxsoft.cz/rss.php")
    assert parsed.title == "Linuxsoft.cz - zprávičky"
    first = parsed.entries[0]
    assert first["title"].startswith("Zamyšlení na tím, že Google")
    assert "Zamyšlení na tím, že Google se chce pustit do války s Microsoftem" in first["summary"]
    assert "prohlížečů" in first["summary"]
    texts = [parsed.title] + [e.get("title", "") + e.get("summary", "") for e in parsed.entries]
    # One replacement character for the one bad sequence, no mojibake anywhere.
    assert sum(text.count("\ufffd") for text in texts) == 1
    assert not any(mark in text for text in texts for mark in ("Ĺ", "Ă", "Ä", "Ã"))


@pytest.mark.skipif(not LINUXSOFT.exists(), reason="../shared/feeds is not beside the repository")
@pytest.mark.parametrize(
    "content_type",
    [None, "application/rss+xml", "application/xml; charset=utf-8", "text/xml; charset=UTF-8"],
)
def test_real_feed_reads_as_czech_whatever_the_server_says(content_type: str | None) -> None:
    parsed = parse_feed(LINUXSOFT.read_bytes(), url=URL, content_type=content_type)
    assert parsed.entries[0]["title"].startswith("Zamyšlení")


def rss(
    items: list[str],
    declaration: str = '<?xml version="1.0" encoding="utf-8"?>',
    title: str = "中文新闻",
) -> bytes:
    body = "".join(
        f"<item><title>{item}</title><guid>g{n}</guid><description>{item}</description></item>"
        for n, item in enumerate(items)
    )
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://news.example.com/</link>{body}</channel></rss>"
    ).encode()


STORIES = ["北京今天下雨，气温下降", "上海举办国际电影节", "深圳发布新的交通规划"]


def with_bad_byte(document: bytes, in_story: str) -> bytes:
    """The story's first character cut in half: a lead byte without its continuation."""
    encoded = in_story.encode("utf-8")
    return document.replace(encoded, encoded[:1] + b"!" + encoded[3:], 1)


@pytest.mark.parametrize(
    ("declaration", "content_type"),
    [
        ('<?xml version="1.0" encoding="utf-8"?>', None),
        ('<?xml version="1.0" encoding="UTF-8"?>', "application/rss+xml"),
        ('<?xml version="1.0"?>', "application/xml"),  # XML's default is UTF-8
        ('<?xml version="1.0"?>', "text/xml; charset=utf-8"),
        ('<?xml version="1.0" encoding="iso-8859-1"?>', "application/xml; charset=utf-8"),
        ("", None),
    ],
)
def test_one_invalid_byte_costs_one_character(declaration: str, content_type: str | None) -> None:
    body = with_bad_byte(rss(STORIES, declaration), STORIES[1])
    parsed = parse_feed(body, url=URL, content_type=content_type)
    titles = [e["title"] for e in parsed.entries]
    assert titles[0] == STORIES[0] and titles[2] == STORIES[2]
    assert titles[1] == "\ufffd!" + STORIES[1][1:]
    assert parsed.entries[2]["summary"] == STORIES[2]
    assert parsed.title == "中文新闻"


def test_utf8_bom_with_a_bad_byte() -> None:
    body = codecs.BOM_UTF8 + with_bad_byte(rss(STORIES), STORIES[0])
    # The BOM wins over the server's wrong label (RFC 7303 §3.3).
    parsed = parse_feed(body, url=URL, content_type="text/xml; charset=iso-8859-1")
    assert [e["title"] for e in parsed.entries][1:] == STORIES[1:]


def test_latin1_under_a_utf8_label_still_reads_as_latin1() -> None:
    # Not UTF-8 with a bad byte but no UTF-8 at all: replacing every accented letter would
    # lose the text; feedparser's fallback reads it right.
    body = rss(["Café crème à Noël", "Ça coûte 5 € à Zürich"], title="Le fil")
    body = body.decode().encode("cp1252")
    parsed = parse_feed(body, url=URL, content_type="application/xml")
    assert [e["title"] for e in parsed.entries] == ["Café crème à Noël", "Ça coûte 5 € à Zürich"]


def test_ascii_feed_with_one_latin1_byte_keeps_it() -> None:
    # A stray Latin-1 non-breaking space in an otherwise ASCII feed: the fallback reads it as
    # the character it is, which beats a replacement character.
    body = rss(["Plain news", "Price: 5\xa0EUR"], title="Wire").replace(b"\xc2\xa0", b"\xa0")
    parsed = parse_feed(body, url=URL)
    assert [e["title"] for e in parsed.entries] == ["Plain news", "Price: 5\xa0EUR"]


def test_declared_other_encodings_are_left_to_feedparser() -> None:
    body = rss(STORIES, '<?xml version="1.0" encoding="gb18030"?>').decode().encode("gb18030")
    parsed = parse_feed(body, url=URL)
    assert [e["title"] for e in parsed.entries] == STORIES


def test_feed_title_and_site_link_lose_bidirectional_controls() -> None:
    """Not encoding but the same pass over the feed's own texts: overrides, embeddings and
    isolates go from its title (shown in every alert's footer) and are percent-encoded in
    its site link; right-to-left letters stay."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>\u202eأخبار\u202c \u2067اليوم\u2069</title>"
        "<link>https://news.example.com/\u202eextra</link><description>d</description>"
        "</channel></rss>"
    ).encode()
    parsed = parse_feed(body, url=URL)
    assert parsed.title == "أخبار اليوم"
    assert parsed.site_url == "https://news.example.com/%E2%80%AEextra"
