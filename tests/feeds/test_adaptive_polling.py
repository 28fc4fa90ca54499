"""Adaptive polling through the real Poller, FeedPipeline, Fetcher and a local feed host
(issue 16, part 1): a feed that publishes often is checked more often than one that is
quiet, and all of them together spend about the requests a fixed poll.interval would.

Time is a FakeClock moved in steps; every tick is the poller's own (due query, budget
refreshed once a simulated minute, checks over HTTP, next check written by the check).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import FakeClock
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Store
from tests.conftest import make_settings
from tests.fakes.feed_server import FeedItem, FeedServer

CHAT = 1
MEAN = 300  # poll.interval: the mean interval the budget is set from
STEP = 30  # seconds of simulated time per poller tick
HOURS = 6
PUBLISH_EVERY = 120  # seconds between two stories of the busy feed
QUIET_FEEDS = 3


async def follow(store: Store, server: FeedServer, path: str, now_ms: int) -> int:
    await store.chats.upsert(CHAT, kind="private", title="", language="en", now_ms=now_ms)
    feed_id = await store.feeds.add(server.url(path), title="", site_url="", now_ms=now_ms)
    await store.chats.subscribe(CHAT, feed_id, thread_id=None, now_ms=now_ms)
    return feed_id


def story(n: int, when_ms: int) -> FeedItem:
    published = datetime.fromtimestamp(when_ms / 1000, UTC)
    return FeedItem(f"Story {n}", f"https://busy.test/{n}", guid=f"busy-{n}", pub_date=published)


async def test_a_busy_feed_is_checked_more_often_than_a_quiet_one(
    tmp_path: Path, store: Store, clock: FakeClock, feed_server: FeedServer
) -> None:
    settings = make_settings(tmp_path, NEWS_NOTIFIER_POLL_INTERVAL=str(MEAN))
    assert (settings.poll.min_interval, settings.poll.max_interval) == (60, 3600)
    now = clock.now_ms()
    published = [story(0, now)]
    feed_server.publish("/busy.xml", published)
    quiet_paths = [f"/quiet-{n}.xml" for n in range(QUIET_FEEDS)]
    for path in quiet_paths:
        feed_server.publish(path, [FeedItem(f"Old {path}", f"https://quiet.test{path}")])
    for path in ["/busy.xml", *quiet_paths]:
        await follow(store, feed_server, path, now)

    async with Fetcher(settings.fetch) as fetcher:
        pipeline = FeedPipeline(
            store, fetcher, settings, clock, make_router(KeywordIndex()), seed=11
        )
        poller = Poller(store, pipeline, settings, clock)
        for step in range(HOURS * 3600 // STEP):
            if step * STEP % PUBLISH_EVERY == 0 and step:
                published = [story(len(published), clock.now_ms()), *published][:20]
                feed_server.publish("/busy.xml", published)
            await poller.tick()
            async with asyncio.timeout(60):
                await poller.wait_idle()
            clock.advance(STEP)

    busy = feed_server.hits("/busy.xml")
    quiet = [feed_server.hits(path) for path in quiet_paths]
    fixed = HOURS * 3600 / MEAN  # checks of each feed at a fixed poll.interval
    assert busy > 1.5 * fixed, (busy, quiet)
    assert all(q < 0.75 * fixed for q in quiet), (busy, quiet)
    assert busy > 3 * max(quiet), (busy, quiet)
    # The budget: all four together about as many requests as fixed intervals would make
    # (the first hours, with little on record, run near the mean), never much more.
    total = busy + sum(quiet)
    assert total <= 1.15 * fixed * (1 + QUIET_FEEDS), (busy, quiet)
    assert pipeline.budget.factor > 0 and pipeline.budget.computed_at_ms is not None
    # The busy feed's stories were found: its rate is on record in the feed row.
    feed = await store.feeds.by_url(feed_server.url("/busy.xml"))
    assert feed is not None and feed.rate is not None and feed.rate.stories > 10
