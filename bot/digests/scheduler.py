"""Digests through the outbox: on command, and daily at each chat's local time.

Each chat's next due instant lives in the database (chats.next_digest_at), so schedules
survive restarts with nothing to rebuild: a JobQueue job calls `fire_due` every few
seconds and it sends what has fallen due. A digest missed while the bot was down is sent
if it fell due less than `grace_hours` ago, else skipped (never piled up). Queuing a daily
digest and moving the schedule on happen in one transaction, so each local day's digest is
queued exactly once. With several instances on one database, each ticking, a chat's due
digest is claimed with a compare-and-set in that same transaction
(ChatStore.record_daily_digests): whichever instance's tick gets there first queues it,
the others' renders are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from bot.digests.render import DigestItem, DigestRenderer, render_digest
from bot.digests.schedule import (
    DigestWindow,
    digest_window,
    due_since,
    next_due,
    on_demand_window,
    parse_digest_time,
    parse_zone,
)
from bot.errors import UserError
from bot.filters import Keyword, KeywordIndex
from bot.models import Story
from bot.routing import story_text
from bot.store import Chat, Store
from bot.store.chats import DailyDigest

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
# Digests written per transaction when many chats fall due together. Each write waits
# for the SQLite thread; 100 keeps that to 1% of a run without holding many texts.
WRITE_BATCH = 100


@dataclass(frozen=True, slots=True)
class Schedule:
    hour: int
    minute: int
    zone: str
    next_due_ms: int


class KeywordMarker:
    """Which stories hit a chat's include keywords, for the digest's "★" marks.

    The digest lists every story of the window (keywords decide alerts, not what the
    digest shows), with matches first; an excluded story is still listed, unmarked.

    All the chats' keywords go into one KeywordIndex (Aho-Corasick, as for alerts), so each
    story is scanned once for every chat that follows it, not once per chat: keep one
    marker for one fire_due. The index answers exactly as each chat's KeywordFilter would
    (tests/test_filters.py checks that).
    """

    def __init__(self, keywords: Mapping[int, Sequence[Keyword]]) -> None:
        self._index = KeywordIndex()
        for chat_id, chat_keywords in keywords.items():
            self._index.set_chat(chat_id, chat_keywords)
        self._alerted: dict[int, frozenset[int]] = {}  # story id → chats it matches

    def matched(self, chat_id: int, stories: Iterable[Story]) -> set[int]:
        """The ids of `stories` that hit one of the chat's includes and none of its
        excludes (empty for a chat without include keywords)."""
        hits = set()
        for story in stories:
            chats = self._alerted.get(story.id)
            if chats is None:
                found = self._index.match(story_text(story.title, story.summary))
                chats = self._alerted[story.id] = frozenset(found.alerts())
            if chat_id in chats:
                hits.add(story.id)
        return hits


@dataclass
class _DueMinute:
    """What the chats due in one fire_due share: their subscriptions and keywords, read in
    one query each, one keyword marker, and one renderer per digest window."""

    feeds: dict[int, dict[int, str]]  # chat → feed → mode
    keywords: dict[int, list[Keyword]]
    renderers: dict[DigestWindow, DigestRenderer] = field(default_factory=dict)
    marker: KeywordMarker = field(init=False)

    def __post_init__(self) -> None:
        self.marker = KeywordMarker(self.keywords)


class DigestScheduler:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued
        self._firing = asyncio.Lock()

    # --- commands ---------------------------------------------------------------------

    async def set_schedule(
        self, chat_id: int, args: Sequence[str], *, thread_id: int | None
    ) -> Schedule:
        """`/digest at HH:MM [Area/City]`: args are what follows "at"."""
        if not args or len(args) > 2:
            raise UserError("digest.usage")
        hour, minute = parse_digest_time(args[0])
        chat = await self.store.chats.get(chat_id)
        if len(args) == 2:
            zone = parse_zone(args[1])
        else:
            zone = chat.timezone if chat and chat.timezone else self.settings.digest.timezone
        now = self.clock.now_ms()
        due = next_due(hour, minute, zone, now)
        await self.store.chats.set_digest(
            chat_id,
            hour=hour,
            minute=minute,
            timezone=zone,
            thread_id=thread_id,
            now_ms=now,
            next_due_ms=due,
        )
        log.info("event=digest_scheduled chat=%d at=%02d:%02d zone=%s", chat_id, hour, minute, zone)
        return Schedule(hour, minute, zone, due)

    async def turn_off(self, chat_id: int) -> bool:
        """`/digest off`. False when it was not on."""
        chat = await self.store.chats.get(chat_id)
        if chat is None or chat.digest_hour is None:
            return False
        await self.store.chats.set_digest(
            chat_id,
            hour=None,
            minute=None,
            timezone=None,
            thread_id=None,
            now_ms=self.clock.now_ms(),
            next_due_ms=None,
        )
        return True

    async def send_now(self, chat_id: int, *, thread_id: int | None) -> int:
        """`/digest`: the last 24 hours, queued now; the daily schedule is left alone."""
        chat = await self.store.chats.get(chat_id)
        if chat is None or not await self.store.chats.count_subscriptions(chat_id):
            raise UserError("digest.no_subscriptions")
        now = self.clock.now_ms()
        texts = await self._render(chat, on_demand_window(now), now)
        await self.store.outbox.enqueue_text(
            chat_id, thread_id, kind="digest", texts=texts, now_ms=now
        )
        if self.on_queued:
            self.on_queued()
        return len(texts)

    # --- the daily job ------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Queue every daily digest that has fallen due. Returns how many were queued.

        10,000 chats can fall due in the same minute (08:00 in one zone is a round hour in
        many), so the work is shared: the chats mostly share one window, whose stories are
        read once and rendered by one DigestRenderer; each story's text is folded for
        keyword matching once. It yields to the event loop after each chat, so commands
        and alerts keep flowing while thousands of digests are made, and writes a batch
        of chats per transaction.

        A call made while another runs returns 0 at once: the job ticks every few seconds
        and a big minute takes longer, and two runs would queue the same digests twice.
        """
        if self._firing.locked():
            return 0
        async with self._firing:
            return await self._fire_due()

    async def _fire_due(self) -> int:
        now = self.clock.now_ms()
        chats = await self.store.chats.digests_due(now)
        if not chats:
            return 0
        ids = [chat.id for chat in chats]
        minute = _DueMinute(
            feeds=await self.store.chats.subscribed_feeds(ids),
            keywords=await self.store.chats.keywords_of(ids),
        )
        queued = 0
        ready: list[DailyDigest] = []
        for chat in chats:
            digest = await self._daily_digest(chat, minute, now)
            if digest is None:
                continue
            ready.append(digest)
            if len(ready) >= WRITE_BATCH:
                queued += len(await self.store.chats.record_daily_digests(ready, now))
                ready = []
            else:
                # Rendering is CPU work with no await in it: let the loop run in between.
                await asyncio.sleep(0)
        if ready:
            queued += len(await self.store.chats.record_daily_digests(ready, now))
        if queued and self.on_queued:
            self.on_queued()
        log.info("event=digests_queued count=%d", queued)
        return queued

    async def _daily_digest(self, chat: Chat, minute: _DueMinute, now: int) -> DailyDigest | None:
        """The chat's digest that fell due, or None when it was missed beyond the grace
        period (its schedule then moves on to the next due time)."""
        assert chat.digest_hour is not None and chat.digest_minute is not None
        assert chat.next_digest_at is not None
        zone = chat.timezone or self.settings.digest.timezone
        hour, minute_of_hour = chat.digest_hour, chat.digest_minute
        following = next_due(hour, minute_of_hour, zone, now)
        floor = max(x for x in (chat.last_digest_at, chat.digest_set_at, 0) if x is not None)
        grace_ms = int(self.settings.digest.grace_hours * HOUR_MS)
        due = due_since(hour, minute_of_hour, zone, floor, now, grace_ms)
        if due is None:
            log.info(
                "event=digest_skipped chat=%d due=%s reason=missed_beyond_grace",
                chat.id,
                chat.next_digest_at,
            )
            await self.store.chats.move_digest(chat.id, following, scheduled_ms=chat.next_digest_at)
            return None
        renderer = await self._renderer(digest_window(chat.last_digest_at, due), minute)
        chat_feeds = minute.feeds.get(chat.id, {})
        matched = (
            minute.marker.matched(chat.id, renderer.stories_of(chat_feeds))
            if chat.id in minute.keywords
            else frozenset()
        )
        texts = renderer.render(
            chat_feeds,
            matched,
            now_ms=due,
            zone=zone,
            language=chat.language,
            digest_feeds={feed for feed, mode in chat_feeds.items() if mode == "digest"},
        )
        return DailyDigest(
            chat.id,
            chat.digest_thread_id,
            due,
            following,
            texts,
            scheduled_ms=chat.next_digest_at,
            last_ms=chat.last_digest_at,
        )

    async def _renderer(self, window: DigestWindow, minute: _DueMinute) -> DigestRenderer:
        """The window's renderer: its stories read and its shared work done once."""
        renderer = minute.renderers.get(window)
        if renderer is None:
            by_feed = await self.store.stories.in_window(
                seen_from=window.seen_from,
                seen_until=window.seen_until,
                published_from=window.published_from,
            )
            renderer = minute.renderers[window] = DigestRenderer(
                by_feed,
                max_per_feed=self.settings.digest.max_stories_per_feed,
            )
        return renderer

    async def _render(self, chat: Chat, window: DigestWindow, now: int) -> list[str]:
        stories = await self.store.stories.window(
            chat.id,
            seen_from=window.seen_from,
            seen_until=window.seen_until,
            published_from=window.published_from,
        )
        keywords = await self.store.chats.keywords(chat.id)
        matched = KeywordMarker({chat.id: keywords}).matched(chat.id, stories)
        modes = (await self.store.chats.subscribed_feeds([chat.id]))[chat.id]
        return render_digest(
            [DigestItem(story, story.id in matched) for story in stories],
            now_ms=now,
            zone=chat.timezone or self.settings.digest.timezone,
            language=chat.language,
            max_per_feed=self.settings.digest.max_stories_per_feed,
            digest_feeds={feed for feed, mode in modes.items() if mode == "digest"},
        )
