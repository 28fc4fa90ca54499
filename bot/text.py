"""Text rules, in one place: Telegram's HTML and how it measures a message, clean-up of
feed text, sentence ends, and cutting text to a budget with "…".

Telegram counts a message's length in UTF-16 code units of the text left after entity
parsing (an emoji outside the BMP is 2); every cap on a message part is kept in those units.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import quote

ELLIPSIS = "…"
MESSAGE_LIMIT = 4096  # UTF-16 units after entity parsing (Telegram's limit for sendMessage)
CAPTION_LIMIT = 1024  # the same for a photo's caption (sendPhoto)
# Formatting past the 100th entity (bold, link...) of one message is dropped by Telegram.
ENTITY_LIMIT = 100


def _words(text: str) -> frozenset[str]:
    """A set written as space-separated words (long vocabularies stay readable)."""
    return frozenset(text.split())


# --- Telegram HTML --------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")
_OPENING_TAG = re.compile(r"<[^/>][^>]*>")


def escape(text: str) -> str:
    """Escape feed-derived text for Telegram's HTML parse mode (text and attribute values)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def html_to_plain(html_text: str) -> str:
    """The same message without markup, for the rare message Telegram refuses to parse."""
    return html.unescape(_TAG.sub("", html_text))


def is_web_link(url: str) -> bool:
    """Whether `url` may be a link's href: Telegram refuses a whole message over an href it
    cannot parse, so only http(s) addresses without spaces are linked (others are shown
    unlinked)."""
    return url.lower().startswith(("http://", "https://")) and not any(
        char.isspace() for char in url
    )


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def telegram_length(message_html: str) -> int:
    """The length Telegram checks against MESSAGE_LIMIT: the text left after HTML entity
    parsing, in UTF-16 code units. Exact for HTML whose text went through escape() (no
    literal "<" outside tags), the only kind the bot makes."""
    return utf16_len(html_to_plain(message_html))


def entity_count(message_html: str) -> int:
    """The formatting entities (bold, link...) Telegram makes of HTML from this bot: one per
    start tag, which is exact for the tags the bot writes (none of them empty)."""
    return len(_OPENING_TAG.findall(message_html))


def clip(text: str, limit: int) -> str:
    """`text`, or its longest prefix that fits `limit` UTF-16 units with "…" added."""
    if utf16_len(text) <= limit:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit - 1:
            return text[:index].rstrip() + ELLIPSIS
    return text


# --- feed text --------------------------------------------------------------------------------

# Bidirectional embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069): a
# feed can make a title read backwards with them ("\u202egnp.exe"), or leave one open so it
# reorders the alert's next parts. They are dropped from all text taken from a feed; the
# letters of right-to-left scripts need none of them. The direction marks (U+200E, U+200F,
# U+061C) stay: each acts as one invisible strong letter, so it cannot reverse a run of
# letters nor reach beyond its own text, and Hebrew and Arabic publishers use them to put
# punctuation and numbers on the right side.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# Control characters (other than whitespace, which is collapsed), zero-width junk that
# feeds leak from CMS editors, bidirectional controls, and lone surrogates (broken decoding;
# they cannot be sent as UTF-8). Joiners (U+200C/U+200D) stay: they change how Persian,
# Indic and emoji text renders.
_INVISIBLE = dict.fromkeys(
    [c for c in range(0x20) if chr(c) not in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"]
    + list(range(0x7F, 0x85))
    + list(range(0x86, 0xA0))
    + [0x00AD, 0x180E, 0x200B, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0xFFFE]
    + [ord(control) for control in BIDI_CONTROLS]
    + list(range(0xD800, 0xE000))
)


# In a link the controls are percent-encoded instead: a browser sends them so, so the address
# is the same, and the link shown in an alert reads as written.
_BIDI_IN_URL = {ord(control): quote(control, safe="") for control in BIDI_CONTROLS}


def quote_bidi_controls(url: str) -> str:
    """`url` with its bidirectional controls percent-encoded (U+202E → %E2%80%AE)."""
    return url.translate(_BIDI_IN_URL)


def clean(text: str) -> str:
    """Remove invisible characters and collapse every kind of whitespace to single spaces."""
    return " ".join(text.translate(_INVISIBLE).split())


def one_line(text: str) -> str:
    """Every run of whitespace as one space, none at the ends."""
    return " ".join(text.split())


# --- scripts and sentences --------------------------------------------------------------------

# Chinese, Japanese and Korean characters (each carries about a word: no spaces between).
CJK = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)

CLOSERS = "”’」』）)]】》〉»\"'"
SENTENCE_END = re.compile(r"[。！？!?.．]+[" + re.escape(CLOSERS) + r"]*")
_CJK_TERMINATORS = frozenset("。！？．")
# Words that end with a period without ending the sentence (checked case-sensitively, so
# "Mass." in "FOXBOROUGH, Mass. (AP)" is an abbreviation but "mass." ends a sentence).
_ABBREVIATIONS = _words(
    """
    Mr Mrs Ms Mx Dr Prof Sr Sra Jr St Ste Mt Ft Rev Hon Gen Gov Sen Rep Pres Lt Col Capt Cmdr
    Sgt Maj Adm Brig Supt Insp Det Atty Msgr Fr Br
    Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
    Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun
    Inc Ltd Co Corp Bros Assn Dept Univ Ave Blvd Rd Hwy
    No Nos Nr Vol Vols Fig Figs Ch Sec Art Op Ed Eds Ps
    vs v ca approx cf al esp etc viz incl est
    Ala Ariz Ark Calif Colo Conn Del Fla Ga Ill Ind Kan Kans Ky La Md Mass Mich Minn Miss Mo
    Mont Neb Nev Okla Ore Pa Penn Tenn Tex Va Vt Wash Wis Wyo
    Bd Bzw bzw Abs Hr Hrn Mio Mrd ggf usw Mme Mlle Mgr Sr Sras Dra Profa
    """
)
_TOKEN_BEFORE = re.compile(r"(\S+)$")
_DOTTED_ACRONYM = re.compile(r"(?:^|[^\w])(?:\w\.)+\w$")


def _is_abbreviation(before: str) -> bool:
    """Does the text before a period end with an abbreviation ("Mr", "U.S", "J")?"""
    match = _TOKEN_BEFORE.search(before)
    if match is None:
        return False
    token = match.group(1).lstrip("([{\"'“‘«")
    if token in _ABBREVIATIONS:
        return True
    if len(token) == 1 and token.isalpha() and token.isupper():
        return True  # an initial: "John F. Kennedy", "Richard M. Stallman"
    return _DOTTED_ACRONYM.search(token) is not None  # "U.S", "z.B", "a.m"


def is_sentence_end(text: str, match: re.Match[str]) -> bool:
    marks = match.group().rstrip(CLOSERS)
    after = match.end()
    if any(mark in _CJK_TERMINATORS for mark in marks):
        return True  # 。！？ end a sentence whatever follows
    if marks.startswith(".."):
        return False  # an ellipsis marks an omission more often than an end
    if after < len(text):
        following = text[after]
        if not following.isspace():
            # "3.5", "example.com", "U.S.-made" go on; a CJK character after "!" does not.
            return CJK.match(following) is not None
        next_word = text[after:].lstrip()[:1]
        if next_word and next_word.islower():
            return False  # "… how ... fans", "“Really?” he asked"
    return not (marks == "." and _is_abbreviation(text[: match.start()]))


def last_sentence_end(text: str, limit: int) -> int:
    """Index just after the last sentence end (closers included) at or before limit, or 0."""
    best = 0
    for match in SENTENCE_END.finditer(text):
        if match.end() > limit:
            break  # a closing quote past the budget goes with its sentence, or neither fits
        if is_sentence_end(text, match):
            best = match.end()
    return best


_CLAUSE_BREAK = re.compile(r"[，、；：]|[,;:](?=\s)")
_TRAILING_JUNK = " \t,;:，、；：-–—(（[【「『“‘\"'"


def _last_clause_break(text: str, limit: int) -> int:
    best = 0
    for match in _CLAUSE_BREAK.finditer(text, 0, limit):
        best = match.start()
    return best


def _last_word_break(text: str, limit: int) -> int:
    cut = text.rfind(" ", 0, limit + 1)
    return max(cut, 0)


def _hard_cut(text: str, limit: int) -> int:
    """Cut at limit without splitting a character from its combining marks."""
    while limit > 0 and unicodedata.combining(text[limit]):
        limit -= 1
    return limit


def cut(text: str, budget: int) -> str:
    """Fit text into budget characters, the "…" included."""
    if len(text) <= budget:
        return text
    end = last_sentence_end(text, budget)
    if end > 0:
        return text[:end].rstrip()
    limit = budget - len(ELLIPSIS)
    if limit <= 0:
        return ELLIPSIS[:budget]
    clause = _last_clause_break(text, limit)
    word = _last_word_break(text, limit)
    # A clause boundary reads best, unless it would throw away most of the budget.
    if clause >= limit // 2:
        cut = clause
    elif word >= limit // 2:
        cut = word
    else:
        cut = max(clause, word) or _hard_cut(text, limit)
    head = text[:cut].rstrip(_TRAILING_JUNK)
    if not head:
        head = text[: _hard_cut(text, limit)].rstrip()
    return head + ELLIPSIS


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (closers included), or all of it."""
    for match in SENTENCE_END.finditer(text):
        if is_sentence_end(text, match):
            return text[: match.end()]
    return text
