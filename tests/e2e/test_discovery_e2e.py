"""/subscribe with a web page's address, through the fake Bot API (issue 15, part 4): one
feed found and subscribed, several offered as buttons, none, a feed link to a private
address; and `news-notifier preview` on a page."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bot.feeds.fetch as fetch_module
from bot.i18n import t
from tests.e2e.harness import bot_settings, running_bot
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


def page(*links: tuple[str, str]) -> str:
    """An HTML page naming feeds: (href, media type) pairs."""
    head = "".join(f'<link rel="alternate" type="{kind}" href="{href}">' for href, kind in links)
    return f"<!DOCTYPE html><html><head><title>Site</title>{head}</head><body>Hi</body></html>"


def serve_page(server: FeedServer, path: str, *links: tuple[str, str]) -> str:
    server.serve(path, page(*links), content_type="text/html; charset=utf-8")
    return server.url(path)


RSS = "application/rss+xml"
ATOM = "application/atom+xml"


def story(n: int) -> FeedItem:
    return FeedItem(f"Story {n}", f"https://n.test/{n}", guid=str(n), pub_date=datetime.now(UTC))


async def test_a_page_with_one_feed_is_subscribed_and_named(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    feed_server.publish("/blog/rss.xml", [story(1)], title="The Blog")
    url = serve_page(
        feed_server, "/blog/", ("rss.xml", RSS), ("/blog.json", "application/feed+json")
    )
    feed_url = feed_server.url("/blog/rss.xml")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        [reply] = await fake.wait_for_messages(chat.id, 1, timeout=15)
        assert reply.html == t("en", "subscribe.found", title="The Blog", url=feed_url, count=1)
        assert await bot.subscriptions(chat.id) == [feed_url]
        assert feed_server.hits("/blog/") == 1 and feed_server.hits("/blog.json") == 0
        # The feed found is followed like any other: its next story comes as an alert.
        feed_server.publish("/blog/rss.xml", [story(2), story(1)], title="The Blog")
        [_, alert] = await fake.wait_for_messages(chat.id, 2, timeout=15)
        assert "Story 2" in alert.text


async def test_a_page_with_three_feeds_offers_buttons_and_a_press_subscribes(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    for name in ("news", "sport", "weather"):
        feed_server.publish(f"/{name}.xml", [story(1)], title=name.title())
    url = serve_page(
        feed_server, "/", ("/news.xml", RSS), ("/sport.xml", ATOM), ("/weather.xml", RSS)
    )
    alice = fake.add_user(1001, "Alice")
    bob = fake.add_user(1002, "Bob")
    group = fake.add_group(-100, admins=[alice])
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(group, alice, "subscribe", url)
        [menu] = await fake.wait_for_messages(group.id, 1, timeout=15)
        assert menu.text.startswith(t("en", "discover.choose", count=3))
        assert [b["text"] for b in menu.buttons] == ["1. News", "2. Sport", "3. Weather"]
        assert all(len(b["callback_data"].encode()) <= 64 for b in menu.buttons)
        assert feed_server.url("/sport.xml") in menu.text

        # Not an administrator of the group: refused, nothing changes.
        refused = fake.press_button(menu, bob, text="2. Sport")
        answer = await answered(fake, refused)
        assert answer["text"] == t("en", "auth.not_admin")[:200] and answer["show_alert"]
        assert menu.edits == [] and await bot.subscriptions(group.id) == []

        fake.press_button(menu, alice, text="2. Sport")
        await fake.wait_for(lambda: menu.edits, timeout=15, what="the menu replaced")
        sport = feed_server.url("/sport.xml")
        assert menu.html == t("en", "subscribe.found", title="Sport", url=sport, count=1)
        assert await bot.subscriptions(group.id) == [sport]
        assert menu.buttons == []


async def test_a_press_after_the_offer_is_gone_is_told_so(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    for name in ("a", "b"):
        feed_server.publish(f"/{name}.xml", [story(1)], title=name)
    url = serve_page(feed_server, "/", ("/a.xml", RSS), ("/b.xml", RSS))
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        [menu] = await fake.wait_for_messages(chat.id, 1, timeout=15)
        # The offers live in memory: after a restart, or when their time is up
        # (tests/test_discover.py), a button's token names none.
        real = menu.buttons[0]["callback_data"]
        gone = "feed:" + ("0" * 8 if real[5:13] != "0" * 8 else "1" * 8) + ":0"
        answer = await answered(fake, fake.press_forged_button(menu, alice, gone))
        assert answer["text"] == t("en", "discover.expired") and answer["show_alert"]
        await fake.wait_for(lambda: menu.edits, timeout=15, what="the menu replaced")
        assert menu.html == t("en", "discover.expired") and menu.buttons == []
        assert await bot.subscriptions(chat.id) == []


async def test_a_page_with_no_feed_gets_todays_answer(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    url = serve_page(feed_server, "/about")
    alice = fake.add_user(1001, "Alice")
    chat = fake.private_chat(alice)
    async with running_bot(bot_settings(tmp_path, fake), fake) as bot:
        fake.user_command(chat, alice, "subscribe", url)
        [reply] = await fake.wait_for_messages(chat.id, 1, timeout=30)
        assert "it is an HTML page" in reply.text
        assert reply.text.startswith("That address does not give a news feed")
        assert await bot.subscriptions(chat.id) == []


@pytest.fixture
def only_the_page_host_is_public(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """127.0.0.1 (where the page is) stands in for a public host, so the guard can be on;
    every other address, 127.0.0.2 included, keeps the real policy (tests/test_fetch.py)."""
    real_policy = fetch_module.is_public_address
    public = ipaddress.ip_address("127.0.0.1")

    def policy(address: Any) -> bool:
        return ipaddress.ip_address(str(address)) == public or real_policy(address)

    monkeypatch.setattr(fetch_module, "is_public_address", policy)
    yield


@pytest.mark.usefixtures("only_the_page_host_is_public")
async def test_a_feed_link_to_a_private_address_is_refused_and_the_reply_says_why(
    tmp_path: Path, fake: FakeTelegram, feed_server: FeedServer
) -> None:
    async with FeedServer(host="127.0.0.2") as private:
        # A real feed there: only the guard keeps the bot from subscribing to it.
        private.publish("/feed.xml", [story(1)], title="Internal")
        link = private.url("/feed.xml")
        url = serve_page(feed_server, "/", (link, RSS))
        settings = bot_settings(tmp_path, fake, NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS="0")
        alice = fake.add_user(1001, "Alice")
        chat = fake.private_chat(alice)
        async with running_bot(settings, fake) as bot:
            fake.user_command(chat, alice, "subscribe", url)
            [reply] = await fake.wait_for_messages(chat.id, 1, timeout=15)
            assert await bot.subscriptions(chat.id) == []
        assert private.hits("/feed.xml") == 0
    assert reply.text == (
        f"That page names its feed at {link}. That address points to a private or local "
        "network, which this bot may not fetch from."
    )


# --- news-notifier preview -------------------------------------------------------------------


async def preview(*args: str) -> tuple[int, str, str]:
    """`news-notifier preview …` in a child process (the feed server runs in this loop)."""
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEWS_NOTIFIER_", "TELEGRAM_"))
    }
    environ["NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS"] = "1"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "preview",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_preview_of_a_page_shows_its_feed_or_lists_its_feeds(
    feed_server: FeedServer,
) -> None:
    feed_server.publish("/one.xml", [story(7)], title="One")
    feed_server.publish("/two.xml", [story(8)], title="Two")
    single = serve_page(feed_server, "/single", ("/one.xml", RSS))
    double = serve_page(feed_server, "/double", ("/one.xml", RSS), ("/two.xml", ATOM))

    code, out, err = await preview(single)
    assert code == 0, err
    assert out.startswith("<b>") and "Story 7" in out

    code, out, err = await preview(double)
    assert code == 1 and out == ""
    assert f"{double} leads to 2 feeds. Preview one of them:" in err
    assert f"news-notifier preview {feed_server.url('/one.xml')}   (One)" in err
    assert f"news-notifier preview {feed_server.url('/two.xml')}   (Two)" in err


async def answered(fake: FakeTelegram, update: dict[str, Any]) -> dict[str, Any]:
    query_id = update["callback_query"]["id"]
    await fake.wait_for(
        lambda: query_id in fake.callback_answers, timeout=15, what=f"query {query_id} answered"
    )
    return fake.callback_answers[query_id]
