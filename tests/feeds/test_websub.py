"""WebSub's pieces on their own: discovery (Link headers, feed links), signatures, the
listener, the settings, the guarded POST to a hub, the safety-net interval."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.config import ConfigError, ListenAddress, load_settings
from bot.errors import FailureKind, FeedError
from bot.feeds.fetch import Fetcher, FetchResult
from bot.feeds.parse import parse_feed
from bot.feeds.schedule import safety_net_delay
from bot.feeds.websub import (
    HubLinks,
    discover,
    parse_link_header,
    renewal_time,
    request_url,
    sign,
    signature_valid,
)
from bot.listener import Listener
from tests.conftest import make_settings
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.websub_hub import FakeHub
from tests.helpers import feed_document, fetch_result

FEED = "https://news.test/feed.xml"


def fetched(url: str = FEED, links: tuple[str, ...] = ()) -> FetchResult:
    return fetch_result(url, links)


document = feed_document


# --- discovery ------------------------------------------------------------------------------


def test_link_headers_are_read_in_every_form() -> None:
    values = (
        '<https://hub.test/>; rel="hub", </feed.xml>; rel=self',
        "<https://alt.test/x>; title=\"a, b; c\"; rel='other', "
        '<https://h2.test/>; REL="hub alternate"',
    )
    links = parse_link_header(values)
    assert links[0] == ("https://hub.test/", frozenset({"hub"}))
    assert links[1] == ("/feed.xml", frozenset({"self"}))
    assert ("https://h2.test/", frozenset({"hub", "alternate"})) in links
    assert all(url != "a" for url, _ in links)


def test_link_headers_come_first_and_the_self_url_is_the_topic() -> None:
    headers = ('<https://hub.test/>; rel="hub", </canonical.xml>; rel="self"',)
    found = discover(
        fetched(links=headers),
        document(hubs=("https://other-hub.test/",), self_url="https://x.test/doc-self"),
        allow_private=False,
    )
    assert found == HubLinks("https://hub.test/", "https://news.test/canonical.xml")


def test_without_link_headers_the_feed_links_are_read() -> None:
    found = discover(
        fetched(links=('<https://news.test/>; rel="alternate"',)),
        document(hubs=("https://hub.test/",), self_url="https://news.test/self.xml"),
        allow_private=False,
    )
    assert found == HubLinks("https://hub.test/", "https://news.test/self.xml")
    # No self link: the URL that was fetched is the topic.
    assert discover(fetched(), document(hubs=("https://hub.test/",)), allow_private=False) == (
        HubLinks("https://hub.test/", FEED)
    )
    assert discover(fetched(), document(), allow_private=False) is None


def test_a_hub_announced_over_http_is_asked_over_https() -> None:
    assert request_url("http://pubsubhubbub.appspot.com/", allow_private=False) == (
        "https://pubsubhubbub.appspot.com/"
    )
    assert request_url("http://hub.test:8080/?pushpress=hub", allow_private=False) == (
        "https://hub.test:8080/?pushpress=hub"
    )
    # Plain http stays only for a literal private address the operator allowed.
    assert request_url("http://127.0.0.1:9/hub", allow_private=True) == "http://127.0.0.1:9/hub"
    assert request_url("http://127.0.0.1:9/hub", allow_private=False) == "https://127.0.0.1:9/hub"
    assert request_url("http://hub.test/", allow_private=True) == "https://hub.test/"
    assert request_url("ftp://hub.test/", allow_private=False) is None
    assert request_url("not a url", allow_private=False) is None


def test_an_unusable_hub_is_skipped_for_the_next_one() -> None:
    found = discover(
        fetched(), document(hubs=("javascript:alert(1)", "https://hub.test/")), allow_private=False
    )
    assert found == HubLinks("https://hub.test/", FEED)


def test_the_parser_reads_hub_and_self_of_atom_and_rss_but_not_of_entries() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <link rel="hub" href="https://hub.test/"/><link rel="self" href="/atom.xml"/>
    <link href="https://news.test/"/><entry><title>e</title><id>1</id>
    <link rel="hub" href="https://evil.test/"/></entry></feed>"""
    parsed = parse_feed(atom, url="https://news.test/feeds/atom.xml")
    assert parsed.hubs == ("https://hub.test/",)
    assert parsed.self_url == "https://news.test/atom.xml"
    rss = rss_document(
        [FeedItem("s", "https://news.test/s")],
        links=[("hub", "https://hub.test/"), ("self", FEED), ("hub", "https://hub2.test/")],
    )
    parsed = parse_feed(rss, url=FEED)
    assert parsed.hubs == ("https://hub.test/", "https://hub2.test/")
    assert parsed.self_url == FEED
    plain = parse_feed(rss_document([FeedItem("s", "https://news.test/s")]), url=FEED)
    assert (plain.hubs, plain.self_url) == ((), "")


async def test_the_fetcher_keeps_the_link_headers(feed_server: FeedServer, settings) -> None:
    link = '<https://hub.test/>; rel="hub", <https://news.test/self>; rel="self"'
    feed_server.serve("/f.xml", rss_document([]), headers={"Link": link})
    async with Fetcher(settings.fetch) as fetcher:
        result = await fetcher.fetch(feed_server.url("/f.xml"))
    assert result.links == (link,)


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_a_signature_of_every_registered_method_is_checked(method: str) -> None:
    body, secret = b"<rss>story</rss>", "s3cret"
    good = sign(body, secret, method)
    assert good.startswith(f"{method}=")
    assert signature_valid(good, body, secret)
    assert signature_valid(good.upper().replace(method.upper(), method), body, secret)
    assert not signature_valid(good, body + b" ", secret)
    assert not signature_valid(good, body, "other")


@pytest.mark.parametrize(
    "header", [None, "", "sha256", "sha256=", "md5=abc", "=abc", "sha256=zz", "sha256 abc"]
)
def test_a_missing_or_malformed_signature_is_invalid(header: str | None) -> None:
    assert not signature_valid(header, b"body", "secret")


def test_the_fake_hub_signs_as_the_bot_checks() -> None:
    """The fake hub computes its signatures on its own; both agree on the spec's form."""
    hub = FakeHub(method="sha1")
    assert signature_valid(hub.sign(b"x", "k"), b"x", "k")


def test_renewal_is_due_with_a_tenth_of_the_lease_left() -> None:
    assert renewal_time(1_000_000, 864000) == 1_000_000 + int(864000 * 0.9 * 1000)


# --- the safety-net interval --------------------------------------------------------------


def test_a_pushed_feed_is_polled_at_the_slow_safety_net_rate(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # poll.interval 1 s
    rng = random.Random(1)
    pushed = safety_net_delay(1.0, pushed=True, settings=settings, rng=rng)
    assert 3600 * 0.9 <= pushed <= 3600 * 1.1
    assert safety_net_delay(1.0, pushed=False, settings=settings, rng=rng) == 1.0
    # A longer interval of its own (a feed hint) stays.
    assert safety_net_delay(20000.0, pushed=True, settings=settings, rng=rng) == 20000.0


# --- settings -------------------------------------------------------------------------------


def test_listener_settings_are_read_and_checked() -> None:
    settings = load_settings(
        None,
        {
            "NEWS_NOTIFIER_WEBHOOK_URL": "https://bot.example:8443/tg",
            "NEWS_NOTIFIER_LISTEN": "[::1]:80",
        },
    )
    assert settings.listener.listen == ListenAddress("::1", 80)
    assert settings.listener.public_origin == "https://bot.example:8443"
    defaults = load_settings(None, {})
    assert (defaults.listener.webhook_url, defaults.listener.listen) == (None, None)
    assert defaults.websub.poll_interval == 3600 and defaults.websub.lease_seconds == 864000


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"NEWS_NOTIFIER_WEBHOOK_URL": "http://bot.example/"}, "an https:// URL"),
        ({"NEWS_NOTIFIER_WEBHOOK_URL": "https:///nohost"}, "an https:// URL"),
        ({"NEWS_NOTIFIER_WEBHOOK_URL": "https://u:p@bot.example/"}, "an https:// URL"),
        ({"NEWS_NOTIFIER_LISTEN": "8080"}, "host:port"),
        ({"NEWS_NOTIFIER_LISTEN": "::1:8080"}, "host:port"),
        ({"NEWS_NOTIFIER_LISTEN": "0.0.0.0:70000"}, "host:port"),
        ({"NEWS_NOTIFIER_WEBHOOK_URL": "https://bot.example/"}, "NEWS_NOTIFIER_LISTEN"),
    ],
)
def test_bad_listener_settings_stop_with_one_line(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ)
    assert expected in str(error.value) and "\n" not in str(error.value)


# --- the listener ---------------------------------------------------------------------------


async def test_the_listener_serves_healthz_and_registered_routes() -> None:
    state = {"healthy": True}

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    listener = Listener(
        ListenAddress("127.0.0.1", 0),
        max_body_bytes=1024,
        healthy=lambda: (
            state["healthy"],
            "healthy: fine" if state["healthy"] else "unhealthy: no",
        ),
    )
    listener.add_routes([web.get("/hello", hello)])
    await listener.start()
    try:
        with pytest.raises(RuntimeError):
            listener.add_routes([web.get("/late", hello)])
        async with aiohttp.ClientSession() as session:
            async with session.get(listener.base_url + "/healthz") as response:
                assert (response.status, await response.text()) == (200, "healthy: fine")
            state["healthy"] = False
            async with session.get(listener.base_url + "/healthz") as response:
                assert (response.status, await response.text()) == (503, "unhealthy: no")
            async with session.get(listener.base_url + "/hello") as response:
                assert await response.text() == "hello"
            async with session.post(listener.base_url + "/hello", data=b"x" * 2048) as response:
                assert response.status in (405, 413)
    finally:
        await listener.stop()


async def test_an_async_health_check_that_fails_answers_503() -> None:
    async def broken() -> tuple[bool, str]:
        raise RuntimeError("database gone")

    listener = Listener(ListenAddress("127.0.0.1", 0), max_body_bytes=1024, healthy=broken)
    await listener.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(listener.base_url + "/healthz") as response,
        ):
            assert response.status == 503
    finally:
        await listener.stop()


# --- a hub request goes through the fetch guard ------------------------------------------


async def test_a_hub_on_a_private_address_is_never_posted_to(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS="0")
    async with FakeHub() as hub, Fetcher(settings.fetch) as fetcher:
        with pytest.raises(FeedError) as error:
            await fetcher.post_form(hub.url, {"hub.mode": "subscribe"})
        assert error.value.failure.kind is FailureKind.ADDRESS_NOT_ALLOWED
        assert hub.requests == []


async def test_a_hub_post_answers_and_follows_307(tmp_path: Path, feed_server: FeedServer) -> None:
    settings = make_settings(tmp_path)
    async with FakeHub() as hub, Fetcher(settings.fetch) as fetcher:
        hub.verify_automatically = False
        feed_server.redirect("/old-hub", hub.url, status=307)
        form = {"hub.mode": "subscribe", "hub.topic": FEED, "hub.callback": "https://b.test/c"}
        answer = await fetcher.post_form(feed_server.url("/old-hub"), form)
        assert (answer.status, answer.url) == (202, hub.url)
        assert [r.topic for r in hub.requests] == [FEED]
