"""Lead paragraph → summary: the first real paragraph of a story's HTML as one line of text.

A feed entry's body is whatever its publisher's CMS emitted: full HTML, a plain-text blurb,
HTML escaped twice, broken markup, or a whole page. Readers of an alert want the story's
first paragraph, not the date line, the photo caption, the byline or the "Comments" link
that many feeds put first, so the body is cut into paragraphs in document order and each
is judged:

- never usable: date lines, captions and credits, bylines, link-only and "Read more" blocks,
  a label with its links ("Show notes at example.fm/1"), an aggregator's "submitted by" and
  counts;
- weak (used only when nothing better exists): headings and very short fragments, except a
  heading written as the story's opening sentences (a standfirst), which is good;
- good: everything else. The first good paragraph is the lead.

A paragraph's lines (split by single <br>s) lose what ends them but is not prose: a list of
tag links in brackets, a label and its links, a byline after the last sentence.

The lead is then cut to the summary budget at a sentence end (no "…"), or, when even the
first sentence is too long, at a clause or word boundary with "…".

The text returned is plain and unescaped: the message formatter escapes it.
"""

from __future__ import annotations

import html as html_entities
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from selectolax.lexbor import LexborHTMLParser, LexborNode

from bot.text import (
    CJK,
    CLOSERS,
    SENTENCE_END,
    clean,
    cut,
    is_sentence_end,
    last_sentence_end,
)

# Work caps: a lead paragraph lives near the top of a story, so a 5 MB body is looked at
# only through its first 64 K characters and its first blocks.
MAX_INPUT_CHARS = 65_536
MAX_BLOCKS = 200


def _word_set(words: str) -> frozenset[str]:
    """A set written as space-separated words (long vocabularies stay readable)."""
    return frozenset(words.split())


# --- HTML structure -------------------------------------------------------------------------

# Elements whose start and end break a paragraph (rendered as blocks by browsers).
_BLOCK_TAGS = _word_set(
    "address article aside blockquote body caption center dd details dialog dir div dl dt "
    "fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html legend "
    "li listing main menu nav ol p plaintext pre section summary table tbody td tfoot th "
    "thead tr ul xmp"
)
_HEADING_TAGS = _word_set("h1 h2 h3 h4 h5 h6")
# Content that has no text worth reading anywhere (also not for html_to_text).
_NON_TEXT_TAGS = _word_set("script style template head title noscript")
# Subtrees that are not the story's prose: media, captions, navigation, forms. The first
# group stands apart from the text around it, so it also ends a paragraph; the rest can sit
# inside a sentence ("<p>Hello <script>…</script> world</p>") and is just dropped.
_NOT_STORY_BLOCK_TAGS = _word_set(
    "aside audio canvas embed figcaption iframe nav object picture svg video"
)
_NOT_STORY_TAGS = (
    _NON_TEXT_TAGS
    | _NOT_STORY_BLOCK_TAGS
    | _word_set("button map math select source textarea track")
)
# Containers whose class says they hold a caption, credit or byline (WordPress and most
# CMS themes mark them this way); only these tags are checked, to keep the walk cheap.
_CLASS_CHECKED_TAGS = _word_set("div p span small")
_NOT_STORY_CLASS = re.compile(r"caption|credit|byline", re.IGNORECASE)

_TEXT_NODE = "-text"

# A tag-like "<x", "</", "<!" or "<?": the input is markup, not plain text.
_REAL_TAG = re.compile(r"<[A-Za-z!/?]")
# An HTML tag escaped once more ("&lt;p&gt;"): some feeds escape their bodies twice.
_ESCAPED_TAG = re.compile(r"&lt;/?[A-Za-z][A-Za-z0-9]*(?:\s[^&]{0,200}?)?/?&gt;", re.IGNORECASE)
# In plain text, a blank line or a Chinese paragraph indent (two ideographic spaces) starts
# a new paragraph.
_PLAIN_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*|\u3000{2,}")

# --- scripts --------------------------------------------------------------------------------

_LETTER = re.compile(r"[^\W\d_]")
_WORD_CHAR = re.compile(r"[^\W_]")


def _is_mainly_cjk(text: str) -> bool:
    """True when more than half of the letters are Chinese, Japanese or Korean."""
    cjk = len(CJK.findall(text))
    return cjk > 0 and cjk * 2 > len(_LETTER.findall(text))


# --- paragraphs out of the tree -------------------------------------------------------------


@dataclass
class _Line:
    """Text between two single <br>s, with where its letters sat (plain, link, <small>)."""

    parts: list[str] = field(default_factory=list)
    in_link: list[bool] = field(default_factory=list)  # per part: inside <a> (not <small>)
    plain: bool = False
    linked: bool = False
    small: bool = False

    def add(self, text: str, in_link: bool, in_small: bool) -> None:
        self.parts.append(text)
        self.in_link.append(in_link and not in_small)
        if _WORD_CHAR.search(text) is None:
            return
        if in_small:
            self.small = True
        elif in_link:
            self.linked = True
        else:
            self.plain = True

    @property
    def has_words(self) -> bool:
        return self.plain or self.linked or self.small


@dataclass
class _Paragraph:
    lines: list[_Line]
    heading: bool


class _ParagraphBuilder:
    """Collects text into paragraphs; a paragraph ends at a block boundary or a double <br>."""

    def __init__(self) -> None:
        self.lines: list[_Line] = [_Line()]
        self.heading = False
        self.after_br = False  # only whitespace since the last <br>
        self.link_depth = 0
        self.small_depth = 0

    def text(self, text: str) -> None:
        self.lines[-1].add(text, self.link_depth > 0, self.small_depth > 0)
        if not text.isspace():
            self.after_br = False

    def br(self) -> _Paragraph | None:
        if self.after_br:
            return self.close()  # <br><br>: the paragraph ends here
        self.lines.append(_Line())
        self.after_br = True
        return None

    def close(self) -> _Paragraph | None:
        """End the current paragraph; returns it when it holds any letter or digit."""
        lines = [line for line in self.lines if line.has_words]
        paragraph = _Paragraph(lines, self.heading) if lines else None
        self.lines = [_Line()]
        self.after_br = False
        return paragraph

    def enter(self, tag: str, *, breaks: bool, has_children: bool) -> _Paragraph | None:
        """An element starts; returns the paragraph it ends (a block ends the one before)."""
        paragraph = None
        if breaks:
            paragraph = self.close()
            self.heading = has_children and tag in _HEADING_TAGS
        if has_children:
            if tag == "a":
                self.link_depth += 1
            elif tag == "small":
                self.small_depth += 1
        return paragraph

    def leave(self, tag: str) -> _Paragraph | None:
        """An element with children ends; returns the paragraph it ends (a block's)."""
        if tag in _BLOCK_TAGS:
            paragraph = self.close()
            self.heading = False
            return paragraph
        if tag == "a":
            self.link_depth -= 1
        elif tag == "small":
            self.small_depth -= 1
        return None


def _parse(html: str) -> LexborNode | None:
    """First top-level node of the fragment (fragment mode keeps text before any tag)."""
    return LexborHTMLParser(html, is_fragment=True).root


def _walk(
    root: LexborNode | None, skip: frozenset[str], *, story_only: bool
) -> Iterator[_Paragraph]:
    """Yield paragraphs in document order, lazily, so the caller can stop at the lead.

    Iterative (an explicit stack of open elements) because feed HTML can nest deeper than
    Python's recursion limit.
    """
    builder = _ParagraphBuilder()
    open_elements: list[tuple[LexborNode, str]] = []
    node = root
    while True:
        if node is None:
            if not open_elements:
                break
            parent, tag = open_elements.pop()
            if (paragraph := builder.leave(tag)) is not None:
                yield paragraph
            node = parent.next
            continue
        tag = node.tag or ""
        if tag == _TEXT_NODE:
            builder.text(node.text_content or "")
        elif tag == "br":
            if (paragraph := builder.br()) is not None:
                yield paragraph
        elif not tag.startswith(("-", "_", "!")):  # not a comment or a doctype
            skipped = tag in skip or (story_only and _is_not_story(node, tag))
            breaks = tag in _BLOCK_TAGS or (skipped and tag in _NOT_STORY_BLOCK_TAGS)
            child = None if skipped else node.child
            paragraph = builder.enter(tag, breaks=breaks, has_children=child is not None)
            if paragraph is not None:
                yield paragraph
            if child is not None:
                open_elements.append((node, tag))
                node = child
                continue
        node = node.next
    if (paragraph := builder.close()) is not None:
        yield paragraph


def _is_not_story(node: LexborNode, tag: str) -> bool:
    """A container whose class marks a caption, credit or byline."""
    return (
        tag in _CLASS_CHECKED_TAGS and _NOT_STORY_CLASS.search(node.attrs.sget("class")) is not None
    )


def _prepare(html: str) -> tuple[str, bool]:
    """Cap the input and undo a second layer of escaping ("&lt;p&gt;" bodies).

    Returns the text and whether it is markup (False: plain text, entities already decoded).
    """
    html = html[:MAX_INPUT_CHARS]
    if _REAL_TAG.search(html) is not None:
        return html, True
    if "&" not in html:
        return html, False
    if _ESCAPED_TAG.search(html) is not None:
        return html_entities.unescape(html), True
    return html_entities.unescape(html), False


def _plain_paragraphs(text: str) -> Iterator[_Paragraph]:
    """Paragraphs of plain text: blank lines and "　　" indents separate them (HTML would
    read both as spaces, but in plain text they are the writer's paragraph breaks)."""
    for chunk in _PLAIN_PARAGRAPH_BREAK.split(text):
        line = _Line()
        line.add(chunk, in_link=False, in_small=False)
        if line.has_words:
            yield _Paragraph([line], heading=False)


def _paragraphs(html: str) -> Iterator[_Paragraph]:
    """The body's paragraphs in document order."""
    text, is_markup = _prepare(html)
    if not is_markup:
        return _plain_paragraphs(text)
    return _walk(_parse(text), _NOT_STORY_TAGS, story_only=True)


def html_to_text(html: str) -> str:
    """All text of an HTML fragment (or plain text that may contain entities), whitespace
    collapsed to single spaces, stripped. Used for titles that carry HTML and for keyword
    matching.

    Script, style and similar non-text elements are dropped; blocks and <br> become spaces
    so that "<p>One</p><p>Two</p>" reads "One Two", while inline tags join ("<b>J</b>ohn").
    """
    html = html[:MAX_INPUT_CHARS]
    if _REAL_TAG.search(html) is None:
        # No markup: entities are all there is to decode; a parser would add nothing.
        return clean(html_entities.unescape(html) if "&" in html else html)
    paragraphs = _walk(_parse(html), _NON_TEXT_TAGS, story_only=False)
    return clean(" ".join(_paragraph_text(p.lines) for p in paragraphs))


def _line_text(line: _Line) -> str:
    return clean("".join(line.parts))


def _paragraph_text(lines: Sequence[_Line]) -> str:
    return " ".join(_line_text(line) for line in lines)


# --- what a block of text is ----------------------------------------------------------------


class _Kind(IntEnum):
    GOOD = 0  # a paragraph of the story
    WEAK = 1  # a heading or a fragment: only when nothing better is there
    NEVER = 2  # date, caption, credit, byline, link-only: never the summary


_DATE_WORDS = _word_set(
    # English, German, French, Spanish, Portuguese months and weekdays, with the small
    # words and zones that date lines carry ("Posted on Wed, 26 Feb 2025 at 17:30 GMT").
    """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    monday tuesday wednesday thursday friday saturday sunday
    mon tue tues wed thu thur thurs fri sat sun
    januar februar märz maerz mai juni juli oktober dezember
    montag dienstag mittwoch donnerstag freitag samstag sonntag
    janvier février fevrier mars avril juin juillet août aout septembre octobre novembre
    décembre decembre lundi mardi mercredi jeudi vendredi samedi dimanche
    enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre
    noviembre diciembre lunes martes miércoles miercoles jueves viernes sábado sabado domingo
    janeiro fevereiro março marco maio junho julho setembro outubro novembro dezembro
    segunda terça terca quarta quinta sexta feira
    gmt utc z t est edt cst cdt mst mdt pst pdt bst cet cest eet eest ist jst kst hkt sgt
    am pm a p m h st nd rd th er e o
    at on of the de del di du le la el um am à a en
    updated update published posted last modified date time
    aktualisiert veröffentlicht stand uhr publié mis jour actualizado publicado atualizado
    """
)
_CJK_DATE = re.compile(
    r"\d+\s*[年月日号號时時点點分秒]|(?:星期|礼拜|禮拜|周|週)[一二三四五六日天]"
    r"|[（(][月火水木金土日一二三四五六][）)]|[月火水木金土日]曜日?"
    r"|上午|下午|晚上|凌晨|中午|早上|午前|午後|发布时间|發布時間|更新时间|更新時間|日期|时间|時間"
    r"|发布|發布|更新|发表于|發表於|于|於"
)
_DIGIT = re.compile(r"\d")
_LETTER_RUN = re.compile(r"[^\W\d_]+")


def _is_date_line(text: str) -> bool:
    """A block that is only a date or time: "Wed, 26 Feb 2025 17:30:53 GMT", "2月26日 星期三"."""
    if len(text) > 80 or _DIGIT.search(text) is None:
        return False
    rest = _CJK_DATE.sub(" ", text)
    return all(word.lower() in _DATE_WORDS for word in _LETTER_RUN.findall(rest))


_CREDIT_PREFIX = re.compile(
    r"^(?:资料照片?|資料照片?|资料图片?|資料圖片?|图片来源|圖片來源|图片|圖片|图源|圖源|图|圖|照片|摄影|攝影"
    r"|视频截图|視頻截圖|写真|画像|提供"
    r"|file photo|photo(?:graph)?s?|image|picture|pictured|credits?|source|foto|fotos|bild"
    r"|bildquelle|imagem|illustration)"
    r"\s*(?:[:：/／|｜]|by\b|$)"
    r"|^(?:©|\(c\)|copyright\b)",
    re.IGNORECASE,
)
_BRACKETS = {"(": ")", "（": "）", "[": "]", "【": "】"}
_CREDIT_WORDS = re.compile(
    r"getty|reuters|\bafp\b|\bap\b|\bepa\b|photo|image|credit|©|shutterstock|istock|alamy"
    r"|xinhua|新华社|新華社|图|圖|摄|攝|照|写真",
    re.IGNORECASE,
)
_BYLINE_LATIN = re.compile(
    r"^(?:(?:guest\s+)?(?:post|story|article|column|text|words|report)\s+)?"
    r"(?:(?:posted|written|published|reported|contributed)\s+)?"
    r"(?:by|von|par|por|di|door|av|af|przez|od)\s+(.+)$",
    re.IGNORECASE,
)
# An aggregator's "submitted by /u/name" (reddit; "… to r/group" in mixed feeds; Lemmy).
_SUBMITTED_BY = re.compile(r"^submitted by\s+\S+(?:\s+to\s+\S+)?$", re.IGNORECASE)
# Words a byline joins names with, besides names: "Par Jean Dupont avec AFP", "Von Anna
# Schmidt und Max Weber, dpa", "By Jane Doe | Reuters".
_BYLINE_JOINERS = _word_set(
    "and und et e y & , | / - – — · with mit avec con com of the de van von la le da del di du "
    "dpa afp apa epd"
)
# "记者 王明" needs no separator, but "作者从台湾…" is a sentence: the other labels need one.
# Either way a byline is short and has no sentence punctuation ("记者从市教育局获悉，…").
_BYLINE_OTHER = re.compile(
    r"^(?:本报|本報|本台|本网|本網|特约|特約)*(?:记者|記者|通讯员|通訊員)(?!从|從|获悉|獲悉|了解|注意|发现|發現)"
    r"|^(?:作者|编辑|編輯|责任编辑|責任編輯|撰稿|撰文|编译|編譯|整理|摄影|攝影|文|来源|來源"
    r"|取材|撮影|執筆)\s*[：:/／|｜=＝・]"
    r"|^كتب\s*[-–—_ـ:]"
)
_SENTENCE_PUNCTUATION = re.compile(r"[，。！？；]")
_READ_MORE = re.compile(
    r"^(?:read more|read the (?:full|whole) (?:story|article)|continue reading|continue|more"
    r"|comments?|\d+ comments?|full story|click here|view (?:more|full)|see more|learn more"
    r"|阅读全文|閱讀全文|查看全文|全文|更多|阅读更多|閱讀更多|続きを読む|続き|weiterlesen|mehr"
    r"|lire la suite|leia mais|leer más|ver más|المزيد|اقرأ المزيد)"
    r"[\s.…:>»›→\-–—]*$"
    r"|^(?:related|see also|also read|read also|more on this|recommended"
    r"|related (?:stories|articles?)"
    r"|相关阅读|相關閱讀|相关新闻|相關新聞|相关文章|相關文章|相关|相關|延伸阅读|延伸閱讀|推荐阅读|推薦閱讀"
    r"|lesen sie auch|voir aussi|à lire aussi|leia também|veja também)\s*[:：]",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]\S*")  # a spaced word: from its first letter or digit on
_MIN_WORDS = 5  # fewer spaced words than this (and few CJK characters) is a fragment
_MIN_CJK = 12


# An aggregator's counts line: "Points: 12", "# Comments: 3", "12 points | 3 comments".
_COUNT = re.compile(r"[#\w][\w ]{0,30}:\s*\d[\d,.]*|\d[\d,.]*\s+[^\W\d_]+")
_COUNT_SEPARATOR = re.compile(r"\s*[|·•,;]\s*")


def _is_counts(text: str) -> bool:
    """A line of counts: "Points: 12", "12 points | 3 comments", "0 ratings" (not "2025
    Olympics", a name)."""
    if len(text) > 80 or _DIGIT.search(text) is None:
        return False
    pieces = _COUNT_SEPARATOR.split(text)
    if not all(_COUNT.fullmatch(piece) for piece in pieces):
        return False
    return len(pieces) > 1 or ":" in text or text.islower()


def _is_byline(text: str) -> bool:
    """Is this a byline: "By John Smith and Jane Doe, Reuters", "记者 王明", "كتب - محمد"?"""
    if len(text) > 80:
        return False
    if _BYLINE_OTHER.match(text) is not None:
        return len(text) <= 40 and _SENTENCE_PUNCTUATION.search(text) is None
    if _SUBMITTED_BY.match(text) is not None:
        return True
    match = _BYLINE_LATIN.match(text)
    if match is None:
        return False
    # "By Tuesday, officials said …" is a sentence: a byline is only names (and maybe when).
    words = match.group(1).replace(",", " , ").split()
    return 0 < len(words) <= 12 and all(_is_byline_word(word) for word in words)


def _is_byline_word(word: str) -> bool:
    lowered = word.lower().strip(".")
    return (
        word[0].isupper()
        or lowered in _BYLINE_JOINERS
        or lowered in _DATE_WORDS
        or _DIGIT.search(word) is not None
    )


def _is_credit(text: str) -> bool:
    """Image captions and credits written as text: "资料照：…", "Photo: …", "(Getty Images)"."""
    if _CREDIT_PREFIX.match(text) is not None:
        return True
    return len(text) <= 120 and _is_parenthesized(text) and _CREDIT_WORDS.search(text) is not None


def _is_parenthesized(text: str) -> bool:
    """Is the whole text one aside in brackets: "(Getty Images)" but not "(CNN) A Marine…"?"""
    opener = text[:1]
    closer = _BRACKETS.get(opener)
    if closer is None or not text.endswith(closer):
        return False
    depth = 0
    for index, char in enumerate(text):
        if char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return index == len(text) - 1
    return False


def _is_fragment(text: str) -> bool:
    """Too short to be a paragraph of a story ("HOWEVER!", "Here is a thing:")."""
    for count, _word in enumerate(_WORD.finditer(text), start=1):
        if count >= _MIN_WORDS:
            return False  # stop counting: long paragraphs are the common case
    return len(CJK.findall(text)) < _MIN_CJK


def _text_kind(text: str) -> _Kind:
    if (
        _is_date_line(text)
        or _is_credit(text)
        or _is_byline(text)
        or _READ_MORE.match(text)
        or _is_counts(text)
    ):
        return _Kind.NEVER
    if _is_fragment(text) or _is_parenthesized(text):
        return _Kind.WEAK
    return _Kind.GOOD


def _line_kind(line: _Line, text: str) -> _Kind:
    if not line.plain:
        # Every letter sits in a link (a "Comments" link, a nav table) or in <small>
        # (a caption): not prose of the story.
        if line.small or _is_fragment(text):
            return _Kind.NEVER
        return max(_Kind.WEAK, _text_kind(text))
    return _text_kind(text)


# --- what ends a line but is not prose ------------------------------------------------------
# A teaser often ends with something that is not the story: a list of topic or tag links in
# brackets ("… vorgestellt. (<a>iPhone</a>, <a>Apple</a>)", reddit's "<a>[link]</a>
# <a>[comments]</a>"), a link or web address with its label ("Full transcript and show notes
# at example.com/123", "via http://…", "Tags: <a>x</a>, <a>y</a>"), or a byline after the
# last sentence ("… beschlossen. Von Anna Schmidt", "……。（记者 王明）"). Such a tail is cut
# from the line; a line that is nothing but a label and its links is never the summary.

_OPENERS = ("(", "[", "【", "（")
_CLOSING_BRACKETS = tuple(_BRACKETS.values())
# Characters before a run of links that belong to it: space and an opening bracket.
_LINK_RUN_LEAD = frozenset(" \t" + "".join(_OPENERS))
# A web address written out: with a scheme, "www.", or a host with a path ("example.com/12").
_ADDRESS = re.compile(
    r"(?:https?://|www\.)\S+|[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}/\S*", re.IGNORECASE
)
# Punctuation that stands between addresses or before one ("… letters - http://…").
_ADDRESS_PUNCTUATION = frozenset("|·•,;:/-–—→>»")
_MAX_LABEL_WORDS = 12
_LABEL_WINDOW = 40 * _MAX_LABEL_WORDS  # characters: more than a dozen words of any length
_BYLINE_WINDOW = 100
_LABEL_ENDS = (":", "：", "→", "»")
_FULL_STOPS = (".", "。", "．", "!", "！", "?", "？")
_TAIL_PUNCTUATION = " ([【（)]】）-–—|·"
# What a line may not end with once its links are cut off ("… letters -", "… here:").
_CUT_END = " \t-–—|·•:：/→»>"


def _read_line(line: _Line) -> tuple[_Kind, str]:
    """The line's kind and its text without a tail that is not prose."""
    text = _line_text(line)
    if line.plain:
        prose = _without_tail(text, _link_run(line) if line.linked else _NO_LINKS)
        if prose is None:
            return _Kind.NEVER, text
        text = prose
    return _line_kind(line, text), text


@dataclass(frozen=True)
class _LinkRun:
    """The links that end a line: their text with the punctuation around and between them
    ("/u/name [link] [comments]"), how many links there are, and the part of it that is a
    list of links in brackets ("(iPhone, Apple)", "[link] [comments]"; "" when none is)."""

    text: str
    links: int
    bracketed: str


_NO_LINKS = _LinkRun("", 0, "")


def _link_run(line: _Line) -> _LinkRun:
    """The links that end the line (_NO_LINKS when it does not end in a link)."""
    index = len(line.parts)
    links = 0
    words_in_links = False
    while index > 0:
        part, in_link = line.parts[index - 1], line.in_link[index - 1]
        if in_link:
            words_in_links = words_in_links or _WORD_CHAR.search(part) is not None
            if index == len(line.parts) or not line.in_link[index]:
                links += 1
        elif _WORD_CHAR.search(part) is not None:
            break
        index -= 1
    if not words_in_links:
        return _NO_LINKS
    pieces = line.parts[index:]
    if index > 0:  # the space and bracket the prose before ends with: "… vorgestellt. ("
        before = line.parts[index - 1]
        cut = len(before)
        while cut > 0 and before[cut - 1] in _LINK_RUN_LEAD:
            cut -= 1
        pieces = [before[cut:], *pieces]
    # A bracket that opens a piece, not one inside a link's text ("<a>Vol. 1 (Live)</a>").
    opening = next((i for i, p in enumerate(pieces) if p.lstrip().startswith(_OPENERS)), None)
    bracketed = "" if opening is None else clean("".join(pieces[opening:]))
    if not bracketed.endswith(_CLOSING_BRACKETS):
        bracketed = ""
    return _LinkRun(clean("".join(pieces)), links, bracketed)


def _without_tail(text: str, run: _LinkRun) -> str | None:
    """text without its tail (see above); None when nothing but a label and links is left.

    run is the end of text that sits in links.
    """
    if run.bracketed:
        text = text[: len(text) - len(run.bracketed)].rstrip()  # the prose is judged on
    elif run.text:
        # One link after a label can be the value it names ("CEO pay: <a>$59 m</a>");
        # several are a list ("Tags: <a>…</a> <a>…</a>").
        start = len(text) - len(run.text)
        addresses = _is_addresses(run.text)
        cut = _pointer_cut(text, start, addresses=addresses, listed=run.links > 1)
        if cut is not None:
            return text[:cut].rstrip(_CUT_END) or None
    elif (start := _trailing_addresses(text)) is not None:
        cut = _pointer_cut(text, start, addresses=True, listed=False)
        if cut is not None:
            return text[:cut].rstrip(_CUT_END) or None
    byline = _byline_tail(text)
    return text if byline is None else text[:byline].rstrip()


def _is_addresses(text: str) -> bool:
    """Is the text only web addresses (and punctuation between them)?"""
    words = [word for word in text.split() if not set(word) <= _ADDRESS_PUNCTUATION]
    return bool(words) and all(_ADDRESS.fullmatch(word) for word in words)


def _trailing_addresses(text: str) -> int | None:
    """Where the web addresses that end text begin, with the punctuation before and
    between them ("… letters - http://a.b/c"); None when no address ends it."""
    if "/" not in text and "www." not in text:
        return None  # the common case: no address at all, nothing to split
    start = None
    found = False
    end = len(text)
    for word in reversed(text.rsplit(None, 2 * _MAX_LABEL_WORDS)):
        if " " in word:
            break  # the rest of the text, beyond any label's length
        begin = text.rfind(word, 0, end)
        if set(word) <= _ADDRESS_PUNCTUATION:
            start = end = begin
            continue
        match = _ADDRESS.search(word)
        if match is None or match.end() != len(word):
            break
        start = end = begin + match.start()
        found = True
        if match.start() > 0:
            break  # "→http://…": the label is glued to the address
    return start if found else None


def _pointer_cut(text: str, start: int, *, addresses: bool, listed: bool) -> int | None:
    """Where to cut a line whose end, text[start:], is links: before their label when label
    and links point the reader elsewhere ("Show notes at example.fm/1", "Tags: <a>…</a>,
    <a>…</a>"), before the addresses alone when a statement carries them ("Homeowners lose
    homes http://ow.ly/x"), but not from a sentence that ends after its address ("… on
    www.fsf.org."); None when the links are part of the prose."""
    # A label is a dozen words at most: its sentence start is looked for only that far back
    # (sentence ends are costly to tell apart, and a body can be one 64 K line of "Mr. ").
    window = max(0, start - _LABEL_WINDOW)
    label_start = window + last_sentence_end(text[window:start], start - window)
    label = text[label_start:start].strip()
    short = label_start > window or window == 0
    if short and (addresses or listed) and _is_pointing_label(label, addresses=addresses):
        return label_start
    if addresses and not text.rstrip(CLOSERS).endswith(_FULL_STOPS):
        return start
    return None


def _is_pointing_label(label: str, *, addresses: bool) -> bool:
    """A short label that leads to what follows: it ends with a colon or an arrow, or, before
    a web address, it is empty, ends with a small word ("via", "at", "here", "ici") or is a
    short clause of an unspaced script ("点播网址为")."""
    # Short: a dozen spaced words, or two dozen characters of an unspaced script.
    if len(label.split()) > _MAX_LABEL_WORDS or len(CJK.findall(label)) > 2 * _MAX_LABEL_WORDS:
        return False
    if label.endswith(_LABEL_ENDS):
        return True
    if not addresses:
        return False
    last = label.rsplit(None, 1)[-1] if label else ""
    if len(last) <= 4 and last.isalpha() and last.islower():
        return True
    return not last or (CJK.match(last) is not None and len(last) <= _MAX_LABEL_WORDS)


def _byline_tail(text: str) -> int | None:
    """Where a byline that follows the last sentence ends the prose, or None."""
    window = max(0, len(text) - _BYLINE_WINDOW)  # a byline is 80 characters at most
    end = text[window:]
    for match in SENTENCE_END.finditer(end):
        rest = end[match.end() :].strip(_TAIL_PUNCTUATION)
        if rest and _is_byline(rest) and is_sentence_end(end, match):
            return window + match.end()
    return None


def _judge(paragraph: _Paragraph) -> tuple[_Kind, str]:
    """The paragraph's kind and its text without the lines around the prose.

    Lines (split by single <br>s) that are a date, byline, caption or link go at either end
    ("<p><i>date</i><br>Text…</p>" is the text), and so do short label lines in front of a
    real one (Google News puts the headline link and the publisher's name above the text).
    """
    lines = paragraph.lines
    read = [_read_line(line) for line in lines]
    kinds = [kind for kind, _ in read]
    texts = [text for _, text in read]

    def around(index: int) -> bool:
        return kinds[index] is _Kind.NEVER or not lines[index].plain

    start, end = 0, len(lines)
    while start < end and around(start):
        start += 1
    while end > start and around(end - 1):
        end -= 1
    if start == end:
        # Nothing but links and captions; a long link text can still stand in as a fallback.
        weak = [text for kind, text in zip(kinds, texts, strict=True) if kind is _Kind.WEAK]
        return (_Kind.WEAK, weak[0]) if weak else (_Kind.NEVER, "")
    while kinds[start] is not _Kind.GOOD and _Kind.GOOD in kinds[start + 1 : end]:
        start += 1
    text = _strip_byline_prefix(" ".join(texts[start:end]))
    kind = kinds[start] if end - start == 1 else _text_kind(text)
    if paragraph.heading and kind is _Kind.GOOD and not _is_standfirst(text):
        kind = _Kind.WEAK
    return kind, text


_STANDFIRST_WORDS = 10
_STANDFIRST_CJK = 25


def _is_standfirst(text: str) -> bool:
    """A heading written as the story's opening sentences (a standfirst set as <h2>) rather
    than a title: it ends with a full stop and is long."""
    if not text.rstrip(CLOSERS).endswith((".", "。", "．")):
        return False  # a title rarely ends with a full stop; "?" and "!" ones do
    for count, _word in enumerate(_WORD.finditer(text), start=1):
        if count >= _STANDFIRST_WORDS:
            return True
    return len(CJK.findall(text)) >= _STANDFIRST_CJK


# "By Girish Gupta and Andrew Cawthorne CARACAS (Reuters) - …": a byline run into the
# dateline; the capitalised names end where the all-caps place name begins.
_BYLINE_PREFIX = re.compile(
    r"^By\s+[A-Z][\w'’.-]*(?:,?\s+(?:and\s+)?[A-Z][\w'’.-]*){0,7}?\s+"
    r"(?=[A-Z]{2,}(?:[\s-][A-Z]{2,})*,?\s*[,(—–-])"
)


def _strip_byline_prefix(text: str) -> str:
    return _BYLINE_PREFIX.sub("", text, count=1)


def _lead(html: str) -> str:
    """The lead paragraph's text, "" when the body has no usable text."""
    fallback = ""
    for count, paragraph in enumerate(_paragraphs(html)):
        kind, text = _judge(paragraph)
        if kind is _Kind.GOOD:
            return text
        if kind is _Kind.WEAK and not fallback:
            fallback = text
        if count >= MAX_BLOCKS:
            break
    return fallback


# --- cutting to the budget ------------------------------------------------------------------


def summarize(html: str, *, max_chars: int = 300, max_chars_cjk: int = 150) -> str:
    """The lead paragraph as plain text (NOT escaped), cut to the budget; "" when the story
    has no text.

    max_chars is the budget for Latin (and other spaced) scripts, max_chars_cjk for text that
    is mainly Chinese, Japanese or Korean, where one character carries about a word.
    """
    lead = _lead(html)
    if not lead:
        return ""
    budget = max_chars_cjk if _is_mainly_cjk(lead) else max_chars
    return cut(lead, max(budget, 1))


def _text_size(html: str) -> int:
    """How much story text a body carries (non-space characters), to compare content with
    description. Lexbor's own text extraction is used: several times faster than the
    paragraph walk, and exact spacing does not matter for a size."""
    if not html:
        return 0
    text, is_markup = _prepare(html)
    if is_markup:
        tree = LexborHTMLParser(text, is_fragment=True)
        tree.strip_tags(list(_NON_TEXT_TAGS))
        text = tree.text(deep=True, separator="")
    return len("".join(text.split()))


def pick_body(contents: Sequence[str], description: str | None) -> str:
    """The story's HTML body: content (content:encoded / Atom content; possibly several) wins
    over the description/summary when it is richer (more text); returns "" when there is none.

    On a tie the description is kept: feedparser copies content into the summary when a
    feed has no description, and a publisher's own blurb is as good a source otherwise.
    """
    bodies = [content for content in contents if content]
    # Nothing to compare (measuring means parsing): the common shapes of real feeds.
    if not bodies or all(body == description for body in bodies):
        return description or ""
    if len(bodies) == 1 and not description:
        return bodies[0]
    best, best_size = "", -1
    for content in bodies:
        size = _text_size(content)
        if content and size > best_size:
            best, best_size = content, size
    if description and (not best or _text_size(description) >= best_size):
        return description
    return best
