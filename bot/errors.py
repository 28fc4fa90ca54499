"""Errors a user can cause, carried as a message key plus values.

The key names a text in bot/telegram/i18n.py; the handler edge turns it into the user's
language. Nothing below the handlers formats user-facing text.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Something the user asked for cannot be done; `key` says which text explains why."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key, values)
        self.key = key
        self.values = values

    def __str__(self) -> str:
        if not self.values:
            return self.key
        details = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{self.key} ({details})"
