"""The feed fetcher: one polite, bounded GET per feed check.

This is the only place the feed pipeline touches the network. A fetch sends the stored
validators (ETag, Last-Modified) so unchanged feeds cost a 304, follows redirects by hand
so every hop is checked, stops reading at a size cap counted after decompression, and
refuses to connect to this machine's own or private networks unless the operator allowed
it. Every failure comes out as one FeedError (bot/errors.py) whose failure the poller and
the /subscribe handler can act on; nothing aiohttp-specific leaks out.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType

import aiohttp
from aiohttp import hdrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from bot.config import FetchSettings
from bot.errors import FailureKind, FeedError, FeedFailure

try:
    # Offer brotli only when aiohttp can decode it here, or servers may send bytes we
    # cannot read.
    from aiohttp.compression_utils import HAS_BROTLI
except ImportError:  # pragma: no cover - older or newer aiohttp layouts
    HAS_BROTLI = False

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Overall cap on open connections; the poller bounds concurrency per host itself.
CONNECTION_LIMIT = 100
# Resolved addresses are reused this long; they are cached only after the guard filtered
# them, so the cache cannot carry a refused address past it.
DNS_CACHE_SECONDS = 60
_CHUNK_SIZE = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECT_STATUSES = frozenset({301, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# Redirects a form POST follows: the two that keep the method and the body (RFC 9110 §15.4),
# the ones a WebSub hub may answer to send a subscriber to another hub.
_FORM_REDIRECT_STATUSES = frozenset({307, 308})
# Bytes of a form POST's answer kept for the log.
_FORM_ANSWER_BYTES = 2048
_ALLOWED_SCHEMES = frozenset({"http", "https"})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate, br" if HAS_BROTLI else "gzip, deflate"
# An ASCII (IDNA-encoded) host name: labels of letters, digits, '-' and '_' (which real
# feed hosts do use), an optional trailing dot.
_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
# RFC 6052's well-known NAT64 prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


def fetch_error(
    kind: FailureKind,
    log_detail: str,
    *,
    status: int | None = None,
    detail: str = "",
    retry_after: float | None = None,
) -> FeedError:
    """The one error a fetch raises: `kind` says how it failed, `log_detail` is for logs."""
    failure = FeedFailure(kind, status=status, detail=detail)
    return FeedError(failure, log_detail, retry_after=retry_after)


@dataclass(frozen=True)
class FetchResult:
    url: str
    """The final URL, after redirects."""
    not_modified: bool
    """A 304, or a 200 whose body hashes to the `body_hash` passed in (then `body` is None)."""
    body: bytes | None
    content_type: str | None
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    """blake2b hex of the (decompressed) body; on a 304 the hash that was passed in."""
    permanent_redirect: str | None
    """The URL to store instead, when every redirect hop was a 301 or 308."""
    max_age: int | None
    """Seconds from Cache-Control max-age; None when absent or with no-cache/no-store."""
    links: tuple[str, ...] = ()
    """The raw values of the response's Link headers (WebSub discovery reads rel="hub")."""


@dataclass(frozen=True)
class FormAnswer:
    """What a server answered to a form POST (a WebSub hub to a subscription request)."""

    url: str
    """Where it was answered, after 307/308 redirects."""
    status: int
    text: str
    """The start of the body, for the log (hubs explain a refusal there)."""


# --- address policy -------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any.

    Such addresses reach the IPv4 host they wrap, so they are judged as that host.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_address(address: str | IPAddress) -> bool:
    """True when a feed may be fetched from this address with the private guard on.

    Refuses loopback, private (RFC 1918, fc00::/7), link-local (cloud metadata at
    169.254.169.254 too), multicast, reserved, unspecified and CGNAT addresses, and IPv6
    forms wrapping any of them. An unparsable address is refused.
    """
    try:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    # is_global alone differs between Python patch releases; the named checks pin the
    # categories the product promises to refuse.
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names directly (no DNS), or None for a host name.

    Legacy numeric IPv4 forms (0x7f000001, 2130706433, 127.1) count too: the C library
    still connects them to the address they stand for.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host[:1].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


class AddressNotAllowedError(OSError):
    """Raised by the guarded resolver. An OSError, so aiohttp's connector reports it like
    any other failed lookup, from which the fetcher picks it back out."""


class GuardedResolver(AbstractResolver):
    """Resolves host names and drops every address the policy refuses.

    The check runs on the addresses the connection will actually use, after DNS, so a
    name that resolves to a public address once and a private one later (DNS rebinding)
    is still refused.
    """

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if is_public_address(result["host"])]
        if results and not allowed:
            refused = ", ".join(sorted({result["host"] for result in results}))
            raise AddressNotAllowedError(f"{host} resolves only to refused addresses ({refused})")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


# --- URL checks -----------------------------------------------------------------------


def check_url(url: str) -> URL:
    """Parse a feed URL, refusing what the fetcher will never request."""
    if len(url) > MAX_URL_LENGTH:
        raise fetch_error(FailureKind.INVALID_URL, f"URL longer than {MAX_URL_LENGTH} chars")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        raise fetch_error(FailureKind.INVALID_URL, f"unparsable URL: {error}") from None
    scheme = parsed.scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise fetch_error(FailureKind.BAD_SCHEME, f"scheme {scheme or '(none)'!r} not allowed")
    host = parsed.raw_host
    if not host:
        raise fetch_error(FailureKind.INVALID_URL, "URL has no host")
    if literal_address(host) is None and not _HOSTNAME.fullmatch(host):
        raise fetch_error(FailureKind.INVALID_URL, f"bad host name {host!r}")
    return parsed


def _check_literal_host(url: URL) -> None:
    """Refuse a host written as an IP address; aiohttp connects those without a lookup."""
    address = literal_address(url.raw_host or "")
    if address is not None and not is_public_address(address):
        raise fetch_error(FailureKind.ADDRESS_NOT_ALLOWED, f"address {address} not allowed")


def _redirect_target(current: URL, location: str) -> URL:
    try:
        target = current.join(URL(location))
    except (ValueError, TypeError) as error:
        raise fetch_error(FailureKind.INVALID_URL, f"bad redirect {location!r}: {error}") from None
    return check_url(str(target))


# --- header parsing -------------------------------------------------------------------


def parse_max_age(cache_control: str | None) -> int | None:
    """Seconds from Cache-Control max-age; None when absent, invalid or not to be cached."""
    if not cache_control:
        return None
    max_age: int | None = None
    for directive in cache_control.split(","):
        name, _, argument = directive.partition("=")
        name = name.strip().lower()
        if name in ("no-cache", "no-store"):
            return None
        argument = argument.strip().strip('"')
        if name == "max-age" and argument.isascii() and argument.isdigit():
            max_age = int(argument)
    return max_age


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def _server_now(response: aiohttp.ClientResponse) -> float:
    """The server's own clock (Date header), so a dated Retry-After survives clock skew."""
    date = response.headers.get(hdrs.DATE)
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    return time.time()


def body_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


# --- error mapping --------------------------------------------------------------------


def _client_error(error: aiohttp.ClientError) -> FeedError:
    """One FeedError for whatever aiohttp raised."""
    detail = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        if isinstance(error.os_error, AddressNotAllowedError):
            return fetch_error(FailureKind.ADDRESS_NOT_ALLOWED, str(error.os_error))
        return fetch_error(FailureKind.DNS, detail)
    if isinstance(error, aiohttp.ClientSSLError) or isinstance(error.__cause__, ssl.SSLError):
        return fetch_error(FailureKind.TLS, detail)
    if isinstance(error, aiohttp.InvalidURL):
        return fetch_error(FailureKind.INVALID_URL, detail)
    return fetch_error(FailureKind.CONNECTION, detail)


# --- the fetcher ----------------------------------------------------------------------


class Fetcher:
    """Fetches feeds over one shared aiohttp session.

    Use as `async with Fetcher(settings) as fetcher:`, or call `close()` when done.
    `resolver` replaces aiohttp's DNS resolver (tests); the fetcher closes it, and the
    private-address guard still wraps it.
    """

    def __init__(
        self, settings: FetchSettings, *, resolver: AbstractResolver | None = None
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> Fetcher:
        self._open_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        # Built lazily, inside the running loop: aiohttp's session and resolver bind to it.
        if self._closed:
            raise RuntimeError("Fetcher is closed")
        if self._session is None:
            settings = self._settings
            resolver = self._resolver or DefaultResolver()
            if not settings.allow_private_networks:
                resolver = GuardedResolver(resolver)
            connector = aiohttp.TCPConnector(
                limit=CONNECTION_LIMIT,
                limit_per_host=0,
                use_dns_cache=True,
                ttl_dns_cache=DNS_CACHE_SECONDS,
                resolver=resolver,
            )
            # `total` is enforced by fetch() itself across all redirect hops; here only
            # the per-request connect and between-reads limits.
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=settings.connect_timeout,
                sock_connect=settings.connect_timeout,
                sock_read=settings.read_timeout,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                headers={
                    hdrs.USER_AGENT: settings.user_agent,
                    hdrs.ACCEPT: ACCEPT,
                    hdrs.ACCEPT_ENCODING: ACCEPT_ENCODING,
                },
                # No cookies carried from one feed to the next, and no proxy from the
                # environment: a proxy would connect on our behalf past the guard.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        body_hash: str | None = None,
    ) -> FetchResult:
        """GET one feed. Raises FeedError; never returns a failed response."""
        target = check_url(url)
        session = self._open_session()
        validators = _Validators(etag, last_modified, body_hash)
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                return await self._follow(session, target, validators)
        except TimeoutError as error:
            detail = str(error) or f"no answer within {self._settings.total_timeout} s in all"
            raise fetch_error(FailureKind.TIMEOUT, detail) from error
        except aiohttp.ClientError as error:
            raise _client_error(error) from error

    async def post_form(self, url: str, form: Mapping[str, str]) -> FormAnswer:
        """POST a form (a WebSub subscription request) under the fetches' own guard.

        The same URL checks, private-address refusal (before and after DNS), time limit
        and session as `fetch`: an address a feed names (its hub) can no more make the bot
        POST to this machine's own network than GET from it. Follows 307/308 redirects,
        each hop checked. Returns any status; raises FeedError when there is no answer.
        """
        target = check_url(url)
        session = self._open_session()
        try:
            async with asyncio.timeout(self._settings.total_timeout):
                return await self._post_following(session, target, form)
        except TimeoutError as error:
            detail = str(error) or f"no answer within {self._settings.total_timeout} s in all"
            raise fetch_error(FailureKind.TIMEOUT, detail) from error
        except aiohttp.ClientError as error:
            raise _client_error(error) from error

    async def _post_following(
        self, session: aiohttp.ClientSession, target: URL, form: Mapping[str, str]
    ) -> FormAnswer:
        current = target
        for _hop in range(self._settings.max_redirects + 1):
            if not self._settings.allow_private_networks:
                _check_literal_host(current)
            async with session.post(current, data=dict(form), allow_redirects=False) as response:
                location = response.headers.get(hdrs.LOCATION)
                if response.status not in _FORM_REDIRECT_STATUSES or not location:
                    text = await response.content.read(_FORM_ANSWER_BYTES)
                    return FormAnswer(str(current), response.status, text.decode(errors="replace"))
            current = _redirect_target(current, location)
        raise fetch_error(
            FailureKind.TOO_MANY_REDIRECTS, f"more than {self._settings.max_redirects} redirects"
        )

    async def _follow(
        self, session: aiohttp.ClientSession, target: URL, validators: _Validators
    ) -> FetchResult:
        """Request `target`, following redirects by hand so each hop is checked."""
        current = target
        hops = 0
        all_permanent = True
        while True:
            if not self._settings.allow_private_networks:
                _check_literal_host(current)
            async with session.get(
                current, headers=validators.headers(), allow_redirects=False
            ) as response:
                if response.status not in _REDIRECT_STATUSES:
                    moved = str(current) if hops and all_permanent and current != target else None
                    return await self._result(response, current, validators, moved)
                location = response.headers.get(hdrs.LOCATION)
                if not location:
                    raise fetch_error(
                        FailureKind.HTTP_STATUS,
                        f"HTTP {response.status} without Location",
                        status=response.status,
                    )
                hops += 1
                if hops > self._settings.max_redirects:
                    raise fetch_error(
                        FailureKind.TOO_MANY_REDIRECTS,
                        f"more than {self._settings.max_redirects} redirects",
                    )
                all_permanent = all_permanent and response.status in _PERMANENT_REDIRECT_STATUSES
                current = _redirect_target(current, location)

    async def _result(
        self,
        response: aiohttp.ClientResponse,
        url: URL,
        validators: _Validators,
        permanent_redirect: str | None,
    ) -> FetchResult:
        status = response.status
        if status == 410:
            raise fetch_error(FailureKind.GONE, "HTTP 410 Gone", status=status)
        if status != 304 and not 200 <= status < 300:
            retry_after = None
            if status in _RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(
                    response.headers.get(hdrs.RETRY_AFTER), _server_now(response)
                )
            raise fetch_error(
                FailureKind.HTTP_STATUS,
                f"HTTP {status}",
                status=status,
                retry_after=retry_after,
            )
        headers = response.headers
        body = None if status == 304 else await self._read_body(response)
        digest = validators.body_hash if body is None else body_digest(body)
        unchanged = body is None or digest == validators.body_hash
        return FetchResult(
            url=str(url),
            not_modified=unchanged,
            body=None if unchanged else body,
            content_type=headers.get(hdrs.CONTENT_TYPE),
            # A 304 may omit the validators; then the ones sent stay valid.
            etag=headers.get(hdrs.ETAG, validators.etag if status == 304 else None),
            last_modified=headers.get(
                hdrs.LAST_MODIFIED, validators.last_modified if status == 304 else None
            ),
            body_hash=digest,
            permanent_redirect=permanent_redirect,
            max_age=parse_max_age(headers.get(hdrs.CACHE_CONTROL)),
            links=tuple(headers.getall(hdrs.LINK, ())),
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the decompressed body, stopping as soon as it passes the cap."""
        cap = self._settings.max_body_bytes
        encoding = response.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
        declared = response.content_length
        # Content-Length counts compressed bytes when encoded, so it only decides early
        # for identity bodies; encoded ones are counted as they inflate.
        if encoding == "identity" and declared is not None and declared > cap:
            response.close()
            raise fetch_error(
                FailureKind.TOO_LARGE,
                f"Content-Length {declared} above cap of {cap} bytes",
                detail=str(cap),
            )
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_chunked(_CHUNK_SIZE):
            total += len(chunk)
            if total > cap:
                # close(), not release(): drop the connection instead of draining the rest.
                response.close()
                raise fetch_error(
                    FailureKind.TOO_LARGE,
                    f"body passed the cap of {cap} bytes ({total} read)",
                    detail=str(cap),
                )
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class _Validators:
    """What the caller stored from the previous fetch."""

    etag: str | None
    last_modified: str | None
    body_hash: str | None

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.etag:
            headers[hdrs.IF_NONE_MATCH] = self.etag
        if self.last_modified:
            headers[hdrs.IF_MODIFIED_SINCE] = self.last_modified
        return headers
