"""WebSub push end to end, without Telegram: the store, the pipeline, the listener and the
subscription manager wired as the runtime wires them, a fake hub (tests/fakes/websub_hub.py)
and the local feed server. A story pushed through the hub is recorded and its alert queued
in the outbox; a bad signature is refused and counted; the lease is renewed before it ends;
the hub is told when the last chat leaves the feed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.websub import BAD_SIGNATURE_COUNTER, ORPHAN_GRACE_MS, WebSub
from bot.filters import KeywordIndex
from bot.listener import Listener
from bot.routing import make_router
from bot.store import Feed, HubSubscription, Store
from bot.usecases.subscriptions import Subscriptions
from tests.conftest import START_MS, make_settings
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.fakes.websub_hub import FakeHub
from tests.helpers import feed_document, fetch_result

ORIGIN = "https://bot.example"
NOW = datetime.fromtimestamp(START_MS / 1000, UTC)


def story(n: int, *, when: datetime | None = None) -> FeedItem:
    return FeedItem(
        title=f"Story {n}",
        link=f"https://news.test/{n}",
        guid=f"guid-{n}",
        pub_date=when or NOW - timedelta(hours=n),
        description="<p>Lead paragraph. Second sentence.</p>",
    )


class PushBot:
    """The bot's feed half with push: wired as the runtime wires it (README, WebSub)."""

    def __init__(self, store: Store, settings: Settings, clock: FakeClock, fetcher: Fetcher):
        self.store = store
        self.clock = clock
        self.pipeline = FeedPipeline(
            store, fetcher, settings, clock, make_router(KeywordIndex()), seed=1
        )
        self.websub = WebSub(store, fetcher, self.pipeline, settings, clock)
        self.pipeline.on_fetched = self.websub.observe
        self.subscriptions = Subscriptions(store, self.pipeline, clock)
        assert settings.listener.listen is not None
        self.listener = Listener(
            settings.listener.listen, max_body_bytes=settings.fetch.max_body_bytes
        )
        self.listener.add_routes(self.websub.routes())

    async def follow(self, chat_id: int, url: str) -> None:
        await self.store.chats.upsert(
            chat_id, kind="private", title="", language="en", now_ms=self.clock.now_ms()
        )
        await self.subscriptions.subscribe(chat_id, url, thread_id=None)

    async def leave(self, chat_id: int, url: str) -> None:
        await self.subscriptions.unsubscribe(chat_id, url)
        self.websub.wake()

    async def feed(self, url: str) -> Feed:
        feed = await self.store.feeds.by_url(url)
        assert feed is not None
        return feed

    async def subscription(self, url: str) -> HubSubscription | None:
        return await self.store.websub.live_for_feed((await self.feed(url)).id)

    async def alerts(self) -> list[tuple[int, str]]:
        rows = await self.store.db.fetchall(
            "SELECT o.chat_id, s.title FROM outbox o JOIN stories s ON s.id = o.story_id"
            " WHERE o.kind = 'alert' ORDER BY o.id"
        )
        return [(r[0], r[1]) for r in rows]


def push_settings(tmp_path: Path, **env: str) -> Settings:
    return make_settings(
        tmp_path,
        NEWS_NOTIFIER_WEBHOOK_URL=ORIGIN + "/telegram",
        NEWS_NOTIFIER_LISTEN="127.0.0.1:0",
        **env,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return push_settings(tmp_path)


@pytest.fixture
async def bot(store: Store, settings: Settings, clock: FakeClock) -> AsyncIterator[PushBot]:
    async with Fetcher(settings.fetch) as fetcher:
        bot = PushBot(store, settings, clock, fetcher)
        await bot.listener.start()
        try:
            yield bot
        finally:
            await bot.listener.stop()


@pytest.fixture
async def hub(bot: PushBot) -> AsyncIterator[FakeHub]:
    async with FakeHub(forward={ORIGIN: bot.listener.base_url}) as hub:
        yield hub


async def pushed_feed(bot: PushBot, hub: FakeHub, feed_server: FeedServer, *chats: int) -> str:
    """A feed announcing `hub`, followed by `chats`, its subscription verified."""
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [story(1)], links=[("hub", hub.url), ("self", url)])
    for chat in chats or (1,):
        await bot.follow(chat, url)
    assert await bot.websub.run_due() == 1
    await hub.settled()
    return url


async def test_a_story_pushed_through_the_hub_is_recorded_and_queued(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer
) -> None:
    url = await pushed_feed(bot, hub, feed_server, 1, 2)
    [asked] = hub.requests
    assert (asked.mode, asked.topic, asked.lease_seconds) == ("subscribe", url, 864000)
    assert asked.callback.startswith(ORIGIN + "/websub/") and len(asked.callback) > 40
    assert asked.secret and len(asked.secret) >= 32
    assert [v.confirmed for v in hub.verifications] == [True]
    subscription = await bot.subscription(url)
    assert subscription is not None and subscription.state == "active"
    assert (await bot.feed(url)).hub_push is True

    feed_server.publish("/f.xml", [story(0, when=NOW), story(1)], links=[("hub", hub.url)])
    assert await hub.publish(url) == [202]
    assert await bot.alerts() == [(1, "Story 0"), (2, "Story 0")]
    assert bot.pipeline.stats.deliveries == 1 and bot.websub.stats.deliveries == 1
    # The same story pushed again, then polled: it is not news twice.
    assert await hub.publish(url) == [202]
    await bot.pipeline.check(await bot.feed(url))
    assert len(await bot.alerts()) == 2


async def test_a_delivery_meets_the_archive_rule_and_leaves_the_polling_state(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    before = await bot.feed(url)
    clock.advance(30)
    archive = FeedItem("Old one", "https://news.test/old", "old", NOW - timedelta(days=9))
    body = rss_document([archive, story(0, when=NOW)])
    assert await hub.publish(url, body, "application/rss+xml") == [202]
    assert await bot.alerts() == [(1, "Story 0")]
    after = await bot.feed(url)
    # The pushed body is not what a conditional GET of the feed would get: its validators,
    # schedule and health stay as the poller left them.
    polling = ("etag", "body_hash", "next_check_at", "last_checked_at", "last_success_at")
    assert [getattr(after, name) for name in polling] == [getattr(before, n) for n in polling]


async def test_a_bad_or_missing_signature_is_refused_and_counted(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    subscription = await bot.subscription(url)
    assert subscription is not None
    body = rss_document([story(0, when=NOW), story(1)])
    forged = hub.sign(body, "not-the-secret")
    tampered = hub.sign(b"other bytes", subscription.secret)
    for signature in (forged, tampered, None, "sha256=", "md5=00"):
        status = await hub.deliver(subscription.callback, body, signature=signature, topic=url)
        assert status == 202  # acknowledged (spec §7.1.2), and ignored
    assert await bot.alerts() == []
    assert bot.websub.stats.bad_signatures == 5
    counters = await bot.store.outbox.counters(bot.clock.now_ms())
    assert counters[BAD_SIGNATURE_COUNTER] == 5
    # The real one still goes through.
    good = hub.sign(body, subscription.secret)
    assert await hub.deliver(subscription.callback, body, signature=good, topic=url) == 202
    assert await bot.alerts() == [(1, "Story 0")]


async def test_verification_is_echoed_only_for_a_pending_subscription_and_its_topic(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer
) -> None:
    hub.verify_automatically = False
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [story(1)], links=[("hub", hub.url)])
    await bot.follow(1, url)
    await bot.websub.run_due()
    [asked] = hub.requests
    other_topic = await hub.verify(asked, topic="https://elsewhere.test/feed")
    assert (other_topic.status, other_topic.confirmed) == (404, False)
    unknown = await hub.verify(
        type(asked)("subscribe", url, ORIGIN + "/websub/no-such-token", None, 60)
    )
    assert unknown.status == 404
    not_asked = await hub.verify(type(asked)("unsubscribe", url, asked.callback, None, None))
    assert not_asked.status == 404
    assert (await bot.feed(url)).hub_push is False
    assert (await hub.verify(asked)).confirmed is True
    assert (await bot.feed(url)).hub_push is True


async def test_the_lease_is_renewed_before_it_ends(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    hub.max_lease_seconds = 1000
    url = await pushed_feed(bot, hub, feed_server)
    subscription = await bot.subscription(url)
    assert subscription is not None and subscription.lease_seconds == 1000
    first_expiry = subscription.lease_expires_at
    assert first_expiry == START_MS + 1000 * 1000

    clock.advance(850)
    assert await bot.websub.run_due() == 0  # more than a tenth of the lease left
    clock.advance(60)  # 910 s: 90 s left
    assert await bot.websub.run_due() == 1
    await hub.settled()
    assert [r.mode for r in hub.requests] == ["subscribe", "subscribe"]
    assert hub.requests[1].callback == hub.requests[0].callback  # the same subscription
    renewed = await bot.subscription(url)
    assert renewed is not None and renewed.state == "active"
    assert renewed.lease_expires_at == clock.now_ms() + 1000 * 1000 > first_expiry
    assert (await bot.feed(url)).hub_push is True


async def test_a_lease_that_ends_unrenewed_puts_the_feed_back_on_its_own_rate(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    hub.max_lease_seconds = 1000
    url = await pushed_feed(bot, hub, feed_server)
    hub.refuse_with = 503  # the hub is down for every renewal
    clock.advance(1001)
    await bot.websub.run_due()
    feed = await bot.feed(url)
    assert feed.hub_push is False and feed.next_check_at <= clock.now_ms()
    subscription = await bot.subscription(url)
    assert subscription is not None and subscription.state == "subscribing"
    assert subscription.last_error == "http_status:503"


async def test_the_hub_is_told_when_the_last_chat_leaves(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server, 1, 2)
    [asked] = hub.requests
    clock.advance(ORPHAN_GRACE_MS / 1000 + 1)
    await bot.leave(1, url)
    assert await bot.websub.run_due() == 0  # chat 2 still follows it
    await bot.leave(2, url)
    assert await bot.websub.run_due() == 1
    await hub.settled()
    assert [(r.mode, r.callback) for r in hub.requests] == [
        ("subscribe", asked.callback),
        ("unsubscribe", asked.callback),
    ]
    assert hub.verifications[-1].confirmed is True
    assert hub.subscriptions == {}
    assert await bot.store.websub.count_by_state() == {}
    assert (await bot.feed(url)).hub_push is False
    # A late delivery to the old callback: gone, so the hub may drop it.
    body = rss_document([story(0, when=NOW)])
    assert await hub.deliver(asked.callback, body, signature=hub.sign(body, "x"), topic=url) == 410


async def test_a_pushed_feed_is_polled_only_as_a_safety_net(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    await bot.pipeline.check(await bot.feed(url))  # poll.interval is 1 s in tests
    delay_s = ((await bot.feed(url)).next_check_at - clock.now_ms()) / 1000
    assert delay_s >= 3600 * 0.9


async def test_a_feed_that_names_another_hub_moves_there(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    async with FakeHub(forward={ORIGIN: bot.listener.base_url}) as new_hub:
        feed_server.publish("/f.xml", [story(1)], links=[("hub", new_hub.url), ("self", url)])
        clock.advance(2)
        await bot.pipeline.check(await bot.feed(url))
        await bot.websub.run_due()
        await hub.settled()
        await new_hub.settled()
        assert [r.mode for r in hub.requests] == ["subscribe", "unsubscribe"]
        assert [r.mode for r in new_hub.requests] == ["subscribe"]
        subscription = await bot.subscription(url)
        assert subscription is not None and subscription.hub == new_hub.url
        assert subscription.state == "active"


async def test_a_denied_subscription_is_retried_a_day_later(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    [asked] = hub.requests
    assert await hub.deny(url, asked.callback, "quota") == 200
    subscription = await bot.subscription(url)
    assert subscription is not None and subscription.state == "subscribing"
    assert subscription.last_error == "denied:quota"
    assert subscription.next_request_at == clock.now_ms() + 24 * 3600 * 1000
    assert (await bot.feed(url)).hub_push is False


async def test_push_off_leaves_no_feed_waiting_for_a_hub(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, tmp_path: Path, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    off = make_settings(tmp_path)  # no public URL
    async with Fetcher(off.fetch) as fetcher:
        websub = WebSub(bot.store, fetcher, bot.pipeline, off, clock)
        await websub.start()
        await websub.stop()
    assert (await bot.feed(url)).hub_push is False


async def test_a_moved_public_url_subscribes_again_with_the_new_callback(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, tmp_path: Path, clock: FakeClock
) -> None:
    url = await pushed_feed(bot, hub, feed_server)
    moved = make_settings(
        tmp_path,
        NEWS_NOTIFIER_WEBHOOK_URL="https://new.example/telegram",
        NEWS_NOTIFIER_LISTEN="127.0.0.1:0",
    )
    async with Fetcher(moved.fetch) as fetcher:
        websub = WebSub(bot.store, fetcher, bot.pipeline, moved, clock)
        await websub.start()
        await websub.stop()
    subscription = await bot.subscription(url)
    assert subscription is not None
    assert subscription.callback == "https://new.example/websub/" + subscription.token
    assert subscription.state == "subscribing" and subscription.next_request_at <= clock.now_ms()
    assert (await bot.feed(url)).hub_push is False


async def test_a_hub_on_a_private_address_is_not_contacted(
    tmp_path: Path, clock: FakeClock, feed_server: FeedServer
) -> None:
    """The feed server is allowed (its address is private, like the hub's), but the hub it
    names is not: the subscription request never leaves."""
    settings = push_settings(tmp_path, NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS="0")
    async with await Store.open(settings.database.path) as store, FakeHub() as hub:
        async with Fetcher(settings.fetch) as fetcher:
            bot = PushBot(store, settings, clock, fetcher)
            feed_id = await store.feeds.add(
                "https://news.test/f.xml", title="", site_url="", now_ms=0
            )
            feed = await store.feeds.get(feed_id)
            assert feed is not None
            https_hub = hub.url.replace("http://", "https://")
            await bot.websub.observe(feed, fetch_result(feed.url), feed_document(hubs=(https_hub,)))
            assert await bot.websub.run_due() == 1
        assert hub.requests == []
        subscription = await store.websub.live_for_feed(feed_id)
        assert subscription is not None and subscription.last_error == "address_not_allowed"
        assert subscription.next_request_at > clock.now_ms()


async def test_the_running_manager_subscribes_as_soon_as_a_hub_is_found(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer
) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [story(1)], links=[("hub", hub.url)])
    await bot.websub.start()
    try:
        await bot.follow(1, url)  # observe() wakes the manager: no 30 s wait
        async with asyncio.timeout(10):
            await hub.verified()
            await hub.settled()
    finally:
        await bot.websub.stop()
    assert (await bot.feed(url)).hub_push is True


async def test_a_feed_followed_only_by_paused_chats_is_not_pushed(
    bot: PushBot, hub: FakeHub, feed_server: FeedServer, clock: FakeClock
) -> None:
    """Its only chat blocked the bot: the hub is told, and a fetch does not subscribe again
    while the chat stays paused; once the chat is back, the next fetch does."""
    url = await pushed_feed(bot, hub, feed_server)
    await bot.store.chats.pause(1)
    clock.advance(ORPHAN_GRACE_MS / 1000 + 1)
    assert await bot.websub.run_due() == 1
    await hub.settled()
    assert [r.mode for r in hub.requests] == ["subscribe", "unsubscribe"]
    assert hub.subscriptions == {}

    links = [("hub", hub.url), ("self", url)]
    for n, resumed in ((2, False), (3, True)):
        if resumed:
            await bot.store.chats.resume(1)
        feed_server.publish("/f.xml", [story(n, when=NOW), story(1)], links=links)
        clock.advance(2)
        await bot.pipeline.check(await bot.feed(url))  # a changed body: the hub is seen
        assert await bot.websub.run_due() == int(resumed)
        await hub.settled()
    assert [r.mode for r in hub.requests] == ["subscribe", "unsubscribe", "subscribe"]
    assert (await bot.feed(url)).hub_push is True
