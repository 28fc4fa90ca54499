"""feedparser's reading of a well-formed feed, for the keys the bot reads, in half the time.

feedparser.parse runs its whole Python state machine on every SAX event of the document:
about 70% of the pipeline's CPU time, 40% of it spent on elements the bot never reads
(authors, categories, comment counts, the channel's image, sy:* and feedburner:* metadata).
This module does what feedparser.parse does for a document its strict (XML) parser
accepts — the same encoding detection (convert_to_utf8), the same DOCTYPE handling
(replace_doctype) — but libxml2 builds the tree. Then, in two ways:

- a plain feed (RSS 2.0, RSS 1.0 or Atom 1.0 of text elements, most feeds: 265 of the 330
  shared documents) is read straight from the tree by bot/feeds/plain_reader.py, which
  makes the keys the bot reads as feedparser's handler makes them;
- any other is walked into feedparser's own handler (StrictFeedParser, with the same
  settings) as startElementNS / characters / endElementNS, leaving out the subtrees that
  cannot change what the bot reads.

What the bot reads (bot/feeds/parse.py and bot/feeds/entry.py): each entry's title, link,
links, id, summary, content, published/updated/created times and pictures (media:content,
media:thumbnail, enclosures); the feed's title, link, links and ttl. An element is left
out only when feedparser's handler for it (or its default for an element it has no handler
for) writes none of those keys and none of the parser state the handlers of those keys
depend on, and no element below it is one that does (an Atom <author> holding a <link> is
walked, since feedparser files that link with the entry's). Everything below a text
element the bot reads (a title, a summary, content) is walked whole, since feedparser
serializes it into the text (bot/feeds/feedparser_names.py says which elements count).
Anything the walk cannot reproduce exactly — a document
libxml2 refuses (feedparser would read it with its loose parser), or an attribute prefix
it cannot tell — returns None, and the caller runs feedparser.parse itself.

tests/feeds/test_tree_reader.py holds the proof: every document of ../shared/feeds reads
the same as feedparser.parse reads it, key by key for every key the bot reads, both through
the plain reader and through the walk.
"""

from __future__ import annotations

from typing import Any
from xml.sax.xmlreader import AttributesNSImpl

from feedparser.api import StrictFeedParser
from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype
from feedparser.util import FeedParserDict
from lxml import etree

from bot.feeds.feedparser_names import (
    CONTAINERS,
    TEXTS,
    feedparser_name,
    matters,
    written_prefix,
)
from bot.feeds.plain_reader import NotPlain, read_plain

_BASED = etree.XPath("//*[@*[translate(local-name(), 'BASE', 'base') = 'base']]")
PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


class _Undecidable(Exception):
    """The walk cannot say what expat would have said: feedparser reads the document."""


def read_feed(body: bytes, headers: dict[str, str]) -> FeedParserDict | None:
    """What feedparser.parse(body, response_headers=headers, sanitize_html=False,
    resolve_relative_uris=False) returns for the keys the bot reads, or None when only
    feedparser.parse itself can say (the document is not well-formed XML, or the walk
    met something it cannot reproduce)."""
    if not body:
        return None
    result = FeedParserDict(bozo=False, entries=[], feed=FeedParserDict(), headers={})
    result["headers"].update(headers)
    data = convert_to_utf8(result["headers"], body, result)
    if not result["encoding"]:
        return None  # feedparser would use its loose parser
    version, data, entities = replace_doctype(data)
    if entities:
        # The DOCTYPE declared entities that expat would expand: libxml2 is told never to.
        return None
    try:
        root = etree.fromstring(data, etree.XMLParser(**PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError):
        return None
    try:
        found, result["feed"], result["entries"] = read_plain(root)
    except NotPlain:
        handler = StrictFeedParser("", None, "utf-8")
        handler.resolve_relative_uris = False
        handler.sanitize_html = False
        try:
            _Walk(handler, root).element(root, whole=False, parent_namespaces={})
        except _Undecidable:
            return None
        result["feed"], result["entries"] = handler.feeddata, handler.entries
        found = handler.version
    result["version"] = version or found
    return result


class _Walk:
    """The tree into the handler, as expat's SAX events would have come."""

    def __init__(self, handler: Any, root: Any) -> None:
        self.handler = handler
        # Elements that carry an xml:base or hold one: feedparser does not restore the base
        # after an element whose parent had none, so such a base reaches later siblings and
        # the element must be walked, not left out.
        self.based = {above for el in _BASED(root) for above in (el, *el.iterancestors())}

    def element(self, el: Any, *, whole: bool, parent_namespaces: dict[Any, str]) -> None:
        handler = self.handler
        namespaces = el.nsmap
        if namespaces != parent_namespaces:
            for prefix, uri in namespaces.items():
                if parent_namespaces.get(prefix) != uri:
                    handler.startPrefixMapping(prefix, uri)
        tag = el.tag
        if not isinstance(tag, str):
            raise _Undecidable(tag)  # an entity reference libxml2 kept: expat expands it
        namespace, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        name = (namespace or None, local)
        handler.startElementNS(name, None, self.attributes(el, namespaces))
        if el.text:
            handler.characters(el.text)
        for child in el:
            if whole:
                self.element(child, whole=True, parent_namespaces=namespaces)
            else:
                kind = self.kind(child)
                if kind is not None:
                    self.element(child, whole=kind, parent_namespaces=namespaces)
                else:
                    self.declarations(child, namespaces)
            if child.tail:
                handler.characters(child.tail)
        handler.endElementNS(name, None)

    def kind(self, el: Any) -> bool | None:
        """None: leave it out; False: walk it, choosing among its children; True: walk all
        of it (a text the bot reads, with whatever markup it holds)."""
        tag = el.tag
        if not isinstance(tag, str):
            raise _Undecidable(tag)  # an entity reference libxml2 kept: expat expands it
        name = feedparser_name(tag)
        if name in TEXTS:
            return True
        if name in CONTAINERS:
            return False
        if name is None and matters(el):
            return True  # a namespace feedparser does not know: let its handler judge
        if el in self.based:
            return False
        if len(el) and any(matters(below) for below in el.iterdescendants()):
            return False
        return None

    def declarations(self, el: Any, parent_namespaces: dict[Any, str]) -> None:
        """The namespaces declared inside a subtree left out, in document order: expat
        reports them all, and feedparser names elements of a namespace it does not know
        with the first prefix declared for it."""
        for below in el.iter():
            namespaces = below.nsmap
            if namespaces == parent_namespaces:
                continue
            for prefix, uri in namespaces.items():
                if parent_namespaces.get(prefix) != uri:
                    self.handler.startPrefixMapping(prefix, uri)
        # What the handler kept of them for the left-out element's attributes (xlink) was
        # that element's, not the next one's.
        self.handler.decls = {}

    @staticmethod
    def attributes(el: Any, namespaces: dict[Any, str]) -> AttributesNSImpl:
        values: dict[tuple[str | None, str], str] = {}
        qnames: dict[tuple[str | None, str], str] = {}
        for key, value in el.attrib.items():
            if key[0] != "{":
                pair: tuple[str | None, str] = (None, key)
                qname = key
            else:
                uri, _, local = key[1:].partition("}")
                pair = (uri, local)
                prefix = written_prefix(namespaces, uri)
                if prefix is None:
                    raise _Undecidable(uri)
                qname = f"{prefix}:{local}"
            values[pair] = value
            qnames[pair] = qname
        return AttributesNSImpl(values, qnames)
