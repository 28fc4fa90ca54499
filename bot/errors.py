"""The bot's exceptions, in one place: what a user got wrong, why a feed failed, and the
database's own (another process holds it; it was lost while the bot ran).

The first two carry codes, never text: the handler edge (bot/i18n.py) turns them into the
reader's language. miniflux's `locale.LocalizedErrorWrapper` is the model: the error is made
where it happens, with everything needed to explain it later, and translated at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
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


class DatabaseLockedError(Exception):
    """Another news-notifier process holds this database."""


class DatabaseLostError(Exception):
    """The database file can no longer keep what is written to it: deleted, replaced, or
    its storage became read-only while the bot ran. Nothing more may be accepted."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"database {path}: {problem}")
        self.path = path
        self.problem = problem


class DatabaseRefusedError(Exception):
    """The database server answered but refuses this bot: no such database or role, a wrong
    password, no right to make its tables. Trying again changes nothing: a setting must."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"database {location} refused the bot: {problem}")
        self.location = location
        self.problem = problem


class DatabaseUnavailableError(Exception):
    """The database server cannot be reached now (restarting, network cut): what was being
    done is not kept, and is done again on a new connection."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(f"database {location} cannot be reached: {problem}")
        self.location = location
        self.problem = problem


class MigrationError(Exception):
    """migrate-db refused (the target holds data, the source is not one it can copy) or
    failed; nothing was written. str() is the one line to print."""


class FailureKind(StrEnum):
    """Why a feed could not be fetched or read."""

    INVALID_URL = "invalid_url"
    BAD_SCHEME = "bad_scheme"
    ADDRESS_NOT_ALLOWED = "address_not_allowed"
    DNS = "dns"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_STATUS = "http_status"
    GONE = "gone"
    TLS = "tls"
    NOT_A_FEED = "not_a_feed"
    INTERNAL = "internal"  # a bug, not the feed's fault
    UNKNOWN = "unknown"  # a stored code this version does not know: shown as it is


# What a document is when it is not a feed: the `detail` of a NOT_A_FEED failure.
NOT_A_FEED_KINDS = ("html", "json", "empty", "other", "unreadable")


@dataclass(frozen=True, slots=True)
class FeedFailure:
    """One typed reason a feed failed: stored as `code`, shown through i18n.

    `status` is the HTTP status (HTTP_STATUS, GONE); `detail` a short code that the text
    needs: what the document is instead (NOT_A_FEED: "html", "unreadable:ExpatError"), the
    size cap in bytes (TOO_LARGE), the exception's class name (INTERNAL).
    """

    kind: FailureKind
    status: int | None = None
    detail: str = ""

    @property
    def code(self) -> str:
        """The stored form (feeds.last_error): "timeout", "http_status:404",
        "not_a_feed:html", "internal:KeyError"."""
        if self.kind is FailureKind.UNKNOWN:
            return self.detail
        value = str(self.status) if self.status is not None else self.detail
        return f"{self.kind.value}:{value}" if value else self.kind.value

    @classmethod
    def from_code(cls, code: str) -> FeedFailure:
        """The failure a stored code names (an UNKNOWN one keeps a code it does not know)."""
        name, _, value = code.strip().partition(":")
        try:
            kind = FailureKind(name)
        except ValueError:
            return cls(FailureKind.UNKNOWN, detail=code.strip())
        if kind in (FailureKind.HTTP_STATUS, FailureKind.GONE) and value.isdecimal():
            return cls(kind, status=int(value))
        return cls(kind, detail=value)

    @property
    def what(self) -> str:
        """NOT_A_FEED: what the document is instead (one of NOT_A_FEED_KINDS)."""
        return self.detail.partition(":")[0]

    @property
    def cause(self) -> str:
        """NOT_A_FEED "unreadable": how the parser failed (an exception's class name)."""
        return self.detail.partition(":")[2]


class FeedError(Exception):
    """A feed could not be fetched or read. Raised by the fetcher and the parser.

    `log_detail` is one line for the operator's log (never shown to users); `retry_after`
    the seconds a 429 or 503 asked for.
    """

    def __init__(
        self,
        failure: FeedFailure,
        log_detail: str = "",
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(failure, log_detail)
        self.failure = failure
        self.log_detail = log_detail or failure.code
        self.retry_after = retry_after

    @property
    def kind(self) -> FailureKind:
        return self.failure.kind

    @property
    def status(self) -> int | None:
        return self.failure.status

    def __str__(self) -> str:
        return f"{self.failure.code}: {self.log_detail}"


class NotAFeedError(FeedError):
    """The document is not RSS, Atom or RDF: `what` it is instead (NOT_A_FEED_KINDS), and
    for an unreadable one the parser's exception (`cause`)."""

    def __init__(self, what: str = "other", cause: str = "") -> None:
        detail = f"{what}:{cause}" if cause else what
        super().__init__(FeedFailure(FailureKind.NOT_A_FEED, detail=detail))


# --- a web page's address where a feed's was expected (bot/feeds/discover.py) ----------------


@dataclass(frozen=True, slots=True)
class FeedOption:
    """A feed found on a web page, one of several to choose from."""

    url: str
    title: str


class SeveralFeedsError(NotAFeedError):
    """The address is a web page that leads to several feeds: someone must pick one.

    To a caller that cannot offer a choice (an OPML import) it is what it was before pages
    were read for their feeds: not a feed, an HTML page.
    """

    def __init__(self, page_url: str, feeds: tuple[FeedOption, ...]) -> None:
        super().__init__("html")
        self.page_url = page_url
        self.feeds = feeds


class FeedLinkError(FeedError):
    """The address is a web page that names its feed at `link`, and that feed failed: the
    failure is the feed's (a link to a private address is refused by the guard)."""

    def __init__(self, link: str, error: FeedError) -> None:
        super().__init__(
            error.failure, f"feed link {link}: {error.log_detail}", retry_after=error.retry_after
        )
        self.link = link
