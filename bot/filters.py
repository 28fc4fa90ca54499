"""Keyword filters: parsing `/keywords` arguments and matching stories against them.

Rules (PRODUCT.md, "Alerts"): matching ignores case, width and accents; a keyword whose ends
are letters or digits of a space-separated script (Latin, Greek, Cyrillic...) matches whole
words only; Chinese, Japanese, Korean (and other scripts written without spaces) match as
substrings; a phrase matches as a phrase; an exclusion always wins. Keywords are literal
text: nothing a user types is ever compiled as a regular expression.

Two ways to ask the same question, which must always agree (the tests check it):
- `matches(keywords, text)` / `KeywordFilter`: one chat, plain `str.find` per keyword.
- `KeywordIndex`: every chat's keywords in one Aho-Corasick automaton, so a story is scanned
  once however many chats there are; `match(text)` gives a `StoryMatches` that answers
  `verdict(chat_id)` for one chat, `verdicts(chat_ids)` for a feed's subscribers, and
  `alerts()` (every chat alerted by an include keyword, with that keyword) in bulk.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import ahocorasick

from bot.errors import UserError

DEFAULT_MAX_LENGTH = 64
DEFAULT_MAX_PER_CHAT = 50


class KeywordError(UserError):
    """A `/keywords` argument that cannot be accepted; `key` names the text that explains it."""


# --- normalization ---------------------------------------------------------------------------

# Combining marks that decorate Latin, Greek and Cyrillic letters. Only these blocks are
# stripped: kana voicing marks (U+3099/U+309A) and Indic vowel signs are combining marks too,
# but dropping them would change the word itself (が would become か).
_ACCENTS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
# Invisible format characters (soft hyphen, zero-width space and joiners, bidi marks, BOM) that
# feeds leave inside words; dropped so that "Pu\u00adtin" still reads "putin".
_INVISIBLE = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_STRIP = re.compile(f"[{_ACCENTS}{_INVISIBLE}]")
# Typographic apostrophes folded to ASCII so that "O’Brien" and "O'Brien" are the same word.
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    """Fold `text` for matching: NFKC, casefold, accents stripped, whitespace collapsed.

    'Ｆ' → 'f', 'É' → 'e', 'ß' → 'ss'; CJK text is unchanged. Used for keywords and story text
    alike, so both sides of a comparison are folded the same way.
    """
    if text.isascii():
        # Fast path for most English text: NFKC and accent stripping are no-ops on ASCII.
        return " ".join(text.lower().split())
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _STRIP.sub("", unicodedata.normalize("NFKD", text))
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    return " ".join(text.split())


# Scripts written without spaces between words. A keyword edge in one of them needs no word
# boundary, and their characters count as a boundary for a neighbouring Latin word ("AI芯片"
# contains the word "ai"). Thai, Lao, Khmer and Myanmar are here for the same reason as CJK:
# a whole-word rule would never match inside their running text.
_SPACELESS_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK and Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x3038, 0x303C),  # more Han numerals and marks
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x318F),  # Bopomofo, Hangul compatibility Jamo
    (0x31A0, 0x31FF),  # Bopomofo extended, CJK strokes, Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFFDC),  # half-width Katakana and Hangul
    (0x1B000, 0x1B16F),  # Kana supplement and extensions
    (0x20000, 0x323AF),  # CJK extensions B to H, compatibility supplement
)


# The ranges flattened to [start, end + 1, start, end + 1, ...]: a code point is inside a range
# exactly when an odd number of bounds are at or below it.
_SPACELESS_BOUNDS = [bound for low, high in _SPACELESS_RANGES for bound in (low, high + 1)]


def _is_spaceless(ch: str) -> bool:
    return bisect.bisect_right(_SPACELESS_BOUNDS, ord(ch)) % 2 == 1


@lru_cache(maxsize=1 << 14)
def _is_word_char(ch: str) -> bool:
    """A letter, digit or combining mark of a script that separates words with spaces."""
    if not (ch.isalnum() or unicodedata.category(ch).startswith("M")):
        return False
    return not _is_spaceless(ch)


# eq=False: patterns hash by identity. The index gives every chat holding a keyword the same
# pattern object, so a chat's verdict is a few plain dict lookups by object.
@dataclass(frozen=True, slots=True, eq=False)
class _Pattern:
    """A keyword's normalized text, and which of its ends must sit on a word boundary.

    An end needs a boundary when its character is a word character (`_is_word_char`); so
    "ai" is checked at both ends, "普京" at neither, "iphone手机" at its start only, and a
    keyword that begins with punctuation ("#ai", "(a+)+$") at none of the punctuated ends.
    """

    text: str
    check_start: bool
    check_end: bool

    @classmethod
    def of(cls, normalized: str) -> _Pattern:
        return cls(normalized, _is_word_char(normalized[0]), _is_word_char(normalized[-1]))

    def fits(self, haystack: str, start: int) -> bool:
        """Whether an occurrence at `start` of the normalized `haystack` is a real match."""
        if self.check_start and start > 0 and _is_word_char(haystack[start - 1]):
            return False
        end = start + len(self.text)
        return not (self.check_end and end < len(haystack) and _is_word_char(haystack[end]))

    def first_match(self, haystack: str) -> int | None:
        """Start of the earliest real match in `haystack` (normalized), or None."""
        start = haystack.find(self.text)
        while start != -1:
            if self.fits(haystack, start):
                return start
            # Step by one, not by the length: occurrences may overlap, as they do in the
            # automaton, and a later overlapping one may sit on a boundary.
            start = haystack.find(self.text, start + 1)
        return None


# --- keywords and parsing --------------------------------------------------------------------

_EXCLUDE_MARKS = "-－"
# Opening quote → the closing quote that ends the phrase. Single quotes are not quotes here:
# an apostrophe belongs to words such as "Putin's".
_QUOTES = {'"': '"', "＂": "＂", "“": "”", "„": "“", "«": "»", "「": "」", "『": "』"}
_QUOTE_CHARS = frozenset(_QUOTES) | frozenset(_QUOTES.values())
# Outside quotes these separate keywords as a space does: people type lists as "AI, ML",
# "人工智能，芯片" or "人工智能、芯片", and a keyword must never end up as "AI," (which does
# not match "AI is here") or as the whole list.
_LIST_SEPARATORS = frozenset(",，、;；")
# Quotes `display` may use, in order of preference: the first whose closer is not in the text.
_DISPLAY_QUOTES = (('"', '"'), ("“", "”"), ("「", "」"), ("『", "』"))


class Keyword(NamedTuple):
    """One keyword as the user typed it (no leading '-', no quotes); `exclude` for '-WORD'.

    A named tuple: it is stored and read back as the row (text, exclude) it is.
    """

    text: str
    exclude: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        """What makes two keywords the same: 'Café' and 'cafe' are one keyword."""
        return normalize(self.text), self.exclude

    def display(self) -> str:
        """The keyword as the user would type it again: 'word', '"two words"', '-word'."""
        body = self.text
        if _needs_quotes(body):
            opener, closer = next(
                ((o, c) for o, c in _DISPLAY_QUOTES if c not in body), _DISPLAY_QUOTES[0]
            )
            body = f"{opener}{body}{closer}"
        return f"-{body}" if self.exclude else body


def _needs_quotes(text: str) -> bool:
    return (
        not text
        or text[0] in _EXCLUDE_MARKS
        or any(ch in _QUOTE_CHARS or _splits_at(text, i) for i, ch in enumerate(text))
    )


def _splits_at(text: str, i: int) -> bool:
    """Whether `text[i]`, outside quotes, ends a keyword: whitespace or a list separator.

    A comma that groups thousands ("1,000", "10,000,000": a digit before it, exactly three
    after) belongs to its number, as it always did; "2024,2025" and "3,5" are two keywords.
    """
    ch = text[i]
    if ch.isspace():
        return True
    if ch not in _LIST_SEPARATORS:
        return False
    if ch == "," and i > 0 and text[i - 1].isdecimal():
        group = text[i + 1 : i + 5]
        if len(group) >= 3 and group[:3].isdecimal() and not group[3:].isdecimal():
            return False
    return True


def parse_keywords(
    args: str | Sequence[str], max_length: int = DEFAULT_MAX_LENGTH
) -> list[Keyword]:
    """Keywords from the text after `/keywords add` (or `remove`), in order, duplicates dropped.

    Words are split on whitespace (ASCII or the full-width U+3000) and, outside quotes, on the
    list separators `,` `，` `、` `;` `；` ("AI, ML", "人工智能，芯片" are two keywords; a
    thousands comma as in "1,000" stays in its number); "double", “curly”, 「corner」 and
    『white corner』 quotes make a phrase, kept as typed ("a, b" is one phrase); a leading '-'
    or '－' makes an exclusion, and a lone one (`/keywords add - x`) is ignored.
    `args` may also be the already split words (python-telegram-bot's `context.args`).
    Raises KeywordError for empty input (nothing but separators and lone dashes included), an
    unbalanced quote, or a keyword over `max_length`.
    """
    text = args if isinstance(args, str) else " ".join(args)
    keywords: list[Keyword] = []
    seen: set[tuple[str, bool]] = set()
    for body, exclude in _tokens(text):
        body = " ".join(body.split())
        if not body or not normalize(body):
            # Only invisible characters or marks would normalize to "", which is in every story.
            raise KeywordError("keywords.empty")
        if len(body) > max_length:
            raise KeywordError("keywords.too_long", keyword=body, limit=max_length)
        keyword = Keyword(body, exclude)
        if keyword.key not in seen:
            seen.add(keyword.key)
            keywords.append(keyword)
    if not keywords:
        raise KeywordError("keywords.empty")
    return keywords


def _tokens(text: str) -> Iterator[tuple[str, bool]]:
    """(body, exclude) for each word or quoted phrase in `text`, split as `_splits_at` says.

    A lone exclusion mark (followed by whitespace, a separator or the end) yields nothing.
    """
    i, n = 0, len(text)
    while i < n:
        if _splits_at(text, i):
            i += 1
            continue
        exclude = text[i] in _EXCLUDE_MARKS
        start = i + 1 if exclude else i
        if exclude and (start == n or _splits_at(text, start)):
            i = start  # "- x", "x -", "-, x": a stray dash, not an exclusion of nothing
            continue
        if start < n and text[start] in _QUOTES:
            close = text.find(_QUOTES[text[start]], start + 1)
            # A phrase must be closed and must end its word: `"a b"c` is a typo, not a keyword.
            if close == -1 or (close + 1 < n and not _splits_at(text, close + 1)):
                raise KeywordError("keywords.unbalanced_quote")
            yield text[start + 1 : close], exclude
            i = close + 1
            continue
        end = start
        while end < n and not _splits_at(text, end):
            end += 1
        word = text[start:end]
        # A quote inside a bare word means a phrase was opened or closed in the wrong place.
        if any(ch in _QUOTE_CHARS for ch in word):
            raise KeywordError("keywords.unbalanced_quote")
        yield word, exclude
        i = end


def check_limit(
    existing: Sequence[Keyword],
    adding: Sequence[Keyword],
    max_per_chat: int = DEFAULT_MAX_PER_CHAT,
) -> None:
    """Raise KeywordError when `existing` plus `adding` would exceed `max_per_chat` keywords."""
    keys = {keyword.key for keyword in existing}
    keys.update(keyword.key for keyword in adding)
    if len(keys) > max_per_chat:
        raise KeywordError("keywords.too_many", limit=max_per_chat)


def merge_keywords(existing: Sequence[Keyword], adding: Sequence[Keyword]) -> list[Keyword]:
    """`existing` followed by those of `adding` it does not already hold (same `key`)."""
    merged = list(existing)
    keys = {keyword.key for keyword in existing}
    for keyword in adding:
        if keyword.key not in keys:
            keys.add(keyword.key)
            merged.append(keyword)
    return merged


def remove_keywords(
    existing: Sequence[Keyword], removing: Sequence[Keyword]
) -> tuple[list[Keyword], list[Keyword]]:
    """(kept, removed): `existing` without the keywords whose `key` is in `removing`."""
    doomed = {keyword.key for keyword in removing}
    kept = [keyword for keyword in existing if keyword.key not in doomed]
    removed = [keyword for keyword in existing if keyword.key in doomed]
    return kept, removed


# --- one chat's filter -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a chat is alerted about a story, and the include keyword to name in the alert.

    `keyword` is None when the story passed only because the chat has no include keywords.
    """

    alert: bool
    keyword: Keyword | None = None


PASS = Verdict(alert=True)  # no include keywords and no exclusion hit: everything is sent
REJECT = Verdict(alert=False)  # an exclusion hit, or include keywords and none of them hit


class KeywordFilter:
    """One chat's keywords, folded once so that each story costs only the search."""

    __slots__ = ("exclude_patterns", "include_patterns", "includes")

    def __init__(
        self,
        keywords: Iterable[Keyword],
        pattern_of: Callable[[str], _Pattern] = _Pattern.of,
    ) -> None:
        includes: dict[str, Keyword] = {}
        excludes: dict[str, Keyword] = {}
        for keyword in keywords:
            text = normalize(keyword.text)
            if text:  # a keyword that folds to "" (stored before validation) matches nothing
                target = excludes if keyword.exclude else includes
                target.setdefault(text, keyword)  # the first of 'Café' and 'cafe' is shown
        # Parallel tuples rather than pairs: a chat costs a few hundred bytes, and the index
        # holds one filter for each of 100,000 chats.
        self.includes: tuple[Keyword, ...] = tuple(includes.values())
        self.include_patterns: tuple[_Pattern, ...] = tuple(map(pattern_of, includes))
        self.exclude_patterns: tuple[_Pattern, ...] = tuple(map(pattern_of, excludes))

    def __bool__(self) -> bool:
        return bool(self.includes or self.exclude_patterns)

    def check(self, text: str) -> Verdict:
        """The verdict for a story whose title and summary are `text`."""
        return self.check_normalized(normalize(text))

    def check_normalized(self, haystack: str) -> Verdict:
        """`check` for text already passed through `normalize` (so it is folded only once)."""
        return self.decide(lambda pattern: pattern.first_match(haystack))

    def decide(self, start_of: Callable[[_Pattern], int | None]) -> Verdict:
        """The verdict, given where (if anywhere) each pattern first matches the story.

        Shared by the one-chat search and the index, so both pick the same keyword: the
        include that starts earliest in the story, the longer one on a tie, then the chat's
        own order.
        """
        for pattern in self.exclude_patterns:
            if start_of(pattern) is not None:
                return REJECT
        if not self.includes:
            return PASS
        # Plain comparisons rather than (start, -length) tuples: this runs for every chat a
        # story touches, so it is the index's inner loop.
        chosen: Keyword | None = None
        best_start = best_length = 0
        for keyword, pattern in zip(self.includes, self.include_patterns, strict=True):
            start = start_of(pattern)
            if start is None:
                continue
            length = len(pattern.text)
            if (
                chosen is None
                or start < best_start
                or (start == best_start and length > best_length)
            ):
                chosen, best_start, best_length = keyword, start, length
        return REJECT if chosen is None else Verdict(True, chosen)


def matches(keywords: Iterable[Keyword], text: str) -> Verdict:
    """The verdict for one chat's `keywords` on a story's `text` (title + "\\n" + summary)."""
    return KeywordFilter(keywords).check(text)


# --- the index of every chat -----------------------------------------------------------------


# pyahocorasick finds a node's child by a linear scan of its children. With Chinese keywords
# the root has thousands of children (one per distinct first character), which made a build
# of 500,000 distinct keywords take 5-8 s and a scan 0.6 ms. So inside the automaton every
# character from U+2E80 up (CJK, Hangul, Yi, private use...) is spelled as two private-use
# characters, its code point's high bits then its low 8 bits: no node has more than a few
# hundred children. A match can only start on a first half (no keyword starts with a second
# half) and ends on a second half, so matches never split a character.
_HIGH_HALF = 0xF0000  # plane 15: 0xF0000 + (code point >> 8)
_LOW_HALF = 0x100000  # plane 16: 0x100000 + (code point & 0xFF)
_SPELL_FROM = 0x2E80


class _Spelling(dict[int, int | str]):
    """str.translate table that spells wide characters as two halves, filled as it is used."""

    def __missing__(self, code: int) -> int | str:
        if len(self) > 1 << 16:
            self.clear()  # bounded memory against feeds full of rare characters
        value: int | str = code
        if code >= _SPELL_FROM:
            value = chr(_HIGH_HALF + (code >> 8)) + chr(_LOW_HALF + (code & 0xFF))
        self[code] = value
        return value


_SPELLING = _Spelling()


def _spell(normalized: str) -> str:
    """`normalized` as the automaton reads it."""
    return normalized if normalized.isascii() else normalized.translate(_SPELLING)


def _char_before(spelled: str, index: int) -> str:
    """The normalized character just before `index`; a space before the text's start."""
    if index == 0:
        return " "
    code = ord(spelled[index - 1])
    if code >= _LOW_HALF:
        return chr((ord(spelled[index - 2]) - _HIGH_HALF) << 8 | (code - _LOW_HALF))
    return spelled[index - 1]


def _char_at(spelled: str, index: int) -> str:
    """The normalized character that starts at `index`; a space past the text's end."""
    if index == len(spelled):
        return " "
    code = ord(spelled[index])
    if code >= _HIGH_HALF:
        return chr((code - _HIGH_HALF) << 8 | (ord(spelled[index + 1]) - _LOW_HALF))
    return spelled[index]


_NOBODY: frozenset[int] = frozenset()


class _Term:
    """One distinct normalized keyword in the automaton, and the chats that hold it.

    The automaton stores these objects, so chats can start or stop holding a term that is
    already indexed without touching the automaton at all.
    """

    __slots__ = ("exclude_owners", "include_owners", "pattern", "spelled", "spelled_length")

    def __init__(self, pattern: _Pattern) -> None:
        self.pattern = pattern
        self.spelled = _spell(pattern.text)  # kept: rebuilds add every term again
        self.spelled_length = len(self.spelled)
        # Chat → that chat's own spelling of the keyword ('Café' or 'cafe'), so that a story's
        # alerts, keyword included, come from C-level dict merges (StoryMatches.alerts).
        self.include_owners: dict[int, Keyword] = {}
        # Few terms are ever exclusions; an empty set would cost 216 bytes for each of them.
        self.exclude_owners: set[int] | frozenset[int] = _NOBODY

    def add_include(self, chat_id: int, keyword: Keyword) -> None:
        self.include_owners[chat_id] = keyword

    def add_exclude(self, chat_id: int) -> None:
        owners = self.exclude_owners
        if isinstance(owners, set):
            owners.add(chat_id)
        else:
            self.exclude_owners = {chat_id}

    def drop_owner(self, chat_id: int) -> None:
        self.include_owners.pop(chat_id, None)
        owners = self.exclude_owners
        if isinstance(owners, set):
            owners.discard(chat_id)
            if not owners:
                self.exclude_owners = _NOBODY

    def owned(self) -> bool:
        return bool(self.include_owners or self.exclude_owners)

    def fits(self, spelled: str, start: int) -> bool:
        """`_Pattern.fits` for a match at `start` in the spelled text."""
        pattern = self.pattern
        if pattern.check_start and _is_word_char(_char_before(spelled, start)):
            return False
        end = start + self.spelled_length
        return not (pattern.check_end and _is_word_char(_char_at(spelled, end)))


def _build_automaton(terms: Iterable[_Term]) -> ahocorasick.Automaton | None:
    automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
    for term in terms:
        automaton.add_word(term.spelled, term)
    if len(automaton) == 0:
        return None  # pyahocorasick refuses to search an empty automaton
    automaton.make_automaton()
    return automaton


class StoryMatches:
    """What one scan of a story found; answers for any chat without scanning again.

    Ask it straight away, without awaiting in between: the answers read the chats' current
    keywords, so a `/keywords` change made after the scan would apply only in part.
    """

    __slots__ = ("_filters", "_hits", "_terms")

    def __init__(
        self,
        hits: dict[_Pattern, int],
        terms: list[_Term],
        filters: Mapping[int, KeywordFilter],
    ) -> None:
        self._hits = hits  # indexed pattern → start of its first real match (spelled text)
        self._terms = terms  # the terms behind `hits`, for their owners
        self._filters = filters

    @property
    def found(self) -> frozenset[str]:
        """The normalized keywords (of any chat) that the story contains."""
        return frozenset(pattern.text for pattern in self._hits)

    def verdict(self, chat_id: int) -> Verdict:
        """Whether `chat_id` is alerted, and by which of its include keywords."""
        chat_filter = self._filters.get(chat_id)
        if chat_filter is None:
            return PASS
        return chat_filter.decide(self._hits.get)

    def alerts(self) -> dict[int, Keyword]:
        """Every chat alerted because of an include keyword, with the keyword to show.

        The same answers as `verdict`, for all such chats at once and with no Python code per
        chat: the owners of each found keyword are merged worst first (latest start, then
        shortest), so each chat ends with its best one; chats with an exclusion are dropped.
        Chats without include keywords are alerted too (unless excluded) but are not listed:
        the pipeline knows its subscribers, and `verdicts` answers for them.
        """
        hits = self._hits
        ranked = sorted(
            self._terms,
            key=lambda term: (hits[term.pattern], -len(term.pattern.text)),
            reverse=True,
        )
        alerted: dict[int, Keyword] = {}
        for term in ranked:
            alerted.update(term.include_owners)
        for chat_id in self.excluded_chats().intersection(alerted):
            del alerted[chat_id]
        return alerted

    def excluded_chats(self) -> set[int]:
        """Chats that never get this story because one of their exclusions is in it."""
        return set().union(*(term.exclude_owners for term in self._terms))

    def verdicts(self, chat_ids: Iterable[int]) -> dict[int, Verdict]:
        """`verdict` for each of `chat_ids` (the feed's subscribers), in bulk.

        A chat that holds none of the story's keywords needs no search: it is alerted exactly
        when it has no include keywords.
        """
        alerted = self.alerts()
        excluded = self.excluded_chats()
        result: dict[int, Verdict] = {}
        for chat_id in chat_ids:
            keyword = alerted.get(chat_id)
            if keyword is not None:
                result[chat_id] = Verdict(True, keyword)
            elif chat_id in excluded:
                result[chat_id] = REJECT
            else:
                chat_filter = self._filters.get(chat_id)
                result[chat_id] = REJECT if chat_filter and chat_filter.includes else PASS
        return result


class KeywordIndex:
    """Every chat's keywords in one Aho-Corasick automaton: one scan per story for all chats.

    Keyword changes are rare next to stories, but a full rebuild of 500,000 distinct keywords
    takes a second or two (bench/README.md), so changes are incremental: a chat taking up or
    dropping a keyword already in the automaton only edits that term's owner sets; a keyword
    new to the index goes into a small second automaton, rebuilt before the next scan. When
    that one holds more than `fresh_limit` terms or 1/64 of all terms (so that full rebuilds
    stay rare however large the index grows), or a quarter of the terms have no owner left,
    everything is folded into a new main automaton. All of this runs synchronously inside
    `match` (or `rebuild`, which a caller may run at startup after loading every chat).
    """

    def __init__(self, fresh_limit: int = 1024) -> None:
        self._fresh_limit = fresh_limit
        self._filters: dict[int, KeywordFilter] = {}
        self._terms: dict[str, _Term] = {}  # every term in either automaton
        self._pending: list[_Term] = []  # terms not yet in the main automaton
        self._unowned: set[str] = set()  # terms no chat holds any more
        self._main: ahocorasick.Automaton | None = None
        self._fresh: ahocorasick.Automaton | None = None
        self._fresh_stale = False

    def __len__(self) -> int:
        """Number of chats with at least one keyword."""
        return len(self._filters)

    def chat_ids(self) -> set[int]:
        """The chats with at least one keyword."""
        return set(self._filters)

    def set_chat(self, chat_id: int, keywords: Sequence[Keyword]) -> None:
        """Replace `chat_id`'s keywords; an empty sequence removes its filter."""
        self.remove_chat(chat_id)
        # Patterns come from the index's terms, so 10,000 chats holding "ai" share one object.
        chat_filter = KeywordFilter(keywords, lambda text: self._adopt(text).pattern)
        if not chat_filter:
            return
        self._filters[chat_id] = chat_filter
        for keyword, pattern in zip(
            chat_filter.includes, chat_filter.include_patterns, strict=True
        ):
            self._terms[pattern.text].add_include(chat_id, keyword)
        for pattern in chat_filter.exclude_patterns:
            self._terms[pattern.text].add_exclude(chat_id)

    def remove_chat(self, chat_id: int) -> None:
        """Forget `chat_id`'s keywords (it then gets every story of its feeds)."""
        chat_filter = self._filters.pop(chat_id, None)
        if chat_filter is None:
            return
        for pattern in chat_filter.include_patterns + chat_filter.exclude_patterns:
            term = self._terms[pattern.text]
            term.drop_owner(chat_id)
            if not term.owned():
                self._unowned.add(pattern.text)

    def match(self, text: str) -> StoryMatches:
        """Scan a story (title + "\\n" + summary) once for the keywords of every chat."""
        self._refresh()
        spelled = _spell(normalize(text))
        hits: dict[_Pattern, int] = {}
        terms: list[_Term] = []
        for automaton in (self._main, self._fresh):
            if automaton is None:
                continue
            # Hits come in order of their end, so the first real one of a term is its earliest.
            for end, term in automaton.iter(spelled):
                if term.pattern in hits:
                    continue
                start = end - term.spelled_length + 1
                if term.fits(spelled, start):
                    hits[term.pattern] = start
                    terms.append(term)
        return StoryMatches(hits, terms, self._filters)

    def decide(self, text: str, chat_ids: Iterable[int]) -> dict[int, Verdict]:
        """The verdict for each of `chat_ids` on one story: `match(text).verdicts(chat_ids)`."""
        return self.match(text).verdicts(chat_ids)

    def rebuild(self) -> None:
        """Fold every live term into a new main automaton and drop terms no chat holds."""
        for text in self._unowned:
            del self._terms[text]
        self._unowned.clear()
        self._main = _build_automaton(self._terms.values())
        self._pending = []
        self._fresh = None
        self._fresh_stale = False

    def _refresh(self) -> None:
        """Bring the automatons up to date with the chats' keywords before a scan."""
        too_many_new = len(self._pending) > max(self._fresh_limit, len(self._terms) // 64)
        too_many_dead = len(self._unowned) > max(self._fresh_limit, len(self._terms) // 4)
        if too_many_new or too_many_dead:
            self.rebuild()
        elif self._fresh_stale:
            self._fresh = _build_automaton(self._pending)
            self._fresh_stale = False

    def _adopt(self, text: str) -> _Term:
        """The term for `text`, created (and queued for the fresh automaton) when new.

        Taken off the unowned list at once: the caller is about to add an owner.
        """
        term = self._terms.get(text)
        if term is None:
            term = _Term(_Pattern.of(text))
            self._terms[text] = term
            self._pending.append(term)
            self._fresh_stale = True
        self._unowned.discard(text)
        return term
