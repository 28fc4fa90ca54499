"""A catalogue of broken feeds, each served by the local feed host and checked by the real
Poller, with a healthy feed on another host checked in the same cycle.

For every fault the test asserts:

- the outcome the poller records: a failure with a sensible reason and a next check in the
  future (exponential backoff on repeats, Retry-After honoured), HTTP 410 marking the feed
  gone, or a success whose owed stories are all queued;
- that `Poller.check` never raises, even when called directly (a tick would hide a crash
  as "internal error", which is asserted against too);
- that the healthy feed's check completes, and its new story is queued, within its own
  limits while the broken one trickles, times out or parses ten thousand entries;
- for faults that parse: every queued alert, rendered with `format_alert` from the stored
  story, is valid Telegram HTML (the fake Bot API's strict parser) and at most 4096 UTF-16
  code units.

Settings are short (read timeout 0.5 s, total 1.5 s, body cap 256 KiB) so the whole file
runs in seconds. PRODUCT.md: "a failing feed never stalls the others", "A feed that keeps
failing is paused and its subscribers are told", "nothing is lost".
"""

from __future__ import annotations

import asyncio
import random
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.config import Settings
from bot.delivery.format import format_alert
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import FeedPipeline
from bot.feeds.poller import Poller
from bot.filters import KeywordIndex
from bot.routing import make_router
from bot.store import Feed, Store
from tests.conftest import START_MS, make_settings
from tests.fakes.feed_server import FeedItem, FeedServer
from tests.fakes.telegram_api import MESSAGE_LIMIT, parse_html, utf16_len

NOW = datetime.fromtimestamp(START_MS / 1000, UTC)
INTERVAL = 60  # seconds between checks of a healthy feed
JITTER = 0.1
CAP = 256 * 1024
TOTAL_TIMEOUT = 1.5
READ_TIMEOUT = 0.5
# A healthy feed's check (fetch, parse, record) must end within its own fetch limit, however
# the broken feed beside it behaves.
HEALTHY_LIMIT = TOTAL_TIMEOUT
CHAT = 1
BROKEN_PATH = "/broken.xml"
HEALTHY_PATH = "/healthy.xml"
XML_UTF8 = '<?xml version="1.0" encoding="utf-8"?>'
XML_TYPE = "application/xml"  # no charset: the document says what it is


# --- the rig: the ingestion half of the bot, as the app wires it ---------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = make_settings(tmp_path)
    return replace(
        base,
        poll=replace(base.poll, interval=INTERVAL, jitter=JITTER),
        fetch=replace(
            base.fetch,
            connect_timeout=READ_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            total_timeout=TOTAL_TIMEOUT,
            max_body_bytes=CAP,
        ),
    )


class Rig:
    def __init__(
        self, store: Store, settings: Settings, clock: FakeClock, fetcher: Fetcher
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.health: list[tuple[int, bool]] = []
        self.pipeline = FeedPipeline(
            store,
            fetcher,
            settings,
            clock,
            make_router(KeywordIndex()),
            on_health=self._on_health,
            seed=7,
        )
        self.poller = Poller(store, self.pipeline, settings, clock)
        # When each feed's check ended (perf_counter), stamped around the real check.
        self.done_at: dict[int, float] = {}
        check = self.pipeline.check

        async def timed_check(feed: Feed) -> Any:
            try:
                return await check(feed)
            finally:
                self.done_at[feed.id] = time.perf_counter()

        self.pipeline.check = timed_check  # type: ignore[method-assign]

    async def _on_health(self, feed: Feed, paused: bool) -> None:
        self.health.append((feed.id, paused))

    async def add_feed(self, url: str) -> int:
        now = self.clock.now_ms()
        await self.store.chats.upsert(CHAT, kind="private", title="", language="en", now_ms=now)
        feed_id = await self.store.feeds.add(url, title="", site_url="", now_ms=now)
        await self.store.chats.subscribe(CHAT, feed_id, thread_id=None, now_ms=now)
        return feed_id

    async def feed(self, feed_id: int) -> Feed:
        feed = await self.store.feeds.get(feed_id)
        assert feed is not None
        return feed

    async def cycle(self) -> int:
        started = await self.poller.tick()
        async with asyncio.timeout(60):
            await self.poller.wait_idle()
        return started

    async def stories(self, feed_id: int) -> list[tuple[int, str, str, str]]:
        """(timestamp_id, title, link, summary) of every story the feed has recorded."""
        rows = await self.store.db.fetchall(
            "SELECT timestamp_id, title, link, summary FROM stories WHERE feed_id = ? ORDER BY id",
            (feed_id,),
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    async def alerts(self, feed_id: int) -> list[tuple[str, str]]:
        """(story title, alert HTML) for each alert queued from the feed, rendered as the
        sender renders it."""
        rows = await self.store.db.fetchall(
            "SELECT o.story_id FROM outbox o JOIN stories s ON s.id = o.story_id"
            " WHERE o.kind = 'alert' AND s.feed_id = ? ORDER BY o.id",
            (feed_id,),
        )
        ids = [row[0] for row in rows]
        texts = await self.store.outbox.stories(ids)
        rendered = []
        for story_id in ids:
            story = texts[story_id]
            html = format_alert(
                title=story.title,
                summary=story.summary,
                link=story.link,
                feed_title=story.feed_title,
                timestamp_id=story.timestamp_id,
            )
            rendered.append((story.title, html))
        return rendered


@pytest.fixture
async def healthy_server() -> AsyncIterator[FeedServer]:
    """The healthy feed lives on another host (127.0.0.2), as an unrelated feed would."""
    async with FeedServer(host="127.0.0.2") as server:
        yield server


@dataclass
class SilentServer:
    """Accepts connections and never answers (the feed host hangs)."""

    url: str
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


@pytest.fixture
async def silent_server() -> AsyncIterator[SilentServer]:
    holder: list[SilentServer] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder[0].writers.append(writer)
        await reader.read()  # until the client gives up and hangs up

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    holder.append(SilentServer(f"http://127.0.0.1:{port}/feed.xml"))
    try:
        yield holder[0]
    finally:
        for writer in holder[0].writers:
            writer.close()
        server.close()
        await server.wait_closed()


# --- building documents -------------------------------------------------------------------


def rss(items: str, *, declaration: str = XML_UTF8, title: str = "Broken feed") -> str:
    return (
        f'{declaration}<rss version="2.0"><channel><title>{title}</title>'
        f"<link>https://broken.test/</link><description>d</description>{items}</channel></rss>"
    )


def item_xml(
    title: str,
    *,
    guid: str | None = None,
    link: str | None = None,
    date: str | None = format_datetime(NOW - timedelta(minutes=30), usegmt=True),
    body: str | None = "<p>The lead paragraph. A second sentence.</p>",
) -> str:
    """One <item>; `title` and `body` are put in as given (the caller escapes or breaks them)."""
    parts = [f"<item><title>{title}</title>"]
    if link is None:  # a link made from the title; "" for none at all
        link = "https://broken.test/" + "".join(c if c.isalnum() else "-" for c in title)[:40]
    if link:
        parts.append(f"<link>{link}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if date is not None:
        parts.append(f"<pubDate>{date}</pubDate>")
    if body is not None:
        parts.append(f"<description><![CDATA[{body}]]></description>")
    parts.append("</item>")
    return "".join(parts)


# --- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fails:
    reason: str
    retry_after: float | None = None  # seconds the server asked for (None: plain backoff)


@dataclass(frozen=True)
class Gone:
    pass


@dataclass(frozen=True)
class Parses:
    titles: tuple[str, ...]
    """Titles of stories that must be queued (the good stories of a partly broken feed)."""
    count: int | None = None
    """Exact number of alerts, when the fault decides it."""
    check: Callable[[list[tuple[int, str, str, str]], list[tuple[str, str]]], None] | None = None
    """More checks on (stories recorded, alerts rendered)."""


@dataclass(frozen=True)
class Env:
    server: FeedServer
    silent_url: str


@dataclass(frozen=True)
class Fault:
    name: str
    serve: Callable[[Env], str | None]
    """Makes the broken feed misbehave; may return a URL the feed now lives at."""
    outcome: Fails | Gone | Parses
    slow: bool = False
    """The broken check takes about the whole time limit: the healthy one must end first."""
    fetch: dict[str, Any] = field(default_factory=dict)
    """FetchSettings overrides for this fault."""
    budget: float = TOTAL_TIMEOUT + 3
    """Seconds the broken feed's whole check may take (fetch limit, then parse and record)."""
    marks: tuple[Any, ...] = ()


def serving(body: bytes | str, **options: Any) -> Callable[[Env], None]:
    def serve(env: Env) -> None:
        env.server.serve(BROKEN_PATH, body, **options)

    return serve


def _retry_after_date(env: Env) -> None:
    when = datetime.now(UTC) + timedelta(hours=2)
    env.server.serve(
        BROKEN_PATH,
        "overloaded",
        status=503,
        content_type="text/plain",
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )


def _redirect_loop(env: Env) -> None:
    env.server.redirect(BROKEN_PATH, "/loop-b.xml")
    env.server.redirect("/loop-b.xml", BROKEN_PATH)


def _chunked_over_cap(env: Env) -> None:
    # No Content-Length: the cap must stop the read itself.
    env.server.trickle(BROKEN_PATH, b"<!-- padding -->" * 4096, interval=0, count=8)


def _has_no_control_characters(stories: list, alerts: list) -> None:
    for _, title, _, summary in stories:
        for text in (title, summary):
            assert not any(unicodedata.category(c) == "Cc" for c in text), repr(text)
    for _, html in alerts:
        plain, _ = parse_html(html)
        assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in plain), repr(plain)


def _titles_capped(stories: list, alerts: list) -> None:
    huge = [s for s in stories if s[1].startswith("AAAA")]
    assert len(huge) == 1 and len(huge[0][1]) <= 1000  # stored title capped
    assert huge[0][3].startswith("Huge title story")  # its summary is still its lead
    html = next(h for t, h in alerts if t.startswith("AAAA"))
    assert "Huge title story" in html


def _timestamps_are_now(stories: list, alerts: list) -> None:
    # No date, or a date in the future: the story's time is when it was first seen.
    for timestamp_id, *_ in stories:
        assert timestamp_id <= START_MS + 10 * INTERVAL * 1000


def _cdata_escaped(stories: list, alerts: list) -> None:
    html = next(h for t, h in alerts if "Bold" in t)
    assert "&lt;script" not in html and "<script" not in html and "alert(1)" not in html
    assert "Bold &amp; brave" in html
    _plain, entities = parse_html(html)
    story = next(s for s in stories if "Bold" in s[1])
    own = ["bold", "italic", *(["text_link"] if story[2] else [])]  # the title links the story
    assert sorted(e["type"] for e in entities) == sorted(own)  # only the alert's own markup
    assert "Lead ]]> para." in story[3]


EMOJI_TITLE = "👩\u200d👩\u200d👧\u200d👦 family 🏳️\u200d🌈 flag 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🇺🇦 1️⃣ done"
# Overrides, embeddings and isolates make text read backwards ("\u202egnp.exe" shows as
# "exe.png"): they are dropped from every text taken from a feed, and percent-encoded in
# links; the right-to-left letters and the direction mark (U+200F) stay.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
RTL_TITLE = "\u202eRTL override\u202c שלום עולם \u2067مرحبا بالعالم\u2069 \u200fend\u202b"
RTL_TITLE_SHOWN = "RTL override שלום עולם مرحبا بالعالم \u200fend"
RTL_BODY = "<p>\u202bשלום.\u202c \u2066مرحبا\u2069 \u202dبالعالم.</p><p>Second.</p>"
RTL_LINK = "https://broken.test/\u202egnp.exe"
# Every UTF-16 code unit of this title is also a valid ASCII byte pair: decoded with the
# wrong codec it does not fail outright, which is what makes the header win.
UTF16_TITLE = "Привет мир 你好"


def _titles_exact(*expected: str) -> Callable[[list, list], None]:
    def check(stories: list, alerts: list) -> None:
        titles = [title for _, title, _, _ in stories]
        for title in expected:
            assert title in titles
            html = next(h for t, h in alerts if t == title)
            assert title in parse_html(html)[0]  # reaches the reader unchanged

    return check


def _no_bidi_controls(stories: list, alerts: list) -> None:
    _titles_exact(RTL_TITLE_SHOWN)(stories, alerts)
    (_, title, link, summary), *_ = (story for story in stories if "RTL" in story[1])
    assert (title, summary) == (RTL_TITLE_SHOWN, "שלום. مرحبا بالعالم.")
    assert link == "https://broken.test/%E2%80%AEgnp.exe"  # the same address, shown as written
    for _, html in alerts:  # the feed's title (in the footer) included
        assert not set(BIDI_CONTROLS) & set(html), ascii(html)
        assert "RTL feed" in html


def _ten_thousand() -> str:
    """10,000 entries: the feed's whole archive (a month old) and ten new stories."""
    old = format_datetime(NOW - timedelta(days=30), usegmt=True)
    new = format_datetime(NOW - timedelta(minutes=10), usegmt=True)
    items = [
        f"<item><title>New {i}</title><guid>new-{i}</guid><pubDate>{new}</pubDate></item>"
        for i in range(10)
    ]
    items += [
        f"<item><title>Old {i}</title><guid>old-{i}</guid><pubDate>{old}</pubDate></item>"
        for i in range(9_990)
    ]
    return rss("".join(items))


def _all_recorded(stories: list, alerts: list) -> None:
    assert len(stories) == 10_001  # every entry recorded as seen (and the primer)
    assert not any(title.startswith("Old") for title, _ in alerts)  # archive: never sent


def _garbage() -> bytes:
    rng = random.Random(1234)
    return bytes(rng.randrange(256) for _ in range(20_000))


def _truncated() -> bytes:
    whole = rss("".join(item_xml(f"Story {n}", guid=f"t{n}") for n in range(5))).encode()
    return whole[: whole.index(b"Story 3") + len("Story 3")]


def _utf16(content_type: str | None) -> Callable[[Env], None]:
    document = rss(
        item_xml(UTF16_TITLE, guid="u1"), declaration='<?xml version="1.0" encoding="utf-16"?>'
    )
    return serving(document.encode("utf-16"), content_type=content_type)


FAULTS: list[Fault] = [
    # --- content that is broken but still carries stories ---
    Fault(
        "malformed XML",
        serving(
            rss(
                item_xml("Good one", guid="m1")
                # Unescaped "&", HTML entities XML does not know, an unclosed inline tag.
                + "<item><title>Tom & Jerry&nbsp;show &copy; <b>bold</title><guid>m2</guid>"
                "<description>x</description></item>"
                # An item never closed, an attribute never closed.
                + "<item><title>Unclosed item</title><guid>m3</guid>"
                + '<item><title>Broken attribute</title><link href="x>y</link><guid>m4</guid>'
                "</item>" + item_xml("Good two", guid="m5")
            )
        ),
        Parses(
            (
                "Good one",
                "Tom & Jerry show © bold",
                "Unclosed item",
                "Broken attribute",
                "Good two",
            ),
            count=5,
        ),
    ),
    Fault(
        "malformed XML: mismatched end tag",
        serving(
            rss(
                item_xml("Good one", guid="x1")
                + "<item><title>Mismatched</titel><guid>x2</guid></item>"
                + item_xml("Good two", guid="x3")
            )
        ),
        # feedparser's loose parser alone loses every item after '</titel>' and makes an
        # '(untitled)' story without a link of the wreck; libxml2's recovery keeps them all.
        Parses(("Good one", "Mismatched", "Good two"), count=3),
    ),
    Fault(
        "wrong declared encoding (utf-8 declared, cp1252 bytes)",
        serving(
            rss(item_xml("Café crème à Noël", guid="w1")).encode("cp1252"),
            content_type=XML_TYPE,
        ),
        Parses(("Café crème à Noël",), count=1),
    ),
    Fault(
        "missing encoding with Latin-1 bytes",
        serving(
            rss(item_xml("Ça coûte 5 ¤ à Zürich", guid="l1"), declaration="").encode("latin-1"),
            content_type=XML_TYPE,
        ),
        Parses(("Ça coûte 5 ¤ à Zürich",), count=1),
    ),
    Fault(
        "duplicate guids",
        serving(
            rss(
                item_xml("First listing", guid="dup")
                + item_xml("Second listing", guid="dup")
                + item_xml("Unique", guid="uniq")
            )
        ),
        Parses(("First listing", "Unique"), count=2),
    ),
    Fault(
        "no guids",
        serving(
            rss(
                item_xml("No guid A", link="https://broken.test/a")
                + item_xml("No guid B", link="https://broken.test/b")
                + item_xml("No guid C", link="https://broken.test/a")  # shared link
            )
        ),
        Parses(("No guid A", "No guid B", "No guid C"), count=3),
    ),
    Fault(
        "no dates",
        serving(
            rss(item_xml("Undated 1", guid="n1", date=None) + item_xml("Undated 2", date=None))
        ),
        Parses(("Undated 1", "Undated 2"), count=2, check=_timestamps_are_now),
    ),
    Fault(
        "dates in the future",
        serving(
            rss(
                item_xml("From 2100", guid="f1", date="Fri, 01 Jan 2100 00:00:00 GMT")
                + item_xml("Next month", guid="f2", date="Tue, 01 Apr 2025 00:00:00 GMT")
            )
        ),
        Parses(("From 2100", "Next month"), count=2, check=_timestamps_are_now),
    ),
    Fault(
        "ten thousand entries",
        serving(_ten_thousand()),
        Parses(tuple(f"New {i}" for i in range(10)), count=10, check=_all_recorded),
        fetch={"max_body_bytes": 2 * 1024 * 1024},  # 1 MB of entries; the cap is not the fault
        budget=60,  # feedparser's own speed: a few seconds for 10,000 entries
    ),
    Fault(
        "enormous titles (100 KB)",
        serving(
            rss(
                item_xml("A" * 100_000, guid="h1", body="<p>Huge title story. It has a lead.</p>")
                + item_xml("Normal after huge", guid="h2")
            )
        ),
        Parses(("Normal after huge",), count=2, check=_titles_capped),
    ),
    Fault(
        "control characters, titles included",
        serving(
            rss(
                item_xml(
                    "Ctl\x00\x01\x02\x07\x08 \x0b\x0c\x0e\x1b[31m\x1f title",
                    guid="c1",
                    body="<p>Body\x00 with\x1b[0m \x07 bells.</p>",
                )
                + item_xml("Clean after control", guid="c2")
            )
        ),
        Parses(("Clean after control",), count=2, check=_has_no_control_characters),
    ),
    Fault(
        "right-to-left text",
        serving(
            rss(
                item_xml(RTL_TITLE, guid="r1", link=RTL_LINK, body=RTL_BODY),
                title="\u202eRTL\u202c \u2067feed",
            )
        ),
        Parses(
            (RTL_TITLE_SHOWN,),
            count=1,
            check=_no_bidi_controls,
        ),
    ),
    Fault(
        "emoji, astral and ZWJ sequences",
        serving(rss(item_xml(EMOJI_TITLE, guid="e1", body="<p>🙂" * 400 + "</p>"))),
        Parses((EMOJI_TITLE,), count=1, check=_titles_exact(EMOJI_TITLE)),
    ),
    Fault(
        "emoji in a link (astral characters)",
        serving(rss(item_xml("Emoji link", guid="el", link="https://broken.test/" + "😀" * 2100))),
        Parses(("Emoji link",), count=1),
    ),
    Fault(
        "emoji written as UTF-16 surrogate character references",
        serving(
            rss(
                item_xml("Good one", guid="s1")
                + item_xml("Smile &#55357;&#56832; please", guid="s2")
                + item_xml("Next", guid="s3")
            )
        ),
        Parses(("Good one", "Next"), count=3),
    ),
    Fault(
        "a guid that is a broken URL",
        serving(
            rss(
                item_xml("Odd guid", guid="http://[::1/story", link="")
                + item_xml("Plain guid", guid="p2")
            )
        ),
        Parses(("Odd guid", "Plain guid"), count=2),
    ),
    Fault(
        "truncated document",
        serving(_truncated()),
        Parses(("Story 0", "Story 1", "Story 2")),
    ),
    Fault(
        "BOM + UTF-16 document (application/xml)",
        _utf16(XML_TYPE),
        Parses((UTF16_TITLE,), count=1, check=_titles_exact(UTF16_TITLE)),
    ),
    Fault(
        "BOM + UTF-16 document (text/xml)",
        _utf16("text/xml"),
        Parses((UTF16_TITLE,), count=1),
    ),
    Fault(
        "BOM + UTF-16 document (server labels it utf-8)",
        _utf16("application/rss+xml; charset=utf-8"),
        Parses((UTF16_TITLE,), count=1),
    ),
    Fault(
        "CDATA abuse",
        serving(
            rss(
                "<item><title><![CDATA[<b>Bold</b> &amp; brave <script>alert(1)</script>]]>"
                "</title><guid>d1</guid><description><![CDATA[<p>Lead ]]]]><![CDATA[> para."
                " <![CDATA[inner]]></p>]]></description></item>"
                + item_xml("After the CDATA", guid="d2")
            )
        ),
        Parses(("After the CDATA",), count=2, check=_cdata_escaped),
    ),
    # --- documents that are not feeds ---
    Fault(
        "an HTML page",
        serving(
            "<!DOCTYPE html><html><head><title>Welcome</title></head>"
            "<body><h1>Our news</h1><p>Now on our new site.</p></body></html>",
            content_type="text/html; charset=utf-8",
        ),
        Fails("not_a_feed:html"),
    ),
    Fault("empty body (whitespace)", serving(" \r\n\t\n "), Fails("not_a_feed:empty")),
    Fault("0-byte 200", serving(b""), Fails("not_a_feed:empty")),
    Fault(
        "a JSON body",
        serving(
            '{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1"}]}',
            content_type="application/json",
        ),
        Fails("not_a_feed:json"),
    ),
    Fault(
        "binary garbage",
        serving(_garbage(), content_type="application/octet-stream"),
        Fails("not_a_feed:other"),
    ),
    # --- transfers the fetcher must cut short ---
    Fault(
        "huge body over the cap (Content-Length)",
        serving(rss("<!--" + "x" * (CAP + 10) + "-->")),
        Fails(f"too_large:{CAP}"),
    ),
    Fault("huge body over the cap (chunked)", _chunked_over_cap, Fails(f"too_large:{CAP}")),
    Fault(
        "gzip bomb",
        lambda env: env.server.gzip_bomb(BROKEN_PATH, size=16 * 1024 * 1024),
        Fails(f"too_large:{CAP}"),
    ),
    Fault("endless body", lambda env: env.server.endless(BROKEN_PATH), Fails(f"too_large:{CAP}")),
    Fault(
        "slow trickle",
        lambda env: env.server.trickle(BROKEN_PATH, b"<!-- x -->", interval=READ_TIMEOUT / 2),
        Fails("timeout"),
        slow=True,
    ),
    Fault("timeout (no answer)", lambda env: env.silent_url, Fails("timeout"), slow=True),
    Fault("redirect loop", _redirect_loop, Fails("too_many_redirects")),
    # --- HTTP errors ---
    Fault("404", lambda env: env.server.remove(BROKEN_PATH), Fails("http_status:404")),
    Fault("410", serving("gone", status=410, content_type="text/plain"), Gone()),
    Fault(
        "429 with Retry-After (seconds)",
        serving(
            "slow down", status=429, content_type="text/plain", headers={"Retry-After": "3600"}
        ),
        Fails("http_status:429", retry_after=3600),
    ),
    Fault(
        "429 with an absurd Retry-After (30 days)",
        serving(
            "slow down", status=429, content_type="text/plain", headers={"Retry-After": "2592000"}
        ),
        Fails("http_status:429", retry_after=2_592_000),
    ),
    Fault("500", serving("oops", status=500, content_type="text/plain"), Fails("http_status:500")),
    Fault("503 with Retry-After (HTTP date)", _retry_after_date, Fails("http_status:503", 7200)),
]


def _params() -> list[Any]:
    return [pytest.param(fault, id=fault.name, marks=fault.marks) for fault in FAULTS]


def test_catalogue_is_complete() -> None:
    assert len(FAULTS) >= 25
    assert len({fault.name for fault in FAULTS}) == len(FAULTS)


# --- the test ---------------------------------------------------------------------------------


def _expected_backoff(settings: Settings, failures: int, retry_after: float | None) -> tuple:
    """Bounds (seconds) of the wait after `failures` consecutive failures."""
    poll = settings.poll
    low = min(poll.interval * 2**failures, poll.backoff_max)
    high = low * (1 + poll.jitter)
    if retry_after is not None:
        wait = min(retry_after, poll.backoff_max)
        low, high = max(low, wait), max(high, wait)
    return low, high


def _assert_valid_alert(html: str) -> None:
    plain, _entities = parse_html(html, strict_entities=True)
    assert plain.strip()
    assert utf16_len(plain) <= MESSAGE_LIMIT


@pytest.mark.parametrize("fault", _params())
async def test_broken_feed(
    fault: Fault,
    store: Store,
    settings: Settings,
    clock: FakeClock,
    feed_server: FeedServer,
    healthy_server: FeedServer,
    silent_server: SilentServer,
) -> None:
    settings = replace(settings, fetch=replace(settings.fetch, **fault.fetch))
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        broken = await rig.add_feed(feed_server.url(BROKEN_PATH))
        healthy = await rig.add_feed(healthy_server.url(HEALTHY_PATH))

        # Both feeds answer well once: they are primed (their stories are not news).
        feed_server.publish(
            BROKEN_PATH,
            [FeedItem("Broken primer", "https://broken.test/p", "bp", NOW - timedelta(hours=1))],
        )
        old = FeedItem("Healthy primer", "https://healthy.test/p", "hp", NOW - timedelta(hours=1))
        healthy_server.publish(HEALTHY_PATH, [old])
        assert await rig.cycle() == 2
        assert (await rig.feed(broken)).primed_at is not None

        # The broken feed breaks; the healthy one publishes a story; both fall due.
        moved_to = fault.serve(Env(feed_server, silent_server.url))
        if moved_to:
            assert await store.feeds.change_url(broken, moved_to)
        news = FeedItem("Healthy news", "https://healthy.test/n", "hn", NOW)
        healthy_server.publish(HEALTHY_PATH, [news, old])
        clock.advance(INTERVAL * 2)
        now = clock.now_ms()

        started = time.perf_counter()
        assert await rig.cycle() == 2

        # The healthy feed: checked within its own limits, its story queued.
        healthy_took = rig.done_at[healthy] - started
        assert healthy_took < HEALTHY_LIMIT, f"healthy feed took {healthy_took:.2f} s"
        if fault.slow:
            assert rig.done_at[healthy] < rig.done_at[broken]
            assert rig.done_at[broken] - started >= READ_TIMEOUT * 0.9
        assert rig.done_at[broken] - started < fault.budget
        assert [t for t, _ in await rig.alerts(healthy)] == ["Healthy news"]
        row = await rig.feed(healthy)
        assert (row.consecutive_failures, row.last_error) == (0, None)

        feed = await rig.feed(broken)
        outcome = fault.outcome
        if isinstance(outcome, Fails):
            await _assert_fails(rig, feed, outcome, now)
        elif isinstance(outcome, Gone):
            assert (feed.status, feed.last_error) == ("gone", "gone:410")
            assert rig.health == [(broken, True)]
            hits = feed_server.hits(BROKEN_PATH)
            clock.advance(settings.poll.backoff_max * 2)
            assert await rig.cycle() == 1  # only the healthy feed: a gone feed is not polled
            assert feed_server.hits(BROKEN_PATH) == hits
            assert await rig.pipeline.check(await rig.feed(broken)) is None  # never raises
        else:
            await _assert_parses(rig, feed, outcome)
        assert not [code for code in rig.pipeline.stats.by_error if code.startswith("internal")]


async def _assert_fails(rig: Rig, feed: Feed, outcome: Fails, now: int) -> None:
    assert feed.status == "active"
    assert (feed.consecutive_failures, feed.last_error) == (1, outcome.reason)
    low, high = _expected_backoff(rig.settings, 1, outcome.retry_after)
    first_wait = (feed.next_check_at - now) / 1000
    assert low - 2 <= first_wait <= high + 2, (first_wait, low, high)
    assert first_wait > 0
    assert await rig.alerts(feed.id) == []
    assert rig.health == []
    # Not due before its time: the next tick leaves it alone.
    rig.clock.advance(first_wait - 1)
    assert feed.id not in [f.id for f in await rig.store.feeds.due(rig.clock.now_ms(), 100)]

    # Checked again directly when due: still no exception, and the wait grows.
    rig.clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
    again = await rig.pipeline.check(await rig.feed(feed.id))
    assert again is None
    feed = await rig.feed(feed.id)
    assert (feed.consecutive_failures, feed.last_error) == (2, outcome.reason)
    second_wait = (feed.next_check_at - rig.clock.now_ms()) / 1000
    low, high = _expected_backoff(rig.settings, 2, outcome.retry_after)
    assert low - 2 <= second_wait <= high + 2, (second_wait, low, high)
    if outcome.retry_after is None:
        assert second_wait > first_wait * 1.5  # exponential
    else:
        assert second_wait >= min(outcome.retry_after, rig.settings.poll.backoff_max) - 2


async def _assert_parses(rig: Rig, feed: Feed, outcome: Parses) -> None:
    assert (feed.status, feed.consecutive_failures, feed.last_error) == ("active", 0, None)
    alerts = await rig.alerts(feed.id)
    titles = [title for title, _ in alerts]
    for title in outcome.titles:
        assert title in titles, f"owed story {title!r} not queued: {titles[:10]}"
    if outcome.count is not None:
        assert len(alerts) == outcome.count
    assert "Broken primer" not in titles
    for _, html in alerts:
        _assert_valid_alert(html)
    stories = await rig.stories(feed.id)
    for _, title, link, _ in stories:
        assert title.strip()
        assert link == "" or link.startswith(("http://", "https://"))
    if outcome.check:
        outcome.check(stories, alerts)

    # The same document again: nothing new, nothing sent twice, no exception.
    rig.clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
    await rig.pipeline.check(await rig.feed(feed.id))
    assert len(await rig.alerts(feed.id)) == len(alerts)


# --- a feed that keeps failing is paused, its subscribers told once; then it recovers ------


async def test_feed_failing_for_days_is_paused_once_and_recovers(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        feed_id = await rig.add_feed(feed_server.url(BROKEN_PATH))
        feed_server.publish(BROKEN_PATH, [FeedItem("Primer", "https://broken.test/p", "p")])
        await rig.cycle()

        feed_server.serve(BROKEN_PATH, "down", status=500, content_type="text/plain")
        pause_after_ms = int(settings.poll.pause_after_days * 86_400_000)
        probes_while_paused = 0
        failures = 0
        while probes_while_paused < 3:
            feed = await rig.feed(feed_id)
            clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
            assert await rig.cycle() == 1  # due (or, once paused, due for a probe)
            failures += 1
            feed = await rig.feed(feed_id)
            assert feed.consecutive_failures == failures
            assert feed.failing_since is not None
            failing_for = clock.now_ms() - feed.failing_since
            if failing_for < pause_after_ms:
                assert feed.status == "active" and rig.health == []
            else:
                assert feed.status == "paused"
                assert rig.health == [(feed_id, True)]  # told once, not at every probe
                assert feed.next_check_at > clock.now_ms()
                probes_while_paused += 1
            assert failures < 40
        # A paused feed is not among the due feeds; only probed at the backoff cap.
        assert await store.feeds.due(feed.next_check_at, 100) == []
        wait = (feed.next_check_at - clock.now_ms()) / 1000
        assert settings.poll.backoff_max <= wait <= settings.poll.backoff_max * (1 + JITTER)

        # It answers again, with a story published during the outage: that one is owed.
        during = FeedItem("Published during the outage", "https://broken.test/o", "o", None)
        feed_server.publish(BROKEN_PATH, [during, FeedItem("Primer", "https://broken.test/p", "p")])
        clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
        assert await rig.cycle() == 1
        feed = await rig.feed(feed_id)
        assert (feed.status, feed.consecutive_failures, feed.failing_since) == ("active", 0, None)
        assert rig.health == [(feed_id, True), (feed_id, False)]
        assert [t for t, _ in await rig.alerts(feed_id)] == ["Published during the outage"]

        # Healthy again: back on the normal schedule, and no further health calls.
        clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
        assert await rig.cycle() == 1
        assert rig.health == [(feed_id, True), (feed_id, False)]


async def test_a_feed_failing_briefly_is_not_paused(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    """Failures that stop before pause_after_days never pause the feed nor tell anyone."""
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        feed_id = await rig.add_feed(feed_server.url(BROKEN_PATH))
        feed_server.serve(BROKEN_PATH, "down", status=503, content_type="text/plain")
        for _ in range(5):
            await rig.cycle()
            feed = await rig.feed(feed_id)
            clock.set(datetime.fromtimestamp(feed.next_check_at / 1000, UTC))
        assert feed.consecutive_failures == 5 and feed.status == "active"
        feed_server.publish(BROKEN_PATH, [FeedItem("Back", "https://broken.test/b", "b")])
        await rig.cycle()
        feed = await rig.feed(feed_id)
        assert (feed.status, feed.consecutive_failures, feed.last_error) == ("active", 0, None)
        assert rig.health == []


# --- found by "ten thousand entries": what one new story costs ------------------------------


async def _vm_steps(store: Store, work: Callable[[], Any]) -> int:
    """SQLite virtual-machine steps (in hundreds) that `work` makes the database run: a
    deterministic measure of query cost, unlike time."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection = store.db._conn  # the aiosqlite connection itself: SQLite-only instrument
    await connection.set_progress_handler(count, 100)
    try:
        await work()
    finally:
        await connection.set_progress_handler(None, 100)  # type: ignore[arg-type]
    return steps


async def test_queueing_a_story_does_not_scan_the_whole_outbox(
    store: Store, settings: Settings, clock: FakeClock, feed_server: FeedServer
) -> None:
    async with Fetcher(settings.fetch) as fetcher:
        rig = Rig(store, settings, clock, fetcher)
        feed_id = await rig.add_feed(feed_server.url(BROKEN_PATH))
        primer = FeedItem("Primer", "https://broken.test/p", "p", NOW - timedelta(hours=1))
        feed_server.publish(BROKEN_PATH, [primer])
        await rig.cycle()

        async def ten_new_stories(batch: str) -> None:
            items = [
                FeedItem(f"{batch} {i}", f"https://broken.test/{batch}/{i}", f"{batch}-{i}", NOW)
                for i in range(10)
            ]
            feed_server.publish(BROKEN_PATH, [*items, primer])
            clock.advance(INTERVAL * 2)
            await rig.pipeline.check(await rig.feed(feed_id))

        before = await _vm_steps(store, lambda: ten_new_stories("first"))

        # Weeks of running: 20,000 alerts from another feed already sent.
        now = clock.now_ms()
        other = await store.feeds.add("https://other.test/feed", title="", site_url="", now_ms=now)
        async with store.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO stories (feed_id, identity, timestamp_id, title, link, link_key,"
                " title_key, first_seen_at, last_present_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        other,
                        f"o{i}",
                        now,
                        f"Other {i}",
                        f"https://other.test/{i}",
                        f"https://other.test/{i}",
                        f"other {i}",
                        now,
                        now,
                    )
                    for i in range(20_000)
                ],
            )
            await conn.execute(
                "INSERT INTO outbox (chat_id, kind, story_id, status, not_before, created_at,"
                " sent_at) SELECT ?, 'alert', id, 'sent', ?, ?, ? FROM stories WHERE feed_id = ?",
                (CHAT, now, now, now, other),
            )
        after = await _vm_steps(store, lambda: ten_new_stories("second"))

        assert len(await rig.alerts(feed_id)) == 20
        # Index lookups cost the same with a large outbox; a scan of it grows with it.
        assert after < 2 * before, (before, after)
