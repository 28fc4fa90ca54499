"""OPML 2.0: read a feed reader's export safely, write a chat's subscriptions, import them.

Reading: an OPML file comes from a stranger, so it is parsed with expat directly and any
DOCTYPE is refused outright. OPML never needs a DTD, and without one there can be no entity
declarations: no "billion laughs" expansion, no external entities, no network or file access.
Size is capped before parsing, the number of feeds after.

Importing checks every feed the way /subscribe does (through a `subscribe` callable, so the
Telegram handler and the command line share it), a few at a time, and subscribes the chat in
the file's order: /list numbers (what /unsubscribe N and /mode N take) follow the file.
"""

from __future__ import annotations

import asyncio
import logging
import pyexpat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Protocol
from xml.etree import ElementTree

from bot.errors import FeedError, FeedFailure, UserError

log = logging.getLogger(__name__)

# Feeds checked at the same time by one import: enough that 200 feeds take a minute, not
# ten, and few enough that one import neither hogs the fetcher nor hammers one site.
IMPORT_CONCURRENCY = 4
# Checks run ahead of the first feed not yet subscribed (or failed): past a slow feed the
# others are still checked, and at most this many checked feeds wait for their turn to be
# written, holding their parsed entries meanwhile.
IMPORT_LOOKAHEAD = 16
FEED_ROOTS = {"rss", "feed", "rdf:RDF", "RDF"}


class OpmlError(UserError):
    """The file cannot be imported; `key` names the text that says why."""


class _Refused(Exception):
    """Raised inside expat's callbacks to stop parsing a hostile document at once."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    url: str
    title: str = ""
    category: str = ""  # "Tech/Programming": the folders it sat in, outermost first
    site_url: str = ""


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    title: str
    feeds: list[OpmlFeed]


# --- reading ---------------------------------------------------------------------------


class _Reader:
    """expat callbacks that flatten nested outlines into feeds (folders become categories)."""

    def __init__(self) -> None:
        self.root = ""
        self.path: list[str] = []  # element names from the root down
        self.folders: list[str | None] = []  # one per open <outline>: its name, None for feeds
        self.title_parts: list[str] = []
        self.feeds: list[OpmlFeed] = []

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if not self.path:
            self.root = name
            if name != "opml":
                raise _Refused("not_opml")
        self.path.append(name)
        if name != "outline":
            return
        # Attribute names are case-insensitive in practice (xmlUrl, xmlurl, XMLURL).
        attrs = {key.lower(): value.strip() for key, value in attributes.items()}
        label = attrs.get("title") or attrs.get("text") or ""
        url = attrs.get("xmlurl", "")
        if url:
            self.feeds.append(OpmlFeed(url, label, self._category(attrs), attrs.get("htmlurl", "")))
            self.folders.append(None)
        else:
            self.folders.append(label)

    def _category(self, attrs: dict[str, str]) -> str:
        folders = [name for name in self.folders if name]
        if folders:
            return "/".join(folders)
        # Older exporters put folders in a category attribute: "/Tech/News,/Daily".
        first = attrs.get("category", "").split(",", 1)[0]
        return first.strip().strip("/")

    def end(self, name: str) -> None:
        self.path.pop()
        if name == "outline":
            self.folders.pop()

    def text(self, data: str) -> None:
        if self.path[-2:] == ["head", "title"]:
            self.title_parts.append(data)


def _refuse_doctype(name: object = "", *_: object) -> None:
    # An HTML page is the usual non-OPML file to carry one: say what it is, not "unsafe".
    raise _Refused("html" if str(name).lower() == "html" else "doctype")


def _refuse_entity(*_: object) -> None:
    raise _Refused("doctype")


def _parser(reader: _Reader) -> pyexpat.XMLParserType:
    parser = pyexpat.ParserCreate()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    # The one line of defence that matters: no DOCTYPE, hence no entities at all. The other
    # handlers are belts and braces should a declaration ever get past it.
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.ExternalEntityRefHandler = _refuse_entity
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)
    return parser


def parse_opml(data: bytes, *, max_bytes: int, max_feeds: int) -> OpmlDocument:
    """The feeds of an OPML document, in file order, each URL once. Raises OpmlError."""
    if len(data) > max_bytes:
        raise OpmlError(
            "opml.too_large", size_kb=kilobytes(len(data)), limit_kb=kilobytes(max_bytes)
        )
    if not data.strip():
        raise OpmlError("opml.not_xml", detail="the file is empty")
    reader = _Reader()
    try:
        _parser(reader).Parse(data, True)
    except _Refused as refused:
        if str(refused) == "doctype":
            raise OpmlError("opml.doctype") from None
        if str(refused) == "html":
            raise OpmlError("opml.not_opml", root="html") from None
        if reader.root in FEED_ROOTS:
            raise OpmlError("opml.is_a_feed", root=reader.root) from None
        raise OpmlError("opml.not_opml", root=reader.root) from None
    except pyexpat.ExpatError as error:
        detail = pyexpat.ErrorString(error.code) if error.code else str(error)
        raise OpmlError("opml.not_xml", detail=f"line {error.lineno}: {detail}") from None
    feeds = _unique(reader.feeds)
    if not feeds:
        raise OpmlError("opml.no_feeds")
    if len(feeds) > max_feeds:
        raise OpmlError("opml.too_many", count=len(feeds), limit=max_feeds)
    return OpmlDocument("".join(reader.title_parts).strip(), feeds)


def _unique(feeds: list[OpmlFeed]) -> list[OpmlFeed]:
    """One entry per URL: a feed filed under two folders is still one subscription."""
    seen: set[str] = set()
    unique = []
    for feed in feeds:
        if feed.url not in seen:
            seen.add(feed.url)
            unique.append(feed)
    return unique


def kilobytes(size: int) -> int:
    return -(-size // 1024)  # rounded up: a file 1 byte over the cap must not read "1024 KB"


# --- writing ---------------------------------------------------------------------------


def build_opml(feeds: Sequence[OpmlFeed], *, title: str, now: datetime | None = None) -> bytes:
    """An OPML 2.0 document (UTF-8) with one `<outline type="rss">` per feed."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    created = format_datetime(now or datetime.now(UTC), usegmt=True)
    ElementTree.SubElement(head, "dateCreated").text = created
    ElementTree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ElementTree.SubElement(root, "body")
    for feed in feeds:
        outline = ElementTree.SubElement(body, "outline", type="rss")
        outline.set("text", feed.title or feed.url)
        outline.set("title", feed.title or feed.url)
        outline.set("xmlUrl", feed.url)
        if feed.site_url:
            outline.set("htmlUrl", feed.site_url)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# --- importing -------------------------------------------------------------------------


class SubscribeResult(Protocol):
    created: bool


# Awaited by `subscribe` once the feed is checked, before it writes anything: returns when
# every feed before it in the file is subscribed, has failed or was skipped.
Turn = Callable[[], Awaitable[None]]


class Subscribe(Protocol):
    def __call__(self, url: str, *, turn: Turn) -> Awaitable[SubscribeResult]: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one feed of the file was not subscribed: the feed failed (`feed_failure`), or
    something else the user should know (`key`, a UserError's text key, and its values)."""

    url: str
    feed_failure: FeedFailure | None = None
    key: str = ""
    values: dict[str, object] = field(default_factory=dict)

    @property
    def reason(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What failures are grouped by: the failure's code, or the key and its values."""
        if self.feed_failure is not None:
            return self.feed_failure.code, ()
        return self.key, tuple(sorted((k, str(v)) for k, v in self.values.items()))


@dataclass(frozen=True, slots=True)
class FailureGroup:
    first: Failure  # every failure of the group has the same reason
    urls: list[str]


@dataclass
class ImportReport:
    total: int
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return len(self.added) + len(self.already) + len(self.failures)

    @property
    def not_checked(self) -> int:
        return self.total - self.checked

    def failure_groups(self) -> list[FailureGroup]:
        """Failures grouped by reason, the most common reason first."""
        groups: dict[tuple, FailureGroup] = {}
        for failure in self.failures:
            group = groups.setdefault(failure.reason, FailureGroup(failure, []))
            group.urls.append(failure.url)
        return sorted(groups.values(), key=lambda g: -len(g.urls))


class _FileOrder:
    """Turns in file order: feed i's comes once every feed before it is decided
    (subscribed, failed or skipped), however the checks' ends are ordered."""

    def __init__(self, count: int) -> None:
        self._decided = [False] * count
        self._turns = [asyncio.Event() for _ in range(count + 1)]  # [k]: all before k decided
        self._turns[0].set()
        self._first_undecided = 0

    async def wait(self, index: int) -> None:
        await self._turns[index].wait()

    def decide(self, index: int) -> None:
        """Synchronous, so a failed or cancelled feed never holds up the ones after it."""
        self._decided[index] = True
        while self._first_undecided < len(self._decided) and self._decided[self._first_undecided]:
            self._first_undecided += 1
            self._turns[self._first_undecided].set()


async def import_feeds(
    subscribe: Subscribe,
    feeds: Sequence[OpmlFeed],
    *,
    concurrency: int = IMPORT_CONCURRENCY,
    lookahead: int = IMPORT_LOOKAHEAD,
    on_checked: Callable[[ImportReport], Awaitable[None]] | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> ImportReport:
    """Subscribe to each feed (checked like /subscribe), `concurrency` checks at a time.

    The checks end in any order, but `subscribe` awaits its turn before writing, so the
    subscriptions are made, and listed, in the file's order. A feed waiting for its turn
    frees its check slot; at most `lookahead` feeds are between starting and being decided.
    A failed feed is reported as soon as its check fails and holds up no other.

    `on_checked` is awaited after each feed (progress); when `keep_going()` turns false
    (the bot is stopping) no further feed is started and the rest count as not checked.
    """
    report = ImportReport(total=len(feeds))
    order = _FileOrder(len(feeds))
    slots = asyncio.Semaphore(max(1, concurrency))
    ahead = max(1, concurrency, lookahead)

    async def one(index: int, url: str) -> None:
        held = False

        async def turn() -> None:
            nonlocal held
            if held:  # checked: the next feed's check may start while this one waits
                held = False
                slots.release()
            await order.wait(index)

        try:
            await order.wait(max(0, index - ahead + 1))
            await slots.acquire()
            held = True
            if not keep_going():
                return
            await _import_one(subscribe, url, turn, report)
        finally:
            if held:
                slots.release()
            order.decide(index)
        if on_checked is not None:
            await on_checked(report)

    await asyncio.gather(*(one(index, feed.url) for index, feed in enumerate(feeds)))
    return report


async def _import_one(subscribe: Subscribe, url: str, turn: Turn, report: ImportReport) -> None:
    try:
        result = await subscribe(url, turn=turn)
    except FeedError as error:
        report.failures.append(Failure(url, feed_failure=error.failure))
    except UserError as error:
        report.failures.append(Failure(url, key=error.key, values=dict(error.values)))
    except Exception:
        # A bug, not the feed's fault: logged in full, counted, and the import goes on.
        log.exception("event=import_feed_crashed url=%r", url[:200])
        report.failures.append(Failure(url, key="error.internal"))
    else:
        (report.added if result.created else report.already).append(url)
