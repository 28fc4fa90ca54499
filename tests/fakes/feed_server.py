"""A programmable feed host on 127.0.0.1 for tests and benchmarks.

Each path answers what the test last told it to: a body with validators, a redirect, a
gzip bomb, a slow trickle or an endless stream. Answers can change while the server runs
(a feed publishing a new story), and every path counts its hits and keeps the headers of
its last request, so tests can check what the bot sent.

    async with FeedServer() as server:
        server.publish("/feed.xml", [FeedItem(title="Hello", link="https://x.test/1")])
        url = server.url("/feed.xml")

For a pytest fixture, wrap it in the test module:

    @pytest.fixture
    async def feed_server():
        async with FeedServer() as server:
            yield server
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import socket
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from types import TracebackType
from xml.sax.saxutils import escape

from aiohttp import hdrs, web
from multidict import CIMultiDict

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
# Stopping the server should not wait for a client that never finished reading.
_SHUTDOWN_SECONDS = 1.0


@dataclass(frozen=True)
class FeedItem:
    """One story of an RSS 2.0 document built by rss_document()."""

    title: str
    link: str
    guid: str | None = None
    pub_date: datetime | str | None = None
    """A datetime (naive means UTC) is written as an RFC 822 date; a str as given."""
    description: str | None = None
    """HTML allowed: it is escaped into the XML, as real feeds carry it."""


def rss_document(
    items: Iterable[FeedItem],
    *,
    title: str = "Test feed",
    link: str = "https://feeds.test/",
    description: str = "Stories published by a test",
    links: Iterable[tuple[str, str]] = (),
) -> bytes:
    """An RSS 2.0 document (UTF-8 bytes) carrying `items` in the order given; `links`
    are (rel, href) of channel-level atom:link elements (WebSub's hub and self)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        _element("title", title),
        _element("link", link),
        _element("description", description),
    ]
    lines += [f'<atom:link rel="{escape(rel)}" href="{escape(href)}"/>' for rel, href in links]
    for item in items:
        lines.append("<item>")
        lines.append(_element("title", item.title))
        lines.append(_element("link", item.link))
        if item.guid is not None:
            lines.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.pub_date is not None:
            lines.append(_element("pubDate", _rfc822(item.pub_date)))
        if item.description is not None:
            lines.append(_element("description", item.description))
        lines.append("</item>")
    lines += ["</channel>", "</rss>", ""]
    return "\n".join(lines).encode("utf-8")


def _element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def _rfc822(when: datetime | str) -> str:
    if isinstance(when, str):
        return when
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_datetime(when.astimezone(UTC), usegmt=True)


@functools.lru_cache(maxsize=4)
def gzip_bomb_bytes(size: int) -> bytes:
    """A gzip stream that inflates to `size` spaces (about 1,000 times its own size).

    Built in slices so making a large bomb does not need `size` bytes of memory; cached,
    since tests reuse the same sizes.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
    block = b" " * (1 << 20)
    parts = []
    remaining = size
    while remaining > 0:
        parts.append(compressor.compress(block[: min(remaining, len(block))]))
        remaining -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass(frozen=True)
class Stream:
    """A body written piece by piece: `chunk`, then a pause of `interval` seconds, `count`
    times (None: until the client goes away)."""

    chunk: bytes
    interval: float
    count: int | None
    content_length: int | None = None
    """Content-Length to announce (honest or not); None sends the body chunked."""


@dataclass
class Route:
    """What one path answers. Set through FeedServer's methods, or set_route()."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = RSS_CONTENT_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    """Compress `body` with gzip and say so (Content-Encoding: gzip)."""
    location: str | None = None
    """Answer a redirect (with `status`) to this path or URL, sent exactly as given."""
    stream: Stream | None = None


@dataclass
class PathStats:
    hits: int = 0
    last_headers: CIMultiDict[str] | None = None
    bytes_sent: int = 0
    """Bytes written on the wire (compressed ones, for gzip routes)."""


class FeedServer:
    """An aiohttp.web server on 127.0.0.1 with a random port, programmable per path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port: int | None = None
        self._routes: dict[str, Route] = {}
        self._stats: dict[str, PathStats] = {}
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[object]] = set()

    # --- life cycle ---

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=_SHUTDOWN_SECONDS, access_log=None)
        await self._runner.setup()
        # Bind first so the port the OS picked is known without reaching into the site.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        # Streams never end by themselves; end them so shutdown does not wait on them.
        for task in list(self._streams):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FeedServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FeedServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # --- programming answers ---

    def set_route(self, path: str, route: Route) -> None:
        self._routes[path] = route

    def remove(self, path: str) -> None:
        """The path answers 404 from now on."""
        self._routes.pop(path, None)

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str | None = RSS_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
    ) -> None:
        """Answer `body`; with `etag` or `last_modified`, answer 304 to a request whose
        validators match."""
        self.set_route(
            path,
            Route(
                body=body.encode("utf-8") if isinstance(body, str) else body,
                status=status,
                content_type=content_type,
                headers=dict(headers or {}),
                etag=etag,
                last_modified=last_modified,
                gzip=gzip,
            ),
        )

    def publish(
        self,
        path: str,
        items: Iterable[FeedItem],
        *,
        title: str = "Test feed",
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        links: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """Serve an RSS 2.0 document of `items`; returns the document."""
        document = rss_document(items, title=title, links=links)
        self.serve(path, document, etag=etag, last_modified=last_modified, gzip=gzip)
        return document

    def redirect(self, path: str, location: str, *, status: int = 302) -> None:
        """Redirect to `location` (a path or an absolute URL, sent as given): 301/308
        are permanent, 302/303/307 temporary. Two paths pointing at each other loop."""
        self.set_route(path, Route(status=status, content_type=None, location=location))

    def gzip_bomb(self, path: str, size: int = 64 * 1024 * 1024) -> None:
        """A small gzip-encoded body that inflates to `size` bytes."""
        self.serve(path, gzip_bomb_bytes(size), headers={hdrs.CONTENT_ENCODING: "gzip"})

    def trickle(
        self,
        path: str,
        chunk: bytes,
        *,
        interval: float,
        count: int | None = None,
        content_length: int | None = None,
        content_type: str | None = RSS_CONTENT_TYPE,
    ) -> None:
        """Send `chunk` every `interval` seconds, `count` times (None: forever).
        `content_length` announces a length without having to send it."""
        stream = Stream(chunk=chunk, interval=interval, count=count, content_length=content_length)
        self.set_route(path, Route(content_type=content_type, stream=stream))

    def endless(self, path: str, *, chunk: bytes = b"<!-- filler -->\n" * 4096) -> None:
        """A body that never ends, sent as fast as the client reads."""
        self.trickle(path, chunk, interval=0)

    # --- what was asked ---

    def hits(self, path: str) -> int:
        return self._stats_for(path).hits

    def last_headers(self, path: str) -> CIMultiDict[str] | None:
        """The headers of the last request to `path` (case-insensitive keys), or None."""
        return self._stats_for(path).last_headers

    def bytes_sent(self, path: str) -> int:
        return self._stats_for(path).bytes_sent

    def reset_stats(self) -> None:
        self._stats.clear()

    def _stats_for(self, path: str) -> PathStats:
        return self._stats.setdefault(path, PathStats())

    # --- answering ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path_qs if request.path_qs in self._routes else request.path
        stats = self._stats_for(path)
        stats.hits += 1
        stats.last_headers = CIMultiDict(request.headers)
        route = self._routes.get(path)
        if route is None:
            return web.Response(status=404, text="no such feed")
        if route.location is not None:
            return web.Response(status=route.status, headers={hdrs.LOCATION: route.location})
        if route.stream is not None:
            return await self._stream(request, route, route.stream, stats)
        headers = _response_headers(route)
        if _validators_match(request, route):
            return web.Response(status=304, headers=headers)
        body = gzip.compress(route.body) if route.gzip else route.body
        if route.gzip:
            headers[hdrs.CONTENT_ENCODING] = "gzip"
        stats.bytes_sent += len(body)
        return web.Response(status=route.status, body=body, headers=headers)

    async def _stream(
        self, request: web.Request, route: Route, stream: Stream, stats: PathStats
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=route.status, headers=_response_headers(route))
        if stream.content_length is not None:
            response.content_length = stream.content_length
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await response.prepare(request)
            sent = 0
            while stream.count is None or sent < stream.count:
                await response.write(stream.chunk)
                stats.bytes_sent += len(stream.chunk)
                sent += 1
                # sleep(0) still yields, so an endless stream cannot starve the loop.
                await asyncio.sleep(stream.interval)
            if stream.content_length is None:
                await response.write_eof()
        except ConnectionResetError:
            # The client hung up (it hit a cap or a timeout): how a stream is meant to end.
            pass
        finally:
            self._streams.discard(task)
        return response


def _response_headers(route: Route) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    if route.content_type is not None:
        headers[hdrs.CONTENT_TYPE] = route.content_type
    if route.etag is not None:
        headers[hdrs.ETAG] = route.etag
    if route.last_modified is not None:
        headers[hdrs.LAST_MODIFIED] = route.last_modified
    headers.update(route.headers)
    return headers


def _validators_match(request: web.Request, route: Route) -> bool:
    """RFC 9110's rules in brief: If-None-Match wins over If-Modified-Since; ETags
    compare weakly (W/ ignored), as they do for GET."""
    if_none_match = request.headers.get(hdrs.IF_NONE_MATCH)
    if if_none_match is not None:
        if route.etag is None:
            return False
        tags = {_opaque_tag(tag) for tag in if_none_match.split(",")}
        return "*" in tags or _opaque_tag(route.etag) in tags
    if_modified_since = request.headers.get(hdrs.IF_MODIFIED_SINCE)
    if if_modified_since is None or route.last_modified is None:
        return False
    try:
        return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(
            if_modified_since
        )
    except (TypeError, ValueError, IndexError):
        return if_modified_since.strip() == route.last_modified.strip()


def _opaque_tag(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


__all__ = [
    "RSS_CONTENT_TYPE",
    "FeedItem",
    "FeedServer",
    "PathStats",
    "Route",
    "Stream",
    "gzip_bomb_bytes",
    "rss_document",
]
