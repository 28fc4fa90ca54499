"""The daily digest's rendering: layout, languages, caps, escaping, and every
message valid Telegram HTML within its limits. Every instant is injected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.digests.render import (
    RAW_HTML_LIMIT,
    DigestItem,
    DigestTexts,
    render_digest,
    summary_line,
)
from bot.models import Story
from bot.text import ENTITY_LIMIT, MESSAGE_LIMIT, telegram_length
from tests.helpers import at

SH = "Asia/Shanghai"


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------

TELEGRAM_TAGS = {"b", "i", "a"}
ENTITY_RE = re.compile(r"&(?!(?:amp|lt|gt|quot|#[0-9]+|#x[0-9a-fA-F]+);)")


@dataclass
class Parsed:
    """One message as Telegram would read it."""

    text: str = ""
    entities: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, text)
    bold: list[str] = field(default_factory=list)


class StrictTelegramHTML(HTMLParser):
    """Fails on anything Telegram's HTML parse mode would refuse: unknown tags, a tag
    closed out of order or left open, an <a> without href, a bare "&"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str, int]] = []  # tag, href, where its text starts
        self.out = Parsed()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in TELEGRAM_TAGS, f"tag <{tag}>"
        href = dict(attrs).get("href") or ""
        assert tag != "a" or href, "<a> without href"
        self.out.entities += 1
        self.stack.append((tag, href, len(self.out.text)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        opened, href, start = self.stack.pop()
        assert opened == tag, f"</{tag}> closes <{opened}>"
        if tag == "a":
            self.out.links.append((href, self.out.text[start:]))
        if tag == "b":
            self.out.bold.append(self.out.text[start:])

    def handle_data(self, data: str) -> None:
        self.out.text += data


def parse_message(message: str) -> Parsed:
    assert "<" not in re.sub(r"</?(?:b|i|a)(?: href=\"[^\"]*\")?>", "", message), message
    assert not ENTITY_RE.search(message), "bare & in message"
    parser = StrictTelegramHTML()
    parser.feed(message)
    parser.close()
    assert not parser.stack, f"left open: {parser.stack}"
    return parser.out


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_messages(messages: list[str]) -> list[Parsed]:
    parsed = [parse_message(m) for m in messages]
    for message, one in zip(messages, parsed, strict=True):
        assert 0 < utf16_units(one.text) <= MESSAGE_LIMIT
        assert len(message) <= RAW_HTML_LIMIT
        assert one.entities <= ENTITY_LIMIT
        assert telegram_length(message) == utf16_units(one.text)
    return parsed


def story(
    story_id: int,
    feed_id: int = 1,
    *,
    ts: int = 1_740_000_000_000,
    title: str | None = None,
    link: str | None = None,
    summary: str = "A short summary.",
    feed_title: str | None = None,
) -> Story:
    return Story(
        id=story_id,
        feed_id=feed_id,
        feed_title=feed_title if feed_title is not None else f"Feed {feed_id}",
        timestamp_id=ts,
        title=title if title is not None else f"Story {story_id}",
        link=link if link is not None else f"https://example.com/{story_id}",
        summary=summary,
    )


NOW = at(SH, 2025, 2, 27, 8, 0)
EN = DigestTexts.for_language("en")
ZH = DigestTexts.for_language("zh")


def render(items: list[DigestItem], *, language: str = "en", max_per_feed: int = 10) -> list[str]:
    return render_digest(
        items,
        now_ms=NOW,
        zone=SH,
        language=language,
        max_per_feed=max_per_feed,
        texts=DigestTexts.for_language(language),
    )


SEED = Story(
    id=1,
    feed_id=7,
    feed_title="美国之音中文网",
    timestamp_id=1740591542000,
    title="克里姆林宫称正在准备俄美专家级会谈，为特普峰会铺路",
    link="https://www.voachinese.com/a/kremlin-says-russia-and-us-are-preparing-more-talks-20250226/7988895.html",
    summary=(
        "克里姆林宫周三（2月26日）表示，作为上周美俄高级别会谈及弗拉基米尔·普京"
        "（Vladimir Putin）和唐纳德·特朗普（Donald Trump）总统早些时候通话的后续行动，"
        "正在为俄罗斯和美国之间的专家级会谈做准备。"
    ),
)


def test_seed_story_in_a_chinese_digest() -> None:
    messages = render([DigestItem(SEED, matched=False)], language="zh")
    assert len(messages) == 1
    (parsed,) = check_messages(messages)
    assert messages[0].startswith("<b>每日摘要</b> · 2025-02-27（Asia/Shanghai）\n")
    assert (SEED.link, SEED.title) in parsed.links
    assert "美国之音中文网" in parsed.bold
    # The summary is one sentence, short enough to be shown whole on its own line.
    assert f"\n{SEED.summary}" in parsed.text


def test_english_header_and_language_choice() -> None:
    (message,) = render([DigestItem(story(1), matched=False)], language="en")
    assert message.startswith("<b>Daily digest</b> · 2025-02-27 (Asia/Shanghai)\n")
    assert DigestTexts.for_language("zh-hans") is ZH
    assert DigestTexts.for_language("zh-TW") is ZH
    assert DigestTexts.for_language("en-US") is EN
    assert DigestTexts.for_language("fr") is EN
    assert DigestTexts.for_language("") is EN


def test_texts_default_from_language() -> None:
    items = [DigestItem(story(1), matched=False)]
    implied = render_digest(items, now_ms=NOW, zone=SH, language="zh", max_per_feed=5)
    assert implied == render(items, language="zh")


@pytest.mark.parametrize(
    ("language", "line"),
    [("en", "No new stories in the last 24 hours."), ("zh", "过去 24 小时没有新报道。")],
)
def test_empty_digest_is_one_line(language: str, line: str) -> None:
    assert render([], language=language) == [line]


def test_layout_matches_first_then_feeds_by_newest_story() -> None:
    base = 1_740_000_000_000
    items = [
        DigestItem(story(1, feed_id=1, ts=base + 1), matched=False),
        DigestItem(story(2, feed_id=1, ts=base + 5), matched=False),
        DigestItem(story(3, feed_id=2, ts=base + 9), matched=False),
        DigestItem(story(4, feed_id=2, ts=base + 2), matched=True),
        DigestItem(story(5, feed_id=3, ts=base + 3), matched=True),
        DigestItem(story(6, feed_id=3, ts=base + 7), matched=False),
    ]
    (message,) = render(items)
    lines = message.split("\n")
    titles = [re.sub(r"<[^>]+>", "", line) for line in lines]
    assert titles == [
        "Daily digest · 2025-02-27 (Asia/Shanghai)",
        "",
        "★ Matches your keywords",
        "★ Story 5 · Feed 3",  # newer match first
        "A short summary.",
        "★ Story 4 · Feed 2",
        "A short summary.",
        "",
        "Feed 2",  # newest story of all: 3 (base + 9)
        "• Story 3",
        "A short summary.",
        "",
        "Feed 3",  # then base + 7
        "• Story 6",
        "A short summary.",
        "",
        "Feed 1",
        "• Story 2",  # newest first within a feed
        "A short summary.",
        "• Story 1",
        "A short summary.",
    ]


def test_per_feed_cap_counts_matches_first_and_says_how_many_more() -> None:
    items = [DigestItem(story(n, ts=1_000 + n), matched=n in (3, 8, 12)) for n in range(1, 14)]
    (message,) = render(items, max_per_feed=5)
    text = parse_message(message).text
    # Five places: the three matches, then the two newest of the rest; eight left over.
    assert re.findall(r"Story \d+", text) == [
        "Story 12",
        "Story 8",
        "Story 3",
        "Story 13",
        "Story 11",
    ]
    assert text.endswith("\n… and 8 more")
    zh = parse_message(render(items, language="zh", max_per_feed=5)[0]).text
    assert zh.endswith("\n…… 还有 8 条")


def test_feed_whose_places_all_go_to_matches_still_counts_the_rest() -> None:
    items = [DigestItem(story(n, ts=1_000 + n), matched=n <= 2) for n in range(1, 6)]
    text = parse_message(render(items, max_per_feed=2)[0]).text
    assert text.endswith("\n\nFeed 1\n… and 3 more")


def test_escaping_of_feed_text() -> None:
    nasty = story(
        1,
        title='Tom & Jerry <b>"live"</b>',
        link='https://example.com/?a=1&b="2"<x>',
        summary="5 < 6 & 7 > 3.",
        feed_title="<Feed & Co>",
    )
    (message,) = render([DigestItem(nasty, matched=False)])
    (parsed,) = check_messages([message])
    assert parsed.links == [('https://example.com/?a=1&b="2"<x>', 'Tom & Jerry <b>"live"</b>')]
    assert "<Feed & Co>" in parsed.bold
    assert "\n5 < 6 & 7 > 3." in parsed.text
    assert "&lt;b&gt;&quot;live&quot;&lt;/b&gt;" in message


def test_story_without_link_or_summary() -> None:
    items = [
        DigestItem(story(1, link="", summary=""), matched=False),
        DigestItem(story(2, link="javascript:alert(1)", summary="  "), matched=False),
    ]
    (message,) = render(items)
    parsed = parse_message(message)
    assert parsed.links == []
    # No empty summary lines; equal timestamps: the later stored (higher id) first.
    assert parsed.text.endswith("Feed 1\n• Story 2\n• Story 1")


def test_summary_line_is_first_sentence_or_about_100_chars() -> None:
    assert summary_line("First one. Second one.") == "First one."
    assert summary_line("  The U.S. said so.  Then more.") == "The U.S. said so."
    assert summary_line("Pi is 3.14 today! Yes.") == "Pi is 3.14 today!"
    assert summary_line("北京发布消息。第二句。") == "北京发布消息。"
    assert summary_line("") == ""
    long_latin = "word " * 60
    cut = summary_line(long_latin)
    assert cut.endswith("…") and len(cut) <= 101
    assert cut[:-1].split(" ") == ["word"] * len(cut[:-1].split(" "))  # no half word
    long_cjk = "汉" * 300
    assert summary_line(long_cjk) == "汉" * 100 + "…"


def test_giant_title_is_cut_to_fit_one_message() -> None:
    giant = story(1, title="Breaking " * 2000, summary="Still here.")
    emoji = story(2, feed_id=2, title="😀" * 3000, ts=1)  # two UTF-16 units each
    messages = render([DigestItem(giant, matched=False), DigestItem(emoji, matched=True)])
    parsed = check_messages(messages)
    every_link = [link for one in parsed for link in one.links]
    assert [href for href, _ in every_link] == [emoji.link, giant.link]
    assert all(text.endswith("…") for _, text in every_link)
    assert "\nStill here." in parsed[-1].text


def test_giant_link_is_dropped_not_the_story() -> None:
    huge = story(1, title="Huge link", link="https://example.com/?" + "a&" * 5000)
    normal = story(2, ts=0)
    messages = render([DigestItem(huge, matched=False), DigestItem(normal, matched=False)])
    (parsed,) = check_messages(messages)
    assert parsed.links == [(normal.link, "Story 2")]
    assert "• Huge link\n" in parsed.text


def test_many_short_stories_stay_within_100_entities_per_message() -> None:
    # 150 linked one-line stories are far below 4096 characters, but Telegram would drop
    # the formatting of every link after the 100th entity in a message.
    items = [DigestItem(story(n, ts=n, summary=""), matched=False) for n in range(150)]
    messages = render(items, max_per_feed=500)
    parsed = check_messages(messages)
    assert len(messages) == 2
    assert len([link for one in parsed for link in one.links]) == 150


def test_long_links_keep_the_html_small_enough() -> None:
    # Short text, long markup: Telegram refuses the entities with ENTITIES_TOO_LONG.
    items = [
        DigestItem(story(n, ts=n, link=f"https://example.com/{n}/" + "x" * 700), matched=False)
        for n in range(40)
    ]
    messages = render(items, max_per_feed=500)
    parsed = check_messages(messages)
    assert len(messages) > 3
    assert all(telegram_length(m) < MESSAGE_LIMIT // 2 for m in messages)
    assert len([link for one in parsed for link in one.links]) == 40


def test_giant_feed_title_is_cut() -> None:
    (message,) = render([DigestItem(story(1, feed_title="F" * 10_000), matched=False)])
    (heading,) = parse_message(message).bold[1:]
    assert heading.endswith("…") and len(heading) <= 200


def many_stories(feeds: int, per_feed: int) -> list[DigestItem]:
    items = []
    for f in range(feeds):
        for n in range(per_feed):
            sid = f * per_feed + n
            items.append(
                DigestItem(
                    story(
                        sid,
                        feed_id=f + 1,
                        ts=1_740_000_000_000 + sid * 7919 % 100_000,
                        title=f"Story {sid:03d}: markets & <politics> with a longer headline",
                        summary=f"Summary of story {sid:03d}, which says what happened. More.",
                        feed_title=f"Feed {f + 1:02d} & friends",
                    ),
                    matched=sid % 23 == 0,
                )
            )
    return items


def test_300_stories_split_between_stories_into_valid_messages() -> None:
    items = many_stories(20, 15)
    messages = render(items, max_per_feed=100)
    assert len(messages) > 3
    parsed = check_messages(messages)
    seen: list[int] = []
    for one in parsed:
        lines = one.text.split("\n")
        # Each message after the first opens with a heading, "(continued)" when mid-feed.
        if one is not parsed[0]:
            assert lines[0].removesuffix(" (continued)") in one.bold
        for i, line in enumerate(lines):
            if found := re.match(r"[•★] Story (\d{3}):", line):
                seen.append(int(found.group(1)))
                # The story's summary is right under it, in the same message.
                assert (
                    lines[i + 1] == f"Summary of story {found.group(1)}, which says what happened."
                )
    assert sorted(seen) == list(range(300))
    continued = [one.text.split("\n")[0] for one in parsed[1:]]
    assert any(line.endswith(" (continued)") for line in continued)
    # Matches come before every feed group.
    flat = "\n".join(one.text for one in parsed)
    assert flat.index("★ Matches your keywords") < flat.index("\nFeed ")
    assert flat.count("★ Story") == len([i for i in items if i.matched])


def test_300_stories_with_cap_account_for_every_story() -> None:
    items = many_stories(20, 15)
    messages = render(items, max_per_feed=10)
    parsed = check_messages(messages)
    flat = "\n".join(one.text for one in parsed)
    shown = len(re.findall(r"^[•★] Story \d{3}:", flat, flags=re.MULTILINE))
    more = [int(n) for n in re.findall(r"^… and (\d+) more$", flat, flags=re.MULTILINE)]
    assert shown == 200 and more == [5] * 20
    assert shown + sum(more) == 300


@settings(max_examples=60, deadline=None)
@given(
    stories=st.lists(
        st.tuples(
            st.integers(1, 6),  # feed
            st.text(min_size=1, max_size=400),  # title: any characters, <>&" and emoji too
            st.text(max_size=300),  # summary
            st.booleans(),  # matched
            st.integers(0, 10**6),  # timestamp offset
        ),
        max_size=80,
    ),
    max_per_feed=st.integers(1, 30),
    language=st.sampled_from(["en", "zh"]),
)
def test_any_digest_is_valid_and_complete(
    stories: list[tuple[int, str, str, bool, int]], max_per_feed: int, language: str
) -> None:
    items = [
        DigestItem(
            story(
                n,
                feed_id,
                ts=1_740_000_000_000 + ts,
                title=title,
                summary=summary,
                link=f"https://example.com/{n}?q=<&>",
            ),
            matched=matched,
        )
        for n, (feed_id, title, summary, matched, ts) in enumerate(stories)
    ]
    messages = render(items, language=language, max_per_feed=max_per_feed)
    parsed = check_messages(messages)
    if not items:
        assert len(messages) == 1
        return
    texts = DigestTexts.for_language(language)
    more_re = re.escape(texts.more).replace(r"\{count\}", r"(\d+)")
    flat = "\n".join(one.text for one in parsed)
    hrefs = [href for one in parsed for href, _ in one.links]
    more = [int(n) for n in re.findall(f"^{more_re}$", flat, flags=re.MULTILINE)]
    assert len(hrefs) == len(set(hrefs))  # none twice
    assert len(hrefs) + sum(more) == len(items)  # none lost
    per_feed: dict[int, int] = {}
    for item in items:
        per_feed[item.story.feed_id] = per_feed.get(item.story.feed_id, 0) + 1
    assert len(hrefs) == sum(min(n, max_per_feed) for n in per_feed.values())
