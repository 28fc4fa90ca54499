"""Raw feedparser entry → Entry: timestamp id, identity key, text title, absolute link,
picture.

The timestamp id is the story's publication time in epoch ms (else its update time, else
the time it was first seen; a time in the future is not trusted, so one misdated story
cannot push the feed's clock ahead). The identity key settles ties and restamps: a hash of
the guid, else of the normalized link plus title, else of the title plus text. The picture
is the one the feed gives the story (media:content, media:thumbnail, an image enclosure),
else the first real <img> of its lead HTML: never a tracking pixel, an icon or an avatar.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

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
        image_url=story_image(raw, lead_html, base_url=link or feed_url),
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


# --- the story's picture ----------------------------------------------------------------------

# Hosts whose images are never a story's picture: counters and tracking pixels, ads, the
# share and comment buttons that feed services append (feedburner's ~r pixels and ~ff
# buttons, wordpress.com's, feedsportal's), avatars. A host matches with its subdomains.
_NOT_PICTURE_HOSTS = frozenset(
    (
        "feeds.feedburner.com",
        "feeds.wordpress.com",
        "stats.wordpress.com",
        "pixel.wp.com",
        "doubleclick.net",
        "rss.feedsportal.com",
        "ads.pheedo.com",
        "pixel.quantserve.com",
        "google-analytics.com",
        "scorecardresearch.com",
        "gravatar.com",
        "avatars.githubusercontent.com",
    )
)
# Path segments (or file names without their extension) that name a pixel, a counter, an
# icon, an emoji or an avatar: blogger's /tracker/…, WordPress's /smilies/…, s.w.org's
# /emoji/…, /favicon.ico, /pixel.gif. Whole segments only: "google-pixel-9.jpg" or
# "avatar-2-poster.jpg" are stories' pictures.
_NOT_PICTURE_PATH = re.compile(
    r"/(?:pixel|pixels|tracker|tracking|beacon|spacer|blank|transparent|emoji|emojis|smilies"
    r"|smileys|favicon|avatar|avatars|gravatar|icon|icons|service_links)(?:/|\.[a-z0-9]+$|$)"
)
# A size written into the file name: "icn_star_11x11.gif", "pixel-1x1.png".
_SIZE_IN_NAME = re.compile(r"(?<![0-9])(\d{1,3})x(\d{1,3})(?![0-9])")
_CSS_SIZE = re.compile(r"(?:^|[;\s])(width|height)\s*:\s*(\d+)\s*px", re.IGNORECASE)
_IMAGE_NAME = re.compile(r"\.(?:jpe?g|png|gif|webp|avif|bmp)$", re.IGNORECASE)
_NOT_IMAGE_NAME = re.compile(
    r"\.(?:mp4|m4v|mov|webm|mkv|avi|mp3|m4a|aac|ogg|oga|opus|wav|flac|m3u8|pdf)$", re.IGNORECASE
)
# Whitespace anywhere in an address (the same characters as str.isspace): not a URL.
_SPACE = re.compile(r"\s")
# "<img" in any ASCII case (what "<img" in html.lower() finds, without copying the HTML).
_IMG_TAG = re.compile(r"<img", re.IGNORECASE | re.ASCII)
_ESCAPED_IMG_TAG = re.compile(r"&lt;img", re.IGNORECASE | re.ASCII)
PIXEL_MAX = 2  # a declared width or height this small: a tracking pixel
ICON_BELOW = 50  # every declared dimension under this: an icon, an emoji, an avatar
MAX_IMAGE_URL = 2048
MAX_IMAGES_LOOKED_AT = 20  # <img>s of one lead (past its first few, none is the lead's)
_LAZY_SOURCES = ("src", "data-src", "data-original", "data-lazy-src")


@dataclass(frozen=True, slots=True)
class _Picture:
    url: str  # absolute http(s)
    width: int | None = None  # declared sizes, when the feed or the HTML says
    height: int | None = None


def story_image(raw: Mapping[str, Any], lead_html: str, *, base_url: str) -> str:
    """The story's picture as an absolute http(s) URL, or "": media:content (images only),
    else media:thumbnail (of each, the widest declared), else an image enclosure, else the
    first real <img> of the lead HTML. Relative addresses are resolved against `base_url`
    (the story's page, else the feed)."""
    for pictures in (
        _media(raw.get("media_content"), base_url),
        _media(raw.get("media_thumbnail"), base_url),
        _enclosures(raw, base_url),
    ):
        real = [picture for picture in pictures if _is_real_picture(picture)]
        if real:
            return max(real, key=lambda picture: picture.width or 0).url
    for picture in _lead_images(lead_html, base_url):
        if _is_real_picture(picture):
            return picture.url
    return ""


def _is_real_picture(picture: _Picture) -> bool:
    """Not a tracking pixel, a counter, a share button, an icon, an emoji or an avatar."""
    declared = [size for size in (picture.width, picture.height) if size is not None]
    if any(size <= PIXEL_MAX for size in declared):
        return False
    if declared and all(size < ICON_BELOW for size in declared):
        return False
    parts = urlsplit(picture.url)
    host = (parts.hostname or "").lower()
    if "favicon" in host or any(
        host == bad or host.endswith("." + bad) for bad in _NOT_PICTURE_HOSTS
    ):
        return False
    path = parts.path.lower()
    if _NOT_PICTURE_PATH.search(path):
        return False
    named = _SIZE_IN_NAME.search(path.rsplit("/", 1)[-1])
    return named is None or max(int(named[1]), int(named[2])) >= ICON_BELOW


def _media(items: Any, base_url: str) -> Iterator[_Picture]:
    """media:content or media:thumbnail elements that are images (a medium or type says
    so, or neither is given and the address is not a video's or a sound's)."""
    for item in _mappings(items):
        medium, kind = item.get("medium") or "", item.get("type") or ""
        if medium or kind:
            if medium != "image" and not kind.startswith("image/"):
                continue
        elif _NOT_IMAGE_NAME.search(urlsplit(str(item.get("url") or "")).path):
            continue
        url = _absolute(item.get("url"), base_url)
        if url:
            yield _Picture(url, _size(item.get("width")), _size(item.get("height")))


def _enclosures(raw: Mapping[str, Any], base_url: str) -> Iterator[_Picture]:
    for item in _mappings(raw.get("enclosures")):
        kind, href = item.get("type") or "", str(item.get("href") or "")
        if kind.startswith("image/") or (not kind and _IMAGE_NAME.search(urlsplit(href).path)):
            url = _absolute(href, base_url)
            if url:
                yield _Picture(url)


def _lead_images(lead_html: str, base_url: str) -> Iterator[_Picture]:
    """The <img>s of the lead HTML in document order (also in a body escaped twice)."""
    if _IMG_TAG.search(lead_html) is None:
        if _ESCAPED_IMG_TAG.search(lead_html) is None:
            return
        lead_html = html.unescape(lead_html)
    tree = LexborHTMLParser(lead_html[:65_536])
    for node in tree.css("img")[:MAX_IMAGES_LOOKED_AT]:
        attrs = node.attributes
        url = next((u for u in (_absolute(attrs.get(a), base_url) for a in _LAZY_SOURCES) if u), "")
        if not url:
            continue
        sizes = {m[1].lower(): int(m[2]) for m in _CSS_SIZE.finditer(attrs.get("style") or "")}
        width = _size(attrs.get("width"))
        height = _size(attrs.get("height"))
        yield _Picture(
            url,
            sizes.get("width") if width is None else width,
            sizes.get("height") if height is None else height,
        )


def _mappings(items: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(items, list):
        return ()
    return [item for item in items if isinstance(item, Mapping)]


def _absolute(url: Any, base_url: str) -> str:
    """`url` made absolute against `base_url` when it is an http(s) address, else ""."""
    if not isinstance(url, str) or not url.strip():
        return ""
    try:
        absolute = urljoin(base_url, url.strip())
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:
        return ""
    if scheme not in ("http", "https") or len(absolute) > MAX_IMAGE_URL:
        return ""
    if _SPACE.search(absolute) is not None:
        return ""
    return quote_bidi_controls(absolute)


def _size(value: Any) -> int | None:
    """A declared pixel size ("90", "80px"); None for none, a percentage or junk."""
    text = str(value).strip().lower().removesuffix("px") if value is not None else ""
    return int(text) if text.isdigit() and len(text) <= 6 else None
