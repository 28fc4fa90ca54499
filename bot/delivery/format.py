"""The alert as Telegram HTML: its layout within Telegram's length limit (bot/text.py has
the rules of the HTML and of the limit)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.text import MESSAGE_LIMIT, clip, cut, escape, is_web_link, utf16_len


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
# The line breaks between the parts: title, blank, summary, blank, footer, keyword.
_SEPARATORS = 5


def format_alert(
    *,
    title: str,
    summary: str,
    link: str,
    feed_title: str,
    timestamp_id: int,
    zone: str = "UTC",
    keyword: str | None = None,
    limit: int = MESSAGE_LIMIT,
) -> str:
    """One alert in Telegram HTML: the title in bold as the story's link, the summary, a
    footer with the feed's name and the story's time in `zone`, the keyword that matched.

    Always within `limit` as Telegram counts it (text after parsing, UTF-16 units):
    MESSAGE_LIMIT for a message, CAPTION_LIMIT for a photo's caption. The summary gives
    way to what must be there, cut at a sentence end. Only an http(s) link is linked (an
    href Telegram cannot parse would refuse the whole alert), and one too long to be
    useful is left out (a cut link is a broken link): the title is then plain bold.
    """
    title = clip(title, TITLE_CAP)
    href = link if is_web_link(link) and utf16_len(link) <= LINK_CAP else ""
    footer = f"{clip(feed_title, FEED_CAP)} · {format_time(timestamp_id, zone)}"
    keyword_line = f"🔎 {clip(keyword, KEYWORD_CAP)}" if keyword else ""
    fixed = sum(utf16_len(part) for part in (title, footer, keyword_line))
    summary = fit_summary(summary, min(SUMMARY_CAP, limit - fixed - _SEPARATORS))
    heading = escape(title)
    if href:
        heading = f'<a href="{escape(href)}">{heading}</a>'
    lines = [f"<b>{heading}</b>"]
    if summary:
        lines += ["", escape(summary)]
    lines += ["", f"<i>{escape(footer)}</i>"]
    if keyword_line:
        lines.append(escape(keyword_line))
    return "\n".join(lines)


def fit_summary(summary: str, room: int) -> str:
    """`summary` within `room` UTF-16 units: whole when it fits, else cut at a sentence end
    (or, when no sentence end fits, at a clause or word with "…"); "" when there is no
    room for even that."""
    budget = room
    while budget > 1:
        shown = cut(summary, budget)  # counts characters: an emoji is one, Telegram's two
        excess = utf16_len(shown) - room
        if excess <= 0:
            return shown
        budget -= excess
    return ""
