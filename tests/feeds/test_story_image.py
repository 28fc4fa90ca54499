"""A story's picture, found at normalize time (bot/feeds/entry.py, story_image): what the
feed gives it (media:content, media:thumbnail, an image enclosure), else the first real
<img> of its lead; never a tracking pixel, a 1×1, an icon, an emoji or an avatar."""

from __future__ import annotations

import pytest

from bot.delivery.format import format_alert
from bot.feeds.pipeline import parse_and_normalize
from bot.summary import summarize
from bot.text import CAPTION_LIMIT
from tests.fakes.telegram_api import parse_html, utf16_len
from tests.paths import FIXTURES, SHARED

FEED_FIXTURES = FIXTURES / "feeds"
SHARED_FEEDS = SHARED / "feeds" / "real-world"
NOW_MS = 1_740_787_200_000
FEED_URL = "https://news.test/feed.xml"
SEED_IMAGE = (
    "https://images.weserv.nl?url=gdb.voanews.com/ba4da7c7-55f9-4e2c-9774-e82e956de32a"
    "_r1_s_w900.jpg"
)
MEDIA = 'xmlns:media="http://search.yahoo.com/mrss/"'


def images(document: str | bytes) -> list[str]:
    body = document.encode() if isinstance(document, str) else document
    parsed = parse_and_normalize(body, url=FEED_URL, content_type=None, feed_id=1, now_ms=NOW_MS)
    return [entry.image_url for entry in parsed.entries]


def rss(item_body: str) -> str:
    return (
        f'<?xml version="1.0"?><rss version="2.0" {MEDIA}><channel><title>T</title>'
        f"<item><title>Story</title><link>https://news.test/a/1.html</link><guid>1</guid>"
        f"{item_body}</item></channel></rss>"
    )


def lead(html: str) -> str:
    return rss(f"<description><![CDATA[{html}]]></description>")


def test_the_seed_storys_picture_is_its_proxied_jpeg_and_its_caption_stays_out() -> None:
    """The seed: a date line, a proxied JPEG (width="100%", no size), its caption, then the
    lead. The picture is the JPEG; the alert that goes with it as a photo carries the lead
    and neither the caption nor the date line."""
    document = (FEED_FIXTURES / "seed_feedx_rss2.xml").read_bytes()
    parsed = parse_and_normalize(
        document, url="https://feedx.net/rss/voa.xml", content_type=None, feed_id=1, now_ms=NOW_MS
    )
    [entry] = parsed.entries
    assert entry.image_url == SEED_IMAGE
    caption = format_alert(
        title=entry.title,
        summary=summarize(entry.lead_html, max_chars=300, max_chars_cjk=150),
        link=entry.link,
        feed_title=parsed.document.title,
        timestamp_id=entry.timestamp_id,
        limit=CAPTION_LIMIT,
    )
    text, _entities = parse_html(caption)
    assert text.startswith(entry.title) and "克里姆林宫周三（2月26日）表示" in text
    assert "资料照" not in text and "Wed, 26 Feb" not in text and "weserv" not in caption
    assert utf16_len(text) <= CAPTION_LIMIT


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        # Two media:content sizes without a type: the wider one (460 over 140).
        ("en_guardian_us_rss2.xml", "https://i.guim.co.uk/img/media/b73c8752cd4667c923dff7"),
        # media:content {} (no URL), then media:thumbnail 106×60 and 144×81: the wider.
        ("zh_bbc_chinese_simp_atom.xml", "http://a.files.bbci.co.uk/worldservice/live/"),
        # An image enclosure.
        ("en_macworld_leadingws_rss2.xml", "https://images.idgesg.net/images/article/"),
        # A 30×30 avatar as media:thumbnail is no picture of the story.
        ("en_github_releases_signer_modified_atom.xml", ""),
    ],
)
def test_real_feeds_give_their_stories_pictures(fixture: str, expected: str) -> None:
    path = FEED_FIXTURES / fixture if (FEED_FIXTURES / fixture).exists() else SHARED_FEEDS / fixture
    first = images(path.read_bytes())[0]
    assert first.startswith(expected) if expected else first == ""
    if fixture.startswith("en_guardian"):
        assert "w=460" in first


def test_media_content_that_is_a_video_is_passed_over_for_the_thumbnail() -> None:
    document = rss(
        '<media:content url="https://cdn.test/clip.mp4" type="video/mp4" medium="video"/>'
        '<media:content url="https://cdn.test/clip2.mp4"/>'
        '<media:thumbnail url="/thumbs/clip.jpg" width="640" height="360"/>'
    )
    assert images(document) == ["https://news.test/thumbs/clip.jpg"]


@pytest.mark.parametrize(
    "junk",
    [
        # Tracking pixels, declared or known by their address.
        '<img src="http://feeds.feedburner.com/~r/blog/~4/ioWzgQbgLW4" height="1" width="1">',
        '<img src="https://blogger.googleusercontent.com/tracker/219-332?l=b.test" width="1">',
        '<img src="https://pixel.wp.com/g.gif?blog=1&amp;post=2">',
        '<img src="https://stats.example.test/pixel.gif">',
        '<img src="https://stats.example.test/t.gif" style="width:1px;height:1px">',
        '<img src="https://stats.example.test/spacer-1x1.gif">',
        # Icons, emoji, avatars, share buttons.
        '<img src="https://s.w.org/images/core/emoji/15.0.3/72x72/1f600.png" alt="😀">',
        '<img src="https://secure.gravatar.com/avatar/ab12?s=96">',
        '<img src="https://blog.test/favicon.ico">',
        '<img src="https://friendfeed.test/static/images/n-smile.png" width="16" height="16">',
        '<img src="https://gdata.youtube.test/static/images/icn_star_full_11x11.gif">',
        '<img src="http://feeds.wordpress.com/1.0/comments/blog.wordpress.com/17859/">',
        # Not http(s).
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">',
        '<img src="ftp://files.test/picture.jpg">',
    ],
)
def test_what_is_no_picture_is_skipped_for_the_first_real_one(junk: str) -> None:
    document = lead(f'<p>{junk}Text.</p><p><img src="/media/2025/photo.jpg" width="100%"></p>')
    assert images(document) == ["https://news.test/media/2025/photo.jpg"]  # resolved too
    assert images(lead(f"<p>{junk}Only junk here.</p>")) == [""]


def test_pictures_named_like_junk_words_are_still_pictures() -> None:
    """Only whole path segments count: "google-pixel-9" or "avatar-2-poster" are news."""
    for name in ("google-pixel-9.jpg", "avatar-2-poster.jpg", "icon-of-the-year.png"):
        assert images(lead(f'<img src="https://cdn.test/2025/{name}">')) == [
            f"https://cdn.test/2025/{name}"
        ]


def test_a_lazy_loaded_or_twice_escaped_image_is_found() -> None:
    lazy = '<img src="data:image/gif;base64,R0l=" data-src="https://cdn.test/real.jpg">'
    assert images(lead(lazy)) == ["https://cdn.test/real.jpg"]
    escaped = rss(
        "<description>&amp;lt;p&amp;gt;&amp;lt;img src=&amp;quot;https://cdn.test/e.jpg"
        "&amp;quot;&amp;gt;Text.&amp;lt;/p&amp;gt;</description>"
    )
    assert images(escaped) == ["https://cdn.test/e.jpg"]


def test_a_story_without_a_picture_has_none() -> None:
    assert images(lead("<p>Only words.</p>")) == [""]
    assert images(rss('<enclosure url="https://cdn.test/talk.mp3" type="audio/mpeg"/>')) == [""]
