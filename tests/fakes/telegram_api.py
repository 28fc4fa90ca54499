"""A strict, fast fake of the Telegram Bot API for end-to-end tests and benchmarks.

The fake is an aiohttp.web server on 127.0.0.1 (random port). It speaks python-telegram-bot's
URL forms: `POST|GET {base_url}<token>/<method>` with `base_url = http://127.0.0.1:PORT/bot`
and file downloads at `{base_file_url}<token>/<file_path>`.

Start it inside the test's event loop:

    async with FakeTelegram() as fake:
        bot = telegram.Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url)
        alice = fake.add_user(1001, "Alice")
        chat = fake.private_chat(alice)
        fake.user_command(chat, alice, "start")          # an update for getUpdates
        [alert] = await fake.wait_for_messages(chat.id, 1)
        assert alert.text == "..."; assert "<b>" in alert.html

What it checks, like Telegram does (and where noted, stricter):
- every method, parameter and value against the Bot API spec (shared/telegram-bot-api/
  api.json): unknown method -> 404; missing required parameter or wrong type -> 400.
  Stricter than Telegram: an unknown parameter, or an unknown field inside a JSON-serialized
  object (reply_markup, link_preview_options...), is a 400 instead of being ignored.
- HTML parse_mode with Telegram's tags, entities and error texts ("can't parse entities:
  ..."), the 4096 UTF-16 code unit limit counted after parsing, empty text after parsing.
  Stricter than Telegram: an unknown named entity such as `&nbsp;` is a 400 (Telegram would
  show the characters `&nbsp;` literally, which is never what a bot meant). Turn this off with
  `FakeTelegram(strict_html_entities=False)`. More than 100 entities in one text (counted
  after parsing) is a 400 too: Telegram sends the message but drops the formatting, links
  included, from the 101st entity on, again never what a bot meant.
- sendPhoto like Telegram: the caption's HTML and its 1024 UTF-16 units counted after
  parsing; a photo given by URL is fetched (GET) as Telegram would fetch it, and refused
  with Telegram's texts when it cannot be ("failed to get HTTP URL content": no answer,
  not 200, over 5 MB; "wrong type of the web page content": not JPEG, PNG or GIF;
  "IMAGE_PROCESS_FAILED": bytes that are no such image; "PHOTO_INVALID_DIMENSIONS": width
  plus height over 10000 or one side over 20 times the other). Only loopback hosts are
  fetched (tests serve pictures from their feed server): any other host is unreachable
  from a test, so it is answered as a URL Telegram could not fetch. A refused photo does
  not count against flood limits (nothing was sent).
- values Telegram checks beyond their type: sendChatAction's action; an inline button's
  text (not empty), url (an http(s) address with a dotted host name, or a tg:// or ton://
  link) and callback_data (1-64 bytes); answerCallbackQuery's text (at most 200 characters).
- flood control (see FloodLimits), chat state (blocked, kicked, migrated, deactivated, unknown
  chats: a chat must be known to the fake, through add_*/private_chat or an injected update).

Faults are injected by the test (block, kick, deactivate_user, forget_chat, migrate,
force_retry_after, fail_next, fail_for, delay, answer_slowly, drop_next). Every request and
every sent message is recorded (`fake.requests`, `fake.sent`, `fake.messages(chat_id)`).

For benchmarks, FakeTelegramProcess runs the server in a child process so that its CPU time
is not counted as the client's.
"""

# The wait_* helpers take a `timeout` argument on purpose: tests read better with
# `await fake.wait_for_messages(chat, 2, timeout=3)` than with a context manager around it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import re
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

SPEC_ENV_VAR: Final = "TELEGRAM_API_SPEC"
DEFAULT_TOKEN: Final = "123456789:AAHfakeTOKENforTESTSonly0123456789abc"
MESSAGE_LIMIT: Final = 4096  # UTF-16 code units after entity parsing
CAPTION_LIMIT: Final = 1024
ENTITY_LIMIT: Final = 100  # formatting entities in one text, counted after parsing
CALLBACK_ANSWER_LIMIT: Final = 200  # characters of an answerCallbackQuery notification
CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
DOWNLOAD_LIMIT: Final = 20 * 1024 * 1024  # getFile refuses bigger files, as Telegram does
PHOTO_URL_LIMIT: Final = 5 * 1024 * 1024  # a photo sent by URL (sendPhoto docs)
PHOTO_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif"})

JsonDict = dict[str, Any]


def default_spec_path() -> Path:
    """api.json: $TELEGRAM_API_SPEC, else shared/telegram-bot-api/ beside the repository."""
    override = os.environ.get(SPEC_ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared/telegram-bot-api/api.json"


# --------------------------------------------------------------------------------------------
# Errors answered to the client


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description, optional ResponseParameters."""

    def __init__(self, status: int, description: str, parameters: JsonDict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


# --------------------------------------------------------------------------------------------
# Spec: per-method field tables, compiled once into small checking functions


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A multipart part that carried a filename: an InputFile upload."""

    name: str
    filename: str
    content_type: str
    data: bytes


class _Mismatch(Exception):
    """A value does not fit the expected type; the message says where and why."""


# A checker takes a value and whether it came from a form (all strings) or from JSON (native
# types), and returns the value converted to its Python form, or raises _Mismatch.
Checker = Callable[[Any, bool], Any]

_INT_RE: Final = re.compile(r"-?\d{1,19}")
_BOOL_FORM: Final = {"true": True, "false": False, "1": True, "0": False}
_DISCRIMINATOR: Final = re.compile(r"(?:must be|always)\W*(\w+)")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_integer(value: Any, form: bool) -> int:
    if form:
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            return int(value)
    elif type(value) is int:
        return value
    raise _Mismatch(f"expected Integer, got {_describe(value)}")


def _check_float(value: Any, form: bool) -> float:
    if form and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif not form and type(value) in (int, float):
        return float(value)
    raise _Mismatch(f"expected Float, got {_describe(value)}")


def _check_boolean(value: Any, form: bool) -> bool:
    if form:
        if isinstance(value, str) and value.lower() in _BOOL_FORM:
            return _BOOL_FORM[value.lower()]
    elif type(value) is bool:
        return value
    raise _Mismatch(f"expected Boolean, got {_describe(value)}")


def _check_string(value: Any, form: bool) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch(f"expected String, got {_describe(value)}")


def _check_input_file(value: Any, form: bool) -> Any:
    # Inside JSON-serialized objects an upload is referenced as "attach://<part name>".
    if isinstance(value, UploadedFile) or (not form and isinstance(value, str)):
        return value
    raise _Mismatch(f"expected InputFile (a multipart upload), got {_describe(value)}")


_SCALARS: Final[dict[str, Checker]] = {
    "Integer": _check_integer,
    "Float": _check_float,
    "Boolean": _check_boolean,
    "String": _check_string,
    "InputFile": _check_input_file,
}

# Semantic checks Telegram makes inside objects, keyed by type name.
_BUTTON_ACTIONS: Final = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def _check_inline_button(button: JsonDict) -> None:
    if not any(key in button for key in _BUTTON_ACTIONS):
        raise ApiError(
            400,
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        )
    if not button["text"].strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    url = button.get("url")
    if url is not None and (problem := _button_url_problem(url)):
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: {problem}")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(data.encode()) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")


_URL_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOST_LABEL: Final = re.compile(r"[^\W_](?:[\w\-]*[^\W_])?")


def _button_url_problem(url: str) -> str | None:
    """Why Telegram refuses a button's url (tdlib's check_link, in short), or None.

    http and https links are accepted with or without their scheme ("example.org" opens
    http://example.org/) when the host is a dotted name; tg:// and ton:// links are
    accepted as they are; other schemes are not.
    """
    if not url or any(c in _SPACE for c in url):
        return "Wrong HTTP URL"
    scheme = _URL_SCHEME.match(url)
    rest = url
    if scheme is not None:
        name = scheme.group(1).lower()
        if name in ("tg", "ton", "tonsite"):
            return None if url[scheme.end() :] else "Wrong HTTP URL"
        if name not in ("http", "https"):
            return "Unsupported URL protocol"
        rest = url[scheme.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    host, colon, port = authority.partition(":")
    if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
        return "Wrong port number specified in the URL"
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "Wrong HTTP URL"
    return None


_OBJECT_RULES: Final[dict[str, Callable[[JsonDict], None]]] = {
    "InlineKeyboardButton": _check_inline_button,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool
    check: Checker


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    fields: dict[str, FieldSpec]
    required: tuple[str, ...]
    returns: tuple[str, ...]
    accepts_files: bool


class ApiSpec:
    """The Bot API spec, with one compiled checker per method parameter."""

    def __init__(self, raw: JsonDict) -> None:
        self.version: str = raw.get("version", "")
        self._types: dict[str, JsonDict] = raw["types"]
        self._object_checkers: dict[str, Checker] = {}
        self.methods: dict[str, MethodSpec] = {}
        for name, method in raw["methods"].items():
            fields = {
                f["name"]: FieldSpec(
                    f["name"], tuple(f["types"]), f["required"], self.checker(f["types"])
                )
                for f in method.get("fields", [])
            }
            self.methods[name.lower()] = MethodSpec(
                name=name,
                fields=fields,
                required=tuple(n for n, f in fields.items() if f.required),
                returns=tuple(method.get("returns", [])),
                accepts_files=any("InputFile" in f.types for f in fields.values()),
            )

    @classmethod
    def load(cls, path: Path | None = None) -> ApiSpec:
        return cls(json.loads((path or default_spec_path()).read_text(encoding="utf-8")))

    def method(self, name: str) -> MethodSpec | None:
        """Bot API method names are case-insensitive."""
        return self.methods.get(name.lower())

    def required_fields(self, type_name: str) -> list[str]:
        return [f["name"] for f in self._types[type_name].get("fields", []) if f["required"]]

    def checker(self, types: Iterable[str]) -> Checker:
        """A checker accepting any of `types` (Telegram's "Integer or String")."""
        alternatives = [self._single_checker(t) for t in types]
        if len(alternatives) == 1:
            return alternatives[0]
        names = " or ".join(types)

        def check_union(value: Any, form: bool) -> Any:
            problems = []
            for alternative in alternatives:
                try:
                    return alternative(value, form)
                except _Mismatch as exc:
                    problems.append(str(exc))
            # The most specific complaint is the one that got past the outer shape.
            detailed = [p for p in problems if not p.startswith("expected ")]
            raise _Mismatch(
                detailed[0] if detailed else f"expected {names}, got {_describe(value)}"
            )

        return check_union

    def _single_checker(self, type_name: str) -> Checker:
        if type_name in _SCALARS:
            return _SCALARS[type_name]
        if type_name.startswith("Array of "):
            return self._array_checker(self._single_checker(type_name[len("Array of ") :]))
        if type_name in self._types:
            return self._object_checker(type_name)
        raise ValueError(f"type {type_name!r} is not in the Bot API spec")

    def _array_checker(self, item: Checker) -> Checker:
        def check_array(value: Any, form: bool) -> list[Any]:
            value = _decode_json_field(value, form)
            if not isinstance(value, list):
                raise _Mismatch(f"expected a JSON array, got {_describe(value)}")
            result = []
            for index, element in enumerate(value):
                try:
                    result.append(item(element, False))
                except _Mismatch as exc:
                    raise _Mismatch(f"[{index}]: {exc}") from None
            return result

        return check_array

    def _object_checker(self, type_name: str) -> Checker:
        """Checker for a JSON object type, built lazily because types refer to each other."""
        if type_name in self._object_checkers:
            return self._object_checkers[type_name]
        compiled: list[Checker] = []

        def check_object(value: Any, form: bool) -> Any:
            if not compiled:
                compiled.append(self._compile_object(type_name))
            return compiled[0](_decode_json_field(value, form), False)

        self._object_checkers[type_name] = check_object
        return check_object

    def _compile_object(self, type_name: str) -> Checker:
        definition = self._types[type_name]
        if "subtypes" in definition:
            return self._compile_abstract(type_name, definition["subtypes"])
        fields = {
            f["name"]: (f["required"], self.checker(f["types"]))
            for f in definition.get("fields", [])
        }
        required = [name for name, (is_required, _) in fields.items() if is_required]
        rule = _OBJECT_RULES.get(type_name)

        def check_fields(value: Any, form: bool) -> JsonDict:
            if not isinstance(value, dict):
                raise _Mismatch(f"expected a JSON object {type_name}, got {_describe(value)}")
            for name in required:
                if name not in value:
                    raise _Mismatch(f"{type_name}: required field {name!r} is missing")
            for name, element in value.items():
                if name not in fields:
                    raise _Mismatch(f"{type_name}: unknown field {name!r}")
                try:
                    fields[name][1](element, False)
                except _Mismatch as exc:
                    raise _Mismatch(f"{type_name}.{name}: {exc}") from None
            if rule is not None:
                rule(value)
            return value

        return check_fields

    def _compile_abstract(self, type_name: str, subtypes: list[str]) -> Checker:
        """A union type (BotCommandScope...): dispatch on its discriminator field's value.

        Subtypes without a recognisable discriminator are tried one after the other.
        """
        by_tag: dict[tuple[str, str], str] = {}
        untagged: list[Checker] = []
        for subtype in subtypes:
            if subtype not in self._types:
                untagged.append(self._single_checker(subtype))
                continue
            for f in self._types[subtype].get("fields", []):
                match = _DISCRIMINATOR.search(f["description"])
                if f["required"] and match:
                    by_tag[(f["name"], match.group(1))] = subtype
                    break
            else:
                untagged.append(self._object_checker(subtype))
        keys = {key for key, _ in by_tag}

        def check_abstract(value: Any, form: bool) -> Any:
            if isinstance(value, dict):
                for key in keys:
                    subtype = by_tag.get((key, value.get(key)))  # type: ignore[arg-type]
                    if subtype is not None:
                        return self._object_checker(subtype)(value, False)
            for alternative in untagged:
                with contextlib.suppress(_Mismatch):
                    return alternative(value, False)
            raise _Mismatch(f"{type_name}: unknown kind {_describe(value)}")

        return check_abstract

    def validate(
        self, method: MethodSpec, form: dict[str, Any], body: dict[str, Any]
    ) -> dict[str, Any]:
        """Check and convert parameters (form values are strings or uploads, body is JSON)."""
        params: dict[str, Any] = {}
        for values, is_form in ((form, True), (body, False)):
            for name, value in values.items():
                spec = method.fields.get(name)
                if spec is None:
                    raise bad_request(f'unknown parameter "{name}" for method {method.name}')
                try:
                    params[name] = spec.check(value, is_form)
                except _Mismatch as exc:
                    raise bad_request(f'wrong type of parameter "{name}": {exc}') from None
        for name in method.required:
            if name not in params:
                raise _missing_parameter(method.name, name)
        return params


def _decode_json_field(value: Any, form: bool) -> Any:
    """Objects and arrays travel as JSON strings in forms (and may in JSON bodies too)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _Mismatch(f"expected JSON-serialized data, got {_describe(value)}") from None
    if form:
        raise _Mismatch(f"expected JSON-serialized data, got {_describe(value)}")
    return value


def _missing_parameter(method: str, name: str) -> ApiError:
    # Telegram's own words for the common ones.
    if name == "chat_id":
        return bad_request("chat_id is empty")
    if name == "text" and method == "sendMessage":
        return bad_request("message text is empty")
    return bad_request(f'parameter "{name}" is required for method {method}')


# --------------------------------------------------------------------------------------------
# HTML parse mode, as Telegram's parser (tdlib's parse_html) reads it


class EntityParseError(Exception):
    """The text is not valid Telegram HTML; str() is the part after "can't parse entities: "."""


_SPACE: Final = frozenset(" \t\r\n\v\f")
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
    while i < n and source[i] in _SPACE:
        i += 1
    return i


def _open_tag(source: str, begin: int) -> tuple[int, _OpenTag]:
    """Parse the start tag at source[begin] ('<'); return the index after '>' and the tag."""
    n = len(source)
    i = begin + 1
    while i < n and source[i] not in _SPACE and source[i] != ">":
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
        while i < n and source[i] not in _SPACE and source[i] not in "=>":
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
        if end < n and source[end] not in _SPACE and source[end] != ">":
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
    while i < n and source[i] not in _SPACE and source[i] != ">":
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
    if not url or any(c in _SPACE for c in url):
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
# Flood control


@dataclass
class FloodLimits:
    """Telegram's broadcast limits, per bot. Changes apply at once (fields are read per send).

    - one chat: `chat_per_second` sustained with bursts of `chat_burst` (a token bucket).
      Telegram asks for at most one message a second per chat and tolerates short bursts;
      the default burst of 2 absorbs timer jitter of a bot that paces itself at 1/s, while a
      third message in the same second is refused.
    - one group, supergroup or channel (negative chat id): at most `group_per_minute`
      messages in any 60 seconds (a sliding window), on top of the per-chat bucket.
    - all chats together: `global_per_second` with bursts of `global_burst`.
    Only methods that create messages (send*, copy*, forward*) count; a refused call does
    not. Set `enabled = False` for throughput benchmarks.
    """

    enabled: bool = True
    chat_per_second: float = 1.0
    chat_burst: int = 2
    group_per_minute: int = 20
    global_per_second: float = 30.0
    global_burst: int = 30


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float

    def wait(self, now: float, rate: float, capacity: float) -> float:
        """Seconds until one token is available (0 when one is), after refilling."""
        self.tokens = min(capacity, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / rate


class FloodControl:
    """Admits or refuses each message-creating call; counts refusals per chat."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._chats: dict[int, _Bucket] = {}
        self._groups: dict[int, deque[float]] = {}
        self._global = _Bucket(float(limits.global_burst), clock())
        self.refused: Counter[int] = Counter()

    def admit(self, chat_id: int) -> int:
        """0 if the message may go now (and count it), else Telegram's retry_after seconds."""
        limits = self.limits
        if not limits.enabled:
            return 0
        now = self._clock()
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Bucket(float(limits.chat_burst), now)
        wait = max(
            chat.wait(now, limits.chat_per_second, limits.chat_burst),
            self._global.wait(now, limits.global_per_second, limits.global_burst),
        )
        window = None
        if chat_id < 0:
            window = self._groups.setdefault(chat_id, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= limits.group_per_minute:
                wait = max(wait, window[0] + 60 - now)
        if wait > 0:
            self.refused[chat_id] += 1
            return max(1, math.ceil(wait))
        chat.tokens -= 1
        self._global.tokens -= 1
        if window is not None:
            window.append(now)
        return 0


# --------------------------------------------------------------------------------------------
# Users, chats and what the bot sent


@dataclass(frozen=True, slots=True)
class User:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "en"
    is_bot: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str  # private, group, supergroup, channel
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    is_forum: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.is_forum:
            data["is_forum"] = True
        return data

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")


@dataclass(eq=False)
class SentMessage:
    """A message the bot sent, as the user sees it (`text`, `entities`, `html`)."""

    chat_id: int
    message_id: int
    text: str  # plain text after parsing; the caption for documents
    entities: list[JsonDict]
    source: str  # text (or caption) exactly as the bot sent it
    parse_mode: str | None
    thread_id: int | None
    reply_markup: JsonDict | None
    method: str
    params: dict[str, Any]
    sent_at: float  # time.time()
    document: JsonDict | None = None
    photo: list[JsonDict] | None = None  # PhotoSize array of a sendPhoto
    deleted: bool = False
    edits: list[str] = field(default_factory=list)  # earlier texts, oldest first
    edit_date: int | None = None

    @property
    def html(self) -> str:
        return render_html(self.text, self.entities)

    @property
    def buttons(self) -> list[JsonDict]:
        """The inline keyboard's buttons, row after row."""
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str  # canonical name, e.g. "sendMessage"
    params: dict[str, Any]  # converted values when valid, raw strings otherwise
    time: float  # time.time()
    status: int  # 0: the connection was dropped before the call was read
    description: str | None  # the error description, None on success


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None
    mime_type: str | None

    def document(self) -> JsonDict:
        data: JsonDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.file_name:
            data["file_name"] = self.file_name
        if self.mime_type:
            data["mime_type"] = self.mime_type
        return data


@dataclass
class _ChatState:
    chat: Chat
    bot_status: str  # member, administrator, kicked, left
    api: JsonDict
    next_message_id: int = 1
    messages: dict[int, SentMessage] = field(default_factory=dict)
    user_messages: set[int] = field(default_factory=set)
    admins: dict[int, str] = field(default_factory=dict)  # user id -> creator|administrator
    members: set[int] = field(default_factory=set)
    topics: set[int] = field(default_factory=set)
    deactivated: bool = False
    migrated_to: int | None = None
    forced_retry: deque[int] = field(default_factory=deque)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class _TransportFault:
    """A fault of the server or the network rather than of one chat."""

    kind: str  # fail, drop, drop_after
    status: int
    remaining: int | None  # calls left, or None while `until` holds
    until: float | None
    methods: frozenset[str] | None

    def applies(self, method: str, now: float) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.until is not None:
            return now < self.until
        return bool(self.remaining)


@dataclass(frozen=True, slots=True)
class _SlowSpell:
    """A while in which Telegram answers late (answer_slowly)."""

    seconds: float
    until: float
    methods: frozenset[str] | None

    def delay(self, method: str, now: float) -> float:
        """How late a call of `method` arriving `now` is carried out and answered."""
        if now >= self.until or (self.methods is not None and method not in self.methods):
            return 0.0
        return self.seconds


_STATUS_TEXT: Final = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
_DEFAULT_UPDATES: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
_CREATES_MESSAGE: Final = re.compile(r"^(send(?!ChatAction)|copyMessage|forwardMessage)")
_BOT_COMMAND: Final = re.compile(
    r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>@])"
)
_URL: Final = re.compile(r"\bhttps?://[^\s<>\"]+")
_COMMAND_NAME: Final = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE_CODE: Final = re.compile(r"[a-z]{2}")
_ADMIN_RIGHTS: Final = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_post_messages": True,
    "can_edit_messages": True,
    "can_pin_messages": True,
    "can_manage_topics": True,
}
_CONFLICT_OTHER_POLL: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


Handler = Callable[[dict[str, Any]], Any]


class FakeTelegram:
    """The fake Bot API server and its test controls. See the module docstring."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "news_notifier_test_bot",
        bot_name: str = "News Notifier",
        spec: ApiSpec | None = None,
        spec_path: Path | None = None,
        limits: FloodLimits | None = None,
        strict_html_entities: bool = True,
        record_requests: bool = True,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ) -> None:
        self.token = token
        self.spec = spec or ApiSpec.load(spec_path)
        self.bot_user = User(
            int(token.split(":", 1)[0]),
            bot_name,
            username=bot_username,
            language_code=None,
            is_bot=True,
        )
        self._bot_api = self.bot_user.to_api()
        self.strict_html_entities = strict_html_entities
        self.record_requests = record_requests
        self.flood = FloodControl(limits or FloodLimits(), clock)
        self._clock = clock
        self._port = port
        self._runner: web.AppRunner | None = None

        self.requests: list[RecordedRequest] = []
        self.request_counts: Counter[str] = Counter()  # by lowercased method name
        self.retry_after_by_chat: Counter[int] = Counter()  # 429s answered, per chat
        self.sent: list[SentMessage] = []
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.webhook_url = ""

        self._users: dict[int, User] = {self.bot_user.id: self.bot_user}
        self._chats: dict[int, _ChatState] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callback_queries: dict[str, bool] = {}  # id -> answered
        self._callback_counter = itertools.count(1)
        self._updates: deque[JsonDict] = deque()
        self._next_update_id = 100_000
        self._allowed_updates: frozenset[str] = _DEFAULT_UPDATES
        self._updates_arrived = asyncio.Event()
        self._poll_generation = 0
        self._closing = False
        self._faults: list[_TransportFault] = []
        self._delay = 0.0
        self._delay_methods: frozenset[str] | None = None
        self._slow = _SlowSpell(0.0, 0.0, None)
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._handlers: dict[str, Handler] = self._method_handlers()

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        # No access log: it would cost more than the fake's own work per request.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True
        self._updates_arrived.set()  # release long polls so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """python-telegram-bot's base_url (also TELEGRAM_API_BASE_URL)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # ---- chats and users (test setup) ------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "User",
        *,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> User:
        user = User(user_id, first_name, username=username, language_code=language_code)
        self._users[user_id] = user
        return user

    def private_chat(self, user: User) -> Chat:
        """The user's private chat with the bot (its id is the user's id)."""
        self._users.setdefault(user.id, user)
        chat = Chat(user.id, "private", username=user.username, first_name=user.first_name)
        state = self._register(chat, "member")
        state.members.add(user.id)
        return chat

    def add_group(
        self,
        chat_id: int,
        title: str = "Group",
        *,
        supergroup: bool = False,
        forum: bool = False,
        username: str | None = None,
        admins: Iterable[User] = (),
        creator: User | None = None,
        bot_status: str = "member",
    ) -> Chat:
        """A group (or supergroup, or forum supergroup) the bot is in; chat_id is negative."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        kind = "supergroup" if supergroup or forum else "group"
        chat = Chat(chat_id, kind, title=title, username=username, is_forum=forum)
        self._register(chat, bot_status)
        self.set_admins(chat_id, admins, creator=creator)
        return chat

    def add_channel(
        self,
        chat_id: int,
        title: str = "Channel",
        *,
        username: str | None = None,
        admins: Iterable[User] = (),
        creator: User | None = None,
        bot_status: str = "administrator",
    ) -> Chat:
        """A channel; the bot must be an administrator to post there, as on Telegram."""
        if chat_id >= 0:
            raise ValueError("channel chat ids are negative")
        chat = Chat(chat_id, "channel", title=title, username=username)
        self._register(chat, bot_status)
        self.set_admins(chat_id, admins, creator=creator)
        return chat

    def set_admins(
        self, chat_id: int, admins: Iterable[User], *, creator: User | None = None
    ) -> None:
        """Who getChatMember/getChatAdministrators report as creator and administrators."""
        state = self._state(chat_id)
        admins = list(admins)
        state.admins = {user.id: "administrator" for user in admins}
        if creator is not None:
            state.admins[creator.id] = "creator"
            admins.append(creator)
        for user in admins:
            self._users.setdefault(user.id, user)
        for user_id in state.admins:
            state.members.add(user_id)

    def add_topic(self, chat_id: int, thread_id: int) -> None:
        """A forum topic that messages may be sent to."""
        self._state(chat_id).topics.add(thread_id)

    def chat(self, chat_id: int) -> Chat:
        return self._state(chat_id).chat

    def _register(self, chat: Chat, bot_status: str) -> _ChatState:
        existing = self._chats.get(chat.id)
        if existing is not None:
            existing.chat, existing.api = chat, chat.to_api()
            return existing
        state = _ChatState(chat=chat, bot_status=bot_status, api=chat.to_api())
        self._chats[chat.id] = state
        return state

    def _state(self, chat_id: int) -> _ChatState:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise KeyError(f"chat {chat_id} is not known to the fake; add it first") from None

    # ---- faults ----------------------------------------------------------------------------

    def block(self, chat_id: int, *, update: bool = True) -> None:
        """The user blocks the bot: sends to their private chat answer 403."""
        state = self._state(chat_id)
        self._set_bot_status(state, "kicked", self._users[chat_id], update)

    def unblock(self, chat_id: int, *, update: bool = True) -> None:
        state = self._state(chat_id)
        self._set_bot_status(state, "member", self._users[chat_id], update)

    def kick(self, chat_id: int, by: User | None = None, *, update: bool = True) -> None:
        """The bot is removed from a group, supergroup or channel: sends answer 403."""
        state = self._state(chat_id)
        self._set_bot_status(state, "kicked", by or self._any_admin(state), update)

    def add_bot(
        self, chat_id: int, by: User, *, status: str = "member", update: bool = True
    ) -> None:
        """The bot is (re-)added to a known chat as member or administrator."""
        self._set_bot_status(self._state(chat_id), status, by, update)

    def deactivate_user(self, chat_id: int) -> None:
        """The user deleted their account: 403 "Forbidden: user is deactivated"."""
        self._state(chat_id).deactivated = True

    def forget_chat(self, chat_id: int) -> None:
        """From now on the chat does not exist: 400 "Bad Request: chat not found"."""
        self._chats.pop(chat_id, None)

    def migrate(self, chat_id: int, new_chat_id: int, *, update: bool = True) -> Chat:
        """A group becomes a supergroup: the old id answers 400 with migrate_to_chat_id.

        The new supergroup keeps the title, admins and members; with `update`, the two
        service messages Telegram sends (migrate_to_chat_id, migrate_from_chat_id) are queued.
        """
        old = self._state(chat_id)
        chat = Chat(new_chat_id, "supergroup", title=old.chat.title)
        new = self._register(chat, old.bot_status)
        new.admins, new.members = dict(old.admins), set(old.members)
        if update:
            self._queue_message_update(old, {"migrate_to_chat_id": new_chat_id})
            self._queue_message_update(new, {"migrate_from_chat_id": chat_id})
        old.migrated_to = new_chat_id
        return chat

    def force_retry_after(self, chat_id: int, retry_after: int, *, times: int = 1) -> None:
        """The next `times` messages to this chat answer 429 with this retry_after."""
        self._state(chat_id).forced_retry.extend([retry_after] * times)

    def fail_next(
        self, count: int, *, status: int = 502, methods: Collection[str] | None = None
    ) -> None:
        """The next `count` calls (of `methods`, default all) answer `status` (502, 500...)."""
        self._faults.append(_TransportFault("fail", status, count, None, _names(methods)))

    def fail_for(
        self, seconds: float, *, status: int = 502, methods: Collection[str] | None = None
    ) -> None:
        """The API is down for `seconds`: every call answers `status`."""
        until = self._clock() + seconds
        self._faults.append(_TransportFault("fail", status, None, until, _names(methods)))

    def drop_next(
        self,
        count: int,
        *,
        methods: Collection[str] | None = None,
        after_processing: bool = False,
    ) -> None:
        """Close the connection without an answer for the next `count` calls.

        With `after_processing` the call takes effect first (the message is delivered and
        recorded) and only the answer is lost, as when a connection breaks in flight.
        """
        kind = "drop_after" if after_processing else "drop"
        self._faults.append(_TransportFault(kind, 0, count, None, _names(methods)))

    def delay(self, seconds: float, *, methods: Collection[str] | None = None) -> None:
        """Answer every call (of `methods`) `seconds` late; delay(0) ends it."""
        self._delay, self._delay_methods = seconds, _names(methods)

    def answer_slowly(
        self, seconds: float, *, for_seconds: float, methods: Collection[str] | None = None
    ) -> None:
        """Telegram is slow for `for_seconds`: each call (of `methods`) arriving meanwhile is
        read at once and carried out and answered `seconds` later, even when the client has
        given up waiting by then, as the real Telegram carries out every request it received.
        """
        self._slow = _SlowSpell(seconds, self._clock() + for_seconds, _names(methods))

    def clear_faults(self) -> None:
        """End transport faults, delays and forced 429s (chat states stay as they are)."""
        self._faults.clear()
        self._delay = 0.0
        self._slow = _SlowSpell(0.0, 0.0, None)
        for state in self._chats.values():
            state.forced_retry.clear()

    @property
    def limits(self) -> FloodLimits:
        return self.flood.limits

    # ---- updates (what users do) -----------------------------------------------------------

    def user_message(
        self,
        chat: Chat,
        user: User,
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> JsonDict:
        """A user writes `text` (bot commands and URLs get their entities); returns the update."""
        self._users.setdefault(user.id, user)
        state = self._chats.get(chat.id) or self._register(chat, "member")
        state.members.add(user.id)
        extra: JsonDict = {"from": user.to_api(), "text": text}
        entities = _detect_entities(text)
        if entities:
            extra["entities"] = entities
        if thread_id is not None:
            state.topics.add(thread_id)
            extra["message_thread_id"] = thread_id
            if chat.is_forum:
                extra["is_topic_message"] = True
        if reply_to is not None:
            extra["reply_to_message"] = self._message_api(state, reply_to)
        return self._queue_message_update(state, extra)

    def user_command(
        self,
        chat: Chat,
        user: User,
        command: str,
        *args: str,
        thread_id: int | None = None,
        mention: bool | None = None,
    ) -> JsonDict:
        """A user sends /command (with @botname in groups unless mention=False) and args."""
        if mention is None:
            mention = chat.is_group
        text = "/" + command + (f"@{self.bot_user.username}" if mention else "")
        text = " ".join([text, *args])
        return self.user_message(chat, user, text, thread_id=thread_id)

    def channel_post(self, chat: Chat, text: str) -> JsonDict:
        """A post in a channel the bot administers."""
        state = self._chats.get(chat.id) or self._register(chat, "administrator")
        extra: JsonDict = {"sender_chat": state.api, "text": text}
        entities = _detect_entities(text)
        if entities:
            extra["entities"] = entities
        return self._queue_message_update(state, extra, kind="channel_post")

    def user_document(
        self,
        chat: Chat,
        user: User,
        content: bytes,
        file_name: str,
        *,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> JsonDict:
        """A user sends a file; the bot can fetch it with getFile and download it."""
        self._users.setdefault(user.id, user)
        state = self._chats.get(chat.id) or self._register(chat, "member")
        state.members.add(user.id)
        stored = self._store_file(content, file_name, mime_type)
        extra: JsonDict = {"from": user.to_api(), "document": stored.document()}
        if caption:
            extra["caption"] = caption
        return self._queue_message_update(state, extra)

    def press_button(
        self,
        message: SentMessage,
        user: User,
        *,
        data: str | None = None,
        text: str | None = None,
    ) -> JsonDict:
        """A user presses an inline button of a bot message (chosen by callback data or text).

        Raises ValueError when the message has no such button: a test cannot press a button
        the bot never showed.
        """
        for button in message.buttons:
            if (data is None or button.get("callback_data") == data) and (
                text is None or button["text"] == text
            ):
                break
        else:
            raise ValueError(f"no button {data or text!r} in message {message.message_id}")
        if "callback_data" not in button:
            raise ValueError(f"button {button['text']!r} has no callback_data")
        return self._queue_callback_query(message, user, button["callback_data"])

    def press_forged_button(self, message: SentMessage, user: User, data: str) -> JsonDict:
        """A modified client sends a callback query with `data` the bot never put on a button
        of `message` (any string up to Telegram's 64 bytes)."""
        if not 1 <= len(data.encode()) <= 64:
            raise ValueError("callback data must be 1 to 64 bytes")
        return self._queue_callback_query(message, user, data)

    def _queue_callback_query(self, message: SentMessage, user: User, data: str) -> JsonDict:
        self._users.setdefault(user.id, user)
        query_id = f"{next(self._callback_counter)}{user.id}"
        self._callback_queries[query_id] = False
        state = self._state(message.chat_id)
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": self._sent_api(state, message),
            "chat_instance": str(-abs(message.chat_id) * 7919),
            "data": data,
        }
        return self._queue_update("callback_query", query)

    def _set_bot_status(self, state: _ChatState, status: str, by: User, update: bool) -> None:
        old = state.bot_status
        state.bot_status = status
        if update and old != status:
            self._queue_update(
                "my_chat_member",
                {
                    "chat": state.api,
                    "from": by.to_api(),
                    "date": int(time.time()),
                    "old_chat_member": self._member_api(self.bot_user, old),
                    "new_chat_member": self._member_api(self.bot_user, status),
                },
            )

    def _any_admin(self, state: _ChatState) -> User:
        for user_id in state.admins:
            return self._users[user_id]
        return User(777000, "Telegram")

    def _queue_message_update(
        self, state: _ChatState, extra: JsonDict, kind: str | None = None
    ) -> JsonDict:
        message_id = state.take_message_id()
        state.user_messages.add(message_id)
        message = {"message_id": message_id, "date": int(time.time()), "chat": state.api, **extra}
        if kind is None:
            kind = "channel_post" if state.chat.type == "channel" else "message"
        return self._queue_update(kind, message)

    def _queue_update(self, kind: str, payload: JsonDict) -> JsonDict:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._updates.append(update)
        self._updates_arrived.set()
        return update

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates not yet confirmed by the bot (through a later getUpdates offset)."""
        return list(self._updates)

    # ---- reading what happened -------------------------------------------------------------

    def messages(self, chat_id: int, *, thread_id: int | None = None) -> list[SentMessage]:
        """What the bot sent to a chat (and topic), oldest first, deleted ones included."""
        state = self._chats.get(chat_id)
        if state is None:
            return [m for m in self.sent if m.chat_id == chat_id]
        found = list(state.messages.values())
        if thread_id is not None:
            found = [m for m in found if m.thread_id == thread_id]
        return found

    def requests_for(self, method: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method.lower() == method.lower()]

    @property
    def retry_after_count(self) -> int:
        """All 429s answered, forced ones included (per chat: retry_after_by_chat)."""
        return sum(self.retry_after_by_chat.values())

    async def wait_for(
        self, condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until `condition()` holds, checked whenever the fake records something."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def wait_for_messages(
        self,
        chat_id: int,
        count: int = 1,
        timeout: float = 5.0,
        *,
        thread_id: int | None = None,
    ) -> list[SentMessage]:
        """Wait until the bot has sent at least `count` messages to the chat; return them all."""

        def arrived() -> bool:
            return len(self.messages(chat_id, thread_id=thread_id)) >= count

        try:
            await self.wait_for(arrived, timeout, f"{count} message(s) to chat {chat_id}")
        except AssertionError as exc:
            got = [m.text for m in self.messages(chat_id, thread_id=thread_id)]
            raise AssertionError(f"{exc}; got {len(got)}: {got!r}") from None
        return self.messages(chat_id, thread_id=thread_id)

    async def wait_for_request(self, method: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `method` has been called `count` times (any outcome)."""
        name = method.lower()
        await self.wait_for(
            lambda: self.request_counts[name] >= count, timeout, f"{count} call(s) of {method}"
        )

    async def wait_until_updates_consumed(self, timeout: float = 5.0) -> None:
        """Wait until the bot has confirmed every queued update."""
        await self.wait_for(lambda: not self._updates, timeout, "the bot to confirm updates")

    def _notify(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done() and condition():
                future.set_result(None)

    def stats(self) -> JsonDict:
        """Counters, for benchmarks that run the fake in another process."""
        return {
            "requests": sum(self.request_counts.values()),
            "by_method": dict(self.request_counts),
            "messages": len(self.sent),
            "retry_after": self.retry_after_count,
        }

    # ---- HTTP ------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json_response(ApiError(401, "Unauthorized").payload(), 401)
        method = self.spec.method(request.match_info["method"])
        if method is None:
            self.request_counts[request.match_info["method"].lower()] += 1
            return _json_response(ApiError(404, "Not Found").payload(), 404)
        name = method.name
        self.request_counts[name.lower()] += 1
        fault = self._take_fault(name)
        if self._delay and (self._delay_methods is None or name in self._delay_methods):
            await asyncio.sleep(self._delay)
        if fault is not None and fault.kind == "drop":
            self._record(name, {}, 0, "connection dropped")
            return _drop(request)
        if fault is not None and fault.kind == "fail":
            error = ApiError(fault.status, _STATUS_TEXT.get(fault.status, "Server Error"))
            self._record(name, {}, error.status, error.description)
            return _json_response(error.payload(), error.status)

        params: dict[str, Any] = {}
        slow = self._slow.delay(name, self._clock())
        try:
            form, body = await _read_parameters(request)
            if slow:
                # Received, then carried out late: the handler runs on when the client goes
                # away (aiohttp does not cancel it), so the call takes effect regardless.
                await asyncio.sleep(slow)
            params = {**form, **body}
            params = self.spec.validate(method, form, body)
            result = self._handlers.get(name, _true)(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as error:
            self._record(name, params, error.status, error.description)
            if fault is not None:  # drop_after: the call took effect, the answer is lost
                return _drop(request)
            return _json_response(error.payload(), error.status)
        self._record(name, params, 200, None)
        if fault is not None:
            return _drop(request)
        return _json_response({"ok": True, "result": result}, 200)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            return _json_response(ApiError(404, "Not Found").payload(), 404)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    def _take_fault(self, method: str) -> _TransportFault | None:
        if not self._faults:
            return None
        now = self._clock()
        self._faults = [f for f in self._faults if f.remaining or (f.until or 0) > now]
        for fault in self._faults:
            if fault.applies(method, now):
                if fault.remaining:
                    fault.remaining -= 1
                return fault
        return None

    def _record(self, method: str, params: dict[str, Any], status: int, error: str | None) -> None:
        if self.record_requests:
            self.requests.append(RecordedRequest(method, params, time.time(), status, error))
        if self._waiters:
            self._notify()

    # ---- methods ---------------------------------------------------------------------------

    def _method_handlers(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "getFile": self._get_file,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "getChat": self._get_chat,
            "sendChatAction": self._send_chat_action,
        }

    def _get_me(self, params: dict[str, Any]) -> JsonDict:
        return {
            **self.bot_user.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: dict[str, Any]) -> list[JsonDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_arrived.set()  # an older poll wakes up and answers 409, as on Telegram
        if "allowed_updates" in params:
            self._allowed_updates = frozenset(params["allowed_updates"]) or _DEFAULT_UPDATES
        offset = params.get("offset")
        limit = min(max(params.get("limit", 100), 1), 100)
        self._confirm(offset)
        deadline = asyncio.get_running_loop().time() + max(params.get("timeout", 0), 0)
        while True:
            batch = self._deliverable(offset, limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if batch or remaining <= 0 or self._closing:
                return batch
            self._updates_arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._updates_arrived.wait()
            if generation != self._poll_generation:
                raise ApiError(409, _CONFLICT_OTHER_POLL)

    def _confirm(self, offset: int | None) -> None:
        """Telegram forgets updates below a given offset; a negative one keeps the last -N."""
        if offset is None:
            return
        before = len(self._updates)
        if offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()
        else:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        if len(self._updates) != before and self._waiters:
            self._notify()

    def _deliverable(self, offset: int | None, limit: int) -> list[JsonDict]:
        # Updates of types the bot did not ask for are dropped, as Telegram does.
        allowed = self._allowed_updates
        kept = [u for u in self._updates if _update_kind(u) in allowed]
        if len(kept) != len(self._updates):
            self._updates = deque(kept)
        start = offset if offset is not None and offset > 0 else 0
        return [u for u in kept if u["update_id"] >= start][:limit]

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = params["url"]
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> JsonDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        language = params.get("language_code", "")
        if language and not _LANGUAGE_CODE.fullmatch(language):
            raise bad_request("invalid language code specified")
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), language

    def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params["commands"]
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        for command in commands:
            if not _COMMAND_NAME.fullmatch(command["command"]):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(command["description"]) <= 256:
                raise bad_request("command description must be 1-256 characters long")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _get_my_commands(self, params: dict[str, Any]) -> list[JsonDict]:
        return self.commands.get(self._commands_key(params), [])

    def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def my_commands(self, language_code: str = "", scope: JsonDict | None = None) -> list[str]:
        """Command names registered for a language and scope (default scope)."""
        key = json.dumps(scope or {"type": "default"}, sort_keys=True), language_code
        return [c["command"] for c in self.commands.get(key, [])]

    # Chat-targeting methods share this gate: the chat must exist and accept the bot.
    def _target(self, params: dict[str, Any], *, sending: bool = False) -> _ChatState:
        chat_id = params["chat_id"]
        if isinstance(chat_id, str):
            chat_id = self._resolve_username(chat_id)
        state = self._chats.get(chat_id)
        if state is None:
            raise bad_request("chat not found")
        if state.migrated_to is not None:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": state.migrated_to},
            )
        if state.deactivated:
            raise ApiError(403, "Forbidden: user is deactivated")
        if state.bot_status in ("kicked", "left"):
            raise ApiError(403, _forbidden_text(state))
        if sending:
            if state.chat.type == "channel" and state.bot_status != "administrator":
                raise ApiError(403, "Forbidden: bot is not a member of the channel chat")
            thread_id = params.get("message_thread_id")
            if thread_id is not None and state.chat.is_forum and thread_id not in state.topics:
                raise bad_request("message thread not found")
            self._check_reply(state, params.get("reply_parameters"))
            retry_after = (
                state.forced_retry.popleft() if state.forced_retry else self.flood.admit(chat_id)
            )
            if retry_after:
                self.retry_after_by_chat[chat_id] += 1
                raise _too_many_requests(retry_after)
        return state

    def _resolve_username(self, chat_id: str) -> int:
        if _INT_RE.fullmatch(chat_id):
            return int(chat_id)
        if chat_id.startswith("@"):
            for state in self._chats.values():
                if state.chat.username and state.chat.username.lower() == chat_id[1:].lower():
                    return state.chat.id
        raise bad_request("chat not found")

    def _check_reply(self, state: _ChatState, reply: JsonDict | None) -> None:
        if not reply or reply.get("allow_sending_without_reply"):
            return
        if "chat_id" in reply and reply["chat_id"] != state.chat.id:
            return  # a reply into another chat; not tracked
        message_id = reply["message_id"]
        if message_id not in state.user_messages and message_id not in state.messages:
            raise bad_request("message to be replied not found")

    def _formatted(
        self, text: str, parse_mode: str | None, entities: list[JsonDict] | None, limit: int
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
                plain, found = parse_html(text, strict_entities=self.strict_html_entities)
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

    def _send_message(self, params: dict[str, Any]) -> JsonDict:
        # Format first: a malformed message is refused before it can count against limits.
        if not params["text"]:
            raise bad_request("message text is empty")
        text, entities = self._formatted(
            params["text"], params.get("parse_mode"), params.get("entities"), MESSAGE_LIMIT
        )
        if not text:
            raise bad_request("message text is empty")
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendMessage", params, text, entities, params["text"])
        return self._sent_api(state, sent)

    def _send_document(self, params: dict[str, Any]) -> JsonDict:
        caption = params.get("caption") or ""
        text, entities = self._formatted(
            caption, params.get("parse_mode"), params.get("caption_entities"), CAPTION_LIMIT
        )
        document = params["document"]
        if isinstance(document, UploadedFile):
            stored = self._store_file(document.data, document.filename, document.content_type)
        elif document in self._files:
            stored = self._files[document]
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendDocument", params, text, entities, caption)
        sent.document = stored.document()
        return self._sent_api(state, sent)

    async def _send_photo(self, params: dict[str, Any]) -> JsonDict:
        caption = params.get("caption") or ""
        text, entities = self._formatted(
            caption, params.get("parse_mode"), params.get("caption_entities"), CAPTION_LIMIT
        )
        self._target(params)  # the chat's own errors come before any fetch
        photo = await self._photo_sizes(params["photo"])
        state = self._target(params, sending=True)
        sent = self._store_sent(state, "sendPhoto", params, text, entities, caption)
        sent.photo = photo
        return self._sent_api(state, sent)

    async def _photo_sizes(self, photo: Any) -> list[JsonDict]:
        """The PhotoSize array of a photo given as an upload, a file_id or a URL."""
        if isinstance(photo, UploadedFile):
            data = photo.data
        elif photo in self._files:
            data = self._files[photo].data
        elif photo.lower().startswith(("http://", "https://")):
            data = await _fetch_photo(photo)
        else:
            raise bad_request("wrong file identifier/HTTP URL specified")
        width, height = _photo_dimensions(data)
        stored = self._store_file(data, None, None)
        return [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": width,
                "height": height,
                "file_size": len(data),
            }
        ]

    def _store_sent(
        self,
        state: _ChatState,
        method: str,
        params: dict[str, Any],
        text: str,
        entities: list[JsonDict],
        source: str,
    ) -> SentMessage:
        sent = SentMessage(
            chat_id=state.chat.id,
            message_id=state.take_message_id(),
            text=text,
            entities=entities,
            source=source,
            parse_mode=params.get("parse_mode"),
            thread_id=params.get("message_thread_id"),
            reply_markup=params.get("reply_markup"),
            method=method,
            params=params,
            sent_at=time.time(),
        )
        state.messages[sent.message_id] = sent
        self.sent.append(sent)
        if self._waiters:
            self._notify()
        return sent

    def _sent_api(self, state: _ChatState, sent: SentMessage) -> JsonDict:
        message: JsonDict = {
            "message_id": sent.message_id,
            "from": self._bot_api,
            "date": int(sent.sent_at),
            "chat": state.api,
        }
        if state.chat.type == "channel":
            del message["from"]
            message["sender_chat"] = state.api
        if sent.thread_id is not None:
            message["message_thread_id"] = sent.thread_id
            if state.chat.is_forum:
                message["is_topic_message"] = True
        text_key, entities_key = "text", "entities"
        if sent.document is not None:
            message["document"] = sent.document
            text_key, entities_key = "caption", "caption_entities"
        if sent.photo is not None:
            message["photo"] = sent.photo
            text_key, entities_key = "caption", "caption_entities"
        if sent.text:
            message[text_key] = sent.text
        if sent.entities:
            message[entities_key] = sent.entities
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        return message

    def _message_api(self, state: _ChatState, message_id: int) -> JsonDict:
        sent = state.messages.get(message_id)
        if sent is not None:
            return self._sent_api(state, sent)
        return {"message_id": message_id, "date": int(time.time()), "chat": state.api}

    def _editable(self, params: dict[str, Any], what: str) -> tuple[_ChatState, SentMessage]:
        if "inline_message_id" in params:
            raise bad_request("inline messages are not supported by the fake")
        if "chat_id" not in params or "message_id" not in params:
            raise bad_request("message identifier is not specified")
        state = self._target(params)
        sent = state.messages.get(params["message_id"])
        if sent is None or sent.deleted:
            if params["message_id"] in state.user_messages:
                raise bad_request("message can't be edited")
            raise bad_request(f"message to {what} not found")
        return state, sent

    def _edit_message_text(self, params: dict[str, Any]) -> JsonDict:
        if "text" not in params:
            raise bad_request("message text is empty")
        text, entities = self._formatted(
            params["text"], params.get("parse_mode"), params.get("entities"), MESSAGE_LIMIT
        )
        if not text:
            raise bad_request("message text is empty")
        state, sent = self._editable(params, "edit")
        if sent.document is not None:
            raise bad_request("there is no text in the message to edit")
        markup = params.get("reply_markup")
        if text == sent.text and entities == sent.entities and markup == sent.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.edits.append(sent.text)
        sent.text, sent.entities, sent.source = text, entities, params["text"]
        sent.parse_mode, sent.reply_markup = params.get("parse_mode"), markup
        sent.edit_date = int(time.time())
        if self._waiters:
            self._notify()
        return self._sent_api(state, sent)

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> JsonDict:
        state, sent = self._editable(params, "edit")
        markup = params.get("reply_markup")
        if markup == sent.reply_markup:
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        return self._sent_api(state, sent)

    def _delete_message(self, params: dict[str, Any]) -> bool:
        state = self._target(params)
        message_id = params["message_id"]
        sent = state.messages.get(message_id)
        if sent is not None and not sent.deleted:
            sent.deleted = True
        elif message_id in state.user_messages:
            if state.chat.type != "private" and state.bot_status != "administrator":
                raise bad_request("message can't be deleted")
            state.user_messages.discard(message_id)
        else:
            raise bad_request("message to delete not found")
        if self._waiters:
            self._notify()
        return True

    def _store_file(self, data: bytes, file_name: str | None, mime_type: str | None) -> _StoredFile:
        number = next(self._file_counter)
        suffix = Path(file_name).suffix if file_name else ""
        stored = _StoredFile(
            file_id=f"BQACAgIAAxkBAAI{number:06d}{self.bot_user.id:x}",
            file_unique_id=f"AgAD{number:06d}",
            file_path=f"documents/file_{number}{suffix}",
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _get_file(self, params: dict[str, Any]) -> JsonDict:
        stored = self._files.get(params["file_id"])
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > DOWNLOAD_LIMIT:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        if len(params.get("text", "")) > CALLBACK_ANSWER_LIMIT:
            raise bad_request("MESSAGE_TOO_LONG")
        query_id = params["callback_query_id"]
        if self._callback_queries.get(query_id, True):
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._callback_queries[query_id] = True
        self.callback_answers[query_id] = params
        if self._waiters:
            self._notify()
        return True

    def _member_api(self, user: User, status: str) -> JsonDict:
        member: JsonDict = {"status": status, "user": user.to_api()}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(_ADMIN_RIGHTS)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _status_of(self, state: _ChatState, user_id: int) -> str:
        if user_id == self.bot_user.id:
            return state.bot_status
        if user_id in state.admins:
            return state.admins[user_id]
        if state.chat.type == "private":
            return "member" if user_id == state.chat.id else "left"
        return "member" if user_id in state.members else "left"

    def _get_chat_member(self, params: dict[str, Any]) -> JsonDict:
        state = self._target(params)
        user = self._users.get(params["user_id"])
        if user is None:
            raise bad_request("user not found")
        return self._member_api(user, self._status_of(state, user.id))

    def _get_chat_administrators(self, params: dict[str, Any]) -> list[JsonDict]:
        state = self._target(params)
        if state.chat.type == "private":
            raise bad_request("there are no administrators in the private chat")
        admins = [self._member_api(self._users[uid], st) for uid, st in state.admins.items()]
        if state.bot_status == "administrator":
            admins.append(self._member_api(self.bot_user, "administrator"))
        return admins

    def _get_chat(self, params: dict[str, Any]) -> JsonDict:
        state = self._target(params)
        return {
            **state.api,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        if params["action"] not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self._target(params)
        return True


# --------------------------------------------------------------------------------------------
# Helpers of the HTTP layer


async def _fetch_photo(url: str) -> bytes:
    """The picture at `url`, fetched as Telegram fetches a photo sent by URL (see the module
    docstring for what is refused and how)."""
    unreachable = bad_request("failed to get HTTP URL content")
    host = (urlsplit(url).hostname or "").lower()
    if host != "localhost" and not host.startswith("127.") and host != "::1":
        raise unreachable  # a test cannot reach the internet; Telegram could not either
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise unreachable
            data = bytearray()
            async for chunk in response.content.iter_chunked(65_536):
                data += chunk
                if len(data) > PHOTO_URL_LIMIT:
                    raise unreachable
            kind = response.content_type
    except (aiohttp.ClientError, TimeoutError):
        raise unreachable from None
    if kind not in PHOTO_TYPES:
        raise bad_request("wrong type of the web page content")
    return bytes(data)


def _photo_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) read from a JPEG, PNG or GIF header, checked as Telegram checks a
    photo's: width + height at most 10000, neither side over 20 times the other."""
    size = _image_size(data)
    if size is None or min(size) < 1:
        raise bad_request("IMAGE_PROCESS_FAILED")
    width, height = size
    if width + height > 10_000 or max(width, height) > 20 * min(width, height):
        raise bad_request("PHOTO_INVALID_DIMENSIONS")
    return size


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's start-of-frame segment (SOF0-SOF15 but DHT, JPG and DAC)."""
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def _true(params: dict[str, Any]) -> bool:
    """Valid calls of methods the fake does not model succeed without effect."""
    return True


def _names(methods: Collection[str] | None) -> frozenset[str] | None:
    return frozenset(methods) if methods is not None else None


def _too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def _forbidden_text(state: _ChatState) -> str:
    kind = state.chat.type
    if kind == "private":
        return "Forbidden: bot was blocked by the user"
    if state.bot_status == "kicked":
        return f"Forbidden: bot was kicked from the {kind} chat"
    return f"Forbidden: bot is not a member of the {kind} chat"


def _update_kind(update: JsonDict) -> str:
    return next(key for key in update if key != "update_id")


def _detect_entities(text: str) -> list[JsonDict]:
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


def _json_response(payload: JsonDict, status: int) -> web.Response:
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering (the client sees a disconnect)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)  # never reaches the client


async def _read_parameters(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Query string and body as (form values, JSON values); a part with a filename is a file."""
    form: dict[str, Any] = dict(request.query) if request.query_string else {}
    body: dict[str, Any] = {}
    content_type = request.content_type
    if content_type == "multipart/form-data":
        reader = await request.multipart()
        uploads: dict[str, UploadedFile] = {}
        async for part in reader:
            if part.name is None:
                continue
            if part.filename is not None:
                data = await part.read()  # type: ignore[union-attr]
                kind = part.headers.get("Content-Type", "application/octet-stream")
                uploads[part.name] = UploadedFile(part.name, part.filename, kind, bytes(data))
            else:
                form[part.name] = await part.text()  # type: ignore[union-attr]
        # Files referenced as attach://name belong to the parameter that names them.
        attached = {m for v in form.values() for m in re.findall(r"attach://([\w\-]+)", v)}
        form.update({k: v for k, v in uploads.items() if k not in attached})
    elif request.can_read_body:
        raw = await request.read()
        if content_type == "application/json":
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise bad_request("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise bad_request("can't parse JSON object")
            body = decoded
        elif raw:
            form.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    return form, body


# --------------------------------------------------------------------------------------------
# Running the fake in a child process (benchmarks)


class FakeTelegramProcess:
    """A FakeTelegram served by a child process, so its CPU is not the client's.

    with FakeTelegramProcess(private_chats=range(1, 1001), limits=FloodLimits(enabled=False)):
        bot = telegram.Bot(fake.token, base_url=fake.base_url)
        ...
        fake.stats()  # {"requests": ..., "messages": ..., "retry_after": ..., "cpu": ...}

    `private_chats` are user ids whose private chats exist from the start (the child cannot
    be set up call by call); other keyword arguments go to FakeTelegram and must be
    picklable (so `clock` stays the default).
    """

    def __init__(self, *, private_chats: Collection[int] = (), **options: Any) -> None:
        self.options = options
        self.private_chats = list(private_chats)
        self.token: str = options.get("token", DEFAULT_TOKEN)
        self.port = 0
        self._context = multiprocessing.get_context("spawn")
        self._connection: Any = None
        self._process: Any = None

    def start(self, timeout: float = 30.0) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=_serve_in_process, args=(child, self.private_chats, self.options), daemon=True
        )
        self._process.start()
        self._connection = parent
        if not parent.poll(timeout):
            self.stop()
            raise RuntimeError("the fake Bot API process did not start")
        self.port = parent.recv()

    def stats(self) -> JsonDict:
        """FakeTelegram.stats() plus `cpu`: the child's CPU seconds so far."""
        self._connection.send("stats")
        return self._connection.recv()

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self._connection.send("stop")
            self._connection.poll(5)
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._process = None

    def __enter__(self) -> FakeTelegramProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"


def _serve_in_process(connection: Any, private_chats: list[int], options: JsonDict) -> None:
    asyncio.run(_serve(connection, private_chats, options))


async def _serve(connection: Any, private_chats: list[int], options: JsonDict) -> None:
    async with FakeTelegram(**options) as fake:
        for user_id in private_chats:
            fake.private_chat(fake.add_user(user_id))
        connection.send(fake.port)
        while True:
            command = await asyncio.to_thread(_receive, connection)
            if command == "stats":
                connection.send({**fake.stats(), "cpu": time.process_time()})
            else:  # "stop", or the parent went away
                break
    with contextlib.suppress(OSError):
        connection.send("stopped")


def _receive(connection: Any) -> str:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return "stop"
