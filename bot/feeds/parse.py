"""Feed bytes → feed metadata and raw entries, with feedparser.

A well-formed document is read by bot/feeds/tree_reader.py (libxml2 builds the tree, and
the keys the bot reads are made from it as feedparser makes them: the same result in half
the time); any other goes through feedparser.parse.

feedparser's HTML sanitizer and relative-URI rewriting of content are turned off: they
roughly double parse time, and the bot never forwards feed HTML (it extracts text and
escapes it), while entry links are made absolute by the normalizer.
"""

from __future__ import annotations

import codecs
import re
import xml.sax
from dataclasses import dataclass, field
from html.entities import html5
from typing import Any
from urllib.parse import urljoin

import feedparser

from bot.errors import NotAFeedError
from bot.feeds.tree_reader import read_feed
from bot.summary import html_to_text
from bot.text import quote_bidi_controls

# feedparser keeps a per-document bozo exception; these mean "recovered", not "not a feed".
_TTL_MAX_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class FeedDocument:
    """What feedparser read: the feed's own metadata and its raw entries."""

    title: str
    site_url: str
    entries: list[dict[str, Any]] = field(repr=False)
    ttl_seconds: int | None = None  # the feed's <ttl> hint
    # WebSub discovery: the feed's own <link rel="hub"> (atom:link in RSS) and rel="self",
    # made absolute; the entries' links are not read (a story cannot name a hub).
    hubs: tuple[str, ...] = ()
    self_url: str = ""


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> FeedDocument:
    """Parse one fetched document. Raises NotAFeedError when it is not a feed at all.

    A broken feed that still yields entries (bad bytes, truncated XML) is accepted, as
    feed readers do; a feed with zero entries is a valid, empty feed.
    """
    # No content-location: feedparser would join its base URI at every element (a tenth of
    # the parse time) and fold the fetch URL into relative guids, so a mirror or redirect
    # would make every story look new. Entry links are made absolute by the normalizer.
    headers: dict[str, str] = {}
    # A byte order mark is authoritative (RFC 7303 §3.3): a charset in the HTTP header, or
    # text/xml's us-ascii default, must not override it.
    if content_type and not body.startswith(_BOMS):
        headers["content-type"] = content_type
    body = _repair_utf8(body, headers.get("content-type"))
    body = _fix_surrogate_references(body)
    try:
        result = _feedparser(body, headers)
    except _FEEDPARSER_ERRORS as error:
        # feedparser's loose parser on hostile bytes: not a feed we can read.
        raise NotAFeedError("unreadable", type(error).__name__) from None
    if _xml_parser_rejected(result):
        result = _recover_broken_xml(body, result)
    version = result.get("version") or ""
    entries = list(result.get("entries") or [])
    if not version and not entries:
        raise NotAFeedError(_why_not_a_feed(body, result))
    meta = result.get("feed") or {}
    hubs, self_url = _hub_links(meta, url)
    return FeedDocument(
        title=_clean_title(meta.get("title") or ""),
        site_url=_absolute(url, meta.get("link") or ""),
        entries=entries,
        ttl_seconds=_ttl_seconds(meta.get("ttl")),
        hubs=hubs,
        self_url=self_url,
    )


def _hub_links(meta: Any, url: str) -> tuple[tuple[str, ...], str]:
    """The feed-level links WebSub discovery reads: every rel="hub", the first rel="self"."""
    hubs: list[str] = []
    self_url = ""
    for link in meta.get("links") or ():
        rel = str(link.get("rel") or "").strip().lower()
        href = str(link.get("href") or "").strip()
        if not href:
            continue
        if rel == "hub":
            hubs.append(_absolute(url, href))
        elif rel == "self" and not self_url:
            self_url = _absolute(url, href)
    return tuple(dict.fromkeys(hubs)), self_url


_FEEDPARSER_ERRORS = (ValueError, UnicodeError, LookupError, RecursionError)


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # A well-formed document goes the fast way (the same reading, see tree_reader).
    return read_feed(body, headers) or feedparser.parse(
        body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )


# --- XML broken in the middle ---------------------------------------------------------------
# When the XML parser rejects a document, feedparser reads it again with its loose parser,
# which copes with HTML entities and a bare "&" but not with a wrong end tag: after
# "<title>…</titel>" every later item is lost, and a story with no title and no link is made
# of the wreck. libxml2's recovering parser (lxml) closes such a tag where it belongs; its
# tree, written out again, is XML that feedparser reads whole. The reading with more
# well-formed entries wins; on a tie feedparser's own stays, so a document the loose parser
# already read right (most are broken only by an HTML entity or a bare "&") reads as before.
# Only documents the XML parser rejected take this path (12 of the 330 documents of
# ../shared/feeds), so a healthy feed pays nothing for it.


def _xml_parser_rejected(result: Any) -> bool:
    """feedparser's XML parser gave up on the document and its loose parser read it."""
    return isinstance(result.get("bozo_exception"), xml.sax.SAXException)


def _recover_broken_xml(body: bytes, loose: Any) -> Any:
    recovered = _libxml2_reading(body, loose.get("encoding") or "")
    best = loose
    if recovered is not None and _well_formed_count(recovered) > _well_formed_count(loose):
        best = recovered
    # In a document broken like this, an entry with neither a title nor a link is more
    # likely a piece of the wreck than a story, and its alert would have nothing a reader
    # could recognize or open.
    best["entries"] = [entry for entry in best.get("entries") or [] if _is_well_formed(entry)]
    return best


def _is_well_formed(entry: Any) -> bool:
    return bool(entry.get("title") or entry.get("link"))


def _well_formed_count(result: Any) -> int:
    return sum(1 for entry in result.get("entries") or [] if _is_well_formed(entry))


def _libxml2_reading(body: bytes, encoding: str) -> Any | None:
    """The document as libxml2 recovers it, read by feedparser; None when there is nothing."""
    document = _recovered_xml(body, encoding)
    if document is None:
        return None
    try:
        return _feedparser(document, {})
    except _FEEDPARSER_ERRORS:
        return None


def _recovered_xml(body: bytes, encoding: str) -> bytes | None:
    """The document made well-formed by libxml2's recovering parser, as UTF-8 XML.

    The text is decoded as feedparser decoded it (HTTP charset, declaration and repairs
    included) and handed over as UTF-8, so both readings see the same characters. Entities
    are never expanded and nothing is loaded from anywhere: the same defences as feedparser's
    own parse (entity bombs, external entities). The tree is gone when this returns, before
    feedparser builds its own.
    """
    from lxml import etree

    try:
        text = body.decode(encoding or "utf-8", "replace").lstrip("\ufeff")
    except LookupError:
        return None
    parser = etree.XMLParser(
        recover=True,
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        root = etree.fromstring(_numeric_references(text).encode("utf-8"), parser)
    except etree.Error:
        return None
    if root is None or etree.QName(root).localname.lower() not in _FEED_ROOTS:
        return None  # an HTML page, most often: no second reading can make it a feed
    # The root element alone: a DOCTYPE (and any entity it declares) is left behind.
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


# Root elements of RSS (0.9x-2.0, and "channel" of some hand-written ones), Atom and RDF.
_FEED_ROOTS = frozenset(("rss", "feed", "rdf", "channel"))


# An entity reference or a bare "&" (a name, then ";", or nothing).
_AMPERSAND = re.compile(r"&(?:(#?\w+);)?")
_CDATA_START, _CDATA_END = "<![CDATA[", "]]>"


def _numeric_references(text: str) -> str:
    """Named references written as character references (&nbsp; → &#160;), a bare "&" as
    &#38;, outside CDATA sections.

    After its first error libxml2 drops every entity reference, &lt; and &amp; included, while
    it keeps character references; and HTML's names (&nbsp;, &eacute;) are errors in XML
    anyway. Names it does not know (declared in the document's DTD) stay as they are.
    """
    parts: list[str] = []
    position = 0
    while position < len(text):
        start = text.find(_CDATA_START, position)
        if start < 0:
            start = len(text)
        parts.append(_AMPERSAND.sub(_character_reference, text[position:start]))
        end = text.find(_CDATA_END, start)
        end = len(text) if end < 0 else end + len(_CDATA_END)
        parts.append(text[start:end])  # a CDATA section is text as written
        position = end
    return "".join(parts)


def _character_reference(match: re.Match[str]) -> str:
    name = match.group(1)
    if name is None:
        return "&#38;"
    characters = None if name.startswith("#") else html5.get(name + ";")
    if characters is None:
        return match.group()
    return "".join(f"&#{ord(character)};" for character in characters)


def _absolute(base: str, link: str) -> str:
    try:
        return quote_bidi_controls(urljoin(base, link.strip())) if link.strip() else ""
    except ValueError:
        return ""


def _clean_title(title: str) -> str:
    return html_to_text(title)[:200]


def _ttl_seconds(value: object) -> int | None:
    """<ttl> is in minutes; nonsense values are ignored rather than trusted."""
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    if minutes <= 0:
        return None
    return min(minutes, _TTL_MAX_MINUTES) * 60


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# Character references to UTF-16 surrogates (emoji written as "&#55357;&#56832;" by some
# CMSs): feedparser's loose parser raises on them. A pair becomes its one code point, a lone
# half the replacement character.
_SURROGATE_REF = re.compile(rb"&#(?:x([0-9a-fA-F]{4})|([0-9]{5}));")


def _fix_surrogate_references(body: bytes) -> bytes:
    if b"&#" not in body:
        return body

    def code(match: re.Match[bytes]) -> int:
        hex_digits, decimal = match.groups()
        return int(hex_digits, 16) if hex_digits else int(decimal)

    def surrogate(match: re.Match[bytes]) -> bool:
        return 0xD800 <= code(match) <= 0xDFFF

    out: list[bytes] = []
    last = 0
    matches = [m for m in _SURROGATE_REF.finditer(body) if surrogate(m)]
    index = 0
    while index < len(matches):
        match = matches[index]
        out.append(body[last : match.start()])
        high = code(match)
        following = matches[index + 1] if index + 1 < len(matches) else None
        if (
            0xD800 <= high <= 0xDBFF
            and following is not None
            and following.start() == match.end()
            and 0xDC00 <= code(following) <= 0xDFFF
        ):
            point = 0x10000 + ((high - 0xD800) << 10) + (code(following) - 0xDC00)
            out.append(b"&#%d;" % point)
            last = following.end()
            index += 2
            continue
        out.append(b"&#xFFFD;")
        last = match.end()
        index += 1
    out.append(body[last:])
    return b"".join(out)


_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html)", re.IGNORECASE)


def _why_not_a_feed(body: bytes, result: Any) -> str:
    """What the document is instead: one of bot.errors.NOT_A_FEED_KINDS."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf")
    if not head.strip():
        return "empty"
    if _HTML_START.match(head):
        return "html"
    if head.lstrip()[:1] in (b"{", b"["):
        return "json"
    return "other"


# --- UTF-8 with a few bad bytes -------------------------------------------------------------
# feedparser decodes the whole document strictly in the encoding it settles on and, when one
# byte is invalid there, decodes all of it in a fallback (windows-1252, iso-8859-2): a UTF-8
# feed with a single bad byte turns into mojibake from its first accented letter to its last.

_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# Media types whose charset parameter feedparser obeys (RFC 3023): XML and text types.
_XML_APPLICATION_TYPES = (
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
)


def _repair_utf8(body: bytes, content_type: str | None) -> bytes:
    """A document meant to be UTF-8 with some invalid sequences → each one a U+FFFD.

    "Meant to be UTF-8": the encoding feedparser would try first is UTF-8 (a UTF-8 BOM, an
    HTTP charset it obeys, the XML declaration, or XML's default when none says). The repair
    only happens when the valid multi-byte characters outnumber the invalid bytes: a Latin-1
    or cp1252 document under a utf-8 label (no valid multi-byte character, many invalid bytes)
    is left to feedparser's fallback, which reads it right; so is an ASCII document with a stray
    Latin-1 byte. Anything else (valid UTF-8, other encodings) is returned unchanged.
    """
    if not _meant_as_utf8(body, content_type):
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return body
    escaped = body.decode("utf-8", "surrogateescape")  # each invalid byte → one lone surrogate
    non_ascii = len(escaped) - len(escaped.encode("ascii", "ignore"))
    invalid = len(_ESCAPED_BYTE.findall(escaped))
    if non_ascii - invalid <= invalid:
        return body
    return body.decode("utf-8", "replace").encode("utf-8")


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _meant_as_utf8(body: bytes, content_type: str | None) -> bool:
    """Whether the encoding feedparser tries first for this document is UTF-8.

    Mirrors feedparser.encodings.convert_to_utf8, with the caller's rule that a BOM wins
    (parse_feed drops the Content-Type of a document with a BOM).
    """
    if body.startswith(codecs.BOM_UTF8):
        return True
    if body.startswith(_BOMS):  # UTF-16
        return False
    mime, _, params = (content_type or "").partition(";")
    mime = mime.strip().lower()
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    obeyed = (
        mime.startswith("text/")
        or mime in _XML_APPLICATION_TYPES
        or (mime.startswith("application/") and mime.endswith("+xml"))
    )
    if obeyed and charset and _codec(charset) != "ascii":
        return _codec(charset) == "utf-8"
    # text/* without a charset means us-ascii to feedparser, a subset of UTF-8 that it gives
    # up on at the first non-ASCII byte, moving on to the declaration, like other types do.
    declared = _XML_ENCODING.match(body)
    return _codec(declared[1].decode("ascii")) == "utf-8" if declared else True


def _codec(name: str) -> str | None:
    """The canonical name of an encoding ("UTF8", "utf_8" → "utf-8"), None if unknown."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None
