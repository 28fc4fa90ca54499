"""A WebSub hub on 127.0.0.1 for tests and benchmarks (the hub's side of the W3C
Recommendation, written from the spec, independent of the bot's code).

- Subscription requests: POST form to `url` (hub.mode, hub.topic, hub.callback,
  hub.secret, hub.lease_seconds), answered 202 (or `refuse_with`), then verified of intent:
  a GET to the callback with a fresh challenge, which must come back as the body of a 2xx.
  A verified subscribe holds (topic, callback) with its secret and the lease granted
  (the one asked, capped at `max_lease_seconds`) until the lease ends, unless a renewal
  (the same request again, verified) starts it again; a verified unsubscribe drops it.
- Content distribution: `publish(topic)` fetches the topic (or takes the body given) and
  POSTs it to every subscription of the topic whose lease has not ended, signed with
  X-Hub-Signature (HMAC of the body with the subscription's secret, `method`); `deliver`
  sends any body with any signature (a forger, a broken hub).
- `deny` sends a denial (§5.2).

Callbacks name the bot's public origin; `forward` maps it to where the bot listens, as the
reverse proxy in front of a real bot does:

    async with FakeHub(forward={"https://bot.example": listener.base_url}) as hub:
        ...
        await hub.settled()            # verifications started by requests have finished
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from aiohttp import web

_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclass(frozen=True)
class SubscriptionRequest:
    mode: str
    topic: str
    callback: str
    secret: str | None
    lease_seconds: int | None


@dataclass(frozen=True)
class Verification:
    mode: str
    topic: str
    callback: str
    status: int
    confirmed: bool  # 2xx and the challenge echoed exactly


@dataclass
class HeldSubscription:
    secret: str | None
    lease_seconds: int
    expires_at: float  # time.monotonic(): past it the hub delivers nothing (§5.3, lease)

    @property
    def live(self) -> bool:
        return time.monotonic() < self.expires_at


@dataclass
class FakeHub:
    forward: Mapping[str, str] = field(default_factory=dict)
    max_lease_seconds: int | None = None
    method: str = "sha256"
    verify_automatically: bool = True
    refuse_with: int | None = None  # answer subscription requests with this status instead
    requests: list[SubscriptionRequest] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], HeldSubscription] = field(default_factory=dict)
    _port: int | None = None
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _tasks: set[asyncio.Task[Verification]] = field(default_factory=set)
    _verified: asyncio.Event = field(default_factory=asyncio.Event)

    # --- life cycle ---

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hub", self._on_request)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        # Many deliveries at once (benchmarks): no per-host connection cap.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._session = aiohttp.ClientSession(connector=connector)

    async def stop(self) -> None:
        await self.settled()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeHub:
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
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hub"

    async def verified(self, count: int = 1) -> None:
        """Wait until `count` verifications of intent were made."""
        while len(self.verifications) < count:
            self._verified.clear()
            await self._verified.wait()

    async def settled(self) -> None:
        """Wait for the verifications that requests started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- the subscriber-facing endpoint ---

    async def _on_request(self, request: web.Request) -> web.Response:
        form = await request.post()
        mode, topic, callback = (
            str(form.get(k, "")) for k in ("hub.mode", "hub.topic", "hub.callback")
        )
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            return web.Response(
                status=400, text="hub.mode, hub.topic and hub.callback are required"
            )
        lease = str(form.get("hub.lease_seconds", ""))
        secret = form.get("hub.secret")
        if secret is not None and len(str(secret).encode()) >= 200:
            return web.Response(status=400, text="hub.secret must be under 200 bytes")
        asked = SubscriptionRequest(
            mode,
            topic,
            callback,
            None if secret is None else str(secret),
            int(lease) if lease.isdigit() else None,
        )
        self.requests.append(asked)
        if self.refuse_with is not None:
            return web.Response(status=self.refuse_with, text="refused by the test")
        if self.verify_automatically:
            task = asyncio.create_task(self.verify(asked))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(status=202)

    def granted_lease(self, asked: SubscriptionRequest) -> int:
        lease = asked.lease_seconds or 864000
        return min(lease, self.max_lease_seconds) if self.max_lease_seconds else lease

    async def verify(self, asked: SubscriptionRequest, *, topic: str | None = None) -> Verification:
        """Verification of intent for `asked` (with another topic, to test a refusal)."""
        challenge = secrets.token_urlsafe(16)
        params = {
            "hub.mode": asked.mode,
            "hub.topic": topic or asked.topic,
            "hub.challenge": challenge,
        }
        lease = self.granted_lease(asked)
        if asked.mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        status, body = await self._get(asked.callback, params)
        confirmed = 200 <= status < 300 and body == challenge
        result = Verification(asked.mode, params["hub.topic"], asked.callback, status, confirmed)
        self.verifications.append(result)
        self._verified.set()
        if confirmed and topic is None:
            key = (asked.topic, asked.callback)
            if asked.mode == "subscribe":  # a renewal starts the lease again
                expires_at = time.monotonic() + lease
                self.subscriptions[key] = HeldSubscription(asked.secret, lease, expires_at)
            else:
                self.subscriptions.pop(key, None)
        return result

    async def deny(self, topic: str, callback: str, reason: str = "not allowed") -> int:
        self.subscriptions.pop((topic, callback), None)
        status, _ = await self._get(
            callback, {"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason}
        )
        return status

    # --- content distribution ---

    def sign(self, body: bytes, secret: str) -> str:
        digest = hmac.new(secret.encode(), body, _DIGESTS[self.method]).hexdigest()
        return f"{self.method}={digest}"

    async def publish(
        self, topic: str, body: bytes | None = None, content_type: str | None = None
    ) -> list[int]:
        """Distribute the topic's content (fetched now unless given) to its subscribers;
        the status each callback answered."""
        if body is None:
            assert self._session is not None
            async with self._session.get(topic) as response:
                body = await response.read()
                content_type = content_type or response.headers.get("Content-Type")
        held = [(cb, sub) for (t, cb), sub in self.subscriptions.items() if t == topic and sub.live]
        return list(
            await asyncio.gather(
                *(
                    self.deliver(
                        callback,
                        body,
                        signature=self.sign(body, sub.secret) if sub.secret is not None else None,
                        content_type=content_type,
                        topic=topic,
                    )
                    for callback, sub in held
                )
            )
        )

    async def deliver(
        self,
        callback: str,
        body: bytes,
        *,
        signature: str | None,
        content_type: str | None = "application/rss+xml",
        topic: str = "",
    ) -> int:
        """POST `body` to `callback` with the Link headers of §7 and `signature` (None: no
        X-Hub-Signature header). Returns the status the callback answered."""
        assert self._session is not None
        headers = {"Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"'}
        if content_type:
            headers["Content-Type"] = content_type
        if signature is not None:
            headers["X-Hub-Signature"] = signature
        async with self._session.post(
            self._local(callback), data=body, headers=headers
        ) as response:
            await response.read()
            return response.status

    async def _get(self, callback: str, params: dict[str, str]) -> tuple[int, str]:
        assert self._session is not None
        async with self._session.get(self._local(callback), params=params) as response:
            return response.status, await response.text()

    def _local(self, callback: str) -> str:
        for origin, local in self.forward.items():
            if callback.startswith(origin + "/"):
                return local + callback[len(origin) :]
        return callback
