"""WebSub push (W3C Recommendation, 23 January 2018): a feed's hub tells the bot of new
stories the moment they are published, instead of the bot asking every few minutes.

The subscriber's side of the protocol, in the spec's order:

- Discovery (§4): the hub and topic come from the fetched feed: the HTTP `Link` headers
  first (rel="hub", rel="self"), else the feed's own `<link rel="hub">` and rel="self"
  (atom:link inside an RSS channel too). The topic is the self URL, else the fetched URL.
- Subscribing (§5.1): a form POST to the hub, with a callback unique to the subscription
  (the public origin + /websub/<random token>), a random secret, and the lease asked for.
  The POST goes through the Fetcher, under the same private-address guard as every fetch:
  a feed cannot name a hub on this machine's network and make the bot POST there. A hub
  announced over http is asked over https (§8.2: "subscribers SHOULD always favor the
  HTTPS URL for hubs"), so the secret never travels in clear text.
- Verification of intent (§5.3): the hub GETs the callback with a challenge; it is
  echoed only for a subscription (or unsubscription) the bot is making, whose topic is the
  one given; anything else gets 404. A verified subscribe starts the lease; renewal (the
  same request again) is sent when a tenth of the lease is left.
- Content distribution (§7): a POST to the callback, signed with X-Hub-Signature
  (sha1, sha256, sha384 or sha512 HMAC of the raw body, keyed with the secret), checked in
  constant time. A valid body goes through FeedPipeline.check_delivered: the same
  parse, dedupe, archive rule and outbox transaction as a polled one. A bad or missing
  signature is counted and the body ignored, but answered 2xx as §7.1.2 allows: a hub
  cannot mend a signature by retrying, and a forger learns nothing from the answer.
- Unsubscribing: when the last chat leaves a feed, or the feed names another hub or none.

While a hub pushes a feed, `feeds.hub_push` is set and the poller checks the feed only as
a slow safety net (bot/feeds/schedule.py, safety_net_delay).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from aiohttp import web

from bot.clock import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, Clock
from bot.config import Settings
from bot.errors import FeedError
from bot.feeds.fetch import Fetcher, FetchResult, check_url, is_public_address, literal_address
from bot.feeds.parse import FeedDocument
from bot.feeds.pipeline import FeedPipeline
from bot.store import Feed, HubSubscription, Store
from bot.store.websub import LIVE, UNSUBSCRIBING

log = logging.getLogger(__name__)

CALLBACK_PATH = "/websub/"
SIGNATURE_HEADER = "X-Hub-Signature"
# §7.1.1's registered names (hashlib's names too).
SIGNATURE_METHODS = frozenset({"sha1", "sha256", "sha384", "sha512"})
# Renewal is sent when this share of the granted lease is left (a day of a 10-day lease).
RENEW_SHARE_LEFT = 0.1
# A hub that accepted a request but never verified it is asked again after this long.
VERIFY_WAIT_MS = HOUR_MS
# Retries of a refused or unanswered request: 5 minutes, doubling, up to a day.
RETRY_FIRST_MS = 5 * MINUTE_MS
RETRY_MAX_MS = DAY_MS
# A hub that denied a subscription (§5.2) is asked again a day later.
DENIED_RETRY_MS = DAY_MS
# Unsubscribe requests before giving up (the hub's lease then ends by itself, and its
# deliveries meanwhile are answered 410, which lets it drop the subscription).
UNSUBSCRIBE_TRIES = 3
# A /subscribe checks a feed (and may add its subscription here) before the chat's own
# subscription is written; a feed without chats is left alone this long before it counts
# as one the last chat left.
ORPHAN_GRACE_MS = 5 * MINUTE_MS
# Deliveries processed at the same time. More would only share the same CPU: under a burst
# every one would finish near the end of it; bounded, they finish in turn (bench/websub.py).
DELIVERY_CONCURRENCY = 4
# Requests sent per pass, and at the same time.
BATCH = 100
CONCURRENCY = 8
# The manager looks for due requests at least this often, and when woken.
RUN_EVERY_SECONDS = 30.0
# Counter for /stats (counters table): deliveries refused for their signature.
BAD_SIGNATURE_COUNTER = "websub_bad_signature"
# hub.secret "MUST be less than 200 bytes" (§5.1); 32 random bytes as 43 URL-safe characters.
_SECRET_BYTES = 32
_TOKEN_BYTES = 24
_CHALLENGE_MAX = 1024

# --- discovery ------------------------------------------------------------------------

# One link of a Link header (RFC 8288): <target> then ;-separated parameters.
_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"[^"]*"|[^;,]*))?)*)')
_LINK_PARAM = re.compile(r';\s*([^;,=\s]+)(?:\s*=\s*("[^"]*"|[^;,]*))?')


@dataclass(frozen=True, slots=True)
class HubLinks:
    """Where to subscribe (hub) and to what (topic), as a feed announces them."""

    hub: str
    topic: str


def parse_link_header(values: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    """(target, rels) of every link in Link header values; rel may list several."""
    links: list[tuple[str, frozenset[str]]] = []
    for value in values:
        for match in _LINK.finditer(value):
            rels: frozenset[str] = frozenset()
            for name, raw in _LINK_PARAM.findall(match.group(2)):
                if name.lower() == "rel":
                    rels = frozenset(raw.strip().strip('"').lower().split())
                    break
            links.append((match.group(1).strip(), rels))
    return links


def announced_links(result: FetchResult, document: FeedDocument) -> tuple[list[str], str]:
    """(hubs, self URL) in §4's order: the HTTP Link headers when they name a hub, else
    the feed's own links. URLs are made absolute against the fetched URL."""
    header_links = parse_link_header(result.links)
    hubs = [urljoin(result.url, url) for url, rels in header_links if "hub" in rels and url]
    if hubs:
        selves = [urljoin(result.url, url) for url, rels in header_links if "self" in rels]
        return hubs, (selves[0] if selves else document.self_url)
    return list(document.hubs), document.self_url


def request_url(hub: str, *, allow_private: bool) -> str | None:
    """The URL a subscription request goes to: `hub` over https (§8.2), or None when it is
    no http(s) URL the fetcher would request. Plain http stays only for a hub at a literal
    private address the operator allowed (a hub on the local network, tests)."""
    try:
        check_url(hub)
    except FeedError:
        return None
    parts = urlsplit(hub)
    if parts.scheme.lower() == "https":
        return hub
    address = literal_address(parts.hostname or "")
    if allow_private and address is not None and not is_public_address(address):
        return hub
    netloc = parts.hostname or ""
    netloc = f"[{netloc}]" if ":" in netloc else netloc
    if parts.port not in (None, 80):
        netloc += f":{parts.port}"
    return urlunsplit(("https", netloc, parts.path or "/", parts.query, ""))


def discover(
    result: FetchResult, document: FeedDocument, *, allow_private: bool
) -> HubLinks | None:
    """The hub to subscribe at and the topic, or None when the feed announces no usable
    hub. One hub is enough: the publisher notifies every hub it names (§4)."""
    hubs, self_url = announced_links(result, document)
    topic = self_url or result.url
    try:
        check_url(topic)
    except FeedError:
        topic = result.url
    for hub in hubs:
        url = request_url(hub, allow_private=allow_private)
        if url is not None:
            return HubLinks(url, topic)
    return None


# --- signatures -----------------------------------------------------------------------


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """The X-Hub-Signature value a hub sends for `body` (tests, the fake hub)."""
    digest = hmac.new(secret.encode(), body, method).hexdigest()
    return f"{method}={digest}"


def signature_valid(header: str | None, body: bytes, secret: str) -> bool:
    """Whether X-Hub-Signature (`method=hex`) is the HMAC of the raw body with the
    subscription's secret. Compared in constant time; a missing, malformed or unknown
    method is invalid."""
    if not header:
        return False
    method, _, given = header.strip().partition("=")
    method = method.strip().lower()
    if method not in SIGNATURE_METHODS or not given:
        return False
    expected = sign(body, secret, method).partition("=")[2]
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


# --- timing ---------------------------------------------------------------------------


def renewal_time(verified_ms: int, lease_seconds: int) -> int:
    """When to renew a lease granted at `verified_ms` (the hub measures it from there)."""
    return verified_ms + int(lease_seconds * (1 - RENEW_SHARE_LEFT) * SECOND_MS)


def retry_delay_ms(attempts: int) -> int:
    """The wait after the `attempts`-th request in a row that was refused or unanswered."""
    return min(RETRY_FIRST_MS * 2 ** max(0, min(attempts - 1, 20)), RETRY_MAX_MS)


@dataclass
class WebSubStats:
    """Counts since start, for tests, benchmarks and metrics."""

    requests: int = 0  # subscribe, renewal and unsubscribe requests sent
    request_failures: int = 0  # refused (non-2xx) or unanswered
    verified: int = 0  # verifications of intent answered with the challenge
    verifications_refused: int = 0  # answered 404: not a subscription being made
    deliveries: int = 0  # signed bodies recorded
    bad_signatures: int = 0  # refused: signature missing or wrong
    unknown_callbacks: int = 0  # deliveries to a callback no subscription holds (410)
    unreadable: int = 0  # signed bodies that were not a feed


def push_configured(settings: Settings) -> bool:
    """Push needs a public URL for the hubs to deliver to, and a listener behind it."""
    listener = settings.listener
    return bool(settings.websub.enabled and listener.public_origin and listener.listen)


async def push_off(store: Store, now_ms: int) -> None:
    """Push is not configured: no feed waits for a hub (a bot that had a public URL before
    polls every feed at its own rate again); subscriptions are made again once it is."""
    freed = await store.websub.stop_all(now_ms)
    if freed:
        log.info("event=websub_off feeds_polled_again=%d", freed)


class WebSub:
    """The subscription manager: subscribes, renews and unsubscribes, and serves the
    callbacks. Wiring (see README, "WebSub"):

        websub = WebSub(store, fetcher, pipeline, settings, clock)
        pipeline.on_fetched = websub.observe        # discovery after each fetched body
        listener.add_routes(websub.routes())        # before the listener starts
        await websub.start()  ...  await websub.stop()
        websub.wake()                                # after a chat unsubscribed
    """

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        pipeline: FeedPipeline,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.store = store
        self.fetcher = fetcher
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        self.stats = WebSubStats()
        self._origin = settings.listener.public_origin
        self._delivering = asyncio.Semaphore(DELIVERY_CONCURRENCY)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def enabled(self) -> bool:
        return push_configured(self.settings)

    def callback_url(self, token: str) -> str:
        assert self._origin is not None
        return f"{self._origin}{CALLBACK_PATH}{token}"

    def routes(self) -> list[web.RouteDef]:
        """The callback endpoint: GET for verification of intent, POST for deliveries."""
        path = CALLBACK_PATH + "{token}"
        return [web.get(path, self._on_verification), web.post(path, self._on_delivery)]

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bring stored subscriptions in line with the settings, then run requests as they
        fall due. With push off, no feed is left waiting for a hub."""
        now = self.clock.now_ms()
        if not self.enabled:
            await push_off(self.store, now)
            return
        for subscription in await self.store.websub.live():
            callback = self.callback_url(subscription.token)
            if subscription.callback != callback:  # the public URL moved
                await self.store.websub.set_callback(subscription, callback, now)
        self._task = asyncio.create_task(self._run(), name="websub")

    def wake(self) -> None:
        """Look for due requests now (a feed was discovered, or a chat left one)."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                busy = await self.run_due() >= BATCH
            except Exception:  # a database hiccup must not end push for good
                log.exception("event=websub_pass_failed")
                busy = False
            if busy:
                continue
            try:
                async with asyncio.timeout(RUN_EVERY_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass

    # --- discovery ------------------------------------------------------------------------

    async def observe(self, feed: Feed, result: FetchResult, document: FeedDocument) -> None:
        """After a fetched body was recorded (FeedPipeline.on_fetched): subscribe at the hub
        the feed announces, or move to the one it announces now, or unsubscribe when it
        announces none any more."""
        if not self.enabled:
            return
        links = discover(result, document, allow_private=self.settings.fetch.allow_private_networks)
        if links is not None and await self.store.websub.followed_by_paused_chats_only(feed.id):
            links = None  # nobody to push to: the manager unsubscribes, if it had subscribed
        live = await self.store.websub.live_for_feed(feed.id)
        if live is not None and links == HubLinks(live.hub, live.topic):
            return
        now = self.clock.now_ms()
        if live is not None:
            log.info("event=websub_hub_changed feed=%d hub=%s", feed.id, live.hub)
            await self.store.websub.begin_unsubscribe(live, now_ms=now)
        if links is not None:
            token = secrets.token_urlsafe(_TOKEN_BYTES)
            added = await self.store.websub.add(
                feed.id,
                hub=links.hub,
                topic=links.topic,
                token=token,
                callback=self.callback_url(token),
                secret=secrets.token_urlsafe(_SECRET_BYTES),
                now_ms=now,
            )
            if added is not None:
                log.info("event=websub_hub_found feed=%d hub=%s", feed.id, links.hub)
        self.wake()

    # --- requests to hubs -----------------------------------------------------------------

    async def run_due(self) -> int:
        """One pass: unsubscribe feeds no chat follows, lapse leases that ran out, and send
        every request that is due (up to BATCH). Returns the requests sent."""
        if not self.enabled:
            return 0
        now = self.clock.now_ms()
        for subscription in await self.store.websub.orphaned(created_before=now - ORPHAN_GRACE_MS):
            log.info("event=websub_feed_left feed=%d", subscription.feed_id)
            await self.store.websub.begin_unsubscribe(subscription, now_ms=now)
        for subscription in await self.store.websub.lease_ended(now):
            log.warning("event=websub_lease_ended feed=%d", subscription.feed_id)
            await self.store.websub.lapse(
                subscription, error="lease_ended", now_ms=now, retry_at=now
            )
        due = await self.store.websub.due(now, BATCH)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def bounded(subscription: HubSubscription) -> None:
            async with slots:
                await self._request(subscription)

        await asyncio.gather(*(bounded(s) for s in due))
        return len(due)

    async def _request(self, subscription: HubSubscription) -> None:
        if subscription.state == UNSUBSCRIBING:
            if self._nothing_to_undo(subscription):
                await self.store.websub.remove(subscription.id)
                return
            await self._send(subscription, "unsubscribe")
        else:
            await self._send(subscription, "subscribe")

    def _nothing_to_undo(self, subscription: HubSubscription) -> bool:
        """An unsubscribing row the hub holds nothing for (never accepted, lease over), or
        one the hub kept ignoring: dropped without asking (again)."""
        now = self.clock.now_ms()
        never_accepted = subscription.requested_at is None and subscription.verified_at is None
        lease_over = (
            subscription.lease_expires_at is not None and subscription.lease_expires_at <= now
        )
        return never_accepted or lease_over or subscription.attempts >= UNSUBSCRIBE_TRIES

    async def _send(self, subscription: HubSubscription, mode: str) -> None:
        form = {
            "hub.mode": mode,
            "hub.topic": subscription.topic,
            "hub.callback": subscription.callback,
        }
        if mode == "subscribe":
            form["hub.secret"] = subscription.secret
            form["hub.lease_seconds"] = str(self.settings.websub.lease_seconds)
        sent_at = self.clock.now_ms()
        self.stats.requests += 1
        error = await self._post(subscription.hub, form)
        accepted = error is None
        # Accepted: the hub verifies next, and is asked again only if it never does.
        wait = VERIFY_WAIT_MS if accepted else retry_delay_ms(subscription.attempts + 1)
        next_request_at = sent_at + wait
        await self.store.websub.asked(
            subscription.id,
            sent_at=sent_at,
            accepted=accepted,
            error=error,
            next_request_at=next_request_at,
        )
        log.log(
            logging.INFO if accepted else logging.WARNING,
            "event=websub_request mode=%s feed=%d hub=%s accepted=%s error=%s",
            mode,
            subscription.feed_id,
            subscription.hub,
            accepted,
            error or "-",
        )

    async def _post(self, hub: str, form: Mapping[str, str]) -> str | None:
        """Send one request; None when the hub accepted it, else why not (a failure code)."""
        try:
            answer = await self.fetcher.post_form(hub, form)
        except FeedError as error:
            self.stats.request_failures += 1
            return error.failure.code
        if 200 <= answer.status < 300:  # §5.1.2 says 202; any success is taken
            return None
        self.stats.request_failures += 1
        log.info(
            "event=websub_request_refused hub=%s status=%d text=%r",
            hub,
            answer.status,
            answer.text[:200],
        )
        return f"http_status:{answer.status}"

    # --- the callback ---------------------------------------------------------------------

    async def verify(self, token: str, query: Mapping[str, str]) -> tuple[int, str]:
        """Answer a hub's GET to a callback: (status, body). The challenge is echoed only
        for the subscription (or unsubscription) being made at this callback, for its own
        topic (§5.3.1); a denial (§5.2) is taken note of; anything else is 404."""
        subscription = await self.store.websub.by_token(token)
        mode = query.get("hub.mode", "")
        if subscription is None or query.get("hub.topic") != subscription.topic:
            return self._refuse_verification(mode)
        if mode == "denied":
            await self._denied(subscription, query.get("hub.reason", ""))
            return 200, ""
        challenge = query.get("hub.challenge", "")
        if not challenge or len(challenge) > _CHALLENGE_MAX:
            return self._refuse_verification(mode)
        if mode == "subscribe" and subscription.state in LIVE:
            lease = _lease_seconds(
                query.get("hub.lease_seconds"), self.settings.websub.lease_seconds
            )
            now = self.clock.now_ms()
            if await self.store.websub.verified(
                subscription.id, lease_seconds=lease, now_ms=now, renew_at=renewal_time(now, lease)
            ):
                self.stats.verified += 1
                log.info("event=websub_verified feed=%d lease=%ds", subscription.feed_id, lease)
                return 200, challenge
        if mode == "unsubscribe" and subscription.state == UNSUBSCRIBING:
            await self.store.websub.remove(subscription.id)
            self.stats.verified += 1
            log.info("event=websub_unsubscribed feed=%d", subscription.feed_id)
            return 200, challenge
        return self._refuse_verification(mode)

    def _refuse_verification(self, mode: str) -> tuple[int, str]:
        self.stats.verifications_refused += 1
        log.info("event=websub_verification_refused mode=%s", mode[:20])
        return 404, "no such subscription"

    async def _denied(self, subscription: HubSubscription, reason: str) -> None:
        now = self.clock.now_ms()
        log.warning(
            "event=websub_denied feed=%d hub=%s reason=%r",
            subscription.feed_id,
            subscription.hub,
            reason[:200],
        )
        if subscription.state in LIVE:
            await self.store.websub.lapse(
                subscription,
                error=f"denied:{reason[:200]}",
                now_ms=now,
                retry_at=now + DENIED_RETRY_MS,
            )

    async def deliver(
        self, token: str, *, signature: str | None, content_type: str | None, body: bytes
    ) -> int:
        """Take a hub's POST to a callback; returns the HTTP status to answer."""
        subscription = await self.store.websub.by_token(token)
        if subscription is None or subscription.state == UNSUBSCRIBING:
            self.stats.unknown_callbacks += 1
            return 410  # §7: "the subscription has been deleted"; the hub may drop it
        now = self.clock.now_ms()
        if not signature_valid(signature, body, subscription.secret):
            self.stats.bad_signatures += 1
            await self.store.outbox.bump_counter(BAD_SIGNATURE_COUNTER, now)
            log.warning(
                "event=websub_bad_signature feed=%d signed=%s bytes=%d",
                subscription.feed_id,
                bool(signature),
                len(body),
            )
            return 202  # ignored (§7.1.2), answered like any other delivery
        feed = await self.store.feeds.get(subscription.feed_id)
        if feed is None:
            return 410
        try:
            async with self._delivering:
                await self.pipeline.check_delivered(feed, body, content_type)
        except FeedError as error:
            self.stats.unreadable += 1
            log.warning("event=websub_unreadable feed=%d error=%s", feed.id, error.failure.code)
            return 202  # a hub sends the same bytes again: no use asking
        self.stats.deliveries += 1
        await self.store.websub.delivered(subscription.id, now)
        return 202

    async def _on_verification(self, request: web.Request) -> web.Response:
        status, text = await self.verify(request.match_info["token"], request.query)
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _on_delivery(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = await self.deliver(
            request.match_info["token"],
            signature=request.headers.get(SIGNATURE_HEADER),
            content_type=request.headers.get("Content-Type"),
            body=body,
        )
        return web.Response(status=status)


def _lease_seconds(value: str | None, asked: int) -> int:
    """The lease a hub granted (it "MUST supply" it, §5.3); a hub that did not is taken to
    have granted what was asked."""
    if value and value.isascii() and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return asked
