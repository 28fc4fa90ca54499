"""Feeds offered for a choice, kept until someone picks one or the offer expires.

A web page may lead to several feeds (bot/feeds/discover.py); the chat is offered them as
buttons. Telegram lets a button carry at most 64 bytes, too few for a feed's address, so
a button carries a short token and a number, and the offer itself stays here, in memory:
an offer is worth a few minutes of someone's attention, and after a restart (or its
expiry) a press is told to send /subscribe again, which costs nothing but the search.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from bot.clock import Clock
from bot.errors import FeedOption

# How long the buttons of an offer work.
OFFER_SECONDS = 15 * 60
# Offers kept at once; past it the oldest go first (a flood of /subscribe cannot grow it).
MAX_OFFERS = 1000
TOKEN_BYTES = 4  # 8 hex digits: "feed:0a1b2c3d:5" is 15 bytes of Telegram's 64


@dataclass(frozen=True, slots=True)
class FeedOffer:
    chat_id: int  # the chat that subscribes
    thread_id: int | None  # the forum topic /subscribe was sent in: alerts go there
    page_url: str
    feeds: tuple[FeedOption, ...]
    expires_ms: int
    shown_in: int  # the chat whose buttons offer the feeds (where /subscribe was sent)


@dataclass(frozen=True, slots=True)
class FeedChoice:
    """The feed a press picked, the page it was found on, and the chat it is for and where
    that chat wants its alerts."""

    url: str
    title: str
    page_url: str
    thread_id: int | None
    chat_id: int


class FeedOffers:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._offers: dict[str, FeedOffer] = {}  # by token, oldest first

    def add(
        self,
        chat_id: int,
        thread_id: int | None,
        page_url: str,
        feeds: tuple[FeedOption, ...],
        *,
        shown_in: int | None = None,
    ) -> str:
        """Keep an offer for `chat_id`, shown in `shown_in` (by default the same chat);
        returns the token its buttons carry."""
        now = self.clock.now_ms()
        self._forget_expired(now)
        while len(self._offers) >= MAX_OFFERS:
            del self._offers[next(iter(self._offers))]
        token = secrets.token_hex(TOKEN_BYTES)
        while token in self._offers:
            token = secrets.token_hex(TOKEN_BYTES)
        expires = now + OFFER_SECONDS * 1000
        shown = chat_id if shown_in is None else shown_in
        self._offers[token] = FeedOffer(chat_id, thread_id, page_url, feeds, expires, shown)
        return token

    def choice(self, shown_in: int, token: str, number: int) -> FeedChoice | None:
        """The feed numbered `number` (from 0) of a live offer shown in this chat; None when
        the offer expired, is unknown (a restart, a forged press) or was shown elsewhere."""
        offer = self._offers.get(token)
        if offer is None or offer.shown_in != shown_in or offer.expires_ms <= self.clock.now_ms():
            return None
        if not 0 <= number < len(offer.feeds):
            return None
        picked = offer.feeds[number]
        return FeedChoice(picked.url, picked.title, offer.page_url, offer.thread_id, offer.chat_id)

    def _forget_expired(self, now_ms: int) -> None:
        for token in [t for t, offer in self._offers.items() if offer.expires_ms <= now_ms]:
            del self._offers[token]
