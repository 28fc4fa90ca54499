"""Finding the feed of a web page (issue 15, part 4): the links a page names, the common
paths, the budget every candidate shares, and what /subscribe makes of it."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import bot.feeds.fetch as fetch_module
from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import FailureKind, FeedLinkError, FeedOption, NotAFeedError, SeveralFeedsError
from bot.feeds.discover import COMMON_PATHS, Budget, FeedLink, common_feed_urls, feed_links
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Store
from bot.usecases.feed_choices import MAX_OFFERS, OFFER_SECONDS, FeedOffers
from bot.usecases.subscriptions import Subscriptions
from tests.fakes.feed_server import FeedItem, FeedServer

PAGE = "https://www.example.com/news/today.html"
RSS = "application/rss+xml"


def page(head: str, body: str = "") -> bytes:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()


def link(href: str, kind: str = RSS, rel: str = "alternate", title: str | None = None) -> str:
    titled = f' title="{title}"' if title is not None else ""
    return f'<link rel="{rel}" type="{kind}" href="{href}"{titled}>'


def urls(body: bytes, url: str = PAGE, content_type: str | None = None) -> list[str]:
    return [found.url for found in feed_links(body, url, content_type)]


# --- the page's own word -------------------------------------------------------------------


def test_relative_links_resolve_against_the_page() -> None:
    body = page(link("feed.xml") + link("/rss") + link("../atom", "application/atom+xml"))
    assert urls(body) == [
        "https://www.example.com/news/feed.xml",
        "https://www.example.com/rss",
        "https://www.example.com/atom",
    ]
    assert urls(page(link("//cdn.example.net/f.xml"))) == ["https://cdn.example.net/f.xml"]


def test_base_href_sets_where_relative_links_resolve() -> None:
    assert urls(page('<base href="/blog/">' + link("feed.xml"))) == [
        "https://www.example.com/blog/feed.xml"
    ]
    assert urls(page('<base href="https://other.example.org/x/">' + link("f"))) == [
        "https://other.example.org/x/f"
    ]
    # Only the first <base> counts; one that is not http(s) is ignored.
    two = '<base href="/one/"><base href="/two/">' + link("f")
    assert urls(page(two)) == ["https://www.example.com/one/f"]
    assert urls(page('<base href="javascript:alert(1)">' + link("f"))) == [
        "https://www.example.com/news/f"
    ]
    # A <base> with no href (target only) changes nothing.
    assert urls(page('<base target="_blank">' + link("f"))) == ["https://www.example.com/news/f"]


def test_only_rss_atom_and_rdf_links_count() -> None:
    body = page(
        link("/rss.xml", "application/rss+xml")
        + link("/atom.xml", "application/atom+xml")
        + link("/rdf.xml", "application/rdf+xml")
        + link("/feed.json", "application/feed+json")  # JSON Feed: the bot cannot read it
        + link("/json", "application/json")
        + link("/amp", "text/html")
        + link("/print.css", "text/css", rel="stylesheet")
        + link("/x.xml", RSS, rel="canonical")
        + '<link rel="alternate" href="/no-type.xml">'
        + link("/upper.xml", "Application/RSS+XML; charset=utf-8", rel="ALTERNATE feed")
    )
    assert urls(body) == [
        "https://www.example.com/rss.xml",
        "https://www.example.com/atom.xml",
        "https://www.example.com/rdf.xml",
        "https://www.example.com/upper.xml",
    ]


def test_each_feed_once_in_page_order_with_its_title() -> None:
    body = page(
        link("/feed", title=" Example  News ")
        + link("https://www.example.com/feed", title="again")
        + link("/feed#top")  # the same address: a fragment names no other document
        + link("/comments/feed", title="Comments"),
        body=link("/in-body.xml"),  # misplaced in <body>; browsers still see it
    )
    assert feed_links(body, PAGE) == [
        FeedLink("https://www.example.com/feed", "Example News"),
        FeedLink("https://www.example.com/comments/feed", "Comments"),
        FeedLink("https://www.example.com/in-body.xml", ""),
    ]


def test_junk_links_are_left_out() -> None:
    body = page(
        link("")
        + link("   ")
        + link("javascript:void(0)")
        + link("mailto:news@example.com")
        + link("ftp://example.com/feed.xml")
        + link("http://[broken/feed")
        + link("http:///nohost")
        + link("https://example.com/" + "a" * 3000)
        + link(PAGE)  # the page itself: known to be a page already
        + link("/ok.xml")
    )
    assert urls(body) == ["https://www.example.com/ok.xml"]
    assert urls(b"") == []
    assert urls(b"\x00\xff<<<not html at all") == []


def test_the_http_charset_decides_how_a_title_reads() -> None:
    body = page('<meta charset="gbk">' + link("/f", title="新闻")).replace(
        "新闻".encode(), "新闻".encode("gbk")
    )
    assert feed_links(body, PAGE)[0].title == "新闻"  # <meta charset> without an HTTP one
    utf8 = page(link("/f", title="新闻"))
    assert feed_links(utf8, PAGE, "text/html; charset=utf-8")[0].title == "新闻"
    assert feed_links(utf8, PAGE, "text/html; charset=nonsense")[0].title == "新闻"


def test_common_paths_sit_at_the_site_root() -> None:
    assert common_feed_urls(PAGE) == [f"https://www.example.com{p}" for p in COMMON_PATHS]
    assert "https://www.example.com/feed" not in common_feed_urls("https://www.example.com/feed")


# --- /subscribe with a page's address --------------------------------------------------------


class Subscriber:
    def __init__(self, store: Store, settings: Settings, clock: FakeClock, fetcher: Fetcher):
        self.pipeline = FeedPipeline(
            store, fetcher, settings, clock, make_router(KeywordIndex()), seed=1
        )
        self.subscriptions = Subscriptions(store, self.pipeline, clock)
        self.store = store

    async def subscribed(self, chat_id: int) -> list[str]:
        return [s.feed_url for s in await self.store.chats.subscriptions(chat_id)]


@pytest.fixture
async def subscriber(
    store: Store, settings: Settings, clock: FakeClock
) -> AsyncIterator[Subscriber]:
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=clock.now_ms())
    async with Fetcher(settings.fetch) as fetcher:
        yield Subscriber(store, settings, clock, fetcher)


def serve_page(server: FeedServer, head: str, path: str = "/") -> str:
    server.serve(path, page(head), content_type="text/html; charset=utf-8")
    return server.url(path)


STORIES = [FeedItem("One", "https://n.test/1", guid="1"), FeedItem("Two", "https://n.test/2")]


async def test_one_feed_named_is_subscribed_with_no_second_fetch(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    feed_server.publish("/news/rss.xml", STORIES, title="Example News")
    url = serve_page(feed_server, link("news/rss.xml"), path="/index.html")

    result = await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert (result.title, result.url, result.page_url) == (
        "Example News",
        feed_server.url("/news/rss.xml"),
        url,
    )
    assert result.created and result.entries == 2
    assert await subscriber.subscribed(1) == [feed_server.url("/news/rss.xml")]
    assert feed_server.hits("/index.html") == 1
    assert feed_server.hits("/news/rss.xml") == 1  # the search's fetch is the check's
    # Sent again: the same feed found, and already followed.
    again = await subscriber.subscriptions.subscribe(1, url, thread_id=None)
    assert not again.created and again.page_url == url


async def test_several_feeds_are_offered_each_once(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    feed_server.publish("/posts.xml", STORIES, title="Posts")
    feed_server.publish("/comments.xml", STORIES[:1], title="Comments")
    feed_server.redirect("/old-posts", "/posts.xml", status=301)
    url = serve_page(
        feed_server,
        link("/posts.xml") + link("/gone.xml") + link("/comments.xml") + link("/old-posts"),
    )

    with pytest.raises(SeveralFeedsError) as several:
        await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert several.value.page_url == url
    assert several.value.feeds == (
        FeedOption(feed_server.url("/posts.xml"), "Posts"),
        FeedOption(feed_server.url("/comments.xml"), "Comments"),
    )
    assert await subscriber.subscribed(1) == []
    assert await subscriber.store.feeds.by_url(feed_server.url("/posts.xml")) is None


async def test_common_paths_are_tried_when_the_page_names_no_feed(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    feed_server.publish("/atom.xml", STORIES, title="Found at a usual place")
    feed_server.redirect("/feed", "/atom.xml", status=301)  # the same feed twice
    url = serve_page(feed_server, "<title>Home</title>", path="/home")

    result = await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert (result.title, result.page_url) == ("Found at a usual place", url)
    assert await subscriber.subscribed(1) == [feed_server.url("/atom.xml")]
    # Each usual place asked once (/atom.xml also through /feed), and the feed found is
    # not fetched again to be checked.
    hits = {path: feed_server.hits(path) for path in COMMON_PATHS}
    assert hits == {path: 2 if path == "/atom.xml" else 1 for path in COMMON_PATHS}


async def test_a_page_with_no_feed_gets_the_not_a_feed_answer(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    url = serve_page(feed_server, "<title>Home</title>", path="/home")

    with pytest.raises(NotAFeedError) as error:
        await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert error.value.failure.code == "not_a_feed:html"
    assert not isinstance(error.value, SeveralFeedsError)
    assert [feed_server.hits(path) for path in COMMON_PATHS] == [1] * 6


async def test_no_search_when_told_not_to(subscriber: Subscriber, feed_server: FeedServer) -> None:
    feed_server.publish("/rss.xml", STORIES)
    url = serve_page(feed_server, link("/rss.xml"), path="/home")

    with pytest.raises(NotAFeedError):
        await subscriber.subscriptions.subscribe(1, url, thread_id=None, discover=False)

    assert feed_server.hits("/rss.xml") == 0


async def test_a_page_makes_at_most_six_fetches(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    for n in range(9):
        feed_server.publish(f"/f{n}.xml", [FeedItem(f"S{n}", f"https://n.test/{n}")], title=f"F{n}")
    url = serve_page(feed_server, "".join(link(f"/f{n}.xml") for n in range(9)), path="/home")

    with pytest.raises(SeveralFeedsError) as several:
        await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert [feed.title for feed in several.value.feeds] == [f"F{n}" for n in range(6)]
    assert sum(feed_server.hits(f"/f{n}.xml") for n in range(9)) == 6


async def test_a_feed_link_that_fails_is_named_with_its_failure(
    subscriber: Subscriber, feed_server: FeedServer
) -> None:
    url = serve_page(feed_server, link("/missing.xml") + link("/also-missing.xml"), path="/home")

    with pytest.raises(FeedLinkError) as error:
        await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert error.value.link == feed_server.url("/missing.xml")
    assert error.value.failure.code == "http_status:404"
    assert feed_server.hits("/rss.xml") == 0  # the page's word is final: no guessing


async def test_the_search_stops_at_its_time_budget(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    # A feed link that answers a byte now and then, for ever, and a fetcher that would
    # wait an hour for it: only the search's own budget can end this.
    feed_server.trickle("/endless.xml", b" ", interval=0.2)
    url = serve_page(feed_server, link("/endless.xml"), path="/home")
    patient = dataclasses.replace(settings.fetch, total_timeout=3600.0)
    await store.chats.upsert(1, kind="private", title="", language="en", now_ms=clock.now_ms())

    async with Fetcher(patient) as fetcher:
        subscriber = Subscriber(store, settings, clock, fetcher)
        subscriber.pipeline.discovery_budget = Budget(seconds=0.5)
        # 30 s: the 0.5 s budget with a wide margin for a busy machine.
        async with asyncio.timeout(30):
            with pytest.raises(FeedLinkError) as error:
                await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert error.value.failure.kind is FailureKind.TIMEOUT
    assert await subscriber.subscribed(1) == []


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """127.0.0.1 (the feed server) stands in for a public host, so the guard can be on;
    every other address keeps the real policy (as in tests/test_fetch.py)."""
    real_policy = fetch_module.is_public_address

    def policy(address: Any) -> bool:
        return ipaddress.ip_address(str(address)) == ipaddress.ip_address(
            "127.0.0.1"
        ) or real_policy(address)

    monkeypatch.setattr(fetch_module, "is_public_address", policy)
    yield


@pytest.mark.usefixtures("loopback_counts_as_public")
async def test_a_feed_link_to_a_private_address_is_refused(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    guarded = dataclasses.replace(settings.fetch, allow_private_networks=False)
    url = serve_page(feed_server, link("http://10.0.0.1/feed.xml"), path="/home")

    async with Fetcher(guarded) as fetcher:
        subscriber = Subscriber(store, settings, clock, fetcher)
        with pytest.raises(FeedLinkError) as error:
            await subscriber.subscriptions.subscribe(1, url, thread_id=None)

    assert error.value.failure.kind is FailureKind.ADDRESS_NOT_ALLOWED
    assert error.value.link == "http://10.0.0.1/feed.xml"


# --- offers --------------------------------------------------------------------------------

FEEDS = (FeedOption("https://a.test/rss", "A"), FeedOption("https://b.test/rss", "B"))


def test_an_offer_is_kept_for_its_chat_until_it_expires() -> None:
    clock = FakeClock(0)
    offers = FeedOffers(clock)
    token = offers.add(7, 42, "https://a.test/", FEEDS)

    assert len(f"feed:{token}:9".encode()) <= 64
    picked = offers.choice(7, token, 1)
    assert picked is not None and (picked.url, picked.thread_id) == ("https://b.test/rss", 42)
    assert offers.choice(8, token, 1) is None  # another chat's offer
    assert offers.choice(7, token, 2) is None  # no such feed in it
    assert offers.choice(7, "00000000", 0) is None  # never made (or made before a restart)
    clock.advance(OFFER_SECONDS - 1)
    assert offers.choice(7, token, 0) is not None
    clock.advance(1)
    assert offers.choice(7, token, 0) is None


def test_offers_are_bounded() -> None:
    offers = FeedOffers(FakeClock(0))
    first = offers.add(1, None, "https://a.test/", FEEDS)
    for chat in range(MAX_OFFERS):
        offers.add(chat, None, "https://a.test/", FEEDS)
    assert offers.choice(1, first, 0) is None  # the oldest made room
    assert len(offers._offers) == MAX_OFFERS
