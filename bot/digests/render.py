"""How a digest reads: the selected stories as Telegram HTML messages, grouped by feed,
within Telegram's limits. Pure: the stories and the instant are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from bot.digests.schedule import local_time
from bot.i18n import language_of, template
from bot.models import Story
from bot.text import (
    ELLIPSIS,
    ENTITY_LIMIT,
    MESSAGE_LIMIT,
    clip,
    cut,
    entity_count,
    escape,
    first_sentence,
    is_web_link,
    one_line,
    telegram_length,
)

# ---------------------------------------------------------------------------------------
# Texts (bot/i18n.py holds them; the renderer uses them as one bundle per language)
# ---------------------------------------------------------------------------------------

MATCH_MARK = "★ "
ITEM_MARK = "• "


@dataclass(frozen=True, slots=True)
class DigestTexts:
    """The user-facing strings of a digest, from bot/i18n.py. Templates are trusted HTML;
    values put into them are escaped by the renderer."""

    header: str  # {date}, {zone}
    matches_heading: str
    more: str  # {count}
    empty: str
    continued: str  # appended to a repeated section heading
    match_mark: str = MATCH_MARK
    item_mark: str = ITEM_MARK

    @staticmethod
    def for_language(lang: str) -> DigestTexts:
        """Chinese for zh* language codes (zh, zh-hans, zh-TW...), English otherwise."""
        return _texts(language_of(lang))


@cache
def _texts(language: str) -> DigestTexts:
    """One bundle per language: the renderer keys its shared work on it."""
    return DigestTexts(
        header=template(language, "digest.header"),
        matches_heading=template(language, "digest.matches_heading"),
        more=template(language, "digest.more"),
        empty=template(language, "digest.empty"),
        continued=template(language, "digest.continued"),
    )


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------

# A first sentence up to SUMMARY_HARD_CHARS is kept whole: cutting a 110-character
# sentence to 100 saves little and loses its end. Longer ones are cut near
# SUMMARY_SOFT_CHARS.
SUMMARY_SOFT_CHARS = 100
SUMMARY_HARD_CHARS = 120
# A feed title is a heading; one longer than this is junk and would eat a message.
FEED_TITLE_MAX_CHARS = 200

# Telegram limits a message in three ways, and the digest keeps all three:
# - MESSAGE_LIMIT: 4096 UTF-16 code units of text after entity parsing (sendMessage docs);
# - ENTITY_LIMIT: formatting past the 100th entity (bold, link...) is silently dropped,
#   so a digest of many short stories would lose its links part way down
#   (rubenlagus/TelegramBots#854, tdlib/telegram-bot-api#820);
# - the entities' total size: a text under 4096 whose links are long is refused with
#   ENTITIES_TOO_LONG at around 9500 characters of markup (tdlib/telegram-bot-api#165).
#   It is not documented, so RAW_HTML_LIMIT keeps the whole HTML well below that.
RAW_HTML_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class DigestItem:
    story: Story
    matched: bool  # the story hit one of the chat's include keywords


@dataclass(frozen=True, slots=True)
class _Size:
    """A message, or lines of one, measured the three ways Telegram limits it."""

    text: int  # UTF-16 units after entity parsing
    raw: int  # characters of HTML
    entities: int

    @staticmethod
    def of(lines: Sequence[str]) -> _Size:
        joined = "\n".join(lines)
        return _Size(telegram_length(joined), len(joined), entity_count(joined))

    def then(self, other: _Size) -> _Size:
        """This followed by a newline and `other`."""
        return _Size(
            self.text + 1 + other.text, self.raw + 1 + other.raw, self.entities + other.entities
        )

    def fits(self) -> bool:
        return (
            self.text <= MESSAGE_LIMIT
            and self.raw <= RAW_HTML_LIMIT
            and self.entities <= ENTITY_LIMIT
        )


def summary_line(summary: str) -> str:
    """The digest's one-line summary: the first sentence, or about 100 characters of it
    with "…"; "" when there is no summary (the line is then left out)."""
    text = one_line(summary)
    if not text:
        return ""
    first = first_sentence(text)
    if len(first) <= SUMMARY_HARD_CHARS:
        return first
    return cut(first, SUMMARY_SOFT_CHARS + len(ELLIPSIS))


@dataclass(frozen=True, slots=True)
class _Section:
    heading: str  # HTML line opening the section
    continued: str  # HTML line opening it again at the top of a later message

    def room_for(self, lines: Sequence[str]) -> bool:
        """Whether `lines` fit a fresh message under either form of this heading, which
        is the worst place a story can land."""
        return all(_Size.of([top, *lines]).fits() for top in (self.heading, self.continued))


@dataclass(frozen=True, slots=True)
class _Unit:
    """Lines that must stay in one message: one story, or a heading with its first story
    (a heading alone at the bottom of a message is no use). `size` is measured once when
    the unit is made: a unit shared by thousands of chats' digests is never re-measured."""

    lines: tuple[str, ...]
    size: _Size
    section: _Section | None
    opens_section: bool


def _feed_title(story: Story) -> str:
    title = one_line(story.feed_title) or f"#{story.feed_id}"
    return clip(title, FEED_TITLE_MAX_CHARS)


def _feed_section(story: Story, texts: DigestTexts) -> _Section:
    heading = f"<b>{escape(_feed_title(story))}</b>"
    return _Section(heading=heading, continued=f"{heading} {texts.continued}")


def _story_lines(story: Story, mark: str, suffix: str, section: _Section) -> tuple[str, ...]:
    """A story as HTML lines: the linked title (plain without a web link), then the
    summary line unless there is none. A story too big for one message (only a giant
    title or link can make it so: the summary line is short) keeps the longest start of
    its title that fits, with "…"; a link too long for any message is dropped."""
    summary = summary_line(story.summary)
    # A title of only whitespace would leave an invisible link; the link itself reads.
    title = one_line(story.title) or one_line(story.link) or ELLIPSIS

    def lines(shown: str, href: str) -> tuple[str, ...]:
        first = escape(shown)
        if href:
            first = f'<a href="{escape(href)}">{first}</a>'
        first = f"{escape(mark)}{first}{suffix}"
        return (first, escape(summary)) if summary else (first,)

    # A story without a usable link still shows, as a plain title.
    href = story.link if is_web_link(story.link) else ""
    if not section.room_for(lines(ELLIPSIS, href)):
        href = ""
    whole = lines(title, href)
    if section.room_for(whole):
        return whole
    # Bisect on the title's length: the longest cut that fits (0 characters always does).
    low, high = 0, len(title)
    while high - low > 1:
        middle = (low + high) // 2
        if section.room_for(lines(title[:middle].rstrip() + ELLIPSIS, href)):
            low = middle
        else:
            high = middle
    return lines(title[:low].rstrip() + ELLIPSIS, href)


def _newest_first(story: Story) -> tuple[int, int]:
    return (-story.timestamp_id, -story.id)


# What a story's lines depend on besides the story: its mark, its suffix and its section.
_LinesKey = tuple[int, str, str, _Section]


class DigestRenderer:
    """Renders the digests of one window for any number of chats.

    Many chats due at the same minute share a window and mostly follow the same feeds, so
    the work that depends on a feed and not on the chat is done once per window: a feed's
    section (heading, its newest `max_per_feed` stories, "… and N more") is built and
    measured once per language and shared by every chat that follows the feed and has no
    keyword match in it; each story's lines are built and measured once per mark, suffix
    and section. Per chat there is left: ordering its feeds, the sections in which it has
    matches, and packing the units into messages. render_digest is this for one chat.

    `by_feed` holds each feed's stories of the window, newest first ((-timestamp_id, -id)
    order, as StoryStore.in_window returns them), without duplicates. A feed lists at most
    `max_per_feed` stories; a feed the chat follows in digest mode lists every one (its
    stories came in no alert: the digest is their only delivery). The renderer keeps what
    it builds until it is dropped: make one per window and fire.
    """

    def __init__(self, by_feed: Mapping[int, Sequence[Story]], *, max_per_feed: int) -> None:
        if max_per_feed < 1:
            raise ValueError(f"stories per feed must be at least 1, not {max_per_feed}")
        self._by_feed = {feed_id: stories for feed_id, stories in by_feed.items() if stories}
        self._max_per_feed = max_per_feed
        # Feeds are listed by their newest story, then by id (a stable tie-break).
        self._feed_order = {
            feed_id: (-stories[0].timestamp_id, feed_id)
            for feed_id, stories in self._by_feed.items()
        }
        self._plain_sections: dict[tuple[int, DigestTexts, int], list[_Unit]] = {}
        self._lines: dict[_LinesKey, tuple[tuple[str, ...], _Size]] = {}
        self._headers: dict[tuple[int, str, DigestTexts], str] = {}

    def stories_of(self, feed_ids: Iterable[int]) -> Iterator[Story]:
        """The window's stories of `feed_ids` (to find a chat's keyword matches)."""
        for feed_id in set(feed_ids):
            yield from self._by_feed.get(feed_id, ())

    def render(
        self,
        feed_ids: Iterable[int],
        matched: AbstractSet[int] = frozenset(),
        *,
        now_ms: int,
        zone: str,
        language: str,
        texts: DigestTexts | None = None,
        digest_feeds: AbstractSet[int] = frozenset(),
    ) -> list[str]:
        """One chat's digest: the window's stories of `feed_ids`, those whose id is in
        `matched` (they hit one of the chat's include keywords) marked and listed first;
        `digest_feeds` are those the chat follows in digest mode. See render_digest for the
        layout and the limits kept."""
        texts = texts or DigestTexts.for_language(language)
        present = sorted(
            (feed_id for feed_id in set(feed_ids) if feed_id in self._by_feed),
            key=self._feed_order.__getitem__,
        )
        if not present:
            return [texts.empty]
        matched_shown: list[Story] = []
        feed_units: list[_Unit] = []
        for feed_id in present:
            stories = self._by_feed[feed_id]
            # None: no cap. A digest-mode feed's stories reach the chat nowhere else.
            cap = None if feed_id in digest_feeds else self._max_per_feed
            if matched and any(story.id in matched for story in stories):
                feed_units += self._section_with_matches(
                    stories, matched, texts, matched_shown, cap
                )
            else:
                feed_units += self._plain_section(feed_id, texts, cap)
        matched_shown.sort(key=_newest_first)
        matches = _Section(
            heading=texts.matches_heading, continued=f"{texts.matches_heading} {texts.continued}"
        )
        # Outside its feed's group a match needs the feed's name to say where it is from.
        match_rows = [
            (story, texts.match_mark, f" · <i>{escape(_feed_title(story))}</i>")
            for story in matched_shown
        ]
        header = self._header(now_ms, zone, texts)
        return _pack(header, self._section_units(matches, match_rows, None) + feed_units)

    def _plain_section(self, feed_id: int, texts: DigestTexts, cap: int | None) -> list[_Unit]:
        """A feed's section for a chat without a match in it, built once and shared."""
        key = (feed_id, texts, cap)
        units = self._plain_sections.get(key)
        if units is None:
            stories = self._by_feed[feed_id]
            units = self._section_with_matches(stories, frozenset(), texts, [], cap)
            self._plain_sections[key] = units
        return units

    def _section_with_matches(
        self,
        stories: Sequence[Story],
        matched: AbstractSet[int],
        texts: DigestTexts,
        matched_shown: list[Story],
        cap: int | None,
    ) -> list[_Unit]:
        """A feed's section for a chat with matches in it. The cap (None: every story)
        counts the matches too, so a busy feed never gets more than `cap` places: matches
        take the first places (they are what the chat asked for), then the newest of the
        rest; the remainder is counted in "… and N more". The matches shown move to the top
        section (appended to `matched_shown`); the section keeps the others."""
        group = [s for s in stories if s.id in matched] + [
            s for s in stories if s.id not in matched
        ]
        shown = group[:cap]
        hidden = len(group) - len(shown)
        matched_shown.extend(story for story in shown if story.id in matched)
        rest = [(story, texts.item_mark, "") for story in shown if story.id not in matched]
        more = texts.more.format(count=hidden) if hidden > 0 else None
        if not (rest or more):
            return []
        return self._section_units(_feed_section(group[0], texts), rest, more)

    def _section_units(
        self, section: _Section, rows: Sequence[tuple[Story, str, str]], more_line: str | None
    ) -> list[_Unit]:
        """A section's units: the heading glued to its first line, then one unit per
        story. Each row is (story, mark, suffix HTML)."""
        bodies = [self._story(story, mark, suffix, section) for story, mark, suffix in rows]
        if more_line is not None:
            bodies.append(((more_line,), _Size.of([more_line])))
        units = [_Unit(lines, size, section, opens_section=False) for lines, size in bodies]
        if units:
            # "" then the heading: a blank line parts the section from the one above.
            lead = _Size.of(["", section.heading])
            units[0] = _Unit(
                ("", section.heading, *units[0].lines),
                lead.then(units[0].size),
                section,
                opens_section=True,
            )
        return units

    def _story(
        self, story: Story, mark: str, suffix: str, section: _Section
    ) -> tuple[tuple[str, ...], _Size]:
        key = (story.id, mark, suffix, section)
        found = self._lines.get(key)
        if found is None:
            lines = _story_lines(story, mark, suffix, section)
            found = self._lines[key] = (lines, _Size.of(lines))
        return found

    def _header(self, now_ms: int, zone: str, texts: DigestTexts) -> str:
        key = (now_ms, zone, texts)
        header = self._headers.get(key)
        if header is None:
            day = local_time(now_ms, ZoneInfo(zone)).date().isoformat()
            header = self._headers[key] = texts.header.format(date=day, zone=escape(zone))
        return header


def _pack(header: str, units: Sequence[_Unit]) -> list[str]:
    """Fill messages greedily, breaking only between units. A message that starts inside
    a section repeats its heading as "(continued)"; no message starts with a blank line.
    Every unit fits a fresh message by construction (_story_lines), so none is cut.

    Sizes add up line by line (a tag or an entity never spans a newline), so the units'
    own sizes are summed rather than the message measured again. The sum is kept in three
    plain ints, not a _Size per step: a digest-mode feed lists every story, so this loop
    runs for hundreds of units per chat and thousands of chats in a due minute."""
    messages: list[list[str]] = [[header]]
    size = _Size.of([header])
    text, raw, entities = size.text, size.raw, size.entities
    for unit in units:
        add = unit.size
        grown_text, grown_raw = text + 1 + add.text, raw + 1 + add.raw
        grown_entities = entities + add.entities
        if (
            grown_text <= MESSAGE_LIMIT
            and grown_raw <= RAW_HTML_LIMIT
            and grown_entities <= ENTITY_LIMIT
        ):
            messages[-1].extend(unit.lines)
            text, raw, entities = grown_text, grown_raw, grown_entities
            continue
        if unit.opens_section:
            lines = list(unit.lines[1:])  # the blank line that parted it from the section above
        elif unit.section is not None:
            lines = [unit.section.continued, *unit.lines]
        else:
            lines = list(unit.lines)
        messages.append(lines)
        size = _Size.of(lines)
        text, raw, entities = size.text, size.raw, size.entities
    return ["\n".join(lines) for lines in messages]


def render_digest(
    items: Sequence[DigestItem],
    *,
    now_ms: int,
    zone: str,
    language: str,
    max_per_feed: int,
    texts: DigestTexts | None = None,
    digest_feeds: AbstractSet[int] = frozenset(),
) -> list[str]:
    """The digest as Telegram HTML messages, in order. Each is valid HTML on its own and
    within Telegram's limits (MESSAGE_LIMIT counted as Telegram does, ENTITY_LIMIT,
    RAW_HTML_LIMIT); messages break between stories only.

    Layout: a header with the date and zone; the stories that hit a keyword, newest
    first, each with its feed's name; then one section per feed, the feed with the
    newest story first, its stories newest first, at most `max_per_feed` stories per feed
    (matches included) and "… and N more" for the rest; the `digest_feeds`, those the chat
    follows in digest mode, list every story, in as many messages as it takes. An empty
    digest is one line.

    `items` are the selected stories (distinct), `now_ms` the digest's instant (its due
    instant for a daily one) whose local date in `zone` heads it. `texts` defaults to
    DigestTexts.for_language(language). For many chats of one window, DigestRenderer
    does the same with the shared work done once.
    """
    by_feed: dict[int, list[Story]] = {}
    for story in sorted((item.story for item in items), key=_newest_first):
        by_feed.setdefault(story.feed_id, []).append(story)
    matched = {item.story.id for item in items if item.matched}
    renderer = DigestRenderer(by_feed, max_per_feed=max_per_feed)
    return renderer.render(
        by_feed,
        matched,
        now_ms=now_ms,
        zone=zone,
        language=language,
        texts=texts,
        digest_feeds=digest_feeds,
    )
