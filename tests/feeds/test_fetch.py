"""The feed fetcher against a local feed server: validators, caps, timeouts, redirects,
status codes, URL checks and the private-address guard."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

import bot.feeds.fetch as fetch_module
from bot.config import FetchSettings, load_settings
from bot.errors import FailureKind, FeedError
from bot.feeds.fetch import (
    Fetcher,
    body_digest,
    is_public_address,
    literal_address,
    parse_max_age,
    parse_retry_after,
)
from tests.fakes.feed_server import FeedItem, FeedServer, gzip_bomb_bytes, rss_document

CAP = 256 * 1024
USER_AGENT = "news-notifier-tests/1 (+https://feeds.test/)"
STORY = FeedItem(title="Kremlin says", link="https://news.test/1", guid="story-1")


def make_settings(**overrides: Any) -> FetchSettings:
    values: dict[str, Any] = {
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "total_timeout": 3.0,
        "max_body_bytes": CAP,
        "max_redirects": 5,
        "allow_private_networks": True,
        "user_agent": USER_AGENT,
    }
    values.update(overrides)
    return FetchSettings(**values)


async def fetch_error(fetcher: Fetcher, url: str, **validators: str) -> FeedError:
    with pytest.raises(FeedError) as caught:
        await fetcher.fetch(url, **validators)
    return caught.value


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with FeedServer() as feed_server:
        yield feed_server


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    async with Fetcher(make_settings()) as client:
        yield client


@pytest.fixture
async def guarded() -> AsyncIterator[Fetcher]:
    async with Fetcher(make_settings(allow_private_networks=False)) as client:
        yield client


@pytest.fixture
async def connect_attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every address aiohttp tries to connect a socket to, during the test.

    Non-loopback connects are refused here, so even a broken guard sends no packet to a
    private network from the test run.
    """
    loop = asyncio.get_running_loop()
    attempts: list[tuple[Any, ...]] = []
    real_sock_connect = loop.sock_connect

    async def recording_sock_connect(sock: socket.socket, address: Any) -> None:
        attempts.append(tuple(address))
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise ConnectionRefusedError(f"test run refuses to connect to {address[0]}")
        await real_sock_connect(sock, address)

    monkeypatch.setattr(loop, "sock_connect", recording_sock_connect)
    return attempts


@pytest.fixture
def loopback_counts_as_public(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let 127.0.0.1 (the feed server) stand in for a public host, so redirect and DNS
    tests can run with the guard on. Every other address keeps the real policy."""
    real_policy = fetch_module.is_public_address
    server_address = ipaddress.ip_address("127.0.0.1")

    def policy(address: Any) -> bool:
        if isinstance(address, str):
            address = ipaddress.ip_address(address)
        return address == server_address or real_policy(address)

    monkeypatch.setattr(fetch_module, "is_public_address", policy)
    yield


class StaticResolver(AbstractResolver):
    """DNS from a dict; unknown names fail the way getaddrinfo does."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self._names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self._names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self._names[host]
        ]

    async def close(self) -> None:
        pass


# --- validators and unchanged bodies ---


async def test_etag_then_conditional_request_gets_304(server: FeedServer, fetcher: Fetcher):
    lm = "Wed, 26 Feb 2025 17:39:02 GMT"
    document = server.publish("/feed.xml", [STORY], etag='"v1"', last_modified=lm)

    first = await fetcher.fetch(server.url("/feed.xml"))
    assert (first.not_modified, first.body, first.etag, first.last_modified) == (
        False,
        document,
        '"v1"',
        lm,
    )
    assert first.body_hash == body_digest(document)
    assert first.url == server.url("/feed.xml")
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert "If-None-Match" not in server.last_headers("/feed.xml")

    second = await fetcher.fetch(
        server.url("/feed.xml"), etag=first.etag, last_modified=first.last_modified
    )
    assert second.not_modified and second.body is None
    assert (second.etag, second.last_modified) == ('"v1"', lm)
    sent = server.last_headers("/feed.xml")
    assert (sent["If-None-Match"], sent["If-Modified-Since"]) == ('"v1"', lm)
    assert server.hits("/feed.xml") == 2


async def test_if_modified_since_alone_gets_304(server: FeedServer, fetcher: Fetcher):
    lm = "Wed, 26 Feb 2025 17:39:02 GMT"
    server.publish("/feed.xml", [STORY], last_modified=lm)

    result = await fetcher.fetch(server.url("/feed.xml"), last_modified=lm)

    assert result.not_modified and result.body is None
    assert result.last_modified == lm


async def test_stale_etag_gets_the_new_body(server: FeedServer, fetcher: Fetcher):
    server.publish("/feed.xml", [STORY], etag='"v1"')
    newer = server.publish("/feed.xml", [STORY, replace(STORY, guid="story-2")], etag='"v2"')

    result = await fetcher.fetch(server.url("/feed.xml"), etag='"v1"')

    assert not result.not_modified
    assert (result.body, result.etag) == (newer, '"v2"')


async def test_byte_identical_body_is_not_modified(server: FeedServer, fetcher: Fetcher):
    server.publish("/feed.xml", [STORY])
    first = await fetcher.fetch(server.url("/feed.xml"))

    same = await fetcher.fetch(server.url("/feed.xml"), body_hash=first.body_hash)
    assert same.not_modified and same.body is None
    assert same.body_hash == first.body_hash

    changed_document = server.publish("/feed.xml", [STORY, replace(STORY, guid="story-2")])
    changed = await fetcher.fetch(server.url("/feed.xml"), body_hash=first.body_hash)
    assert not changed.not_modified
    assert changed.body == changed_document
    assert changed.body_hash != first.body_hash


async def test_gzip_body_is_decompressed(server: FeedServer, fetcher: Fetcher):
    document = server.publish("/feed.xml", [STORY] * 50, gzip=True)

    result = await fetcher.fetch(server.url("/feed.xml"))

    assert result.body == document
    assert server.bytes_sent("/feed.xml") < len(document)
    assert "gzip" in server.last_headers("/feed.xml")["Accept-Encoding"]


async def test_cache_control_max_age_is_reported(server: FeedServer, fetcher: Fetcher):
    server.serve("/a", rss_document([STORY]), headers={"Cache-Control": "public, max-age=600"})
    server.serve("/b", rss_document([STORY]), headers={"Cache-Control": "no-cache, max-age=600"})
    server.serve("/c", rss_document([STORY]))

    assert (await fetcher.fetch(server.url("/a"))).max_age == 600
    assert (await fetcher.fetch(server.url("/b"))).max_age is None
    assert (await fetcher.fetch(server.url("/c"))).max_age is None


# --- size caps ---


async def test_gzip_bomb_stops_at_the_cap(server: FeedServer, fetcher: Fetcher):
    bomb_size = 32 * 1024 * 1024
    gzip_bomb_bytes(bomb_size)  # built before measuring: only the fetch is measured
    server.gzip_bomb("/bomb.xml", bomb_size)

    tracemalloc.start()
    try:
        error = await fetch_error(fetcher, server.url("/bomb.xml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.kind is FailureKind.TOO_LARGE
    # Inflating the whole bomb would take 32 MiB; stopping at the cap takes a few chunks.
    assert peak < 16 * CAP, f"peak memory {peak} bytes while fetching a gzip bomb"


async def test_oversize_streamed_body_is_refused(server: FeedServer, fetcher: Fetcher):
    # Chunked, so no Content-Length warns ahead: the running count must stop it.
    server.trickle("/big.xml", b"x" * 65536, interval=0, count=10)

    error = await fetch_error(fetcher, server.url("/big.xml"))

    assert error.kind is FailureKind.TOO_LARGE


async def test_endless_body_is_refused(server: FeedServer, fetcher: Fetcher):
    server.endless("/endless.xml")

    error = await fetch_error(fetcher, server.url("/endless.xml"))

    assert error.kind is FailureKind.TOO_LARGE


async def test_body_of_exactly_the_cap_is_accepted(server: FeedServer, fetcher: Fetcher):
    server.serve("/full.xml", b"x" * CAP)

    result = await fetcher.fetch(server.url("/full.xml"))

    assert result.body is not None and len(result.body) == CAP


async def test_content_length_above_cap_is_refused_before_reading(
    server: FeedServer, fetcher: Fetcher
):
    # The body would take far longer than the read timeout: only the header can stop
    # this quickly, and with TOO_LARGE rather than TIMEOUT.
    server.trickle("/huge.xml", b"x", interval=5, count=2, content_length=CAP * 100)

    error = await fetch_error(fetcher, server.url("/huge.xml"))

    assert error.kind is FailureKind.TOO_LARGE


# --- timeouts ---


async def test_slow_body_past_the_read_timeout(server: FeedServer):
    # Without a read timeout only the 3 s total limit would end this.
    server.trickle("/slow.xml", b"<rss>", interval=10, count=2)

    started = time.monotonic()
    # The outer limit turns a fetcher that never times out into a failure, not a hang.
    async with asyncio.timeout(5), Fetcher(make_settings(read_timeout=0.3)) as fetcher:
        error = await fetch_error(fetcher, server.url("/slow.xml"))

    assert error.kind is FailureKind.TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_trickle_past_the_total_timeout(server: FeedServer):
    # Each read comes well within the read timeout; only the total limit ends it.
    server.trickle("/trickle.xml", b" ", interval=0.05)

    started = time.monotonic()
    settings = make_settings(read_timeout=1.0, total_timeout=0.4)
    async with asyncio.timeout(5), Fetcher(settings) as fetcher:
        error = await fetch_error(fetcher, server.url("/trickle.xml"))

    elapsed = time.monotonic() - started
    assert error.kind is FailureKind.TIMEOUT
    assert 0.3 < elapsed < 2.5  # loose above: shared test machines can be slow


# --- redirects ---


async def test_redirect_loop_is_too_many_redirects(server: FeedServer, fetcher: Fetcher):
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")

    error = await fetch_error(fetcher, server.url("/a"))

    assert error.kind is FailureKind.TOO_MANY_REDIRECTS
    assert server.hits("/a") + server.hits("/b") == 6  # the first request and 5 redirects


@pytest.mark.parametrize(("max_redirects", "succeeds"), [(2, False), (3, True)])
async def test_redirect_limit(server: FeedServer, max_redirects: int, succeeds: bool):
    server.redirect("/1", "/2")
    server.redirect("/2", "/3")
    server.redirect("/3", "/feed.xml")
    server.publish("/feed.xml", [STORY])

    async with Fetcher(make_settings(max_redirects=max_redirects)) as fetcher:
        if succeeds:
            assert (await fetcher.fetch(server.url("/1"))).url == server.url("/feed.xml")
        else:
            error = await fetch_error(fetcher, server.url("/1"))
            assert error.kind is FailureKind.TOO_MANY_REDIRECTS


async def test_permanent_redirect_chain_gives_the_new_url(server: FeedServer, fetcher: Fetcher):
    server.redirect("/old", server.url("/middle"), status=301)
    server.redirect("/middle", "/feed.xml", status=308)
    document = server.publish("/feed.xml", [STORY])

    result = await fetcher.fetch(server.url("/old"))

    assert result.body == document
    assert result.url == server.url("/feed.xml")
    assert result.permanent_redirect == server.url("/feed.xml")


@pytest.mark.parametrize("statuses", [(302,), (307,), (301, 302), (302, 301)])
async def test_temporary_hop_keeps_the_stored_url(
    server: FeedServer, fetcher: Fetcher, statuses: tuple[int, ...]
):
    for hop, status in enumerate(statuses):
        target = f"/hop{hop + 1}" if hop + 1 < len(statuses) else "/feed.xml"
        server.redirect(f"/hop{hop}", target, status=status)
    server.publish("/feed.xml", [STORY])

    result = await fetcher.fetch(server.url("/hop0"))

    assert result.url == server.url("/feed.xml")
    assert result.permanent_redirect is None


async def test_relative_location_is_resolved(server: FeedServer, fetcher: Fetcher):
    server.redirect("/news/latest", "feed.xml")
    document = server.publish("/news/feed.xml", [STORY])

    result = await fetcher.fetch(server.url("/news/latest"))

    assert (result.url, result.body) == (server.url("/news/feed.xml"), document)


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("ftp://files.test/feed.xml", FailureKind.BAD_SCHEME),
        ("file:///etc/passwd", FailureKind.BAD_SCHEME),
        ("javascript:alert(1)", FailureKind.BAD_SCHEME),
        ("http://[::1", FailureKind.INVALID_URL),
    ],
)
async def test_redirect_to_a_bad_url_is_refused(
    server: FeedServer, fetcher: Fetcher, location: str, kind: FailureKind
):
    server.redirect("/r", location)

    assert (await fetch_error(fetcher, server.url("/r"))).kind is kind


async def test_redirect_without_location_is_an_http_error(server: FeedServer, fetcher: Fetcher):
    server.serve("/r", b"", status=302)

    error = await fetch_error(fetcher, server.url("/r"))

    assert (error.kind, error.status) == (FailureKind.HTTP_STATUS, 302)


# --- status codes ---


async def test_410_is_gone(server: FeedServer, fetcher: Fetcher):
    server.serve("/gone.xml", b"gone", status=410, content_type="text/plain")

    error = await fetch_error(fetcher, server.url("/gone.xml"))

    assert (error.kind, error.status) == (FailureKind.GONE, 410)


@pytest.mark.parametrize("status", [404, 500, 403])
async def test_error_statuses(server: FeedServer, fetcher: Fetcher, status: int):
    if status != 404:  # 404: the server has no such path
        server.serve("/feed.xml", b"oops", status=status, content_type="text/plain")

    error = await fetch_error(fetcher, server.url("/feed.xml"))

    assert (error.kind, error.status, error.retry_after) == (
        FailureKind.HTTP_STATUS,
        status,
        None,
    )


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (429, {"Retry-After": "120"}, 120.0),
        (
            503,
            {
                "Date": "Wed, 26 Feb 2025 17:39:02 GMT",
                "Retry-After": "Wed, 26 Feb 2025 17:40:32 GMT",
            },
            90.0,
        ),
        (503, {"Retry-After": "soon"}, None),
        (429, {}, None),
        (500, {"Retry-After": "120"}, None),  # only 429 and 503 carry a meaningful one
    ],
)
async def test_retry_after(
    server: FeedServer,
    fetcher: Fetcher,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
):
    server.serve("/feed.xml", b"busy", status=status, headers=headers, content_type="text/plain")

    error = await fetch_error(fetcher, server.url("/feed.xml"))

    assert (error.kind, error.status, error.retry_after) == (
        FailureKind.HTTP_STATUS,
        status,
        retry_after,
    )


async def test_html_page_is_fetched_like_any_body(server: FeedServer, fetcher: Fetcher):
    page = b"<!doctype html><html><body><h1>Not a feed</h1></body></html>"
    server.serve("/index.html", page, content_type="text/html; charset=utf-8")

    result = await fetcher.fetch(server.url("/index.html"))

    assert (result.body, result.content_type) == (page, "text/html; charset=utf-8")


# --- requests as sent ---


async def test_headers_sent(server: FeedServer):
    server.publish("/feed.xml", [STORY])
    settings = replace(load_settings(environ={}).fetch, allow_private_networks=True)

    async with Fetcher(settings) as fetcher:
        await fetcher.fetch(server.url("/feed.xml"))

    sent = server.last_headers("/feed.xml")
    assert sent["User-Agent"] == settings.user_agent
    assert sent["Accept"].startswith("application/rss+xml, application/atom+xml")
    assert {"gzip", "deflate"} <= {part.strip() for part in sent["Accept-Encoding"].split(",")}


# --- URL checks ---


@pytest.mark.parametrize(
    "url",
    [
        "ftp://feeds.test/feed.xml",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:application/rss+xml,<rss/>",
        "mailto:editor@news.test",
        "feeds.test/feed.xml",
        "//feeds.test/feed.xml",
    ],
)
async def test_bad_schemes(guarded: Fetcher, url: str, connect_attempts: list[tuple[Any, ...]]):
    assert (await fetch_error(guarded, url)).kind is FailureKind.BAD_SCHEME
    assert connect_attempts == []


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "http:///feed.xml",
        "http://[::1/feed.xml",
        "http://feeds test/feed.xml",
        "http://feeds.test:99999/feed.xml",
        "https://feeds.test/" + "a" * 2040,
    ],
)
async def test_invalid_urls(guarded: Fetcher, url: str):
    assert (await fetch_error(guarded, url)).kind is FailureKind.INVALID_URL


# --- network failures ---


async def test_connection_refused(fetcher: Fetcher):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens there now.

    error = await fetch_error(fetcher, f"http://127.0.0.1:{port}/feed.xml")

    assert error.kind is FailureKind.CONNECTION


@pytest.mark.parametrize("allow_private", [True, False])
async def test_dns_failure(allow_private: bool):
    settings = make_settings(allow_private_networks=allow_private)
    async with Fetcher(settings, resolver=StaticResolver({})) as fetcher:
        error = await fetch_error(fetcher, "http://no-such-host.test/feed.xml")

    assert error.kind is FailureKind.DNS


async def test_tls_failure(server: FeedServer, fetcher: Fetcher):
    server.publish("/feed.xml", [STORY])
    # The server speaks plain HTTP, so the TLS handshake fails.
    error = await fetch_error(fetcher, f"https://127.0.0.1:{server.port}/feed.xml")

    assert error.kind is FailureKind.TLS


# --- the private-address guard ---


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "0.0.0.0",
        "100.64.0.1",
        "0x7f000001",
        "2130706433",
    ],
)
async def test_private_addresses_are_refused_before_connecting(
    server: FeedServer, guarded: Fetcher, host: str, connect_attempts: list[tuple[Any, ...]]
):
    server.publish("/feed.xml", [STORY])

    started = time.monotonic()
    error = await fetch_error(guarded, f"http://{host}:{server.port}/feed.xml")

    assert error.kind is FailureKind.ADDRESS_NOT_ALLOWED
    assert connect_attempts == []
    assert server.hits("/feed.xml") == 0
    # Refused up front: well inside the 1 s connect timeout a dial would have used.
    assert time.monotonic() - started < 1.0


async def test_override_lets_the_loopback_server_through(
    server: FeedServer, fetcher: Fetcher, connect_attempts: list[tuple[Any, ...]]
):
    document = server.publish("/feed.xml", [STORY])

    for host in ("127.0.0.1", "localhost"):
        result = await fetcher.fetch(f"http://{host}:{server.port}/feed.xml")
        assert result.body == document
    # The recorder sees real connections, so its empty list above means none were tried.
    assert ("127.0.0.1", server.port) in connect_attempts


@pytest.mark.usefixtures("loopback_counts_as_public")
@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/feed.xml",
        "http://[::ffff:192.168.1.1]/feed.xml",
        "http://internal.test/feed.xml",
    ],
)
async def test_redirect_to_a_private_address_is_refused(
    server: FeedServer, location: str, connect_attempts: list[tuple[Any, ...]]
):
    server.publish("/feed.xml", [STORY])
    server.redirect("/moved", location)
    dns = StaticResolver({"feeds.test": ["127.0.0.1"], "internal.test": ["10.0.0.1"]})
    settings = make_settings(allow_private_networks=False)

    async with Fetcher(settings, resolver=dns) as fetcher:
        # The same guarded fetcher reaches the server itself...
        assert (await fetcher.fetch(f"http://feeds.test:{server.port}/feed.xml")).body
        # ...but not where its redirect points.
        error = await fetch_error(fetcher, f"http://feeds.test:{server.port}/moved")

    assert error.kind is FailureKind.ADDRESS_NOT_ALLOWED
    assert server.hits("/moved") == 1
    assert {address[0] for address in connect_attempts} == {"127.0.0.1"}


@pytest.mark.usefixtures("loopback_counts_as_public")
async def test_guard_checks_resolved_addresses(
    server: FeedServer, connect_attempts: list[tuple[Any, ...]]
):
    document = server.publish("/feed.xml", [STORY])
    dns = StaticResolver(
        {
            "rebound.test": ["10.0.0.1", "fd00::1"],
            "mixed.test": ["192.168.1.1", "127.0.0.1"],
        }
    )

    async with Fetcher(make_settings(allow_private_networks=False), resolver=dns) as fetcher:
        error = await fetch_error(fetcher, f"http://rebound.test:{server.port}/feed.xml")
        assert error.kind is FailureKind.ADDRESS_NOT_ALLOWED
        assert connect_attempts == []

        # Of a name with both kinds, only the allowed address is ever dialled.
        result = await fetcher.fetch(f"http://mixed.test:{server.port}/feed.xml")
        assert result.body == document
        assert {address[0] for address in connect_attempts} == {"127.0.0.1"}


async def test_closed_fetcher_refuses_to_fetch(server: FeedServer):
    fetcher = Fetcher(make_settings())
    await fetcher.close()

    with pytest.raises(RuntimeError):
        await fetcher.fetch(server.url("/feed.xml"))


# --- address classifier and header parsers ---


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("172.32.0.1", True),
        ("100.128.0.1", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("100.127.255.255", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("2606:4700:4700::1111", True),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::8.8.8.8", True),
        ("2002:c0a8:101::1", False),  # 6to4 around 192.168.1.1
        ("2002:808:808::1", True),
        ("not an address", False),
    ],
)
def test_is_public_address(address: str, public: bool):
    assert is_public_address(address) is public


def test_is_public_address_takes_address_objects():
    assert is_public_address(ipaddress.IPv4Address("8.8.8.8"))
    assert not is_public_address(ipaddress.IPv6Address("::ffff:127.0.0.1"))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("feeds.test", None),
        ("1password.test", None),
        ("cafe", None),
    ],
)
def test_literal_address(host: str, address: str | None):
    expected = None if address is None else ipaddress.ip_address(address)
    assert literal_address(host) == expected


@pytest.mark.parametrize(
    ("header", "max_age"),
    [
        ("max-age=300", 300),
        ("public, max-age=0", 0),
        ('max-age="60"', 60),
        ("MAX-AGE=60, must-revalidate", 60),
        ("no-store", None),
        ("no-cache, max-age=60", None),
        ("max-age=soon", None),
        ("private", None),
        (None, None),
    ],
)
def test_parse_max_age(header: str | None, max_age: int | None):
    assert parse_max_age(header) == max_age


def test_parse_retry_after():
    now = 1_740_591_542.0  # Wed, 26 Feb 2025 17:39:02 GMT
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after("Wed, 26 Feb 2025 17:40:02 GMT", now) == 60.0
    assert parse_retry_after("Wed, 26 Feb 2025 17:00:00 GMT", now) == 0.0  # already past
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("", now) is None
