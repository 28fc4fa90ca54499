"""Which elements of a feed can change what the bot reads of feedparser's result.

feedparser names an element by its namespace's canonical prefix and its local name, lower-
cased ("media_content", "content_encoded", "title"); its handler for that name (or its
default for a name it has no handler for, which files the text under the name) decides
what is written where. The bot reads each entry's title, link, links, id, summary, content,
published/updated/created times and pictures, and the feed's title, link, links and ttl
(bot/feeds/parse.py, bot/feeds/entry.py). The elements below are the ones whose handlers
write those keys, or the parser state the handlers of those keys depend on (title_depth,
insource, inimage, intextinput, hasContent, guidislink, the entry itself). Every other
element, with nothing of these below it, leaves the bot's readings as they were.
"""

from __future__ import annotations

from typing import Any

from feedparser.api import StrictFeedParser

CONTAINERS = frozenset(
    (
        "rss", "channel", "feed", "item", "entry", "rdf_rdf",
        "media_group", "media_content",  # media:content holds media:title and thumbnails
    )
)  # fmt: skip
TEXTS = frozenset(
    (
        "title", "dc_title", "media_title",
        "link", "guid", "id",
        "description", "dc_description", "media_description", "abstract",
        "summary", "itunes_summary",
        "content", "content_encoded", "fullitem", "body", "xhtml_body",
        "published", "issued", "pubdate", "dcterms_issued",
        "updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified",
        "created", "dcterms_created",
        "enclosure", "media_thumbnail",
        "cc_license", "creativecommons_license",  # filed as links with rel="license"
        "source",  # an entry's <source> resets title_depth; its children go to the source
        # They change where a <link> or <title> goes, until an element they do not expect
        # (any unprefixed one but title, link, description, url, width, height; name for a
        # text input) sends the rest back to the feed: walked whole.
        "image", "textinput",
        "ttl",
        # Keys the bot reads, were an element named so (feedparser files an element it has
        # no handler for under its own name).
        "links", "enclosures", "published_parsed", "updated_parsed", "created_parsed",
        "guidislink",
    )
)  # fmt: skip
RELEVANT = CONTAINERS | TEXTS
# The local names of those: an element of a namespace feedparser does not know is named
# with a prefix the document declares, so only its local name can be judged.
RELEVANT_LOCAL = frozenset(name.rsplit("_", 1)[-1] for name in RELEVANT) | {"encoded"}

_MATCH = {uri.lower(): prefix for uri, prefix in StrictFeedParser.namespaces.items()}
_NAMES: dict[str, str | None] = {}


def feedparser_name(tag: str) -> str | None:
    """The name feedparser's handler gives an element of lxml tag `tag` ("media_content"),
    None for one of a namespace it does not know (its name then depends on the prefix)."""
    try:
        return _NAMES[tag]
    except KeyError:
        name = _NAMES[tag] = _name(tag)
        return name


def _name(tag: str) -> str | None:
    if tag[0] != "{":
        return tag.lower()
    uri, _, local = tag[1:].partition("}")
    prefix = known_prefix(uri)
    if prefix is None:
        return None
    return f"{prefix.lower()}_{local.lower()}" if prefix else local.lower()


XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"


def known_prefix(uri: str) -> str | None:
    """feedparser's prefix for a namespace it knows ("" for Atom's and RSS's), None for one
    it does not know."""
    lowered = uri.lower()
    if "backend.userland.com/rss" in lowered:  # feedparser takes any of those for RSS
        lowered = "http://backend.userland.com/rss"
    return _MATCH.get(lowered)


def attribute_prefix(uri: str) -> str:
    """The prefix feedparser names an attribute of namespace `uri` with ("" for one it does
    not know, and for Atom's): the plain lookup, without the one for RSS's old namespaces
    that element names get."""
    return _MATCH.get(uri.lower(), "")


def written_prefix(namespaces: dict[Any, str], uri: str) -> str | None:
    """The prefix an attribute of namespace `uri` was written with (expat's qname), from
    the element's in-scope `namespaces`; None when two prefixes name it (which was it?)."""
    if uri == XML_NAMESPACE:
        return "xml"
    prefixes = [prefix for prefix, declared in namespaces.items() if declared == uri and prefix]
    return prefixes[0] if len(prefixes) == 1 else None


def known_prefixes() -> frozenset[str]:
    """The prefixes feedparser gives the namespaces it knows ("media", "dc", …)."""
    return _KNOWN_PREFIXES


_KNOWN_PREFIXES = frozenset(prefix.lower() for prefix in _MATCH.values() if prefix)


def matters(el: Any) -> bool:
    """Whether feedparser's handling of this element alone may change the bot's readings
    (an entity reference lxml kept does: expat expands it)."""
    tag = el.tag
    if not isinstance(tag, str):
        return True
    name = feedparser_name(tag)
    if name is None:
        return tag.rpartition("}")[2].lower() in RELEVANT_LOCAL
    return name in RELEVANT


def matters_below(el: Any) -> bool:
    """Whether the element or anything in it may change the bot's readings."""
    return matters(el) or (len(el) > 0 and any(matters(below) for below in el.iterdescendants()))
