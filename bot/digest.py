"""The daily digest: when it falls due, which stories it lists, and how it reads.

Pure logic: no database, no Telegram, no clock. Every instant is passed in as epoch
milliseconds, so the store, the scheduler and the tests decide what "now" is.

Three parts:
- schedule math: parse_digest_time, parse_zone, next_due, due_since;
- the window: digest_window (daily) and on_demand_window (/digest), which say exactly
  which stored stories a digest lists;
- rendering: render_digest turns the selected stories into Telegram HTML messages.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from bot.delivery.format import MESSAGE_LIMIT, escape
from bot.errors import UserError
from bot.models import Story

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# ---------------------------------------------------------------------------------------
# Schedule math
# ---------------------------------------------------------------------------------------

# ASCII digits only: NFKC has already folded full-width digits, and int() would otherwise
# accept digits of other scripts that nobody types for a clock time.
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")

# Names tzdata ships that are not places: "localtime" is the host's own setting and
# "Factory" means "zone not configured"; neither is a choice a chat should make.
_NOT_ZONES = frozenset({"localtime", "Factory"})


def parse_digest_time(text: str) -> tuple[int, int]:
    """Read "HH:MM" (also "H:MM" and full-width "０７：３０") as (hour, minute).

    Raises UserError("digest.bad_time", given=text) for anything else, "24:00" included:
    the day has no 24th hour, and accepting it would make two spellings of midnight.
    """
    folded = unicodedata.normalize("NFKC", text).strip()
    match = _TIME_RE.fullmatch(folded)
    if match is None:
        raise UserError("digest.bad_time", given=text)
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise UserError("digest.bad_time", given=text)
    return hour, minute


@cache
def _zones_by_folded_name() -> dict[str, str]:
    # available_timezones() walks the tzdata package; do it once per process.
    return {name.casefold(): name for name in available_timezones() if name not in _NOT_ZONES}


def parse_zone(text: str) -> str:
    """The IANA zone name the user meant, matched ignoring case ("asia/shanghai").

    Returns the canonical spelling ("Asia/Shanghai"); "UTC" and "GMT" are zones too.
    Raises UserError("digest.bad_zone", given=text) for names tzdata does not know.
    """
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    name = _zones_by_folded_name().get(folded)
    if name is None:
        raise UserError("digest.bad_zone", given=text)
    return name


def _to_ms(moment: datetime) -> int:
    # Integer arithmetic on the timedelta avoids float rounding of .timestamp().
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _local(epoch_ms: int, zone: ZoneInfo) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)).astimezone(zone)


def _gap_end_ms(wall: datetime, zone: ZoneInfo) -> int:
    """The instant a spring-forward gap containing the wall time `wall` ends.

    Inside a gap, fold=0 and fold=1 map `wall` with the offsets from either side of the
    transition, so the transition lies between those two instants. zoneinfo has no public
    way to ask for the transition itself, so find it by bisection on whole seconds (tzdata
    transitions fall on whole seconds): the first second whose local wall clock has
    reached `wall` or passed it is the first one after the gap.
    """
    a = _to_ms(wall.replace(tzinfo=zone, fold=0)) // 1000
    b = _to_ms(wall.replace(tzinfo=zone, fold=1)) // 1000
    low, high = min(a, b), max(a, b)  # local(low) < wall <= local(high)
    while high - low > 1:
        middle = (low + high) // 2
        if _local(middle * 1000, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high * 1000


def _due_on(day: date, hour: int, minute: int, zone: ZoneInfo) -> int:
    """The due instant that local calendar day `day` owes: hour:minute local time.

    - A repeated hour (fall back): fold=0, the first occurrence; the second is never
      considered, so the digest goes out once.
    - A skipped hour (spring forward): the first instant after the gap, which is what a
      person who set an alarm for 02:30 expects (Berlin 2025-03-30 02:30 -> 03:00 CEST).
      Where the gap runs over midnight (America/Nuuk every March: Saturday 23:00 ->
      Sunday 00:00), that instant is on the next local date, yet it is still Saturday's
      digest: skipping it would leave that day's stories in no digest.
    """
    wall = datetime.combine(day, time(hour, minute))
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return _to_ms(first)
    return _gap_end_ms(wall, zone)


def _check_clock(hour: int, minute: int) -> None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"not a clock time: {hour}:{minute}")


def _due_instants(
    hour: int, minute: int, zone: ZoneInfo, around_ms: int, step: int
) -> Iterator[int]:
    """The due instants of the local days around `around_ms`, walking one way (step 1:
    forwards from the day before; step -1: backwards from the day after). They rise with
    the days they belong to, even across gaps, so the first one past a bound is the one.
    Three days always contain the answer; the rest are slack for a bug to show as the
    ValueError below rather than as a wrong instant.
    """
    start = _local(around_ms, zone).date() - timedelta(days=step)
    for offset in range(5):
        yield _due_on(start + timedelta(days=offset * step), hour, minute, zone)


def next_due(hour: int, minute: int, zone: str, after_ms: int) -> int:
    """The first due instant strictly after `after_ms` (epoch ms) for a daily digest at
    hour:minute local time in `zone`. One per local calendar day; _due_on says how DST
    gaps and repeats are handled.
    """
    _check_clock(hour, minute)
    tz = ZoneInfo(zone)
    for due in _due_instants(hour, minute, tz, after_ms, step=1):
        if due > after_ms:
            return due
    raise ValueError(f"no {hour:02}:{minute:02} in {zone} near {after_ms}")


def previous_due(hour: int, minute: int, zone: str, at_or_before_ms: int) -> int:
    """The most recent due instant at or before `at_or_before_ms` (the mirror of next_due)."""
    _check_clock(hour, minute)
    tz = ZoneInfo(zone)
    # Walking backwards from the day after, the first instant not in the future is it.
    for due in _due_instants(hour, minute, tz, at_or_before_ms, step=-1):
        if due <= at_or_before_ms:
            return due
    raise ValueError(f"no {hour:02}:{minute:02} in {zone} near {at_or_before_ms}")


def due_since(
    hour: int,
    minute: int,
    zone: str,
    last_sent_ms: int | None,
    now_ms: int,
    grace_ms: int,
) -> int | None:
    """At start-up: the daily digest that fell due while the bot was down, if still worth it.

    Returns the most recent due instant <= now_ms that is strictly after `last_sent_ms`,
    provided it fell due less than `grace_ms` ago; otherwise None. Only that one can be
    returned: digests missed before it are skipped, never piled up.

    `last_sent_ms` is the due instant of the chat's last daily digest (the `seen_until` of
    its window) or, when none has been sent yet, the moment the schedule was set, so a
    restart between setting "08:00" at 07:00 and 08:00 does not send yesterday's. None
    means no lower bound at all.
    """
    due = previous_due(hour, minute, zone, now_ms)
    if last_sent_ms is not None and due <= last_sent_ms:
        return None
    if now_ms - due >= grace_ms:
        return None
    return due


# ---------------------------------------------------------------------------------------
# Which stories a digest lists
# ---------------------------------------------------------------------------------------

# How late a story may be found (first seen minus its timestamp id) and still count as
# news in the next daily digest. A feed polled every few minutes is a few minutes late; a
# feed that failed for hours is hours late. A story that first shows up much later than
# that is a backlog (the entries of a feed the chat just added) or an archive, not news.
LATE_FIND_ALLOWANCE_MS = DAY_MS


@dataclass(frozen=True, slots=True)
class DigestWindow:
    """Which stored stories one digest lists. A story is in it exactly when

        seen_from <= first_seen_ms < seen_until  and  timestamp_id >= published_from

    where first_seen_ms is when the bot first stored the story (not its publication time)
    and timestamp_id is its publication time (PRODUCT.md: the story's id).

    This class only holds the bounds. The rule runs in one place, the store
    (bot/store/stories.py, IN_DIGEST_WINDOW), given exactly these three numbers: Story
    does not carry first_seen_ms, since nothing after selection needs it.
    """

    seen_from: int  # inclusive, epoch ms, on the first-seen axis
    seen_until: int  # exclusive, epoch ms, on the first-seen axis
    published_from: int  # inclusive, epoch ms, on the timestamp-id axis


def digest_window(last_digest_ms: int | None, due_ms: int) -> DigestWindow:
    """The stories of the daily digest due at `due_ms`.

    `last_digest_ms` is the `seen_until` of the chat's previous daily digest (its due
    instant, not when the message went out: a story found while that digest waited in the
    outbox belongs to the next one), or None when there was none.

    Why select by first-seen time, not by timestamp id: a story published at 07:59 and
    found at 08:01 was not in the store when the 08:00 digest was made; a timestamp window
    [08:00 yesterday, 08:00 today) for that digest and [08:00 today, 08:00 tomorrow) for
    the next would lose it between the two. Windows on the first-seen axis, each starting
    where the previous one ended, put every story found into exactly one digest, the first
    one made after it was found.

    - After an earlier daily digest: first seen in [max(last, due - 24h), due), and
      published no more than LATE_FIND_ALLOWANCE_MS before that window starts. The 24 h
      bound is PRODUCT's "at most 24 hours' worth" after a long pause (digest off, bot
      down).
    - First digest: published in [due - 24h, due) (PRODUCT: "those published in the last
      24 hours"). No first-seen bound is needed below: a story's timestamp id is never
      after its first-seen time, so first_seen >= timestamp_id >= due - 24h.
    """
    if last_digest_ms is not None and last_digest_ms >= due_ms:
        # A digest for an instant already covered would repeat stories: a caller bug.
        raise ValueError(f"digest due at {due_ms} is not after the last one at {last_digest_ms}")
    day_before = due_ms - DAY_MS
    if last_digest_ms is None:
        return DigestWindow(seen_from=day_before, seen_until=due_ms, published_from=day_before)
    seen_from = max(last_digest_ms, day_before)
    return DigestWindow(
        seen_from=seen_from,
        seen_until=due_ms,
        published_from=seen_from - LATE_FIND_ALLOWANCE_MS,
    )


def on_demand_window(now_ms: int) -> DigestWindow:
    """The stories of `/digest` sent on command: published (by timestamp id) in the last
    24 hours, whenever found, those already in a feed when the chat subscribed included.
    It reads nothing from, and changes nothing in, the daily schedule's windows.
    """
    return DigestWindow(seen_from=0, seen_until=now_ms + 1, published_from=now_ms - DAY_MS)


# ---------------------------------------------------------------------------------------
# Texts (both languages in one place until they move to bot/i18n.py)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestTexts:
    """The user-facing strings of a digest. Templates are trusted HTML; values put into
    them are escaped by the renderer."""

    header: str  # {date}, {zone}
    matches_heading: str
    more: str  # {count}
    empty: str
    continued: str  # appended to a repeated section heading
    match_mark: str
    item_mark: str

    @staticmethod
    def for_language(lang: str) -> DigestTexts:
        """Chinese for zh* language codes (zh, zh-hans, zh-TW...), English otherwise."""
        return _ZH if lang.strip().lower().startswith("zh") else _EN


_EN = DigestTexts(
    header="<b>Daily digest</b> · {date} ({zone})",
    matches_heading="<b>★ Matches your keywords</b>",
    more="… and {count} more",
    empty="No new stories in the last 24 hours.",
    continued="(continued)",
    match_mark="★ ",
    item_mark="• ",
)
_ZH = DigestTexts(
    header="<b>每日摘要</b> · {date}（{zone}）",
    matches_heading="<b>★ 匹配你的关键词</b>",
    more="…… 还有 {count} 条",
    empty="过去 24 小时没有新报道。",
    continued="（续）",
    match_mark="★ ",
    item_mark="• ",
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
ELLIPSIS = "…"

# Telegram limits a message in three ways, and the digest keeps all three:
# - MESSAGE_LIMIT: 4096 UTF-16 code units of text after entity parsing (sendMessage docs);
# - ENTITY_LIMIT: formatting past the 100th entity (bold, link...) is silently dropped,
#   so a digest of many short stories would lose its links part way down
#   (rubenlagus/TelegramBots#854, tdlib/telegram-bot-api#820);
# - the entities' total size: a text under 4096 whose links are long is refused with
#   ENTITIES_TOO_LONG at around 9500 characters of markup (tdlib/telegram-bot-api#165).
#   It is not documented, so RAW_HTML_LIMIT keeps the whole HTML well below that.
ENTITY_LIMIT = 100
RAW_HTML_LIMIT = 8192

# Sentence ends: CJK marks end a sentence wherever they are; Latin ones only before a
# space or the end ("3.5", "example.com" are not ends). Closing quotes stay with it.
_SENTENCE_END_RE = re.compile(r"[。！？][”’」』）)]*|[.!?][\"'”’)\]]*(?=\s|$)")
# "U.S.", "e.g.", "Mr." end with a dot but rarely end a sentence.
_ABBREVIATION_RE = re.compile(r"\b(?:[A-Za-z]\.)*[A-Za-z]$|\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|No|vs|etc)$")
_TAG_RE = re.compile(r"<[^>]*>")
_OPENING_TAG_RE = re.compile(r"<[^/>][^>]*>")


@dataclass(frozen=True, slots=True)
class DigestItem:
    story: Story
    matched: bool  # the story hit one of the chat's include keywords


def telegram_length(message_html: str) -> int:
    """The length Telegram checks against MESSAGE_LIMIT: the text left after HTML entity
    parsing, in UTF-16 code units. Exact for HTML whose text went through escape(), the
    only kind this module makes (no literal "<" outside tags)."""
    return _utf16_len(html.unescape(_TAG_RE.sub("", message_html)))


def entity_count(message_html: str) -> int:
    """The formatting entities (bold, link...) Telegram makes of HTML from this bot: one per
    start tag, which is exact for the tags the bot writes (none of them empty)."""
    return len(_OPENING_TAG_RE.findall(message_html))


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate_utf16(text: str, max_units: int) -> str:
    """`text`, or its longest prefix that fits `max_units` UTF-16 units with "…" added."""
    if _utf16_len(text) <= max_units:
        return text
    kept: list[str] = []
    used = _utf16_len(ELLIPSIS)
    for char in text:
        used += _utf16_len(char)
        if used > max_units:
            break
        kept.append(char)
    return "".join(kept).rstrip() + ELLIPSIS


def _first_sentence(text: str) -> str:
    for match in _SENTENCE_END_RE.finditer(text):
        before = text[: match.start()]
        if match.group()[0] == "." and _ABBREVIATION_RE.search(before):
            continue
        return text[: match.end()]
    return text


def _cut_near(text: str, limit: int) -> str:
    """Cut to about `limit` characters with "…": at a space when the cut would split a
    Latin word (if a space is not too far back), else between characters, which is the
    word boundary of Chinese and Japanese."""
    head = text[:limit]
    if text[limit].isalnum() and head[-1].isalnum() and head[-1].isascii():
        space = head.rfind(" ")
        if space > limit // 2:
            head = head[:space]
    return head.rstrip(" ,;:，、；：") + ELLIPSIS


def summary_line(summary: str) -> str:
    """The digest's one-line summary: the first sentence, or about 100 characters of it
    with "…"; "" when there is no summary (the line is then left out)."""
    text = _one_line(summary)
    if not text:
        return ""
    first = _first_sentence(text)
    if len(first) <= SUMMARY_HARD_CHARS:
        return first
    return _cut_near(first, SUMMARY_SOFT_CHARS)


def _is_web_link(link: str) -> bool:
    # Telegram refuses a whole message over an href it cannot parse; a story without a
    # usable link still shows, as a plain title.
    return link.lower().startswith(("http://", "https://"))


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
    title = _one_line(story.feed_title) or f"#{story.feed_id}"
    return _truncate_utf16(title, FEED_TITLE_MAX_CHARS)


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
    title = _one_line(story.title) or _one_line(story.link) or ELLIPSIS

    def lines(shown: str, href: str) -> tuple[str, ...]:
        first = escape(shown)
        if href:
            first = f'<a href="{escape(href)}">{first}</a>'
        first = f"{escape(mark)}{first}{suffix}"
        return (first, escape(summary)) if summary else (first,)

    href = story.link if _is_web_link(story.link) else ""
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
    `max_per_feed` stories, or `max_per_digest_feed` for a chat that follows it in digest
    mode (its stories came in no alert: the digest is their only delivery). The renderer
    keeps what it builds until it is dropped: make one per window and fire.
    """

    def __init__(
        self,
        by_feed: Mapping[int, Sequence[Story]],
        *,
        max_per_feed: int,
        max_per_digest_feed: int | None = None,
    ) -> None:
        caps = (max_per_feed, max_per_digest_feed or max_per_feed)
        if min(caps) < 1:
            raise ValueError(f"stories per feed must be at least 1, not {caps}")
        self._by_feed = {feed_id: stories for feed_id, stories in by_feed.items() if stories}
        self._max_per_feed, self._max_per_digest_feed = caps
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
            cap = self._max_per_digest_feed if feed_id in digest_feeds else self._max_per_feed
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

    def _plain_section(self, feed_id: int, texts: DigestTexts, cap: int) -> list[_Unit]:
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
        cap: int,
    ) -> list[_Unit]:
        """A feed's section for a chat with matches in it. The cap counts the matches too,
        so a busy feed never gets more than `cap` places: matches take the first
        places (they are what the chat asked for), then the newest of the rest; the
        remainder is counted in "… and N more". The matches shown move to the top
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
            day = _local(now_ms, ZoneInfo(zone)).date().isoformat()
            header = self._headers[key] = texts.header.format(date=day, zone=escape(zone))
        return header


def _pack(header: str, units: Sequence[_Unit]) -> list[str]:
    """Fill messages greedily, breaking only between units. A message that starts inside
    a section repeats its heading as "(continued)"; no message starts with a blank line.
    Every unit fits a fresh message by construction (_story_lines), so none is cut.

    Sizes add up line by line (a tag or an entity never spans a newline), so the units'
    own sizes are summed rather than the message measured again."""
    messages: list[list[str]] = [[header]]
    size = _Size.of([header])
    for unit in units:
        grown = size.then(unit.size)
        if grown.fits():
            messages[-1].extend(unit.lines)
            size = grown
            continue
        if unit.opens_section:
            lines = list(unit.lines[1:])  # the blank line that parted it from the section above
        elif unit.section is not None:
            lines = [unit.section.continued, *unit.lines]
        else:
            lines = list(unit.lines)
        messages.append(lines)
        size = _Size.of(lines)
    return ["\n".join(lines) for lines in messages]


def render_digest(
    items: Sequence[DigestItem],
    *,
    now_ms: int,
    zone: str,
    language: str,
    max_per_feed: int,
    texts: DigestTexts | None = None,
    max_per_digest_feed: int | None = None,
    digest_feeds: AbstractSet[int] = frozenset(),
) -> list[str]:
    """The digest as Telegram HTML messages, in order. Each is valid HTML on its own and
    within Telegram's limits (MESSAGE_LIMIT counted as Telegram does, ENTITY_LIMIT,
    RAW_HTML_LIMIT); messages break between stories only.

    Layout: a header with the date and zone; the stories that hit a keyword, newest
    first, each with its feed's name; then one section per feed, the feed with the
    newest story first, its stories newest first, at most `max_per_feed` stories per feed
    (matches included; `max_per_digest_feed` for the `digest_feeds`, those the chat follows
    in digest mode) and "… and N more" for the rest. An empty digest is one line.

    `items` are the selected stories (distinct), `now_ms` the digest's instant (its due
    instant for a daily one) whose local date in `zone` heads it. `texts` defaults to
    DigestTexts.for_language(language). For many chats of one window, DigestRenderer
    does the same with the shared work done once.
    """
    by_feed: dict[int, list[Story]] = {}
    for story in sorted((item.story for item in items), key=_newest_first):
        by_feed.setdefault(story.feed_id, []).append(story)
    matched = {item.story.id for item in items if item.matched}
    renderer = DigestRenderer(
        by_feed, max_per_feed=max_per_feed, max_per_digest_feed=max_per_digest_feed
    )
    return renderer.render(
        by_feed,
        matched,
        now_ms=now_ms,
        zone=zone,
        language=language,
        texts=texts,
        digest_feeds=digest_feeds,
    )
