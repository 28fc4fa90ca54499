"""OPML: a feed reader's export is flattened and imported; exports round-trip; hostile,
malformed and oversized files are refused with a clear reason and without harm."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from pathlib import Path

import pytest

from bot.cli import ProgressBar, import_into
from bot.config import Settings
from bot.errors import FailureKind, FeedError, FeedFailure, NotAFeedError
from bot.opml import (
    ImportReport,
    OpmlError,
    OpmlFeed,
    Turn,
    build_opml,
    import_feeds,
    parse_opml,
)
from bot.reports import import_summary
from bot.store import Store
from tests.conftest import START_MS
from tests.fakes.feed_server import FeedItem, FeedServer, rss_document
from tests.paths import FIXTURES, REPO

OPML_FIXTURE = FIXTURES / "opml" / "feeds.opml"
FEED_FILES = {
    "/cnn-topstories.xml": "en_cnn_topstories_rss2.xml",
    "/guardian-us.xml?format=rss&edition=us": "en_guardian_us_rss2.xml",
    "/lemonde.xml": "fr_lemonde_iso8859-1_rss2.xml",
    "/heise-developer.atom": "de_heise_developer_atom.xml",
    "/bbc-chinese.xml": "zh_bbc_chinese_simp_atom.xml",
    "/voa-chinese.xml": "zh_voa_chinanews_machinetranslated_mangled_rss2.xml",
    "/hn-frontpage.xml": "en_hackernews_frontpage_rss2.xml",
    "/macworld.xml": "en_macworld_leadingws_rss2.xml",
    "/scripting.xml": "en_scriptingnews_notitles_rss2.xml",
}
LIMITS = {"max_bytes": 1_048_576, "max_feeds": 500}


def fixture_opml(base: str = "https://feeds.test") -> bytes:
    return OPML_FIXTURE.read_bytes().replace(b"{base}", base.rstrip("/").encode())


def serve_fixture_feeds(feed_server: FeedServer) -> None:
    for path, name in FEED_FILES.items():
        feed_server.serve(path, (FIXTURES / "feeds" / name).read_bytes())


def opml_with(outlines: str, *, head: str = "<head><title>t</title></head>") -> bytes:
    return f'<?xml version="1.0"?><opml version="2.0">{head}<body>{outlines}</body></opml>'.encode()


def refused(data: bytes, **limits: int) -> OpmlError:
    with pytest.raises(OpmlError) as caught:
        parse_opml(data, **{**LIMITS, **limits})
    return caught.value


# --- reading a real-world shape ------------------------------------------------------------


def test_a_feed_readers_export_is_flattened_with_its_folders_as_categories() -> None:
    document = parse_opml(fixture_opml(), **LIMITS)
    assert document.title.startswith("Subscriptions of Alice from Inoreader")
    by_url = {feed.url.removeprefix("https://feeds.test"): feed for feed in document.feeds}
    assert list(by_url) == list(FEED_FILES)  # file order; the feed filed twice appears once
    assert by_url["/cnn-topstories.xml"].category == "World"
    assert by_url["/lemonde.xml"].category == "World/Europe"  # nested folders
    assert by_url["/bbc-chinese.xml"].category == "中文新闻"
    assert by_url["/scripting.xml"].category == "Blogs"  # the old category attribute
    assert by_url["/guardian-us.xml?format=rss&edition=us"].title == (
        "The Guardian & Observer: US"  # entities in attributes decoded
    )
    assert by_url["/heise-developer.atom"].site_url == "https://www.heise.de/developer/"


def test_attribute_names_are_read_case_insensitively_and_text_stands_in_for_title() -> None:
    data = opml_with('<outline TEXT="Only text" XMLURL=" https://a.test/f " />')
    document = parse_opml(data, **LIMITS)
    assert document.feeds == [OpmlFeed("https://a.test/f", "Only text")]


def test_utf16_files_are_read() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><opml version="1.1"><body>'
    text += '<outline text="新闻" xmlUrl="https://a.test/zh"/></body></opml>'
    [feed] = parse_opml(text.encode("utf-16"), **LIMITS).feeds
    assert (feed.url, feed.title) == ("https://a.test/zh", "新闻")


def test_build_then_parse_gives_the_same_feeds() -> None:
    feeds = [
        OpmlFeed("https://a.test/rss?x=1&y=2", 'Quotes " & <tags>', site_url="https://a.test/"),
        OpmlFeed("https://b.test/atom", "中文 标题"),
        OpmlFeed("https://c.test/feed", ""),  # no title: the URL stands in
    ]
    data = build_opml(feeds, title="news-notifier: Alice & Bob")
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    document = parse_opml(data, **LIMITS)
    assert document.title == "news-notifier: Alice & Bob"
    assert [(f.url, f.title, f.site_url) for f in document.feeds] == [
        ("https://a.test/rss?x=1&y=2", 'Quotes " & <tags>', "https://a.test/"),
        ("https://b.test/atom", "中文 标题", ""),
        ("https://c.test/feed", "https://c.test/feed", ""),
    ]


# --- round trip through the store and the real feed check ---------------------------------


async def add_chat(store: Store, chat_id: int, title: str) -> None:
    await store.chats.upsert(chat_id, kind="private", title=title, language="en", now_ms=START_MS)


async def test_export_then_import_into_another_chat_gives_the_same_subscriptions(
    store: Store, settings: Settings, feed_server: FeedServer
) -> None:
    serve_fixture_feeds(feed_server)
    await add_chat(store, 1, "Alice")
    await add_chat(store, 2, "Bob")
    imported = parse_opml(fixture_opml(feed_server.base_url), **LIMITS)
    report = await import_into(store, settings, 1, imported.feeds)
    assert report.failures == [] and len(report.added) == len(FEED_FILES)

    exported = await store.stats.exported_feeds(1)
    data = build_opml(
        [OpmlFeed(f.url, f.title, site_url=f.site_url) for f in exported], title="Alice"
    )
    again = parse_opml(data, **LIMITS)
    base = feed_server.base_url.rstrip("/")
    titles = {f.url.removeprefix(base): f.title for f in again.feeds}
    # The feed's own title, learned by the check, replaces the reader's label.
    assert titles["/cnn-topstories.xml"] == "CNN.com - Top Stories"
    assert titles["/bbc-chinese.xml"] == "bbcchinese.com | 新闻主页"
    second = await import_into(store, settings, 2, again.feeds)
    assert len(second.added) == len(FEED_FILES) and not second.failures

    def urls(subscriptions: list) -> list[str]:
        return [s.feed_url for s in subscriptions]

    # Feeds are checked concurrently, but subscribed (and listed) in the file's order.
    first_chat = urls(await store.chats.subscriptions(1))
    assert urls(await store.chats.subscriptions(2)) == first_chat
    assert first_chat == [f.url for f in imported.feeds]
    # Importing the same file again changes nothing and says so.
    third = await import_into(store, settings, 2, again.feeds)
    assert (len(third.added), len(third.already)) == (0, len(FEED_FILES))


async def test_imported_feeds_are_listed_in_the_files_order_not_the_order_checks_end(
    store: Store, settings: Settings, feed_server: FeedServer
) -> None:
    # The first feed in the file answers last, the last first: checks end in reverse order.
    paths = [f"/late{n}.xml" for n in range(6)]
    for n, path in enumerate(paths):
        document = rss_document([FeedItem(f"Story {n}", f"https://n.test/{n}", guid=str(n))])
        feed_server.trickle(path, document, interval=0.1 * (len(paths) - n), count=1)
    # A feed that fails slowly, and one that fails at once, between them.
    feed_server.trickle(
        "/slow-page.html", b"<html>hi</html>", interval=0.3, count=1, content_type="text/html"
    )
    feed_server.publish("/earlier.xml", [FeedItem("Old", "https://n.test/old", guid="old")])
    await add_chat(store, 1, "Alice")
    earlier = await import_into(store, settings, 1, [OpmlFeed(feed_server.url("/earlier.xml"))])
    assert len(earlier.added) == 1
    urls = [feed_server.url(path) for path in paths]
    outlines = [*urls[:2], feed_server.url("/slow-page.html"), *urls[2:4]]
    outlines += [feed_server.url("/missing.xml"), *urls[4:]]

    report = await import_into(store, settings, 1, [OpmlFeed(url) for url in outlines])

    # /list (whose numbers /unsubscribe and /mode take) and /export follow the file, after
    # the feeds the chat already had; the failed feeds are reported as before.
    expected = [feed_server.url("/earlier.xml"), *urls]
    assert [s.feed_url for s in await store.chats.subscriptions(1)] == expected
    assert [f.url for f in await store.stats.exported_feeds(1)] == expected
    assert report.added == urls
    assert sorted(f.reason[0] for f in report.failures) == ["http_status:404", "not_a_feed:html"]


async def run_cli(*args: str, env: dict[str, str], stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=REPO,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_command_line_import_and_export(tmp_path: Path, feed_server: FeedServer) -> None:
    serve_fixture_feeds(feed_server)
    feed_server.serve(
        "/broken.xml", b"<html><body>not a feed</body></html>", content_type="text/html"
    )
    database = str(tmp_path / "cli.sqlite3")
    env = {"NEWS_NOTIFIER_DATABASE": database, "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": "1"}
    async with await Store.open(database) as store:
        await add_chat(store, 1, "Alice")
        await add_chat(store, -1001, "A group")
    opml_file = tmp_path / "feeds.opml"
    broken = b'<outline text="Broken" xmlUrl="' + feed_server.url("/broken.xml").encode() + b'"/>'
    opml_file.write_bytes(
        fixture_opml(feed_server.base_url).replace(b"</body>", broken + b"</body>")
    )

    code, out, err = await run_cli("import-opml", "1", str(opml_file), env=env)
    assert code == 1, err  # one feed failed
    assert f"Import finished: {len(FEED_FILES) + 1} feed(s) in the file" in out
    assert f"added: {len(FEED_FILES)}" in out and "failed: 1" in out
    assert "not a feed" in out and "/broken.xml" in out
    assert "\r[" not in err  # no progress bar when stderr is not a terminal

    code, out, err = await run_cli("export-opml", "1", env=env)
    assert code == 0, err
    exported = parse_opml(out.encode(), **LIMITS)
    assert exported.title == "news-notifier: Alice"
    assert len(exported.feeds) == len(FEED_FILES)

    # A negative (group) chat id is an argument, not an option; the export comes from stdin.
    code, out, err = await run_cli("import-opml", "-1001", "-", env=env, stdin=out.encode())
    assert code == 0, err
    assert "already subscribed: 0" in out and f"added: {len(FEED_FILES)}" in out

    code, _, err = await run_cli("import-opml", "42", str(opml_file), env=env)
    assert code == 2 and "chat 42 is not known" in err
    (tmp_path / "rss.xml").write_bytes(
        (FIXTURES / "feeds" / "en_cnn_topstories_rss2.xml").read_bytes()
    )
    code, _, err = await run_cli("import-opml", "1", str(tmp_path / "rss.xml"), env=env)
    assert code == 2 and "is a news feed itself" in err
    code, _, err = await run_cli("export-opml", "42", env=env)
    assert code == 1 and "chat 42 is not known" in err


# --- importing: bounded concurrency, stopping, the summary --------------------------------


class Subscribed:
    def __init__(self, created: bool) -> None:
        self.created = created


async def test_feeds_are_checked_a_few_at_a_time() -> None:
    running = 0
    most = 0
    written: list[str] = []

    async def subscribe(url: str, *, turn: Turn) -> Subscribed:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01 + 0.001 * (int(url.rsplit("/", 1)[1]) % 7))  # out of order
        running -= 1
        await turn()
        written.append(url)
        return Subscribed(created=True)

    feeds = [OpmlFeed(f"https://a.test/{n}") for n in range(40)]
    started = time.monotonic()
    report = await import_feeds(subscribe, feeds, concurrency=4)
    assert most == 4 and len(report.added) == 40
    assert time.monotonic() - started < 0.4 * 0.01 * 40  # faster than one at a time
    assert written == report.added == [f.url for f in feeds]  # in the file's order


async def test_checks_go_on_past_a_slow_feed_and_writes_keep_the_files_order() -> None:
    slow_done = asyncio.Event()
    checked_meanwhile: list[str] = []
    written: list[str] = []

    async def subscribe(url: str, *, turn: Turn) -> Subscribed:
        if url.endswith("/0"):  # the file's first feed: a slow failure
            await asyncio.sleep(0.3)
            slow_done.set()
            raise FeedError(FeedFailure(FailureKind.TIMEOUT))
        await asyncio.sleep(0.005)
        if not slow_done.is_set():
            checked_meanwhile.append(url)
        await turn()
        written.append(url)
        return Subscribed(created=True)

    feeds = [OpmlFeed(f"https://a.test/{n}") for n in range(40)]
    report = await import_feeds(subscribe, feeds, concurrency=4, lookahead=16)
    # While the slow feed was checked the others were too, as far as the lookahead allows.
    assert checked_meanwhile == [f.url for f in feeds[1:16]]
    assert written == report.added == [f.url for f in feeds[1:]]
    assert [f.url for f in report.failures] == [feeds[0].url]


async def test_a_stopping_bot_starts_no_further_checks() -> None:
    checked: list[str] = []

    async def subscribe(url: str, *, turn: Turn) -> Subscribed:
        checked.append(url)
        return Subscribed(created=True)

    feeds = [OpmlFeed(f"https://a.test/{n}") for n in range(10)]
    report = await import_feeds(subscribe, feeds, keep_going=lambda: len(checked) < 3)
    assert len(checked) == 3 and report.not_checked == 7
    assert "7 feed(s) were not checked" in import_summary("en", report)


async def test_the_summary_groups_failures_by_reason_with_at_most_ten_examples() -> None:
    async def subscribe(url: str, *, turn: Turn) -> Subscribed:
        number = int(url.rsplit("/", 1)[1])
        if number < 3:
            return Subscribed(created=number != 0)
        if number < 20:
            raise FeedError(FeedFailure(FailureKind.HTTP_STATUS, status=404))
        if number < 25:
            raise FeedError(FeedFailure(FailureKind.DNS))
        if number < 27:
            raise NotAFeedError("html")
        raise RuntimeError("a bug")

    feeds = [OpmlFeed(f"https://a.test/{n}") for n in range(28)]
    report = await import_feeds(subscribe, feeds)
    summary = import_summary("en", report)
    assert "added: 2" in summary and "already subscribed: 1" in summary
    assert "failed: 25" in summary
    assert "<b>HTTP 404</b>: 17" in summary and "… and 7 more" in summary
    assert "<b>site name not found (DNS)</b>: 5" in summary and "… and 5 more" in summary
    assert "<b>not a feed: an HTML page</b>: 2" in summary
    assert "<b>internal error (logged for the operator)</b>: 1" in summary
    assert summary.count("  • ") == 10
    assert len(summary) < 4096
    zh = import_summary("zh", report)
    assert "新增：2" in zh and "找不到域名（DNS）" in zh


def test_import_report_counts() -> None:
    report = ImportReport(total=5, added=["a"], already=["b"])
    assert (report.checked, report.not_checked) == (2, 3)


# --- malformed, hostile and oversized files -------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<opml version="2.0"><head><title>&lol9;</title></head>
<body><outline text="&lol9;" xmlUrl="https://a.test/&lol9;"/></body></opml>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&secret;" xmlUrl="https://a.test/&secret;"/></body></opml>
"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<opml version="2.0"><body><outline xmlUrl="https://a.test/f"/></body></opml>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE opml SYSTEM "http://127.0.0.1:9/opml.dtd">
<opml version="2.0"><body><outline xmlUrl="https://a.test/f"/></body></opml>
"""

HARMLESS_DOCTYPE = b"""<?xml version="1.0"?>
<!DOCTYPE opml>
<opml version="2.0"><body><outline xmlUrl="https://a.test/f"/></body></opml>
"""


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, EXTERNAL_DTD, HARMLESS_DOCTYPE],
    ids=["billion-laughs", "external-entity", "parameter-entity", "external-dtd", "doctype"],
)
def test_any_doctype_is_refused_before_anything_is_expanded_or_fetched(data: bytes) -> None:
    started = time.monotonic()
    error = refused(data)
    assert error.key == "opml.doctype"
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (b"", "opml.not_xml"),
        (b"   \n", "opml.not_xml"),
        (b"this is not XML at all", "opml.not_xml"),
        (b'{"feeds": ["https://a.test/f"]}', "opml.not_xml"),
        (b'<opml version="2.0"><body><outline xmlUrl="https://a.test/f">', "opml.not_xml"),
        (
            b'<opml version="2.0"><body><outline xmlUrl="a" xmlUrl="b"/></body></opml>',
            "opml.not_xml",
        ),
        (b"<!doctype html><html><body>Hi</body></html>", "opml.not_xml"),  # case-sensitive
        (b"<!DOCTYPE html><html><body>Hi</body></html>", "opml.not_opml"),
        (b'<?xml version="1.0"?><html><body>Hi</body></html>', "opml.not_opml"),
        (b"<feeds><feed url='https://a.test/f'/></feeds>", "opml.not_opml"),
        (b'<opml version="2.0"><head/><body/></opml>', "opml.no_feeds"),
        (b'<opml version="2.0"><head><title>x</title></head></opml>', "opml.no_feeds"),
        (opml_with('<outline text="Folder"><outline text="no url"/></outline>'), "opml.no_feeds"),
        (opml_with('<outline type="link" url="https://a.test/"/>'), "opml.no_feeds"),
    ],
)
def test_malformed_and_empty_files_are_refused_with_their_reason(data: bytes, key: str) -> None:
    assert refused(data).key == key


@pytest.mark.parametrize("name", ["en_cnn_topstories_rss2.xml", "zh_bbc_chinese_simp_atom.xml"])
def test_a_feed_sent_as_the_file_is_recognised(name: str) -> None:
    error = refused((FIXTURES / "feeds" / name).read_bytes())
    assert error.key == "opml.is_a_feed"
    assert error.values["root"] in ("rss", "feed")


def test_files_over_the_size_cap_are_refused_before_parsing() -> None:
    data = opml_with('<outline xmlUrl="https://a.test/f"/>' + " " * 2048)
    error = refused(data, max_bytes=1024)
    assert error.key == "opml.too_large"
    assert error.values == {"size_kb": 3, "limit_kb": 1}
    assert parse_opml(data, max_bytes=len(data), max_feeds=1).feeds  # exactly the cap is fine


def test_files_with_too_many_feeds_are_refused() -> None:
    outlines = "".join(f'<outline xmlUrl="https://a.test/{n}"/>' for n in range(6))
    error = refused(opml_with(outlines), max_feeds=5)
    assert (error.key, error.values) == ("opml.too_many", {"count": 6, "limit": 5})
    # Duplicates are one feed each: six outlines of three URLs fit a cap of three.
    twice = "".join(f'<outline xmlUrl="https://a.test/{n % 3}"/>' for n in range(6))
    assert len(parse_opml(opml_with(twice), max_bytes=4096, max_feeds=3).feeds) == 3


def test_deep_nesting_is_no_problem() -> None:
    depth = 5000
    data = opml_with(
        '<outline text="f">' * depth
        + '<outline xmlUrl="https://a.test/deep"/>'
        + "</outline>" * depth
    )
    [feed] = parse_opml(data, **LIMITS).feeds
    assert feed.url == "https://a.test/deep" and feed.category.count("/") == depth - 1


async def test_many_kinds_of_failure_still_fit_one_message() -> None:
    async def subscribe(url: str, *, turn: Turn) -> Subscribed:
        status = 400 + int(url.rsplit("/", 1)[1]) % 30  # thirty different reasons
        raise FeedError(FeedFailure(FailureKind.HTTP_STATUS, status=status))

    report = await import_feeds(subscribe, [OpmlFeed(f"https://a.test/{n}") for n in range(90)])
    summary = import_summary("en", report)
    assert summary.count("<b>HTTP 4") == 12
    assert "… and 54 more failed for other reasons" in summary
    assert summary.count("  • ") == 10 and len(summary) < 4096


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_the_command_line_shows_a_progress_bar_on_a_terminal_only() -> None:
    screen = Terminal()
    bar = ProgressBar(200, stream=screen)
    await bar.update(ImportReport(total=200, added=["a"] * 57))
    bar.finish()
    assert screen.getvalue() == "\r[########......................]  57/200\n"
    quiet = io.StringIO()
    bar = ProgressBar(200, stream=quiet)
    await bar.update(ImportReport(total=200, added=["a"] * 57))
    bar.finish()
    assert quiet.getvalue() == ""
