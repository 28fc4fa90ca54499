"""`news-notifier preview`: the alerts a feed would produce, without Telegram or a database."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from bot.config import Settings
from bot.delivery.format import format_alert
from bot.errors import UserError
from bot.feeds.fetch import Fetcher
from bot.feeds.pipeline import parse_and_normalize
from bot.summary import summarize
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


async def load(source: str, settings: Settings) -> tuple[bytes, str, str | None]:
    """(body, url, content type) of a feed given as a URL or a local file."""
    local = read_file(source)
    if local:
        return local[0], local[1], None
    url = check_url(source)
    async with Fetcher(settings.fetch) as fetcher:
        result = await fetcher.fetch(url)  # FeedError: the caller explains it
    return result.body or b"", result.url, result.content_type


async def preview(source: str, settings: Settings, *, limit: int = 3) -> list[str]:
    body, url, content_type = await load(source, settings)
    parsed = parse_and_normalize(
        body, url=url, content_type=content_type, feed_id=0, now_ms=time.time_ns() // 1_000_000
    )
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
