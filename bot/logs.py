"""Logging: one line per event, key=value (or JSON for log collectors), token never printed.

Loggers in the bot write `event=name key=value …` messages. Third-party libraries (httpx,
python-telegram-bot, aiohttp) may put the bot token in a URL they log, so every record,
ours or theirs, passes a filter that replaces the token with `<token>`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from urllib.parse import quote

from bot.config import LogSettings
from bot.errors import DatabaseLostError, DatabaseUnavailableError

# Anything shaped like a Telegram bot token: digits, a colon (or its URL-encoded %3A, as
# httpx logs file downloads), 30+ url-safe characters.
TOKEN_SHAPE = re.compile(r"\d{5,}(?::|%3[Aa])[A-Za-z0-9_-]{30,}")


class RedactToken(logging.Filter):
    def __init__(self, token: str = "") -> None:
        super().__init__()
        self.token = token

    def redact(self, text: str) -> str:
        if self.token:
            # The token as is, URL-encoded, and its secret half alone.
            for secret in (self.token, quote(self.token, safe=""), self.token.partition(":")[2]):
                if secret:
                    text = text.replace(secret, "<token>")
        return TOKEN_SHAPE.sub("<token>", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class DatabaseTroubleReported(logging.Filter):
    """The store reports its own trouble, once: a lost database at CRITICAL, a database
    server that cannot be reached at WARNING (and again when it answers). The failures this
    causes wherever the bot was using it (a command, a refill, a flush, a check) add
    nothing but tracebacks, one per use: drop them."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:
            if isinstance(error, DatabaseLostError | DatabaseUnavailableError):
                return False
            error = error.__cause__ or error.__context__
        return True


class TextFormatter(logging.Formatter):
    """`2026-11-26T10:00:00Z INFO bot.feeds.poller event=feed_checked feed=3 new=2`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line; `event=x key=y` pairs of the message become fields."""

    PAIR = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S+)")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for key, value in self.PAIR.findall(message):
            data.setdefault(key, value.strip("'\""))
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(settings: LogSettings, token: str = "", stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.addFilter(DatabaseTroubleReported())  # before RedactToken, which formats exc_info
    handler.addFilter(RedactToken(token))
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # httpx logs every request URL (with the token) at INFO; keep it to warnings.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
