"""The feed's publishing rate (migration 0009, adaptive polling) in the store, on both
backends: written by the check that found the stories, in its transaction, read back as
it was written by every reader (the poller's Feed, the check's FeedState, the budget)."""

from __future__ import annotations

from bot.feeds.freshness import FeedRate, observe
from bot.models import Entry
from bot.store import FeedUpdate, Store
from tests.helpers import record_entries

NOW = 1_740_787_200_000
MINUTE = 60_000
HOUR = 60 * MINUTE
CHAT = 5


def entry(feed_id: int, n: int, now_ms: int) -> Entry:
    return Entry(
        feed_id=feed_id,
        identity=f"story-{n}",
        title=f"Story {n}",
        link=f"https://news.test/{n}",
        timestamp_id=now_ms - n,
        lead_html="",
        link_key=f"news.test/{n}",
        title_key=f"story {n}",
    )


async def followed_feed(store: Store, url: str) -> int:
    feed_id = await store.feeds.add(url, title="", site_url="", now_ms=NOW)
    await store.chats.upsert(CHAT, kind="private", title="", language="en", now_ms=NOW)
    await store.chats.subscribe(CHAT, feed_id, thread_id=None, now_ms=NOW)
    return feed_id


async def test_the_rate_a_check_observes_round_trips(store: Store) -> None:
    feed_id = await followed_feed(store, "https://news.test/feed")
    fresh = await store.feeds.get(feed_id)
    assert fresh is not None and fresh.rate is None  # no record before its first check

    await record_entries(store, feed_id, now_ms=NOW)  # the first check primes: no news
    primed = await store.feeds.get(feed_id)
    assert primed is not None and primed.rate == FeedRate(0.0, 0.0, NOW)

    later = NOW + 7 * MINUTE
    entries = [entry(feed_id, n, later) for n in range(3)]
    report = await record_entries(store, feed_id, entries, now_ms=later)
    assert report.fresh == 3
    expected = observe(FeedRate(0.0, 0.0, NOW), 3, later)
    assert expected.stories == 3.0 and 0 < expected.watched_hours < 0.2
    feed = await store.feeds.get(feed_id)
    assert feed is not None and feed.rate == expected  # floats exactly as written
    async with store.stories.check_unit(feed_id) as unit:
        assert (await unit.feed_state()).rate == expected
    assert await store.feeds.polled_rates(later) == [expected]

    # The same entries again: nothing new, the record as it was (observe of 0 is a no-op).
    await record_entries(store, feed_id, entries, now_ms=later + MINUTE)
    again = await store.feeds.get(feed_id)
    assert again is not None and again.rate == observe(expected, 0, later + MINUTE)


async def test_a_feed_without_a_record_starts_one_at_its_last_check(store: Store) -> None:
    """Feeds from before migration 0009 have no record: it starts at their last check, and
    the next answered check (a 304 too) writes it."""
    feed_id = await followed_feed(store, "https://news.test/old")
    checked = NOW + MINUTE
    await store.feeds.record_success(feed_id, FeedUpdate(now_ms=checked, next_check_at=checked))
    feed = await store.feeds.get(feed_id)
    assert feed is not None and feed.rate == FeedRate(0.0, 0.0, checked)

    # As migration 0009 leaves a row that was checked before it.
    await store.db.execute("UPDATE feeds SET rate_at = NULL WHERE id = ?", (feed_id,))
    feed = await store.feeds.get(feed_id)
    assert feed is not None and feed.rate == FeedRate(0.0, 0.0, checked)
    later = checked + 5 * MINUTE
    await store.feeds.record_success(feed_id, FeedUpdate(now_ms=later, next_check_at=later))
    [[at]] = await store.db.fetchall("SELECT rate_at FROM feeds WHERE id = ?", (feed_id,))
    assert at == checked  # from the check before, not this one


async def test_the_budget_reads_the_polled_feeds_only(store: Store) -> None:
    polled = await followed_feed(store, "https://news.test/polled")
    pushed = await followed_feed(store, "https://news.test/pushed")
    paused = await followed_feed(store, "https://news.test/paused")
    await store.feeds.add("https://news.test/nobody", title="", site_url="", now_ms=NOW)
    for feed_id in (polled, pushed, paused):
        await record_entries(store, feed_id, now_ms=NOW + feed_id)
    await store.db.execute("UPDATE feeds SET hub_push = 1 WHERE id = ?", (pushed,))
    await store.db.execute("UPDATE feeds SET status = 'paused' WHERE id = ?", (paused,))

    assert await store.feeds.polled_rates(NOW + HOUR) == [FeedRate(0.0, 0.0, NOW + polled)]
    # A followed feed never checked counts as new: it is checked at the mean.
    await followed_feed(store, "https://news.test/never")
    rates = await store.feeds.polled_rates(NOW + HOUR)
    assert sorted(rates, key=lambda r: r.at_ms) == [
        FeedRate(0.0, 0.0, NOW + polled),
        FeedRate.new(NOW + HOUR),
    ]
