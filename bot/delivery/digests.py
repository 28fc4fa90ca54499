"""Digests through the outbox: on command, and daily at each chat's local time.

Each chat's next due instant lives in the database (chats.next_digest_at), so schedules
survive restarts with nothing to rebuild: a JobQueue job calls `fire_due` every few
seconds and it sends what has fallen due. A digest missed while the bot was down is sent
if it fell due less than `grace_hours` ago, else skipped (never piled up). Queuing a daily
digest and moving the schedule on happen in one transaction, so each local day's digest is
queued exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.digest import (
    DigestItem,
    DigestWindow,
    digest_window,
    due_since,
    next_due,
    on_demand_window,
    parse_digest_time,
    parse_zone,
    render_digest,
)
from bot.errors import UserError
from bot.filters import Keyword, KeywordFilter
from bot.models import Story
from bot.routing import story_text
from bot.store import Chat, Store
from bot.store.chats import DailyDigest

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
# Digests written per transaction when many chats fall due together.
WRITE_BATCH = 500


@dataclass(frozen=True, slots=True)
class Schedule:
    hour: int
    minute: int
    zone: str
    next_due_ms: int


def digest_items(stories: Sequence[Story], keywords: Sequence[Keyword]) -> list[DigestItem]:
    """Mark the stories that hit one of the chat's include keywords.

    The digest lists every story of the window (keywords decide alerts, not what the
    digest shows), with matches first; an excluded story is still listed, unmarked.
    """
    chat_filter = KeywordFilter(keywords) if keywords else None
    items = []
    for story in stories:
        matched = False
        if chat_filter is not None and chat_filter.includes:
            verdict = chat_filter.check(story_text(story.title, story.summary))
            matched = verdict.alert and verdict.keyword is not None
        items.append(DigestItem(story, matched))
    return items


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
        """Queue every daily digest that has fallen due. Returns how many were queued."""
        now = self.clock.now_ms()
        chats = await self.store.chats.digests_due(now)
        if not chats:
            return 0
        grace_ms = int(self.settings.digest.grace_hours * HOUR_MS)
        queued = 0
        ready: list[DailyDigest] = []
        # Chats due together mostly share a window: read its stories once per window.
        windows: dict[DigestWindow, dict[int, list[Story]]] = {}
        feeds = await self.store.chats.subscribed_feeds([c.id for c in chats])
        keywords = await self.store.chats.keywords_of([c.id for c in chats])
        for chat in chats:
            assert chat.digest_hour is not None and chat.digest_minute is not None
            zone = chat.timezone or self.settings.digest.timezone
            hour, minute = chat.digest_hour, chat.digest_minute
            following = next_due(hour, minute, zone, now)
            floor = max(x for x in (chat.last_digest_at, chat.digest_set_at, 0) if x is not None)
            due = due_since(hour, minute, zone, floor, now, grace_ms)
            if due is None:
                log.info(
                    "event=digest_skipped chat=%d due=%s reason=missed_beyond_grace",
                    chat.id,
                    chat.next_digest_at,
                )
                await self.store.chats.move_digest(chat.id, following)
                continue
            window = digest_window(chat.last_digest_at, due)
            if window not in windows:
                windows[window] = await self.store.stories.in_window(
                    seen_from=window.seen_from,
                    seen_until=window.seen_until,
                    published_from=window.published_from,
                )
            by_feed = windows[window]
            chat_keywords = [Keyword(t, ex) for t, ex in keywords.get(chat.id, [])]
            cap = self.settings.digest.max_stories_per_feed
            stories: list[Story] = []
            more: dict[int, int] = {}
            for feed_id in feeds.get(chat.id, ()):
                feed_stories = by_feed.get(feed_id, [])  # newest first
                if chat_keywords:  # matches may come from anywhere in the feed
                    stories += feed_stories
                else:  # the renderer shows only the newest `cap`: count the rest
                    stories += feed_stories[:cap]
                    if len(feed_stories) > cap:
                        more[feed_id] = len(feed_stories) - cap
            texts = render_digest(
                digest_items(stories, chat_keywords),
                now_ms=due,
                zone=zone,
                language=chat.language,
                max_per_feed=cap,
                more_by_feed=more,
            )
            ready.append(DailyDigest(chat.id, chat.digest_thread_id, due, following, texts))
            queued += 1
            if len(ready) >= WRITE_BATCH:
                await self.store.chats.record_daily_digests(ready, now)
                ready = []
        if ready:
            await self.store.chats.record_daily_digests(ready, now)
        if queued and self.on_queued:
            self.on_queued()
        log.info("event=digests_queued count=%d", queued)
        return queued

    async def _render(self, chat: Chat, window: DigestWindow, now: int) -> list[str]:
        stories = await self.store.stories.window(
            chat.id,
            seen_from=window.seen_from,
            seen_until=window.seen_until,
            published_from=window.published_from,
        )
        keywords = [Keyword(t, ex) for t, ex in await self.store.chats.keywords(chat.id)]
        return render_digest(
            digest_items(stories, keywords),
            now_ms=now,
            zone=chat.timezone or self.settings.digest.timezone,
            language=chat.language,
            max_per_feed=self.settings.digest.max_stories_per_feed,
        )
