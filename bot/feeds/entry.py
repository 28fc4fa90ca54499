"""Raw feedparser entry → Entry: timestamp id, identity key, text title, absolute link.

The timestamp id is the story's publication time in epoch ms (else its update time, else
the time it was first seen; a time in the future is not trusted, so one misdated story
cannot push the feed's clock ahead). The identity key settles ties and restamps: a hash of
the guid, else of the normalized link plus title, else of the title plus text.
"""

from __future__ import annotations

import calendar
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bot.models import Entry
from bot.summary import html_to_text, pick_body
from bot.text import quote_bidi_controls

# A publication time this far past "now" is a misdated entry, not news from the future.
FUTURE_TOLERANCE_MS = 10 * 60 * 1000
TITLE_FROM_TEXT_CHARS = 80
MAX_TITLE_CHARS = 1000
# Query parameters that only track the reader; two links differing only by them are one.
_TRACKING_PREFIXES = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src")


def normalize_entry(raw: Mapping[str, Any], *, feed_id: int, feed_url: str, now_ms: int) -> Entry:
    link = entry_link(raw, feed_url)
    lead_html = pick_body(_contents(raw), raw.get("summary") or raw.get("description"))
    title = html_to_text(raw.get("title") or "")[:MAX_TITLE_CHARS]
    text_for_identity = ""
    # Only a title the feed gave says which story this is: one made up from the text (or
    # "(untitled)") must not make two feeds' different stories one (cross-feed duplicates).
    given_title_key = title_key(title)
    if not title:
        text_for_identity = html_to_text(lead_html)
        title = _title_from_text(text_for_identity)
    link_key = normalize_link(link) if link else ""
    return Entry(
        feed_id=feed_id,
        timestamp_id=timestamp_id(raw, now_ms),
        identity=identity_key(raw, link_key, title, lead_html, text_for_identity),
        title=title,
        link=link,
        lead_html=lead_html,
        link_key=link_key,
        title_key=given_title_key,
    )


def timestamp_id(raw: Mapping[str, Any], now_ms: int) -> int:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = raw.get(key)
        if parsed:
            try:
                stamp = calendar.timegm(parsed) * 1000
            except (TypeError, ValueError, OverflowError):
                continue
            if stamp > now_ms + FUTURE_TOLERANCE_MS or stamp <= 0:
                return now_ms
            return stamp
    return now_ms


def identity_key(
    raw: Mapping[str, Any], link_key: str, title: str, lead_html: str, text: str = ""
) -> str:
    guid = (raw.get("id") or "").strip()
    if guid:
        basis = "guid\x00" + guid
    elif link_key:
        basis = "link\x00" + link_key + "\x00" + title
    else:
        basis = "text\x00" + title + "\x00" + (text or html_to_text(lead_html))
    return hashlib.blake2b(basis.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def entry_link(raw: Mapping[str, Any], feed_url: str) -> str:
    """The entry's web page as an absolute http(s) URL, or "" when it has none."""
    candidates = [raw.get("link") or ""]
    for link in raw.get("links") or []:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            candidates.append(link["href"])
    guid = raw.get("id") or ""
    if guid.startswith(("http://", "https://")):
        # Feeds whose <link> is missing or mangled often carry the URL as the guid.
        candidates.append(guid)
    for candidate in candidates:
        try:
            absolute = urljoin(feed_url, candidate.strip())
            scheme = urlsplit(absolute).scheme
        except ValueError:  # "http://[::1/story": not a URL, try the next candidate
            continue
        if candidate.strip() and scheme in ("http", "https"):
            return quote_bidi_controls(absolute)
    return ""


def normalize_link(link: str) -> str:
    """Lower-case host, one scheme, no www., no default port, no tracking parameters.

    The fragment stays: blogs such as Scripting News publish distinct posts as anchors of
    one day's page.
    """
    try:
        parts = urlsplit(link.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return link.strip()
    if port and (parts.scheme, port) not in {("http", 80), ("https", 443)}:
        host = f"{host}:{port}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_TRACKING_PREFIXES)
        ]
    )
    path = parts.path or "/"
    return urlunsplit(
        (
            "https" if parts.scheme in ("http", "https") else parts.scheme,
            host.removeprefix("www."),
            path,
            query,
            parts.fragment,
        )
    )


def title_key(title: str) -> str:
    """Case-, width- and space-insensitive form of a title, for cross-feed duplicates."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(folded.split())


def _contents(raw: Mapping[str, Any]) -> Sequence[str]:
    return [item.get("value") or "" for item in raw.get("content") or []]


def _title_from_text(text: str) -> str:
    if not text:
        return "(untitled)"  # no title and no text: the alert still needs a name
    if len(text) <= TITLE_FROM_TEXT_CHARS:
        return text
    cut = text[:TITLE_FROM_TEXT_CHARS]
    space = cut.rfind(" ")
    if space > TITLE_FROM_TEXT_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:，。；：") + "…"
