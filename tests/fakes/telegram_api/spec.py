"""The Bot API spec (api.json): which methods exist and what each parameter may hold.

Loaded from shared/telegram-bot-api/api.json beside the repository (or $TELEGRAM_API_SPEC)
and compiled once into one small checking function per method parameter: unknown method
-> 404; missing required parameter or wrong type -> 400. Stricter than Telegram: an unknown
parameter, or an unknown field inside a JSON-serialized object (reply_markup,
link_preview_options...), is a 400 instead of being ignored.

Beyond types, the values Telegram checks inside objects are checked here too: an inline
button's text (not empty), url (an http(s) address with a dotted host name, or a tg:// or
ton:// link) and callback_data (1-64 bytes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.fakes.telegram_api.entities import SPACE
from tests.fakes.telegram_api.errors import ApiError, JsonDict, bad_request
from tests.paths import SHARED

SPEC_ENV_VAR: Final = "TELEGRAM_API_SPEC"


def default_spec_path() -> Path:
    """api.json: $TELEGRAM_API_SPEC, else shared/telegram-bot-api/ beside the repository."""
    override = os.environ.get(SPEC_ENV_VAR)
    if override:
        return Path(override)
    return SHARED / "telegram-bot-api/api.json"


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

INTEGER_TEXT: Final = re.compile(r"-?\d{1,19}")  # an Integer sent as text
_BOOL_FORM: Final = {"true": True, "false": False, "1": True, "0": False}
_DISCRIMINATOR: Final = re.compile(r"(?:must be|always)\W*(\w+)")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_integer(value: Any, form: bool) -> int:
    if form:
        if isinstance(value, str) and INTEGER_TEXT.fullmatch(value):
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
    if not url or any(c in SPACE for c in url):
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
