"""The plain feed, read straight from lxml's tree: what feedparser gives for the keys the
bot reads, without running feedparser's handler at all.

Most feeds are plain: RSS 2.0, RSS 1.0 or Atom 1.0 whose entries are a title, a link, a
guid, a description or content as text (escaped HTML), dates, an enclosure, media:content
and media:thumbnail, plus elements the bot never reads (authors, categories, comments).
For those, each key the bot reads is made here the way feedparser's handler makes it
(feedparser/mixin.py `pop`, feedparser/namespaces/_base.py): the same stripping, relative-
URI joining against the same xml:base, mojibake repair and cp1252 mapping, the same order
rules between a description, a summary and content, between a guid and a link, between a
title and a media:title. Keys the bot does not read are not filled; a content item carries
its type and value.

Anything less plain — markup inside a text element (XHTML), a description that feedparser
would turn into content, a media:description, an element of a namespace feedparser does
not know that it would name like one the bot reads, RSS 0.9x — raises NotPlain, and
tree_reader's walk (feedparser's own handler) reads the document instead.
tests/feeds/test_tree_reader.py compares both with feedparser.parse on every shared
document.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from feedparser.util import FeedParserDict
from lxml import etree

from bot.feeds.feedparser_names import (
    RELEVANT,
    XML_NAMESPACE,
    attribute_prefix,
    feedparser_name,
    known_prefix,
    known_prefixes,
    matters,
    written_prefix,
)

ATOM = "{http://www.w3.org/2005/Atom}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_BASE = f"{{{XML_NAMESPACE}}}base"
_HTML_TYPES = frozenset(("text/html", "application/xhtml+xml"))
_TEXT_TYPES = frozenset(("text/plain", "text/html"))
_ENTITY_LIKE = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROL = re.compile("[\x80-\x9f]")  # the characters feedparser's _cp1252 maps
_DATE_KEYS = {
    "pubdate": "published",
    "published": "published",
    "issued": "published",
    "dcterms_issued": "published",
    "updated": "updated",
    "modified": "updated",
    "lastbuilddate": "updated",
    "dc_date": "updated",
    "dcterms_modified": "updated",
    "created": "created",
    "dcterms_created": "created",
}
_SUMMARIES = {"description": "text/html", "summary": "text/plain", "itunes_summary": "text/plain"}
_TITLES = frozenset(("title", "dc_title"))
_MEDIA = frozenset(
    ("media_content", "media_thumbnail", "media_group", "media_title", "media_description")
)
# What must not be inside an entry's <source>: feedparser files everything there with the
# source, but for these (content sets hasContent; an image, an item or another source
# change where the rest goes).
_NOT_IN_SOURCE = frozenset(
    (
        "content", "content_encoded", "fullitem", "body", "xhtml_body",
        "image", "textinput", "item", "entry", "source", "channel", "feed",
    )
)  # fmt: skip
# Feed-level elements whose readings the bot does not use and that leave the parser's state
# as it was (they must hold no element).
_FEED_SUMMARIES = frozenset(("summary", "itunes_summary", "description", "media_description"))
_FEED_LEAVES = frozenset((*_DATE_KEYS, "subtitle", "tagline", "media_content", "media_thumbnail"))
# Containers whose children feedparser files inside them (the channel's image and text
# input): only the parser's title depth changes for what follows.
_BOXES = frozenset(("image", "textinput"))
_IN_IMAGE = frozenset(("title", "link", "description", "url", "href", "width", "height"))
_IN_TEXT_INPUT = frozenset(("title", "link", "description", "name"))
_VERSIONS_BY_NAMESPACE = (
    ("http://my.netscape.com/rdf/simple/0.9/", "rss090"),
    ("http://purl.org/rss/1.0/", "rss10"),
    ("http://www.w3.org/2005/atom", "atom10"),
)
_RSS_VERSIONS = {"0.91": "rss091u", "0.92": "rss092", "0.93": "rss093", "0.94": "rss094"}
_HAS_BASE = etree.XPath("boolean(//@*[translate(local-name(), 'BASE', 'base') = 'base'])")


class NotPlain(Exception):
    """The document needs feedparser's handler."""


@dataclass
class _Document:
    """What reading one document keeps: feedparser's title depth (a title is stored unless
    one was stored at or above its depth since the last item, image or source began), the
    xml:base of each element when the document has any, and its root's prefixes."""

    root: Any
    bases: dict[Any, str] | None
    title_depth: int = -1
    # feedparser's hasContent: set by content (or a description made content), cleared at
    # the end of each item; a description that follows it is a summary, not content.
    has_content: bool = False
    # Where each entry's stored title came from (feedparser's property_depth_map): a title
    # from deeper down (a media:title) gives way to one nearer the entry.
    title_stored_at: dict[int, int] = field(default_factory=dict)
    summary_stored_at: dict[int, int] = field(default_factory=dict)  # the same for summaries
    # Every prefix the document declares anywhere, and the namespaces it is bound to.
    declarations: dict[str, set[str]] | None = None
    unknown_names: dict[str, str | None] = field(default_factory=dict)  # tag → its name

    def base(self, el: Any) -> str:
        return "" if self.bases is None else self.bases[el]

    def resolve(self, el: Any, uri: str) -> str:
        return _urljoin(self.base(el), uri)

    def name(self, el: Any) -> str:
        tag = el.tag
        if not isinstance(tag, str):
            raise NotPlain("entity reference")
        name = feedparser_name(tag)
        if name is not None:
            return name
        # feedparser names an element of a namespace it does not know with the first
        # prefix the document declared for it that is still bound to it: decidable when
        # every declaration of it uses one prefix and that prefix names nothing else.
        if tag not in self.unknown_names:
            self.unknown_names[tag] = self._unknown_name(tag)
        unknown = self.unknown_names[tag]
        if unknown is None:
            raise NotPlain(f"cannot name {tag}")
        return unknown

    def _unknown_name(self, tag: str) -> str | None:
        uri, _, local = tag[1:].partition("}")
        if self.declarations is None:
            self.declarations = _declarations(self.root)
        prefixes = [p for p, bound in self.declarations.items() if uri in bound]
        if len(prefixes) != 1 or len(self.declarations[prefixes[0]]) != 1:
            return None
        return f"{prefixes[0].lower()}_{local.lower()}"


def read_plain(root: Any) -> tuple[str, FeedParserDict, list[FeedParserDict]]:
    """(version, feed, entries) of a plain RSS 2.0, RSS 1.0 or Atom 1.0 document; NotPlain
    if it is not one."""
    document = _Document(root, _bases(root) if _HAS_BASE(root) else None)
    _check_prefixes(document)
    version = _version(root)
    feed = FeedParserDict()
    entries: list[FeedParserDict] = []
    if root.tag == "rss":
        channels = list(root)
        if len(channels) != 1 or channels[0].tag != "channel" or version != "rss20":
            raise NotPlain("not RSS 2.0")
        _check_channel(channels[0])
        for part in channels[0]:  # rss 1, channel 2, its children 3
            _feed_part(document, feed, entries, part, 3)
    elif root.tag == f"{ATOM}feed" and version == "atom10":
        for part in root:
            _feed_part(document, feed, entries, part, 2)
    elif root.tag == f"{RDF}RDF" and version == "rss10":
        for part in root:  # the channel's children are the feed's; items are the root's
            if document.name(part) == "channel":
                _check_channel(part)
                for below in part:
                    _feed_part(document, feed, entries, below, 3)
            else:
                _feed_part(document, feed, entries, part, 2)
    else:
        raise NotPlain("neither RSS 2.0, RSS 1.0 nor Atom 1.0")
    return version, feed, entries


def _feed_part(
    document: _Document, feed: FeedParserDict, entries: list, el: Any, depth: int
) -> None:
    """One child of the channel (or the Atom feed, or RSS 1.0's root) at `depth`."""
    name = document.name(el)
    if name in ("item", "entry"):
        entries.append(_entry(document, el, depth + 1))
    elif name in _TITLES:
        _title(document, feed, el, depth, media=False)
    elif name == "link":
        _link(document, feed, el, in_entry=False)
    elif name in ("id", "guid"):
        _guid(document, feed, el)
    elif name == "ttl":
        if len(el.attrib):
            raise NotPlain("ttl with attributes")  # filed as a dict of them
        feed["ttl"] = _finish(_leaf_text(el))
    elif name in ("cc_license", "creativecommons_license"):
        _licence(feed, el, name)
    elif name in _BOXES:
        _box(document, el, name, depth)
    elif name in _FEED_SUMMARIES:
        text = _finish(_leaf_text(el))
        if "summary" in feed and not document.has_content:
            # feedparser reads it as the feed's content, and then a description in the
            # first item is a summary whatever came before it
            document.has_content = True
        elif name in ("summary", "itunes_summary"):
            feed["summary"] = text  # a description is the feed's subtitle
    elif name in _FEED_LEAVES:
        _leaf_text(el)
    else:
        _inert(document, el, name)


def _entry(document: _Document, item: Any, depth: int) -> FeedParserDict:
    """One item or entry (its children at `depth`), as feedparser's handler fills the keys
    the bot reads."""
    entry = FeedParserDict()
    about = None
    for key, value in item.attrib.items():
        if key == f"{RDF}about":
            about = value
        elif key.lower() in ("lastmod", "href"):
            raise NotPlain("a CDF item")
    if about:
        entry["id"] = about
    document.title_depth = -1
    for child in item:
        name = document.name(child)
        if name in _TITLES:
            _title(document, entry, child, depth, media=False)
        elif name == "link":
            _link(document, entry, child, in_entry=True)
        elif name in ("guid", "id"):
            _guid(document, entry, child)
        elif name in _SUMMARIES:
            _summary(document, entry, child, depth, _SUMMARIES[name])
        elif name in ("content", "content_encoded"):
            document.has_content = True
            _content(entry, child, "text/plain" if name == "content" else "text/html")
        elif name in _DATE_KEYS:
            key = _DATE_KEYS[name]
            entry[key] = _finish(_leaf_text(child))
            entry[f"{key}_parsed"] = _parse_date(entry[key])
        elif name == "enclosure":
            _leaf_text(child)
            attributes = _FeedParserMixin._enforce_href(_attributes(child))
            attributes["rel"] = "enclosure"
            entry.setdefault("links", []).append(FeedParserDict(attributes))
        elif name in _MEDIA:
            _media(document, entry, child, name, depth)
        elif name in ("cc_license", "creativecommons_license"):
            _licence(entry, child, name)
        elif name == "source":
            _source(document, child, depth)
        else:
            _inert(document, child, name)
    document.has_content = False
    return entry


def _summary(
    document: _Document, entry: FeedParserDict, el: Any, depth: int, default_type: str
) -> None:
    """A description or summary: the summary, unless one came nearer the entry; when there
    is one already and no content yet, feedparser makes this one content instead."""
    if "summary" in entry and not document.has_content:
        document.has_content = True
        _content(entry, el, "text/plain")
        return
    value = _finish(_text(el, default_type))
    stored = document.summary_stored_at.get(id(entry))
    if stored is None or depth <= stored:
        entry["summary"] = value
        document.summary_stored_at[id(entry)] = depth


def _source(document: _Document, el: Any, depth: int) -> None:
    """An entry's <source>: what it holds is the source's, but its titles move the parser's
    title depth (to the last one that is not empty, else none)."""
    document.title_depth = -1
    for below in el.iterdescendants():
        name = document.name(below)
        if name in _NOT_IN_SOURCE:
            raise NotPlain(f"{name} inside a source")
        if name in _TITLES and _finish(_text(below, "text/plain")):
            document.title_depth = depth + _depth_below(below, el)


def _depth_below(el: Any, ancestor: Any) -> int:
    depth = 0
    while el is not ancestor:
        el = el.getparent()
        depth += 1
    return depth


def _title(
    document: _Document, context: FeedParserDict, el: Any, depth: int, *, media: bool
) -> None:
    """A title is stored unless one came at or above its depth since the item began; a
    media:title leaves the depth as it found it."""
    value = _finish(_text(el, "text/plain"))
    if not -1 < document.title_depth <= depth:
        stored = document.title_stored_at.get(id(context))
        if stored is None or depth <= stored:
            context["title"] = value
            document.title_stored_at[id(context)] = depth
    if value and not media:
        document.title_depth = depth


def _link(document: _Document, context: FeedParserDict, el: Any, *, in_entry: bool) -> None:
    _leaf_text(el)  # what an Atom link holds (media:content for one) is the entry's
    attributes = _attributes(el)
    self_link = attributes.setdefault("rel", "alternate") == "self"
    attributes.setdefault("type", "application/atom+xml" if self_link else "text/html")
    attributes = _FeedParserMixin._enforce_href(attributes)
    if "href" in attributes:
        attributes["href"] = document.resolve(el, attributes["href"])
    context.setdefault("links", []).append(FeedParserDict(attributes))
    if "href" in attributes:
        kind = _FeedParserMixin.map_content_type(attributes.get("type") or "")
        if attributes.get("rel") == "alternate" and kind in _HTML_TYPES:
            context["link"] = attributes["href"]
        return
    output = _finish(_leaf_text(el), resolve=lambda uri: document.resolve(el, uri))
    if in_entry:
        # feedparser's repair of "?a=1&amp;b=2" escaped twice, then of "&b;=2"
        output = _ENTITY_LIKE.sub(r"&\g<1>", output.replace("&amp;", "&"))
        context["link"] = output
        if output:
            context["links"][-1]["href"] = output
    else:
        context["link"] = output = _ENTITY_LIKE.sub(r"&\g<1>", output)
        context["links"][-1]["href"] = output


def _guid(document: _Document, context: FeedParserDict, el: Any) -> None:
    """A guid (or an Atom id) is the link too when it may be one and none came yet."""
    is_link = _attributes(el).get("ispermalink", "true") == "true"
    resolve = (lambda uri: document.resolve(el, uri)) if is_link else None
    value = _finish(_leaf_text(el), resolve=resolve)
    context["id"] = value
    context.setdefault("guidislink", is_link and "link" not in context)
    if is_link:
        context.setdefault("link", value)


def _content(entry: FeedParserDict, el: Any, default_type: str) -> None:
    """Atom's <content> or RSS's <content:encoded>: a content item, and the summary when
    there is none yet."""
    attributes = _attributes(el)
    kind = _text_type(attributes, default_type)
    value = _finish(_leaf_text(el))
    item = FeedParserDict({"type": kind, "value": value})
    entry.setdefault("content", []).append(item)
    entry.setdefault("summary", value)  # feedparser copies text and HTML content there


def _media(document: _Document, entry: FeedParserDict, el: Any, name: str, depth: int) -> None:
    if name == "media_title":
        _title(document, entry, el, depth, media=True)
        return
    if name == "media_description":
        _summary(document, entry, el, depth, "text/html")
        return
    if name == "media_thumbnail":
        attributes = _attributes(el)
        entry.setdefault("media_thumbnail", []).append(attributes)
        url = _finish(_leaf_text(el), resolve=lambda uri: document.resolve(el, uri))
        if url.strip() and "url" not in attributes:
            attributes["url"] = url
        return
    if name == "media_content":
        entry.setdefault("media_content", []).append(_attributes(el))
    for child in el:
        below = document.name(child)
        if below in _MEDIA and below != "media_group":
            _media(document, entry, child, below, depth + 1)
        else:
            _inert(document, child, below)


def _licence(context: FeedParserDict, el: Any, name: str) -> None:
    """cc:license (its rdf:resource) and creativeCommons:license (its text) are links."""
    if name == "cc_license":
        _leaf_text(el)
        value = el.get(f"{RDF}resource")
    else:
        value = _finish(_leaf_text(el))
    link = FeedParserDict(rel="license")
    if value:
        link["href"] = value
    context.setdefault("links", []).append(link)


def _box(document: _Document, el: Any, name: str, depth: int) -> None:
    """An image or a text input: what it holds is filed inside it, and its title moves the
    parser's title depth to it. Only when it holds what feedparser expects there: any other
    unprefixed element ends feedparser's "in an image" and sends the rest to the feed."""
    expected = _IN_IMAGE if name == "image" else _IN_TEXT_INPUT
    document.title_depth = -1
    for child in el:
        tag = child.tag
        if not isinstance(tag, str) or len(child):
            raise NotPlain(f"{tag} inside an {name}")
        uri, _, local = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        unprefixed = not uri or known_prefix(uri) == ""
        if not unprefixed or local.lower() not in expected:
            raise NotPlain(f"{tag} inside an {name}")
        if local.lower() == "title" and _finish(_text(child, "text/plain")):
            document.title_depth = depth + 1


def _inert(document: _Document, el: Any, name: str) -> None:
    """An element the bot does not read: fine when nothing in it is read either."""
    if name in RELEVANT:
        raise NotPlain(f"{name} here")
    if len(el) and any(matters(below) for below in el.iterdescendants()):
        raise NotPlain(f"{name} holds what the bot reads")


def _text(el: Any, default_type: str) -> str:
    """A text element's text, when feedparser takes it as text (not base64, not XHTML)."""
    _text_type(_attributes(el), default_type)
    return _leaf_text(el)


def _text_type(attributes: dict[str, str], default_type: str) -> str:
    kind = _FeedParserMixin.map_content_type(attributes.get("type", default_type))
    if kind not in _TEXT_TYPES or attributes.get("mode") == "base64":
        raise NotPlain(f"content of type {kind}")
    return kind


def _leaf_text(el: Any) -> str:
    if len(el):
        raise NotPlain(f"markup inside {el.tag}")
    return el.text or ""


def _finish(output: str, resolve: Any = None) -> str:
    """feedparser's pop() on a text (sanitizer and URI rewriting off); `resolve` joins a
    text that is a URI to its xml:base."""
    output = output.strip()
    if resolve is not None and output:
        output = resolve(output)
    try:  # UTF-8 read as Latin-1 somewhere upstream, repaired
        output = output.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    # C1 controls are cp1252's characters; str.translate walks every character in Python
    # terms, a tenth of the reading's time on long content, so only when there is one.
    return output.translate(_cp1252) if _C1_CONTROL.search(output) else output


def _attributes(el: Any) -> dict[str, str]:
    """The attributes as feedparser's handler sees them (feedparser/parsers/strict.py): a
    namespaced one under its canonical prefix (a bare name when feedparser does not know
    the namespace) and under its name as written; names lower-cased, rel and type values
    too."""
    plain: dict[str, str] = {}
    written: dict[str, str] = {}
    for key, value in el.attrib.items():
        if key[0] != "{":
            plain[key.lower()] = value
            continue
        uri, _, local = key[1:].partition("}")
        canonical = attribute_prefix(uri)
        plain[(f"{canonical}:{local}" if canonical else local).lower()] = value
        prefix = written_prefix(el.nsmap, uri)
        if prefix is None:
            raise NotPlain(f"which prefix was written for {uri}")
        written[f"{prefix}:{local}".lower()] = value
    attributes = plain | written
    for name in ("rel", "type"):
        if name in attributes:
            attributes[name] = attributes[name].lower()
    return attributes


def _check_channel(channel: Any) -> None:
    if {key.lower() for key in channel.attrib} & {"lastmod", "href"}:
        raise NotPlain("a CDF channel")


def _check_prefixes(document: _Document) -> None:
    """The root's declarations: a canonical prefix declared for another known namespace
    would make feedparser rename elements."""
    canonical = known_prefixes()
    for prefix, uri in document.root.nsmap.items():
        known = known_prefix(uri)
        renamed = known is not None and known.lower() != (prefix or "").lower()
        if prefix and prefix.lower() in canonical and renamed:
            raise NotPlain(f"prefix {prefix} declared for {uri}")


def _declarations(root: Any) -> dict[str, set[str]]:
    """Each prefix declared in the document (the default namespace's not: feedparser never
    names an element by it) and the namespaces it is bound to, wherever."""
    declared: dict[str, set[str]] = {}
    for _event, (prefix, uri) in etree.iterwalk(root, events=("start-ns",)):
        if prefix:
            declared.setdefault(prefix, set()).add(uri)
    return declared


def _bases(root: Any) -> dict[Any, str]:
    """Each element's xml:base as feedparser's handler tracks it: relative to the base in
    force, and — feedparser's way — not restored after an element whose parent had none."""
    bases: dict[Any, str] = {}
    current = ""
    stack: list[str] = []
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if event == "start":
            own = el.get(_XML_BASE)
            if own is None:
                own = next(
                    (value for key, value in el.attrib.items() if key.lower() == "base"), None
                )
            current = _next_base(current, own or current)
            stack.append(current)
            bases[el] = current
        else:
            stack.pop()
            if stack and stack[-1]:
                current = stack[-1]
    return bases


@functools.lru_cache(maxsize=256)
def _next_base(current: str, base: str) -> str:
    """feedparser's base for an element: `base` (its own, else the one in force) against
    the one in force. Cached: a document repeats the same few pairs on every element."""
    if current:
        return make_safe_absolute_uri(current, base) or current
    return _urljoin(current, base)


def _version(root: Any) -> str:
    """feedparser's version: the namespaces declared first, then the root element."""
    version = ""
    for prefix, uri in root.nsmap.items():
        lowered = uri.lower()
        for namespace, named in _VERSIONS_BY_NAMESPACE:
            if not version and lowered == namespace and (named != "rss090" or prefix is None):
                version = named
    if root.tag == "rss" and not version.startswith("rss"):
        declared = _attributes(root).get("version", "")
        version = _RSS_VERSIONS.get(declared) or ("rss20" if declared.startswith("2.") else "rss")
    return version
