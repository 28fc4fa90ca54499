"""Every document of ../shared/feeds (30 real-world feeds, a 300-document crawl) through
fetch-from-a-local-server, parse, normalize, dedupe and summarize: no exception, no hang;
documents that are not feeds give a clear "not a feed" error."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import NOT_A_FEED_KINDS, NotAFeedError, UserError
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Store
from bot.usecases.subscriptions import Subscriptions
from tests.fakes.feed_server import FeedServer
from tests.paths import SHARED

CORPUS = [
    *sorted((SHARED / "feeds" / "real-world").glob("*.xml")),
    *sorted((SHARED / "feeds" / "crawl-sample").glob("*.dat")),
]
PER_DOCUMENT_SECONDS = 20  # a hang detector, far above the few milliseconds a document takes


@pytest.mark.skipif(not CORPUS, reason="../shared/feeds is not beside the repository")
async def test_every_shared_document_goes_through_the_pipeline(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    outcomes: dict[str, int] = {"feeds": 0, "not_a_feed": 0, "entries": 0, "summaries": 0}
    async with Fetcher(settings.fetch) as fetcher:
        pipeline = FeedPipeline(store, fetcher, settings, clock, make_router(KeywordIndex()))
        subscriptions = Subscriptions(store, pipeline, clock)
        await store.chats.upsert(1, kind="private", title="", language="en", now_ms=clock.now_ms())
        for path in CORPUS:
            feed_server.serve("/" + path.name, path.read_bytes(), content_type=None)
            url = feed_server.url("/" + path.name)
            try:
                async with asyncio.timeout(PER_DOCUMENT_SECONDS):
                    # The documents themselves: the feeds that its web pages link to live
                    # on the internet, which a test never reaches.
                    await subscriptions.subscribe(1, url, thread_id=None, discover=False)
                    # A second check of the same bytes: identical body, nothing new.
                    feed = await store.feeds.by_url(url)
                    assert feed is not None
                    assert await pipeline.check(feed) is None
                    assert (await store.feeds.get(feed.id)).last_error is None  # type: ignore[union-attr]
            except NotAFeedError as error:
                assert error.failure.what in NOT_A_FEED_KINDS
                outcomes["not_a_feed"] += 1
                continue
            except UserError as error:  # pragma: no cover - shown with the document's name
                raise AssertionError(f"{path.name}: {error}") from None
            outcomes["feeds"] += 1
    row = await store.db.fetchone("SELECT COUNT(*), SUM(summary != '') FROM stories")
    assert row is not None
    outcomes["entries"], outcomes["summaries"] = row[0], row[1]
    # The crawl has a handful of documents that are not feeds; nearly all are.
    assert outcomes["feeds"] >= 300 and 1 <= outcomes["not_a_feed"] <= 30, outcomes
    assert outcomes["entries"] > 5000 and outcomes["summaries"] > 0.8 * outcomes["entries"]
    # No alert was owed: each feed's first fetch only records what it holds.
    owed = await store.db.fetchone("SELECT COUNT(*) FROM outbox")
    assert owed is not None and owed[0] == 0


def test_corpus_is_there() -> None:
    if SHARED.exists():
        assert len(CORPUS) == 330, len(CORPUS)
