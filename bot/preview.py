"""`news-notifier preview`: the alerts a feed would produce, without Telegram or a database."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from bot.config import Settings
from bot.delivery.format import format_alert
from bot.errors import FeedLinkError, NotAFeedError, SeveralFeedsError, UserError
from bot.feeds.discover import discover_feeds
from bot.feeds.fetch import Fetcher, FetchResult
from bot.feeds.pipeline import NormalizedFeed, parse_and_normalize
from bot.i18n import failure_reply
from bot.summary import summarize
from bot.text import escape
from bot.usecases.subscriptions import check_url


def read_file(source: str) -> tuple[bytes, str] | None:
    """(body, file URL) when `source` names a local file rather than a web address.

    Raises UserError("preview.no_file") for a path that names no file ("/tmp/x.xml",
    "./feed.rss", "feeds/x.xml"): telling its user to send an http:// address would not help.
    """
    if urlsplit(source).scheme:
        return None
    path = Path(source).expanduser()
    if path.is_file():
        return path.read_bytes(), path.resolve().as_uri()
    host = source.split("/", 1)[0]
    if source.startswith(("/", ".", "~")) or ("/" in source and "." not in host):
        raise UserError("preview.no_file", given=source)
    return None  # "example.com/feed.xml": a web address without its scheme


async def load(
    source: str, settings: Settings, *, language: str = "en"
) -> tuple[NormalizedFeed, str]:
    """The feed given as a URL or a local file, read, and its address.

    A web page's address gives the feed the page leads to, found as /subscribe finds it; a
    page that leads to several raises UserError("preview.choose"), which lists them.
    """
    local = read_file(source)
    if local:
        return _read(local[0], local[1], None), local[1]
    url = check_url(source)
    async with Fetcher(settings.fetch) as fetcher:
        result = await fetcher.fetch(url)  # FeedError: the caller explains it
        try:
            return _read(result.body or b"", result.url, result.content_type), result.url
        except NotAFeedError as error:
            if error.failure.what != "html":
                raise
        found = await _feed_on_page(fetcher, result, language)
    return _read(found.body or b"", found.url, found.content_type), found.url


def _read(body: bytes, url: str, content_type: str | None) -> NormalizedFeed:
    now_ms = time.time_ns() // 1_000_000
    return parse_and_normalize(body, url=url, content_type=content_type, feed_id=0, now_ms=now_ms)


async def _feed_on_page(fetcher: Fetcher, page: FetchResult, language: str) -> FetchResult:
    """The one feed a web page leads to, as fetched."""
    try:
        return (await discover_feeds(fetcher, page)).only_feed().result
    except SeveralFeedsError as several:
        commands = "\n".join(
            f"  news-notifier preview {escape(feed.url)}   ({escape(feed.title)})"
            for feed in several.feeds
        )
        raise UserError(
            "preview.choose",
            page=several.page_url,
            count=len(several.feeds),
            commands_html=commands,
        ) from None
    except FeedLinkError as error:
        reason = failure_reply(language, error.failure, given=error.link)
        raise UserError("discover.link_failed", url=error.link, reason_html=reason) from None


async def preview(
    source: str, settings: Settings, *, limit: int = 3, language: str = "en"
) -> list[str]:
    parsed, url = await load(source, settings, language=language)
    newest = sorted(parsed.entries, key=lambda e: e.timestamp_id, reverse=True)[:limit]
    feed_title = parsed.document.title or url
    return [
        format_alert(
            title=entry.title,
            summary=summarize(
                entry.lead_html,
                max_chars=settings.summary.max_chars,
                max_chars_cjk=settings.summary.max_chars_cjk,
            ),
            link=entry.link,
            feed_title=feed_title,
            timestamp_id=entry.timestamp_id,
            zone=settings.digest.timezone,
        )
        for entry in newest
    ]
