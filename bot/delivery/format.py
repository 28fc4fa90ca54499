"""Telegram HTML messages: one escaper, the alert layout, Telegram's length limit."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

MESSAGE_LIMIT = 4096  # characters after entity parsing (Telegram's limit for sendMessage)


def escape(text: str) -> str:
    """Escape feed-derived text for Telegram's HTML parse mode (text and attribute values)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def format_time(epoch_ms: int, zone: str = "UTC") -> str:
    """A story's time as people read it: 2025-02-26 17:30 UTC."""
    when = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(ZoneInfo(zone))
    return when.strftime("%Y-%m-%d %H:%M ") + (when.tzname() or zone)


# Caps keeping any alert far below MESSAGE_LIMIT whatever a feed carries.
TITLE_CAP = 500
SUMMARY_CAP = 3000
FEED_CAP = 200
LINK_CAP = 2048


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_alert(
    *,
    title: str,
    summary: str,
    link: str,
    feed_title: str,
    timestamp_id: int,
    zone: str = "UTC",
    keyword: str | None = None,
) -> str:
    """One alert in Telegram HTML: bold title, summary, link, feed name and time, keyword."""
    lines = [f"<b>{escape(clip(title, TITLE_CAP))}</b>"]
    if summary:
        lines += ["", escape(clip(summary, SUMMARY_CAP))]
    lines.append("")
    if link:
        lines.append(escape(clip(link, LINK_CAP)))
    lines.append(f"<i>{escape(clip(feed_title, FEED_CAP))} · {format_time(timestamp_id, zone)}</i>")
    if keyword:
        lines.append(f"🔎 {escape(clip(keyword, 100))}")
    return "\n".join(lines)


_TAG = re.compile(r"<[^>]+>")


def html_to_plain(html_text: str) -> str:
    """The same message without markup, for the rare message Telegram refuses to parse."""
    return html.unescape(_TAG.sub("", html_text))
