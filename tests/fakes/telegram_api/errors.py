"""How the fake Bot API refuses a call: the error answer every part of it raises.

Telegram answers a refused call with `{"ok": false, "error_code", "description"}` and, for
flood control and group migrations, `parameters` (ResponseParameters). Every check of the
fake (spec, entities, floods, chat state) raises ApiError; the server turns it into that
answer.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]  # a Bot API object as it travels in JSON


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
