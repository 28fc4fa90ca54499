"""What people can do to the bot, as plain async functions over the store.

Telegram handlers and the command line both call these; they raise UserError with a text
key for anything a user can get wrong, and never format text themselves.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.config import Settings
from bot.errors import UserError
from bot.feeds.check import FeedChecker, Parsed
from bot.feeds.fetch import FetchError, FetchErrorKind
from bot.feeds.parse import NotAFeedError
from bot.feeds.poller import success_delay
from bot.filters import (
    Keyword,
    KeywordIndex,
    check_limit,
    merge_keywords,
    parse_keywords,
    remove_keywords,
)
from bot.store import Store, Subscription

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2048
MAX_SUBSCRIPTIONS_PER_CHAT = 500
MODES = ("instant", "digest")


@dataclass(frozen=True, slots=True)
class Subscribed:
    feed_id: int
    title: str
    url: str
    created: bool  # False: the chat already had it
    entries: int  # entries in the feed now (recorded as seen, not sent)


def check_url(text: str) -> str:
    """A feed URL as typed, checked for form only (the fetch checks the rest)."""
    url = text.strip().strip("<>")
    if len(url) > MAX_URL_CHARS:
        raise UserError("error.argument_too_long", length=len(url))
    if not url:
        raise UserError("subscribe.usage")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UserError("feed.invalid_url", given=url[:200]) from None
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise UserError("feed.bad_scheme", given=f"{parts.scheme}:")
    if not parts.scheme:
        # "example.com/feed.xml": people type addresses without the scheme.
        if "." in url.split("/", 1)[0] and " " not in url:
            return check_url("https://" + url)
        raise UserError("feed.invalid_url", given=url[:200])
    if not parts.hostname or " " in url:
        raise UserError("feed.invalid_url", given=url[:200])
    return url


def url_key(text: str) -> str:
    """A URL as /unsubscribe and /mode compare it: typed without a scheme, with http for
    https, a capitalized host or a trailing slash, it is still the same subscription."""
    if not text:
        return ""
    try:
        url = check_url(text)
    except UserError:
        return text.strip()
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    for default in (":80", ":443"):
        netloc = netloc.removesuffix(default)
    query = f"?{parts.query}" if parts.query else ""
    return f"{netloc}{parts.path.rstrip('/')}{query}"


def subscription_by_url(subscriptions: list[Subscription], text: str) -> Subscription | None:
    """The subscription whose feed is at `text`, as typed at /subscribe or where it moved."""
    wanted = url_key(text)
    for subscription in subscriptions:
        if wanted in (url_key(subscription.feed_url), url_key(subscription.given_url)):
            return subscription
    return None


def fetch_error_to_user(error: FetchError, url: str, settings: Settings) -> UserError:
    values: dict[str, object] = {"given": url[:200]}
    if error.kind is FetchErrorKind.HTTP_STATUS:
        values["status"] = error.status or 0
    if error.kind is FetchErrorKind.TOO_LARGE:
        values["limit_mb"] = round(settings.fetch.max_body_bytes / 1_048_576, 1)
    if error.kind is FetchErrorKind.BAD_SCHEME:
        values["given"] = (urlsplit(url).scheme or url[:20]) + ":"
    return UserError(f"feed.{error.kind.value}", **values)


class Service:
    def __init__(
        self,
        store: Store,
        checker: FeedChecker,
        settings: Settings,
        clock: Clock,
        *,
        keyword_index: KeywordIndex | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.keyword_index = keyword_index if keyword_index is not None else KeywordIndex()
        self.store = store
        self.checker = checker
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued
        self.rng = random.Random()

    async def subscribe(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None,
        turn: Callable[[], Awaitable[None]] | None = None,
    ) -> Subscribed:
        """Check the feed now (fetch, parse), then subscribe the chat to it.

        The entries in the feed now are recorded as seen for this chat: for a feed new to
        the bot this first check primes it; for a feed others follow, any story this check
        finds new goes to them, and the new subscription starts after it.

        `turn` (an import) is awaited between the check and the first write, so an import
        writes its feeds in the file's order while their checks run side by side.
        """
        url = check_url(text)
        await self._check_room(chat_id)
        existing = await self.store.feeds.by_url(url)
        try:
            result = await self.checker.fetcher.fetch(url)
        except FetchError as error:
            raise fetch_error_to_user(error, url, self.settings) from None
        if result.body is None:  # cannot happen without validators; be safe
            raise NotAFeedError("empty")
        final_url = result.permanent_redirect or url
        if existing is None and final_url != url:
            existing = await self.store.feeds.by_url(final_url)
        feed_id = existing.id if existing else 0
        parsed = await self.checker.parse(result, feed_id)  # raises NotAFeedError (UserError)
        if turn is not None:
            await turn()
            await self._check_room(chat_id)  # the import's earlier feeds may have filled it
        now = self.clock.now_ms()
        if existing is None:
            feed_id = await self.store.feeds.add(
                final_url, title=parsed.feed.title, site_url=parsed.feed.site_url, now_ms=now
            )
            parsed = Parsed(parsed.feed, [replace(e, feed_id=feed_id) for e in parsed.entries])
        feed = await self.store.feeds.get(feed_id)
        assert feed is not None
        if feed.status != "active":
            await self.store.feeds.resume(feed_id, now_ms=now)
        delay = success_delay(self.settings, parsed.feed.ttl_seconds, self.rng)
        outcome = await self.checker.record(
            feed, result, parsed, now + int(delay * 1000), parsed.feed.ttl_seconds
        )
        if outcome and outcome.queued and self.on_queued:
            self.on_queued()
        created = await self.store.chats.subscribe(
            chat_id,
            feed_id,
            thread_id=thread_id,
            now_ms=now,
            given_url=url,  # the feed may move (301) now or later; this stays
        )
        title = parsed.feed.title or feed.title or final_url
        log.info("event=subscribe chat=%d feed=%d created=%s", chat_id, feed_id, created)
        return Subscribed(feed_id, title, final_url, created, len(parsed.entries))

    async def _check_room(self, chat_id: int) -> None:
        if await self.store.chats.count_subscriptions(chat_id) >= MAX_SUBSCRIPTIONS_PER_CHAT:
            raise UserError("subscribe.too_many", limit=MAX_SUBSCRIPTIONS_PER_CHAT)

    async def find_subscription(self, chat_id: int, text: str) -> Subscription:
        """A subscription by its /list number or its URL."""
        subscriptions = await self.store.chats.subscriptions(chat_id)
        given = text.strip()
        if given.isdigit() or (given.startswith("#") and given[1:].isdigit()):
            number = int(given.lstrip("#"))
            if 1 <= number <= len(subscriptions):
                return subscriptions[number - 1]
            raise UserError("sub.unknown_number", given=given[:20], count=len(subscriptions))
        if len(given) > MAX_URL_CHARS:
            raise UserError("error.argument_too_long", length=len(given))
        found = subscription_by_url(subscriptions, given)
        if found is None:
            raise UserError("sub.unknown_url", given=given[:200])
        return found

    async def subscribe_unless_subscribed(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None,
        turn: Callable[[], Awaitable[None]] | None = None,
    ) -> Subscribed:
        """An import's subscribe: a feed the chat already follows (by the address it was
        given or the feed's own) is reported as already there without a check, so a file
        sent again after an interrupted import skips the feeds it had added."""
        subscriptions = await self.store.chats.subscriptions(chat_id)
        found = subscription_by_url(subscriptions, text) if len(text) <= MAX_URL_CHARS else None
        if found is None:
            return await self.subscribe(chat_id, text, thread_id=thread_id, turn=turn)
        title = found.feed_title or found.feed_url
        return Subscribed(found.feed_id, title, found.feed_url, created=False, entries=0)

    async def unsubscribe(self, chat_id: int, text: str) -> Subscription:
        subscription = await self.find_subscription(chat_id, text)
        await self.store.chats.unsubscribe(chat_id, subscription.id)
        return subscription

    async def set_mode(self, chat_id: int, args: list[str]) -> tuple[Subscription, str]:
        if len(args) != 2 or args[1].lower() not in MODES:
            raise UserError("mode.usage")
        subscription = await self.find_subscription(chat_id, args[0])
        mode = args[1].lower()
        await self.store.chats.set_mode(chat_id, subscription.id, mode)
        return subscription, mode

    # --- keywords ------------------------------------------------------------------------

    async def keywords(self, chat_id: int) -> list[Keyword]:
        return [
            Keyword(text, exclude) for text, exclude in await self.store.chats.keywords(chat_id)
        ]

    async def _save_keywords(self, chat_id: int, keywords: list[Keyword]) -> None:
        await self.store.chats.set_keywords(chat_id, [(k.text, k.exclude) for k in keywords])
        self.keyword_index.set_chat(chat_id, keywords)

    async def add_keywords(self, chat_id: int, text: str) -> tuple[list[Keyword], list[Keyword]]:
        """Add keywords (with -exclusions and "phrases"): (added, already in the filter)."""
        limits = self.settings.keywords
        adding = parse_keywords(text, max_length=limits.max_length)
        existing = await self.keywords(chat_id)
        check_limit(existing, adding, max_per_chat=limits.max_per_chat)
        merged = merge_keywords(existing, adding)
        await self._save_keywords(chat_id, merged)
        added = merged[len(existing) :]
        new_keys = {k.key for k in added}
        return added, [k for k in adding if k.key not in new_keys]

    async def remove_keywords(self, chat_id: int, text: str) -> tuple[list[Keyword], list[Keyword]]:
        """(removed, not found)."""
        removing = parse_keywords(text, max_length=10_000)
        existing = await self.keywords(chat_id)
        kept, removed = remove_keywords(existing, removing)
        removed_keys = {k.key for k in removed}
        missing = [k for k in removing if k.key not in removed_keys]
        if removed:
            await self._save_keywords(chat_id, kept)
        return removed, missing

    async def clear_keywords(self, chat_id: int) -> None:
        await self._save_keywords(chat_id, [])
