"""Settings: config/default.toml < user TOML file < environment variables.

Every setting has its default and its documentation in bot/default.toml, a real file of
the package so that an installed bot has it (config/default.toml, the path the docs name,
is a link to it). This module knows their types and allowed values; a bad value raises
ConfigError with one line that names the setting and what is allowed, and the CLI prints
that line and exits 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULTS_PATH = Path(__file__).with_name("default.toml")

# The fixed environment variable names of PRODUCT.md, and the setting each one sets.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "TELEGRAM_BOT_TOKEN": ("telegram", "token"),
    "TELEGRAM_API_BASE_URL": ("telegram", "api_base_url"),
    "NEWS_NOTIFIER_DATABASE": ("database", "path"),
    "NEWS_NOTIFIER_POLL_INTERVAL": ("poll", "interval"),
    "NEWS_NOTIFIER_ALLOW_PRIVATE_NETWORKS": ("fetch", "allow_private_networks"),
    "NEWS_NOTIFIER_ADMINS": ("telegram", "admins"),
    "NEWS_NOTIFIER_ALLOWED_USERS": ("telegram", "allowed_users"),
    "NEWS_NOTIFIER_TIMEZONE": ("digest", "timezone"),
    "NEWS_NOTIFIER_WEBHOOK_URL": ("listener", "webhook_url"),
    "NEWS_NOTIFIER_LISTEN": ("listener", "listen"),
}
CONFIG_ENV = "NEWS_NOTIFIER_CONFIG"

# Settings a newer version no longer has. A settings file written for an older one may
# still set them: they are skipped, not refused, so an upgrade does not stop the bot.
RETIRED: frozenset[tuple[str, str]] = frozenset(
    {
        # Capped the stories a digest-mode feed listed; such a feed now lists every one.
        ("digest", "max_stories_per_digest_feed"),
    }
)

# What database.path accepts, in the one line a refused value prints.
DATABASE_ACCEPTED = (
    "a file path for SQLite, or a postgresql:// (or postgres://) URL with a host and a "
    "database name"
)
POSTGRESQL_SCHEMES = ("postgresql", "postgres")
# A URL's scheme (RFC 3986) followed by "//": "C:\\db" or "backups/08:00.sqlite3" are paths.
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# The password of a URL's user:password@ (group 1), kept out of error lines.
URL_PASSWORD = re.compile(URL_SCHEME.pattern + r"[^/@:]*:([^/@]*)@")
# Paths the listener serves itself (bot/listener.py, bot/metrics.py, bot/feeds/websub.py).
LISTENER_PATHS = ("/healthz", "/metrics", "/websub")
# listener.listen: a host name or IPv4 address, or an IPv6 address in brackets, and a port.
LISTEN_ADDRESS = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>[0-9]{1,5})"
)


class ConfigError(Exception):
    """A setting has a value that is not allowed. str() is the one line to print."""


@dataclass(frozen=True)
class TelegramSettings:
    token: str
    api_base_url: str
    link_preview: bool
    admins: tuple[int, ...]
    allowed_users: tuple[int, ...]
    admin_cache_seconds: int
    polling_timeout: int


@dataclass(frozen=True)
class DatabaseSettings:
    path: str


@dataclass(frozen=True)
class PollSettings:
    interval: int
    # Bounds of the adaptive interval (bot/feeds/freshness.py), always around `interval`.
    min_interval: int
    max_interval: int
    hint_max: int
    backoff_max: int
    jitter: float
    concurrency: int
    per_host_concurrency: int
    pause_after_days: float


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_body_bytes: int
    max_redirects: int
    allow_private_networks: bool
    user_agent: str


@dataclass(frozen=True)
class DedupeSettings:
    archive_window_days: float
    retention_days: float


@dataclass(frozen=True)
class SummarySettings:
    max_chars: int
    max_chars_cjk: int


@dataclass(frozen=True)
class DeliverySettings:
    global_per_second: float
    chat_per_second: float
    group_per_minute: float
    max_in_flight: int
    retry_hours: float
    answer_timeout_seconds: float
    duplicate_title_hours: float
    shutdown_grace_seconds: float


@dataclass(frozen=True)
class DigestSettings:
    timezone: str
    grace_hours: float
    max_stories_per_feed: int


@dataclass(frozen=True)
class KeywordSettings:
    max_per_chat: int
    max_length: int


@dataclass(frozen=True)
class OpmlSettings:
    max_bytes: int
    max_feeds: int


@dataclass(frozen=True)
class LogSettings:
    level: str
    format: str


@dataclass(frozen=True)
class HealthSettings:
    max_silence_seconds: int


@dataclass(frozen=True)
class ListenAddress:
    """Where the HTTP listener binds: a host name or address, and a port (0: any free one)."""

    host: str
    port: int


@dataclass(frozen=True)
class ListenerSettings:
    webhook_url: str | None  # the public https URL; None: none (no push, long polling)
    listen: ListenAddress | None  # None: no listener

    @property
    def public_origin(self) -> str | None:
        """scheme://host[:port] of the public URL: WebSub callbacks live under it."""
        if self.webhook_url is None:
            return None
        parts = urlsplit(self.webhook_url)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class WebSubSettings:
    enabled: bool
    lease_seconds: int
    poll_interval: int


@dataclass(frozen=True)
class Settings:
    telegram: TelegramSettings
    database: DatabaseSettings
    poll: PollSettings
    fetch: FetchSettings
    dedupe: DedupeSettings
    summary: SummarySettings
    delivery: DeliverySettings
    digest: DigestSettings
    keywords: KeywordSettings
    opml: OpmlSettings
    log: LogSettings
    health: HealthSettings
    listener: ListenerSettings
    websub: WebSubSettings


_SECTION_CLASSES = {
    "telegram": TelegramSettings,
    "database": DatabaseSettings,
    "poll": PollSettings,
    "fetch": FetchSettings,
    "dedupe": DedupeSettings,
    "summary": SummarySettings,
    "delivery": DeliverySettings,
    "digest": DigestSettings,
    "keywords": KeywordSettings,
    "opml": OpmlSettings,
    "log": LogSettings,
    "health": HealthSettings,
    "listener": ListenerSettings,
    "websub": WebSubSettings,
}


# --- value checks: each returns the converted value or raises ValueError(what is allowed) ---


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        allowed = f"a whole number from {minimum}" + (f" to {maximum}" if maximum else " up")
        if isinstance(value, bool):
            raise ValueError(allowed)
        try:
            number = int(str(value).strip()) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(allowed) from None
        if not isinstance(number, int) or number < minimum or (maximum and number > maximum):
            raise ValueError(allowed)
        return number

    return check


def _float(minimum: float, maximum: float | None = None, *, above: bool = False) -> Callable:
    def check(value: Any) -> float:
        low = f"above {minimum}" if above else f"at least {minimum}"
        allowed = f"a number {low}" + (f" and at most {maximum}" if maximum is not None else "")
        if isinstance(value, bool):
            raise ValueError(allowed)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(allowed) from None
        if number != number or (number <= minimum if above else number < minimum):
            raise ValueError(allowed)
        if maximum is not None and number > maximum:
            raise ValueError(allowed)
        return number

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("1 or 0 (also true/false, yes/no, on/off)")


def _text(*, required_prefixes: tuple[str, ...] = ()) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("a text value")
        if required_prefixes and not value.startswith(required_prefixes):
            raise ValueError("a URL starting with " + " or ".join(required_prefixes))
        return value

    return check


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value).strip()
        match = next((o for o in options if o.lower() == text.lower()), None)
        if match is None:
            raise ValueError("one of " + ", ".join(options))
        return match

    return check


def _user_ids(value: Any) -> tuple[int, ...]:
    allowed = "Telegram user ids (whole numbers), comma-separated"
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(allowed)
    ids: list[int] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            ids.append(int(text))
        except ValueError:
            raise ValueError(allowed) from None
    return tuple(ids)


def _timezone(value: Any) -> str:
    allowed = "an IANA time zone name such as UTC, Europe/Berlin or Asia/Shanghai"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(allowed)
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(allowed) from None
    return value.strip()


def _nonempty(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty text value")
    return value


def _database_path(value: Any) -> str:
    """A file path, or a PostgreSQL URL. Any other URL is refused rather than taken for a
    path (a folder "mysql:"), and so is a PostgreSQL URL without a host or database."""
    location = _nonempty(value)
    if not URL_SCHEME.match(location):
        return location
    try:
        parts = urlsplit(location)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(DATABASE_ACCEPTED) from None
    if parts.scheme.lower() not in POSTGRESQL_SCHEMES or not parts.path.strip("/"):
        raise ValueError(DATABASE_ACCEPTED)
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(DATABASE_ACCEPTED)
    return location


def postgresql_url(value: str, *, name: str) -> str:
    """A PostgreSQL URL as NEWS_NOTIFIER_DATABASE takes one, given as `name` (migrate-db's
    --to); ConfigError with the one line to print when it is anything else."""
    allowed = "a postgresql:// (or postgres://) URL with a host and a database name"
    try:
        location = _database_path(value)
    except ValueError:
        location = ""
    if not URL_SCHEME.match(location):
        raise ConfigError(f"{name} is {_shown(value)}; allowed: {allowed}")
    return location


def _public_url(value: Any) -> str | None:
    """The bot's public URL: https (Telegram delivers webhooks only there), or "" for none."""
    allowed = "an https:// URL with a host and no #fragment, or empty for none"
    if not isinstance(value, str):
        raise ValueError(allowed)
    text = value.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(allowed) from None
    if (
        parts.scheme.lower() != "https"
        or not parts.hostname
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(allowed)
    return text


def _listen_address(value: Any) -> ListenAddress | None:
    """host:port ([::1]:8080 for IPv6), or "" for no listener."""
    allowed = "host:port (such as 0.0.0.0:8080 or [::1]:8080; port 0 to 65535), or empty"
    if not isinstance(value, str):
        raise ValueError(allowed)
    text = value.strip()
    if not text:
        return None
    match = LISTEN_ADDRESS.fullmatch(text)
    if match is None or int(match["port"]) > 65535:
        raise ValueError(allowed)
    return ListenAddress(match["v6"] or match["host"], int(match["port"]))


def _shown(value: Any) -> str:
    """A refused value as an error line shows it: repr, without a URL's password."""
    password = URL_PASSWORD.match(value) if isinstance(value, str) else None
    if password:
        value = value[: password.start(1)] + "***" + value[password.end(1) :]
    return repr(value)


CHECKS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "telegram": {
        "token": _text(),
        "api_base_url": _text(required_prefixes=("http://", "https://")),
        "link_preview": _bool,
        "admins": _user_ids,
        "allowed_users": _user_ids,
        "admin_cache_seconds": _int(0),
        "polling_timeout": _int(0, 600),
    },
    "database": {"path": _database_path},
    "poll": {
        "interval": _int(1),
        "min_interval": _int(1),
        "max_interval": _int(1),
        "hint_max": _int(1),
        "backoff_max": _int(1),
        "jitter": _float(0, 0.5),
        "concurrency": _int(1, 10000),
        "per_host_concurrency": _int(1, 1000),
        "pause_after_days": _float(0, above=True),
    },
    "fetch": {
        "connect_timeout": _float(0, above=True),
        "read_timeout": _float(0, above=True),
        "total_timeout": _float(0, above=True),
        "max_body_bytes": _int(1024),
        "max_redirects": _int(0, 20),
        "allow_private_networks": _bool,
        "user_agent": _nonempty,
    },
    "dedupe": {
        "archive_window_days": _float(0, above=True),
        "retention_days": _float(1),
    },
    "summary": {"max_chars": _int(40, 3000), "max_chars_cjk": _int(20, 3000)},
    "delivery": {
        "global_per_second": _float(0, above=True),
        "chat_per_second": _float(0, above=True),
        "group_per_minute": _float(0, above=True),
        "max_in_flight": _int(1, 1000),
        "retry_hours": _float(0, above=True),
        "answer_timeout_seconds": _float(0, above=True),
        "duplicate_title_hours": _float(0),
        "shutdown_grace_seconds": _float(0),
    },
    "digest": {
        "timezone": _timezone,
        "grace_hours": _float(0),
        "max_stories_per_feed": _int(1, 100),
    },
    "keywords": {"max_per_chat": _int(1, 1000), "max_length": _int(1, 256)},
    "opml": {"max_bytes": _int(1024), "max_feeds": _int(1, 100000)},
    "log": {
        "level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
        "format": _choice("text", "json"),
    },
    "health": {"max_silence_seconds": _int(1)},
    "listener": {"webhook_url": _public_url, "listen": _listen_address},
    "websub": {
        "enabled": _bool,
        "lease_seconds": _int(60),
        "poll_interval": _int(1),
    },
}


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{what} {path}: not valid TOML ({error})") from None
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot be read ({error.strerror})") from None


def _merge_file(raw: dict[str, dict[str, Any]], user: Mapping[str, Any], path: Path) -> None:
    for section, values in user.items():
        if section not in raw:
            raise ConfigError(
                f"settings file {path}: unknown section [{section}]; "
                f"known sections are {', '.join(raw)}"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"settings file {path}: [{section}] must be a table of settings")
        for key, value in values.items():
            if (section, key) in RETIRED:
                continue
            if key not in raw[section]:
                raise ConfigError(
                    f"settings file {path}: unknown setting {section}.{key}; "
                    f"[{section}] has {', '.join(raw[section])}"
                )
            raw[section][key] = value


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and check every setting. Raises ConfigError with a one-line message."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {
        section: dict(values) for section, values in _read_toml(DEFAULTS_PATH, "defaults").items()
    }
    path_text = config_path or environ.get(CONFIG_ENV) or None
    if path_text:
        path = Path(path_text)
        _merge_file(raw, _read_toml(path, "settings file"), path)

    sources: dict[tuple[str, str], str] = {}
    for variable, (section, key) in ENVIRONMENT.items():
        if variable in environ:
            raw[section][key] = environ[variable]
            sources[(section, key)] = variable

    built: dict[str, Any] = {}
    for section, cls in _SECTION_CLASSES.items():
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = f"{section}.{field.name}"
            source = sources.get((section, field.name))
            label = f"{name} ({source})" if source else name
            value = raw[section].get(field.name)
            try:
                values[field.name] = CHECKS[section][field.name](value)
            except ValueError as error:
                raise ConfigError(f"setting {label} is {_shown(value)}; allowed: {error}") from None
        built[section] = cls(**values)
    built["poll"] = _poll_bounds(built["poll"])
    settings = Settings(**built)
    _check_listener(settings.listener)
    return settings


def _poll_bounds(poll: PollSettings) -> PollSettings:
    """The adaptive interval's bounds, stretched to contain poll.interval (the mean the
    request budget is set from): NEWS_NOTIFIER_POLL_INTERVAL=1 (tests) lowers the floor to 1
    and 7200 raises the ceiling, without touching the bounds' settings. Bounds that cross
    each other are refused."""
    if poll.min_interval > poll.max_interval:
        raise ConfigError(
            f"setting poll.min_interval is {poll.min_interval!r}; allowed: a whole number "
            f"from 1 to poll.max_interval ({poll.max_interval})"
        )
    return replace(
        poll,
        min_interval=min(poll.min_interval, poll.interval),
        max_interval=max(poll.max_interval, poll.interval),
    )


def _check_listener(listener: ListenerSettings) -> None:
    """A public URL needs a listener behind it: Telegram and the hubs deliver there."""
    if listener.webhook_url is not None and listener.listen is None:
        raise ConfigError(
            "setting listener.webhook_url (NEWS_NOTIFIER_WEBHOOK_URL) is set but "
            "listener.listen (NEWS_NOTIFIER_LISTEN) is empty; allowed: both set (the reverse "
            "proxy forwards the public URL to the listener), or neither"
        )
    # The listener serves Telegram's updates at the URL's path: it must not be one of the
    # listener's own (WebSub callbacks live under /websub/, /metrics and /healthz at the root).
    path = urlsplit(listener.webhook_url or "").path.rstrip("/")
    if path in LISTENER_PATHS or path.startswith("/websub/"):
        raise ConfigError(
            f"setting listener.webhook_url (NEWS_NOTIFIER_WEBHOOK_URL) has the path {path}, "
            "which the listener serves itself; allowed: a path of its own, such as "
            "https://bot.example.com/telegram"
        )
