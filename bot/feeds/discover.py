"""Finding the feed of a web page: someone typed a site's address where a feed's belongs.

The page was fetched already (it is what did not parse as a feed). Its own word comes first:
the feeds it names in `<link rel="alternate" type="application/rss+xml">` (Atom and RDF too;
JSON Feed is skipped, the bot does not read it), resolved against the page's address and
its `<base href>`. Only a page that names none has the usual places tried: /feed, /rss,
/rss.xml, /atom.xml, /index.xml and /feed.xml at its site's root.

Every candidate is fetched like any feed, through the Fetcher (private addresses refused
unless allowed, the size cap, the time limits), and read with the feed parser: a candidate
counts only when it is a feed. All candidates of one page share one small budget (Budget):
a page cannot make the bot fetch more than a few addresses, nor keep it busy for long,
whatever it names.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from bot.errors import (
    FailureKind,
    FeedError,
    FeedFailure,
    FeedLinkError,
    FeedOption,
    NotAFeedError,
    SeveralFeedsError,
)
from bot.feeds.fetch import MAX_URL_LENGTH, Fetcher, FetchResult
from bot.feeds.parse import FeedDocument, parse_feed
from bot.text import clean

log = logging.getLogger(__name__)

# Media types of a feed link the bot can read. "application/feed+json" (JSON Feed) is
# left out on purpose: offered, it would fail as "not a feed".
FEED_LINK_TYPES = frozenset(("application/rss+xml", "application/atom+xml", "application/rdf+xml"))
# Where sites without a feed link usually keep their feed (WordPress, Hugo, Jekyll, Ghost…).
COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/index.xml", "/feed.xml")
# A page naming more feed links than this has the rest ignored (none gets a fetch anyway).
MAX_LINKS = 20
MAX_TITLE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Budget:
    """What finding the feeds of one page may cost, in all.

    Six fetches cover the common paths, or the six first feeds a page names (pages that
    name more are rare: a blog names its posts and its comments); so a choice offers at
    most six feeds. Fifteen seconds, a fraction of one feed's own time limit, keep the
    answer to /subscribe within what a person waits for; three fetches at a time keep
    a site from seeing a burst.
    """

    fetches: int = 6
    seconds: float = 15.0
    concurrency: int = 3


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True, slots=True)
class FeedLink:
    """A feed a page names: its absolute address and the link's title ("" when none)."""

    url: str
    title: str


# --- the page's own word -----------------------------------------------------------------


def feed_links(body: bytes, page_url: str, content_type: str | None = None) -> list[FeedLink]:
    """The feeds an HTML page names, in page order, each address once.

    Relative addresses are resolved against the page's `<base href>` (itself resolved
    against the page's address), else the page's address; links that are not http(s)
    after that, too long, or the page itself are left out. Pure and CPU-bound.
    """
    tree = _html_tree(body, content_type)
    base = _base_url(tree, page_url)
    page = urldefrag(page_url).url
    links: dict[str, FeedLink] = {}
    for node in tree.css("link[rel][href][type]"):
        attributes = node.attributes
        rel = (attributes.get("rel") or "").lower().split()
        media_type = (attributes.get("type") or "").partition(";")[0].strip().lower()
        if "alternate" not in rel or media_type not in FEED_LINK_TYPES:
            continue
        url = _absolute_http_url(base, attributes.get("href") or "")
        if url is None or url == page or url in links:
            continue
        title = clean(attributes.get("title") or "")[:MAX_TITLE_CHARS]
        links[url] = FeedLink(url, title)
        if len(links) == MAX_LINKS:
            break
    return list(links.values())


def common_feed_urls(page_url: str) -> list[str]:
    """The usual feed addresses at the root of the page's site (not the page itself)."""
    parts = urlsplit(page_url)
    root = f"{parts.scheme}://{parts.netloc}"
    page = urldefrag(page_url).url
    return [root + path for path in COMMON_PATHS if root + path != page]


def _html_tree(body: bytes, content_type: str | None) -> LexborHTMLParser:
    """The page as a tree. The HTTP charset wins (as in browsers); without one, lexbor
    finds the encoding as the HTML standard says (BOM, <meta charset>, else UTF-8)."""
    charset = _charset(content_type)
    if charset is not None:
        return LexborHTMLParser(body.decode(charset, "replace"))
    return LexborHTMLParser(body, encoding=True)


def _charset(content_type: str | None) -> str | None:
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            try:
                return codecs.lookup(value.strip().strip("\"'")).name
            except LookupError:
                return None
    return None


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    """The first <base href> (the only one that counts), if it is a usable http(s) URL."""
    base = tree.css_first("base[href]")
    if base is None:
        return page_url
    return _absolute_http_url(page_url, base.attributes.get("href") or "") or page_url


def _absolute_http_url(base: str, href: str) -> str | None:
    href = href.strip()
    if not href:
        return None
    try:
        url = urldefrag(urljoin(base, href)).url
        parts = urlsplit(url)
    except ValueError:  # "http://[" and other wreckage
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_LENGTH:
        return None
    return url


# --- trying the candidates -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One candidate tried: a feed (`result` and `document`) or why not (`error`)."""

    url: str
    result: FetchResult | None = None
    document: FeedDocument | None = None
    error: FeedError | None = None


@dataclass(frozen=True, slots=True)
class FoundFeed:
    """A feed found for a page, with the fetch that found it (its bytes in hand)."""

    url: str  # the address to subscribe to (after permanent redirects)
    title: str
    result: FetchResult = field(repr=False)


@dataclass(frozen=True, slots=True)
class Discovery:
    """What a page led to."""

    page_url: str
    named: bool  # the page named its feeds (else the common paths were tried)
    found: list[FoundFeed]
    failed: list[Probe]

    def only_feed(self) -> FoundFeed:
        """The one feed found. Raises SeveralFeedsError (a choice to make), FeedLinkError
        (the page names its feed, which failed: the first such failure) or, when nothing
        was found, NotAFeedError("html"), the answer for a page with no feed."""
        if len(self.found) == 1:
            return self.found[0]
        if self.found:
            options = tuple(FeedOption(feed.url, feed.title) for feed in self.found)
            raise SeveralFeedsError(self.page_url, options)
        if self.named and self.failed and self.failed[0].error is not None:
            raise FeedLinkError(self.failed[0].url, self.failed[0].error)
        raise NotAFeedError("html")


async def discover_feeds(
    fetcher: Fetcher,
    page: FetchResult,
    *,
    executor: Executor | None = None,
    budget: Budget = DEFAULT_BUDGET,
) -> Discovery:
    """The feeds a fetched HTML page leads to, tried within `budget`."""
    loop = asyncio.get_running_loop()
    body = page.body or b""
    links = await loop.run_in_executor(
        executor, partial(feed_links, body, page.url, page.content_type)
    )
    candidates = [link.url for link in links] or common_feed_urls(page.url)
    probes = await probe_all(fetcher, candidates, executor=executor, budget=budget)
    titles = {link.url: link.title for link in links}
    found = _distinct_feeds(probes, titles)
    failed = [probe for probe in probes if probe.error is not None]
    log.info(
        "event=feeds_discovered page=%s named=%d tried=%d found=%d",
        page.url,
        len(links),
        len(probes),
        len(found),
    )
    return Discovery(page.url, bool(links), found, failed)


async def probe_all(
    fetcher: Fetcher,
    candidates: Sequence[str],
    *,
    executor: Executor | None = None,
    budget: Budget = DEFAULT_BUDGET,
) -> list[Probe]:
    """Try the first `budget.fetches` candidates, a few at a time, for `budget.seconds` in
    all; one still running then is cut off and counts as a timeout. In candidate order."""
    chosen = list(candidates)[: budget.fetches]
    if not chosen:
        return []
    gate = asyncio.Semaphore(budget.concurrency)

    async def gated(url: str) -> Probe:
        async with gate:
            return await probe(fetcher, url, executor=executor)

    tasks = [asyncio.ensure_future(gated(url)) for url in chosen]
    _done, pending = await asyncio.wait(tasks, timeout=budget.seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    late = FeedError(
        FeedFailure(FailureKind.TIMEOUT), f"page's feed search past {budget.seconds} s"
    )
    return [
        task.result() if task not in pending else Probe(url, error=late)
        for url, task in zip(chosen, tasks, strict=True)
    ]


async def probe(fetcher: Fetcher, url: str, *, executor: Executor | None = None) -> Probe:
    """Fetch one candidate and read it: a feed, or the reason it is not one."""
    loop = asyncio.get_running_loop()
    try:
        result = await fetcher.fetch(url)
        document = await loop.run_in_executor(
            executor,
            partial(
                parse_feed, result.body or b"", url=result.url, content_type=result.content_type
            ),
        )
    except FeedError as error:
        return Probe(url, error=error)
    except Exception as error:  # a parser crash on hostile bytes: that candidate's fault
        failure = FeedFailure(FailureKind.INTERNAL, detail=type(error).__name__)
        return Probe(url, error=FeedError(failure))
    return Probe(url, result=result, document=document)


def _distinct_feeds(probes: Sequence[Probe], link_titles: dict[str, str]) -> list[FoundFeed]:
    """The feeds among the probes, each once: two candidates that end at the same address
    (/feed redirecting to /feed.xml) or answer the same bytes (/rss and /feed of one blog)
    are one feed, the first in candidate order."""
    found: list[FoundFeed] = []
    seen: set[str] = set()
    for tried in probes:
        if tried.result is None or tried.document is None:
            continue
        result = tried.result
        keys = {result.url, result.body_hash or result.url}
        if keys & seen:
            continue
        seen |= keys
        title = tried.document.title or link_titles.get(tried.url) or tried.url
        found.append(FoundFeed(result.permanent_redirect or tried.url, title, result))
    return found
