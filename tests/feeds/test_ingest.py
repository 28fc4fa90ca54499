"""Ingestion end to end without Telegram: local feed host → fetch → parse → normalize →
summarize → dedupe → outbox, with the dedupe promises of PRODUCT.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.errors import UserError
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.filters import Keyword, KeywordIndex
from bot.routing import make_router
from bot.store import Store
from bot.usecases.subscriptions import Subscriptions
from tests.conftest import START_MS
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.paths import FIXTURES, SHARED

NOW = datetime.fromtimestamp(START_MS / 1000, UTC)


class Bot:
    """The ingestion half of the bot, wired as the app wires it."""

    def __init__(
        self, store: Store, settings: Settings, clock: FakeClock, fetcher: Fetcher
    ) -> None:
        self.index = KeywordIndex()
        router = make_router(self.index)
        self.pipeline = FeedPipeline(store, fetcher, settings, clock, router, seed=1)
        self.subscriptions = Subscriptions(store, self.pipeline, clock)
        self.store = store
        self.clock = clock

    async def chat(self, chat_id: int) -> int:
        await self.store.chats.upsert(
            chat_id, kind="private", title="", language="en", now_ms=self.clock.now_ms()
        )
        return chat_id

    async def check(self, url: str) -> None:
        feed = await self.store.feeds.by_url(url)
        assert feed is not None
        await self.pipeline.check(feed)

    async def alerts(self) -> list[tuple[int, str, str]]:
        rows = await self.store.db.fetchall(
            "SELECT o.chat_id, s.title, s.summary FROM outbox o JOIN stories s"
            " ON s.id = o.story_id WHERE o.kind = 'alert' ORDER BY o.id"
        )
        return [(r[0], r[1], r[2]) for r in rows]


@pytest.fixture
async def bot(store: Store, settings: Settings, clock: FakeClock):
    async with Fetcher(settings.fetch) as fetcher:
        yield Bot(store, settings, clock, fetcher)


def item(
    n: int,
    *,
    when: datetime | None = None,
    guid: str | None = None,
    link: str | None = None,
    title: str | None = None,
    text: str = "Lead paragraph. Second sentence.",
) -> FeedItem:
    return FeedItem(
        title=title or f"Story {n}",
        link=link or f"https://news.test/{n}",
        guid=guid if guid is not None else f"guid-{n}",
        pub_date=when or NOW - timedelta(hours=n),
        description=f"<p>{text}</p>",
    )


async def test_first_fetch_primes_then_only_later_stories_alert_once(
    bot: Bot, feed_server: FeedServer
) -> None:
    feed_server.publish("/f.xml", [item(1), item(2)])
    chat = await bot.chat(1)
    result = await bot.subscriptions.subscribe(chat, feed_server.url("/f.xml"), thread_id=None)
    assert (result.created, result.entries, result.title) == (True, 2, "Test feed")
    assert await bot.alerts() == []

    feed_server.publish("/f.xml", [item(0, when=NOW), item(1), item(2)])
    await bot.check(feed_server.url("/f.xml"))
    assert await bot.alerts() == [(1, "Story 0", "Lead paragraph. Second sentence.")]

    await bot.check(feed_server.url("/f.xml"))  # same body: nothing parsed, nothing new
    assert len(await bot.alerts()) == 1
    assert bot.pipeline.stats.not_modified == 1


async def test_subscribing_twice_says_so_and_changes_nothing(
    bot: Bot, feed_server: FeedServer
) -> None:
    feed_server.publish("/f.xml", [item(1)])
    chat = await bot.chat(1)
    await bot.subscriptions.subscribe(chat, feed_server.url("/f.xml"), thread_id=None)
    again = await bot.subscriptions.subscribe(chat, feed_server.url("/f.xml"), thread_id=None)
    assert again.created is False
    assert len(await bot.store.chats.subscriptions(chat)) == 1


async def test_same_timestamp_both_new_restamp_and_return_not_new(
    bot: Bot, feed_server: FeedServer
) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1)])
    await bot.subscriptions.subscribe(await bot.chat(1), url, thread_id=None)

    # Two different stories with the same timestamp: both are news, sent in the feed's
    # order read from the bottom (feeds list the newest first).
    feed_server.publish("/f.xml", [item(10, when=NOW), item(11, when=NOW), item(1)])
    await bot.check(url)
    assert [a[1] for a in await bot.alerts()] == ["Story 11", "Story 10"]

    # Story 10 republished with a new time, story 1 left the feed: nothing new.
    feed_server.publish("/f.xml", [item(10, when=NOW + timedelta(hours=2)), item(11, when=NOW)])
    await bot.check(url)
    # Story 1 comes back after leaving: not new either.
    feed_server.publish("/f.xml", [item(1), item(10, when=NOW + timedelta(hours=2))])
    await bot.check(url)
    assert len(await bot.alerts()) == 2


async def test_archive_window_keeps_relisted_archive_out(bot: Bot, feed_server: FeedServer) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1, when=NOW)])
    await bot.subscriptions.subscribe(await bot.chat(1), url, thread_id=None)
    # A feed re-listing its archive under new guids: 8 days old is archive, 6 days is news.
    feed_server.publish(
        "/f.xml",
        [
            item(1, when=NOW),
            item(2, when=NOW - timedelta(days=8), guid="relisted-2"),
            item(3, when=NOW - timedelta(days=6), guid="relisted-3"),
        ],
    )
    await bot.check(url)
    assert [a[1] for a in await bot.alerts()] == ["Story 3"]
    # The archive entry is still recorded as seen (never sent later either).
    feed = await bot.store.feeds.by_url(url)
    assert feed is not None
    assert "relisted-2" not in [a[1] for a in await bot.alerts()]
    known = await bot.store.db.fetchone(
        "SELECT COUNT(*) FROM stories WHERE feed_id = ?", (feed.id,)
    )
    assert known is not None and known[0] == 3


async def test_future_dates_do_not_push_the_feed_clock(bot: Bot, feed_server: FeedServer) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1, when=NOW)])
    await bot.subscriptions.subscribe(await bot.chat(1), url, thread_id=None)
    feed_server.publish("/f.xml", [item(1, when=NOW), item(2, when=NOW + timedelta(days=30))])
    await bot.check(url)
    row = await bot.store.db.fetchone("SELECT timestamp_id FROM stories WHERE title = 'Story 2'")
    assert row is not None and row[0] == bot.clock.now_ms()
    # A story dated now is still news: the misdated one did not move the clock a month on.
    feed_server.publish("/f.xml", [item(3, when=NOW - timedelta(days=1)), item(1, when=NOW)])
    await bot.check(url)
    assert [a[1] for a in await bot.alerts()] == ["Story 2", "Story 3"]


async def test_a_later_subscriber_gets_no_backlog(bot: Bot, feed_server: FeedServer) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1)])
    await bot.subscriptions.subscribe(await bot.chat(1), url, thread_id=None)
    feed_server.publish("/f.xml", [item(2, when=NOW), item(1)])
    # Chat 2 subscribes: its check finds story 2, which is owed to chat 1 only.
    await bot.subscriptions.subscribe(await bot.chat(2), url, thread_id=None)
    assert [(a[0], a[1]) for a in await bot.alerts()] == [(1, "Story 2")]
    feed_server.publish("/f.xml", [item(3, when=NOW), item(2, when=NOW), item(1)])
    await bot.check(url)
    assert sorted((a[0], a[1]) for a in await bot.alerts()) == [
        (1, "Story 2"),
        (1, "Story 3"),
        (2, "Story 3"),
    ]


async def test_same_story_in_two_feeds_alerts_a_chat_once(
    bot: Bot, feed_server: FeedServer
) -> None:
    chat = await bot.chat(1)
    for path in ("/a.xml", "/b.xml"):
        feed_server.publish(path, [item(1)])
        await bot.subscriptions.subscribe(chat, feed_server.url(path), thread_id=None)
    shared_link = item(5, when=NOW, guid="a-5", link="https://news.test/shared?utm_source=a")
    same_title = item(6, when=NOW, guid="a-6", title="Central bank raises rates")
    feed_server.publish("/a.xml", [shared_link, same_title, item(1)])
    await bot.check(feed_server.url("/a.xml"))
    feed_server.publish(
        "/b.xml",
        [
            item(7, when=NOW, guid="b-7", link="https://www.news.test/shared?utm_source=b"),
            item(
                8,
                when=NOW,
                guid="b-8",
                link="https://other.test/8",
                title="Central  Bank raises rates",
            ),
            item(9, when=NOW, guid="b-9", link="https://other.test/9"),
            item(1),
        ],
    )
    await bot.check(feed_server.url("/b.xml"))
    assert sorted(a[1] for a in await bot.alerts()) == [
        "Central bank raises rates",
        "Story 5",
        "Story 9",
    ]


async def test_untitled_stories_of_two_feeds_are_not_taken_for_one(
    bot: Bot, feed_server: FeedServer
) -> None:
    """Only a title the feed gave makes two feeds' stories one: stories without a title
    (named "(untitled)" or after their text) stay distinct."""
    chat = await bot.chat(1)
    for path in ("/a.xml", "/b.xml"):
        feed_server.publish(path, [item(1)])
        await bot.subscriptions.subscribe(chat, feed_server.url(path), thread_id=None)
    for path, n in (("/a.xml", 5), ("/b.xml", 6)):
        no_title = FeedItem(
            title="",
            link=f"https://{path[1]}.test/{n}",
            guid=f"g-{n}",
            pub_date=NOW,
            description=None,
        )
        same_text = FeedItem(
            title="",
            link=f"https://{path[1]}.test/t{n}",
            guid=f"t-{n}",
            pub_date=NOW,
            description=f"<p>Markets opened higher in {path[1]}.</p>",
        )
        feed_server.publish(path, [no_title, same_text, item(1)])
        await bot.check(feed_server.url(path))
    titles = sorted(a[1] for a in await bot.alerts())
    assert titles == [
        "(untitled)",
        "(untitled)",
        "Markets opened higher in a.",
        "Markets opened higher in b.",
    ]


async def test_a_subscription_is_found_by_the_address_typed_or_the_feeds(
    bot: Bot, feed_server: FeedServer
) -> None:
    """/unsubscribe and /mode take the URL as the user typed it, even after the feed
    redirected elsewhere, without a scheme, in another case or with a trailing slash."""
    chat = await bot.chat(1)
    feed_server.publish("/new.xml", [item(1)])
    feed_server.redirect("/old.xml", "/new.xml", status=301)
    typed = feed_server.url("/old.xml")
    result = await bot.subscriptions.subscribe(chat, typed, thread_id=None)
    assert result.url == feed_server.url("/new.xml")
    new = feed_server.url("/new.xml")
    for text in (
        typed,
        new,
        new + "/",
        new.removeprefix("http://"),
        new.replace("http://", "HTTP://").upper().replace("/NEW.XML", "/new.xml"),
        typed.removeprefix("http://") + "/",
    ):
        found = await bot.subscriptions.find_subscription(chat, text)
        assert found.feed_url == new, text
    for text in (feed_server.url("/other.xml"), new.replace("new.xml", "NEW.xml"), "1x"):
        with pytest.raises(UserError) as refused:
            await bot.subscriptions.find_subscription(chat, text)
        assert refused.value.key == "sub.unknown_url", text


async def test_keyword_filter_routes_and_names_the_keyword(
    bot: Bot, feed_server: FeedServer
) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1)])
    for chat in (1, 2):
        await bot.subscriptions.subscribe(await bot.chat(chat), url, thread_id=None)
    bot.index.set_chat(2, [Keyword("putin")])
    feed_server.publish(
        "/f.xml",
        [
            item(2, when=NOW, title="Putin's envoy says talks go on"),
            item(3, when=NOW, title="Markets calm", text="Nothing about Russia."),
            item(1),
        ],
    )
    await bot.check(url)
    rows = await bot.store.db.fetchall(
        "SELECT o.chat_id, s.title, o.keyword FROM outbox o JOIN stories s ON s.id = o.story_id"
        " ORDER BY o.chat_id, s.title"
    )
    assert [tuple(r) for r in rows] == [
        (1, "Markets calm", None),
        (1, "Putin's envoy says talks go on", None),
        (2, "Putin's envoy says talks go on", "putin"),
    ]


async def test_two_items_with_one_guid_give_an_alert_made_of_one_item(
    bot: Bot, feed_server: FeedServer
) -> None:
    """A document listing two different items under one guid holds one story (the first
    listed): its title, link and summary all come from that item, none from the other."""
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1)])
    await bot.subscriptions.subscribe(await bot.chat(1), url, thread_id=None)
    first = item(2, when=NOW, guid="same", text="The first item's lead.")
    second = item(
        3, when=NOW, guid="same", link="https://news.test/other", text="The second item's lead."
    )
    feed_server.publish("/f.xml", [first, second, item(1)])
    await bot.check(url)
    assert await bot.alerts() == [(1, "Story 2", "The first item's lead.")]
    row = await bot.store.db.fetchone("SELECT link FROM stories WHERE title = 'Story 2'")
    assert row is not None and row[0] == "https://news.test/2"


async def test_digest_mode_subscriptions_get_no_alerts(bot: Bot, feed_server: FeedServer) -> None:
    url = feed_server.url("/f.xml")
    feed_server.publish("/f.xml", [item(1)])
    chat = await bot.chat(1)
    await bot.subscriptions.subscribe(chat, url, thread_id=None)
    await bot.subscriptions.set_mode(chat, ["1", "digest"])
    feed_server.publish("/f.xml", [item(2, when=NOW), item(1)])
    await bot.check(url)
    assert await bot.alerts() == []
    stories = await bot.store.stories.window(
        chat, seen_from=0, seen_until=START_MS * 2, published_from=0
    )
    assert {s.title for s in stories} == {"Story 1", "Story 2"}


# --- quirks of real feeds that touch identity (../shared/feeds/real-world/SOURCES.md) ---


async def record_fixture(bot: Bot, feed_server: FeedServer, name: str) -> list[tuple]:
    body = (FIXTURES / "feeds" / name).read_bytes()
    feed_server.serve("/" + name, body, content_type="application/xml")
    await bot.subscriptions.subscribe(
        await bot.chat(1), feed_server.url("/" + name), thread_id=None
    )
    rows = await bot.store.db.fetchall(
        "SELECT identity, timestamp_id, title, link FROM stories ORDER BY id"
    )
    return [tuple(r) for r in rows]


async def test_duplicate_guids_are_one_story(bot: Bot, feed_server: FeedServer) -> None:
    rows = await record_fixture(bot, feed_server, "en_forbes_tech_dupguids_rss2.xml")
    assert len(rows) == 26  # 29 items, 3 of them listed twice


async def test_items_without_titles_get_one_from_their_text(
    bot: Bot, feed_server: FeedServer
) -> None:
    rows = await record_fixture(bot, feed_server, "en_scriptingnews_notitles_rss2.xml")
    assert len(rows) == 48  # 50 items, 2 guids duplicated
    assert all(title.strip() for _, _, title, _ in rows)
    assert len({title for _, _, title, _ in rows}) > 40


async def test_shared_links_without_guids_stay_distinct(bot: Bot, feed_server: FeedServer) -> None:
    rows = await record_fixture(bot, feed_server, "en_phdcomics_nodates_duplinks_rss2.xml")
    assert len(rows) == 5  # 3 items share one link but have their own titles
    assert len({link for *_, link in rows}) == 3


async def test_feed_without_dates_uses_first_seen_time(bot: Bot, feed_server: FeedServer) -> None:
    rows = await record_fixture(bot, feed_server, "ar_masrawy_news_nodates_rss2.xml")
    assert len(rows) == 31
    assert {ts for _, ts, _, _ in rows} == {bot.clock.now_ms()}
    # Seen again later: still the same 31 stories, none new.
    bot.clock.advance(3600)
    await bot.check(feed_server.url("/ar_masrawy_news_nodates_rss2.xml"))
    assert await bot.alerts() == []


async def test_mangled_links_fall_back_to_the_guid_url(bot: Bot, feed_server: FeedServer) -> None:
    rows = await record_fixture(
        bot, feed_server, "zh_voa_chinanews_machinetranslated_mangled_rss2.xml"
    )
    assert len(rows) == 6
    assert all(link.startswith("https://www.voanews.com/") for *_, link in rows)


async def test_items_without_guids_are_identified_by_link(
    bot: Bot, feed_server: FeedServer
) -> None:
    rows = await record_fixture(bot, feed_server, "en_hackernews_frontpage_rss2.xml")
    assert len(rows) == 30 and len({identity for identity, *_ in rows}) == 30


def test_fixture_files_are_copies_of_shared() -> None:
    shared = SHARED / "feeds" / "real-world"
    if not shared.exists():
        pytest.skip("../shared is not beside the repository")
    for path in (FIXTURES / "feeds").glob("*.xml"):
        original = shared / path.name
        if original.exists():
            assert original.read_bytes() == path.read_bytes(), path.name
