"""Subscriptions: what a chat can do with its feeds (subscribe, unsubscribe, mode).

Telegram handlers and the command line both call these; they raise UserError (or
FeedError, why a feed could not be used) for anything a user can get wrong, and never
format text themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.errors import FailureKind, FeedError, FeedFailure, SeveralFeedsError, UserError
from bot.feeds.pipeline import FeedPipeline
from bot.store import Store, Subscription
from bot.usecases.feed_choices import FeedChoice, FeedOffers

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
    page_url: str | None = None  # the web page whose address led to this feed, if one did


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
        raise FeedError(FeedFailure(FailureKind.INVALID_URL)) from None
    if parts.scheme and parts.scheme.lower() not in ("http", "https"):
        raise FeedError(FeedFailure(FailureKind.BAD_SCHEME))
    if not parts.scheme:
        # "example.com/feed.xml": people type addresses without the scheme.
        if "." in url.split("/", 1)[0] and " " not in url:
            return check_url("https://" + url)
        raise FeedError(FeedFailure(FailureKind.INVALID_URL))
    if not parts.hostname or " " in url:
        raise FeedError(FeedFailure(FailureKind.INVALID_URL))
    return url


def url_key(text: str) -> str:
    """A URL as /unsubscribe and /mode compare it: typed without a scheme, with http for
    https, a capitalized host or a trailing slash, it is still the same subscription."""
    if not text:
        return ""
    try:
        url = check_url(text)
    except (UserError, FeedError):
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


# Awaited by `subscribe` once the feed is checked, before it writes anything (an import
# keeps the file's order while its checks run side by side).
Turn = Callable[[], Awaitable[None]]


class Subscriptions:
    def __init__(self, store: Store, pipeline: FeedPipeline, clock: Clock) -> None:
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.offers = FeedOffers(clock)
        # Told when a chat left a feed (WebSub unsubscribes from the hub after the last).
        self.on_left: Callable[[], None] | None = None

    async def subscribe(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None,
        turn: Turn | None = None,
        discover: bool = True,
    ) -> Subscribed:
        """Check the feed now (fetch, parse, record what it lists), then subscribe the chat.

        The entries in the feed now are recorded as seen: the new subscription starts after
        them (no backlog flood). A web page's address (with `discover`) subscribes the one
        feed the page leads to; several raise SeveralFeedsError (see `offer`).
        """
        url = check_url(text)
        await self._check_room(chat_id)

        async def before_write() -> None:
            if turn is not None:
                await turn()
                await self._check_room(chat_id)  # the import's earlier feeds may have filled it

        checked = await self.pipeline.check_new(url, before_write=before_write, discover=discover)
        created = await self.store.chats.subscribe(
            chat_id,
            checked.feed.id,
            thread_id=thread_id,
            now_ms=self.clock.now_ms(),
            given_url=url,  # the feed may move (301) now or later; this stays
        )
        log.info("event=subscribe chat=%d feed=%d created=%s", chat_id, checked.feed.id, created)
        return Subscribed(
            checked.feed.id, checked.title, checked.url, created, checked.entries, checked.page_url
        )

    def offer(
        self,
        chat_id: int,
        thread_id: int | None,
        several: SeveralFeedsError,
        *,
        shown_in: int | None = None,
    ) -> str:
        """Keep the feeds a page led to for the chat to pick one; returns the offer's token.
        `shown_in`: the chat whose buttons offer them, when not the subscribing one (a
        channel managed from a private chat)."""
        return self.offers.add(
            chat_id, thread_id, several.page_url, several.feeds, shown_in=shown_in
        )

    def choice(self, shown_in: int, token: str, number: int) -> FeedChoice:
        """The feed picked from an offer shown in that chat. Raises UserError when the
        offer is gone."""
        picked = self.offers.choice(shown_in, token, number)
        if picked is None:
            raise UserError("discover.expired")
        return picked

    async def subscribe_choice(self, chat_id: int, picked: FeedChoice) -> Subscribed:
        """Subscribe to a feed picked from an offer, as /subscribe with its address."""
        result = await self.subscribe(
            chat_id, picked.url, thread_id=picked.thread_id, discover=False
        )
        return replace(result, page_url=picked.page_url)

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
        self, chat_id: int, text: str, *, thread_id: int | None, turn: Turn | None = None
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
        if self.on_left:
            self.on_left()
        return subscription

    async def set_mode(self, chat_id: int, args: list[str]) -> tuple[Subscription, str]:
        if len(args) != 2 or args[1].lower() not in MODES:
            raise UserError("mode.usage")
        subscription = await self.find_subscription(chat_id, args[0])
        mode = args[1].lower()
        await self.store.chats.set_mode(chat_id, subscription.id, mode)
        return subscription, mode
