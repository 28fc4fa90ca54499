"""Telegram's text formatting: the HTML parse mode, message entities, lengths and limits.

parse_html reads HTML as Telegram's parser (tdlib's parse_html) does, with its tags,
entities and error texts ("can't parse entities: ..."); lengths and offsets are counted in
UTF-16 code units after parsing, and a text is trimmed of surrounding whitespace the way
Telegram trims it. formatted_text applies all of it to a text the bot sends: the 4096-unit
message (1024-unit caption) limit, and no empty text.

Stricter than Telegram: an unknown named entity such as `&nbsp;` is a 400 (Telegram would
show the characters `&nbsp;` literally, which is never what a bot meant), unless the fake
was made with `strict_html_entities=False`. More than 100 entities in one text (counted
after parsing) is a 400 too: Telegram sends the message but drops the formatting, links
included, from the 101st entity on, again never what a bot meant.

render_html turns text and entities back into normalized HTML, for tests to read what the
user sees; detect_entities finds the entities Telegram adds to a user's own text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tests.fakes.telegram_api.errors import JsonDict, bad_request

MESSAGE_LIMIT: Final = 4096  # UTF-16 code units after entity parsing
CAPTION_LIMIT: Final = 1024
ENTITY_LIMIT: Final = 100  # formatting entities in one text, counted after parsing


# --------------------------------------------------------------------------------------------
# HTML parse mode, as Telegram's parser (tdlib's parse_html) reads it


class EntityParseError(Exception):
    """The text is not valid Telegram HTML; str() is the part after "can't parse entities: "."""


SPACE: Final = frozenset(" \t\r\n\v\f")
_SPECIAL: Final = re.compile(r"[<&]")
_NAMED_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_NAME: Final = re.compile(r"[A-Za-z]*")
_ENTITY_DEC: Final = re.compile(r"[0-9]*")
_ENTITY_HEX: Final = re.compile(r"[0-9A-Fa-f]*")
_UNKNOWN_NAMED_ENTITY: Final = re.compile(r"&[A-Za-z][A-Za-z0-9]*;")
_NAME_TOKEN: Final = re.compile(r"[A-Za-z0-9.\-]*")
_SIMPLE_TAG_TYPES: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_SUPPORTED_TAGS: Final = frozenset(
    {*_SIMPLE_TAG_TYPES, "a", "tg-emoji", "pre", "code", "blockquote"}
)
_LINK_SCHEMES: Final = ("http://", "https://", "tg://", "ftp://", "ton://", "mailto:")
_TRIM: Final = " \t\r\n\v\f"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and limits."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


class _ByteOffset:
    """The byte offset of source[index] for an error message, computed only if one is made."""

    __slots__ = ("index", "source")

    def __init__(self, source: str, index: int) -> None:
        self.source, self.index = source, index

    def __format__(self, spec: str) -> str:
        return format(_byte_offset(self.source, self.index), spec)


def _decode_entity(source: str, index: int) -> tuple[str | None, int]:
    """An &entity; at source[index] as (character, index after it), or (None, index)."""
    n = len(source)
    if index + 1 < n and source[index + 1] == "#":
        hexadecimal = index + 2 < n and source[index + 2] == "x"
        start = index + 3 if hexadecimal else index + 2
        digits = (_ENTITY_HEX if hexadecimal else _ENTITY_DEC).match(source, start)
        assert digits is not None
        end = digits.end()
        if digits.group() == "" or end - index >= 10:
            return None, index
        code = int(digits.group(), 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None, index
        character = chr(code)
    else:
        name = _ENTITY_NAME.match(source, index + 1)
        assert name is not None
        end = name.end()
        character = _NAMED_ENTITIES.get(name.group())  # type: ignore[assignment]
        if character is None:
            return None, index
    if end < n and source[end] == ";":
        end += 1
    return character, end


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    offset: int  # UTF-16 offset in the parsed text
    start: int  # index in the output pieces, for <a> without href
    expandable: bool


def parse_html(source: str, *, strict_entities: bool = True) -> tuple[str, list[JsonDict]]:
    """Telegram HTML to (plain text, MessageEntity dicts); raises EntityParseError."""
    out: list[str] = []
    utf16 = 0
    stack: list[_OpenTag] = []
    entities: list[JsonDict] = []
    n = len(source)
    i = 0
    while i < n:
        match = _SPECIAL.search(source, i)
        end = match.start() if match else n
        if end > i:
            chunk = source[i:end]
            out.append(chunk)
            utf16 += utf16_len(chunk)
            i = end
            if i >= n:
                break
        if source[i] == "&":
            character, after = _decode_entity(source, i)
            if character is None:
                if strict_entities and (unknown := _UNKNOWN_NAMED_ENTITY.match(source, i)):
                    raise EntityParseError(
                        f'Unsupported HTML entity "{unknown.group()}" at byte offset '
                        f"{_byte_offset(source, i)}"
                    )
                character, after = "&", i + 1
            out.append(character)
            utf16 += utf16_len(character)
            i = after
        elif i + 1 < n and source[i + 1] == "/":
            i = _close_tag(source, i, stack, entities, out, utf16)
        else:
            i, tag = _open_tag(source, i)
            tag.offset, tag.start = utf16, len(out)
            stack.append(tag)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)  # only <pre><code class=...> keeps a language
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _skip_spaces(source: str, i: int) -> int:
    n = len(source)
    while i < n and source[i] in SPACE:
        i += 1
    return i


def _open_tag(source: str, begin: int) -> tuple[int, _OpenTag]:
    """Parse the start tag at source[begin] ('<'); return the index after '>' and the tag."""
    n = len(source)
    i = begin + 1
    while i < n and source[i] not in SPACE and source[i] != ">":
        i += 1
    offset = _ByteOffset(source, begin)
    if i >= n:
        raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
    name = source[begin + 1 : i].lower()
    if name not in _SUPPORTED_TAGS:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
    argument = ""
    expandable = False
    while True:
        i = _skip_spaces(source, i)
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        if source[i] == ">":
            break
        attribute_begin = i
        while i < n and source[i] not in SPACE and source[i] not in "=>":
            i += 1
        attribute = source[attribute_begin:i].lower()
        i = _skip_spaces(source, i)
        if i >= n or source[i] != "=":
            if name == "blockquote" and attribute == "expandable":
                expandable = True
                continue
            raise EntityParseError(
                "Expected equal sign in declaration of an attribute of the tag "
                f'"{name}" at byte offset {offset}'
            )
        i = _skip_spaces(source, i + 1)
        if i >= n:
            raise EntityParseError(f'Unclosed start tag "{name}" at byte offset {offset}')
        i, value = _attribute_value(source, i)
        if i >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
        if name == "a" and attribute == "href":
            argument = value
        elif name == "code" and attribute == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif name == "span" and attribute == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif name == "tg-emoji" and attribute == "emoji-id":
            argument = value
        # Other attributes are ignored, as Telegram does.
    if name == "span" and argument != "spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    return i + 1, _OpenTag(name, argument, 0, 0, expandable)


def _attribute_value(source: str, i: int) -> tuple[int, str]:
    """A quoted string (entities decoded) or a bare name token (lowercased)."""
    n = len(source)
    quote = source[i]
    if quote not in "'\"":
        token = _NAME_TOKEN.match(source, i)
        assert token is not None
        end = token.end()
        if end < n and source[end] not in SPACE and source[end] != ">":
            raise EntityParseError(
                f"Unexpected end of name token at byte offset {_byte_offset(source, i)}"
            )
        return end, token.group().lower()
    i += 1
    end = source.find(quote, i)
    if end < 0:
        end = n
    raw = source[i:end]
    if "&" in raw:
        raw = _decode_attribute_entities(raw)
    return min(end + 1, n), raw


def _decode_attribute_entities(raw: str) -> str:
    value: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            character, after = _decode_entity(raw, i)
            if character is not None:
                value.append(character)
                i = after
                continue
        value.append(raw[i])
        i += 1
    return "".join(value)


def _close_tag(
    source: str,
    begin: int,
    stack: list[_OpenTag],
    entities: list[JsonDict],
    out: list[str],
    utf16: int,
) -> int:
    """Parse the end tag at source[begin] ('</'), emit its entity; return the index after '>'."""
    n = len(source)
    offset = _ByteOffset(source, begin)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
    i = begin + 2
    while i < n and source[i] not in SPACE and source[i] != ">":
        i += 1
    end_name = source[begin + 2 : i].lower()
    i = _skip_spaces(source, i)
    if i >= n or source[i] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {offset}")
    tag = stack.pop()
    if end_name and end_name != tag.name:
        raise EntityParseError(
            f'Unmatched end tag at byte offset {offset}, expected "</{tag.name}>", '
            f'found "</{end_name}>"'
        )
    if utf16 > tag.offset:
        _emit_entity(tag, utf16 - tag.offset, entities, out)
    return i + 1


def _emit_entity(tag: _OpenTag, length: int, entities: list[JsonDict], out: list[str]) -> None:
    entity: JsonDict = {"offset": tag.offset, "length": length}
    name = tag.name
    if name in _SIMPLE_TAG_TYPES:
        entity["type"] = _SIMPLE_TAG_TYPES[name]
    elif name == "tg-emoji":
        if not tag.argument.isdigit() or int(tag.argument) == 0:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entity.update(type="custom_emoji", custom_emoji_id=tag.argument)
    elif name == "a":
        url = _checked_link(tag.argument or "".join(out[tag.start :]))
        if url is None:
            return  # Telegram drops links it cannot use, without an error
        entity.update(type="text_link", url=url)
    elif name in ("pre", "code"):
        if _merge_pre_code(tag, length, entities):
            return
        entity["type"] = name
        if name == "code" and tag.argument:
            entity["language"] = tag.argument  # dropped again unless a <pre> wraps it
    else:  # blockquote
        entity["type"] = "expandable_blockquote" if tag.expandable else "blockquote"
    entities.append(entity)


def _merge_pre_code(tag: _OpenTag, length: int, entities: list[JsonDict]) -> bool:
    """<pre><code class="language-x">...</code></pre> is one pre entity with a language."""
    if entities:
        last = entities[-1]
        same_span = last["offset"] == tag.offset and last["length"] == length
        if same_span and tag.name == "pre" and last["type"] == "code" and "language" in last:
            last["type"] = "pre"
            return True
        if same_span and tag.name == "code" and last["type"] == "pre" and tag.argument:
            last["language"] = tag.argument
            return True
    return False


def _checked_link(url: str) -> str | None:
    url = url.strip()
    if not url or any(c in SPACE for c in url):
        return None
    if url.lower().startswith(_LINK_SCHEMES):
        return url
    if "://" in url or "." not in url:
        return None
    return "http://" + url


def finish_entities(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Telegram trims whitespace around a text; entities move with it and lose empty parts."""
    stripped_start = text.lstrip(_TRIM)
    result = stripped_start.rstrip(_TRIM)
    if result == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(stripped_start)])
    total = utf16_len(result)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return result, kept


# --------------------------------------------------------------------------------------------
# Back to HTML: what the user sees, as markup


_HTML_TAGS: Final = {
    "bold": ("<b>", "</b>"),
    "italic": ("<i>", "</i>"),
    "underline": ("<u>", "</u>"),
    "strikethrough": ("<s>", "</s>"),
    "spoiler": ("<tg-spoiler>", "</tg-spoiler>"),
    "code": ("<code>", "</code>"),
    "blockquote": ("<blockquote>", "</blockquote>"),
    "expandable_blockquote": ("<blockquote expandable>", "</blockquote>"),
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _entity_tags(entity: JsonDict) -> tuple[str, str]:
    kind = entity["type"]
    if kind in _HTML_TAGS:
        return _HTML_TAGS[kind]
    if kind == "text_link":
        return f'<a href="{_escape(entity["url"]).replace(chr(34), "&quot;")}">', "</a>"
    if kind == "pre":
        if entity.get("language"):
            return f'<pre><code class="language-{entity["language"]}">', "</code></pre>"
        return "<pre>", "</pre>"
    if kind == "custom_emoji":
        return f'<tg-emoji emoji-id="{entity["custom_emoji_id"]}">', "</tg-emoji>"
    return "", ""  # url, mention, bot_command...: plain text in HTML


def render_html(text: str, entities: list[JsonDict]) -> str:
    """Text and entities back to normalized Telegram HTML (what the user sees, as markup)."""
    if not entities:
        return _escape(text)
    units = text.encode("utf-16-le")
    events: list[tuple[int, int, int, int, str]] = []  # (position, kind, tie-breaks, tag)
    for index, entity in enumerate(entities):
        start, end = entity["offset"], entity["offset"] + entity["length"]
        opening, closing = _entity_tags(entity)
        # At one position closings come first, inner before outer; openings outer first.
        events.append((start, 1, -end, index, opening))
        events.append((end, 0, -start, -index, closing))
    events.sort()
    pieces = []
    position = 0
    for at, _, _, _, tag in events:
        if at > position:
            pieces.append(_escape(units[position * 2 : at * 2].decode("utf-16-le")))
            position = at
        pieces.append(tag)
    pieces.append(_escape(units[position * 2 :].decode("utf-16-le")))
    return "".join(pieces)


# --------------------------------------------------------------------------------------------
# A text the bot sends, and a text a user writes


def formatted_text(
    text: str,
    parse_mode: str | None,
    entities: list[JsonDict] | None,
    limit: int,
    *,
    strict_entities: bool,
) -> tuple[str, list[JsonDict]]:
    """Apply parse_mode or explicit entities, trim, and enforce the length limit."""
    if entities is not None:
        plain, found = text, [dict(e) for e in entities]
        for entity in found:
            if entity["offset"] < 0 or entity["offset"] + entity["length"] > utf16_len(text):
                raise bad_request("can't parse entities: entity is out of the text bounds")
    elif parse_mode:
        if parse_mode.lower() != "html":
            raise bad_request(
                f"unsupported parse_mode {parse_mode!r}: the fake Bot API speaks HTML only"
            )
        try:
            plain, found = parse_html(text, strict_entities=strict_entities)
        except EntityParseError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    else:
        plain, found = text, []
    plain, found = finish_entities(plain, found)
    if len(found) > ENTITY_LIMIT:
        # Stricter than Telegram, which keeps only the first 100 (module docstring).
        raise bad_request(
            f"too many entities: {len(found)}; Telegram keeps the formatting of the first "
            f"{ENTITY_LIMIT} only"
        )
    if utf16_len(plain) > limit:
        raise bad_request(
            "message is too long" if limit == MESSAGE_LIMIT else "message caption is too long"
        )
    return plain, found


_BOT_COMMAND: Final = re.compile(
    r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>@])"
)
_URL: Final = re.compile(r"\bhttps?://[^\s<>\"]+")


def detect_entities(text: str) -> list[JsonDict]:
    """The entities Telegram adds to a user's text: bot commands and URLs."""
    entities = []
    for kind, pattern in (("bot_command", _BOT_COMMAND), ("url", _URL)):
        for match in pattern.finditer(text):
            entities.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
    return sorted(entities, key=lambda e: e["offset"])
