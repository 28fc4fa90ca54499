"""The alert as Telegram HTML: its layout within Telegram's length limit (bot/text.py has
the rules of the HTML and of the limit)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.text import MESSAGE_LIMIT, clip, escape, utf16_len


def format_time(epoch_ms: int, zone: str = "UTC") -> str:
    """A story's time as people read it: 2025-02-26 17:30 UTC."""
    when = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(ZoneInfo(zone))
    return when.strftime("%Y-%m-%d %H:%M ") + (when.tzname() or zone)


# Caps for one alert's parts, in UTF-16 code units (what Telegram counts).
TITLE_CAP = 500
SUMMARY_CAP = 3000
FEED_CAP = 200
LINK_CAP = 2048
KEYWORD_CAP = 100


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
    """One alert in Telegram HTML: bold title, summary, link, feed name and time, keyword.

    Always within MESSAGE_LIMIT as Telegram counts it (text after parsing, UTF-16 units):
    a link too long to be clipped usefully is left out (a cut link is a broken link), and
    the summary, then the title, give way to what must be there.
    """
    title = clip(title, TITLE_CAP)
    link = link if utf16_len(link) <= LINK_CAP else ""
    footer = f"{clip(feed_title, FEED_CAP)} · {format_time(timestamp_id, zone)}"
    keyword = clip(keyword, KEYWORD_CAP) if keyword else None
    fixed = [title, link, footer, f"🔎 {keyword}" if keyword else ""]
    # Separators: the blank lines and line breaks between the parts.
    room = MESSAGE_LIMIT - sum(utf16_len(part) for part in fixed) - 8
    summary = clip(summary, min(SUMMARY_CAP, room)) if summary and room > 1 else ""
    lines = [f"<b>{escape(title)}</b>"]
    if summary:
        lines += ["", escape(summary)]
    lines.append("")
    if link:
        lines.append(escape(link))
    lines.append(f"<i>{escape(footer)}</i>")
    if keyword:
        lines.append(f"🔎 {escape(keyword)}")
    return "\n".join(lines)
