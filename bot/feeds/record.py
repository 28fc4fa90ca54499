"""Recording a check: which entries are news, who is alerted, and the rules behind both.

The rules are plain functions over plain data, tested without a database:
- an entry is news when its feed was primed (its first check only records what is there)
  and it is not archive (more than the archive window older than the newest story seen);
- a chat that already has the same story from another feed (same normalized link, or
  same title within the duplicate window) is not alerted again;
- the feed's publishing rate counts the news it found (bot/feeds/freshness.py), and its
  next check is scheduled from the rate after this check.

`record_check` sequences them through one `CheckUnit`: the stories are recorded as seen,
the rate and the next check time written, and the outbox rows for their alerts written in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bot.feeds.freshness import FeedRate, observe
from bot.models import Delivery, Entry, NewStory
from bot.routing import Router
from bot.store import CheckUnit, FeedState, FeedUpdate, QueuedAlert, Written


@dataclass(frozen=True, slots=True)
class DedupeRules:
    archive_window_ms: int  # older than the newest story seen by more than this: archive
    duplicate_window_ms: int  # same title from another feed within this: the same story


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What one recorded check found."""

    entries: int  # entries in the document
    inserted: int  # entries never seen before (recorded as seen)
    fresh: int  # of those, news (not the first fetch, not archive)
    queued: int  # alerts written to the outbox
    duplicates_skipped: int  # alerts not written: the chat had the story from another feed
    recovered: bool  # the feed had been paused and answered again
    # The check outlived its lease and another instance holds the feed now: its stories
    # and alerts were recorded (once), the feed row was left to the new owner.
    lease_lost: bool = False


def oldest_first(stories: Sequence[NewStory], entries: Sequence[Entry]) -> list[NewStory]:
    """Alerts go out oldest first; stories with the same timestamp keep the feed's own
    order, which lists the newest first."""
    position = {entry.identity: index for index, entry in enumerate(entries)}
    return sorted(stories, key=lambda s: (s.entry.timestamp_id, -position[s.entry.identity]))


def news(stories: Sequence[NewStory], state: FeedState, archive_window_ms: int) -> list[NewStory]:
    """The new stories that are news: the feed was primed, and they are not archive."""
    if state.primed_at is None:
        return []
    newest = state.newest_timestamp_id
    if newest is None:
        return list(stories)
    return [s for s in stories if s.entry.timestamp_id >= newest - archive_window_ms]


def newest_timestamp(state: FeedState, entries: Sequence[Entry]) -> int | None:
    """The feed's newest story after this check (the anchor of the archive window)."""
    stamps = [e.timestamp_id for e in entries]
    if state.newest_timestamp_id is not None:
        stamps.append(state.newest_timestamp_id)
    return max(stamps, default=None)


AlertedChats = dict[str, dict[str, set[int]]]  # key column → key → chats alerted
# The time (epoch ms) of a feed's next check, given its rate after this check.
NextCheck = Callable[[FeedRate], int]


def without_duplicates(
    routed: Sequence[tuple[NewStory, Sequence[Delivery]]], alerted: AlertedChats
) -> tuple[list[QueuedAlert], int]:
    """The alerts to queue, leaving out chats that had the same story from another feed.
    Returns (alerts, how many were left out)."""
    alerts: list[QueuedAlert] = []
    skipped = 0
    by_link, by_title = alerted.get("link_key", {}), alerted.get("title_key", {})
    for story, deliveries in routed:
        entry = story.entry
        already = by_link.get(entry.link_key, set()) | by_title.get(entry.title_key, set())
        for d in deliveries:
            if d.chat_id in already:
                skipped += 1
            else:
                alerts.append(QueuedAlert(d.chat_id, d.thread_id, story.id, d.keyword))
    return alerts, skipped


async def record_check(
    unit: CheckUnit,
    entries: Sequence[Entry],
    summaries: dict[str, str],
    update: FeedUpdate,
    rules: DedupeRules,
    router: Router,
    next_check: NextCheck | None = None,
) -> CheckReport:
    """Record one successful check's entries (one per identity: parse_and_normalize sees to
    it), and queue the alerts they owe, in `unit`. With `next_check`, the feed's next check
    is scheduled from its rate after this check (else update.next_check_at stands)."""
    now = update.now_ms
    state = await unit.feed_state()
    inserted = oldest_first(await unit.insert_new(entries, summaries, now), entries)
    await unit.mark_present([e.identity for e in entries], now)
    fresh = news(inserted, state, rules.archive_window_ms)
    # Only news counts toward the rate: not what a first check found, nor archive entries.
    rate = observe(state.rate or FeedRate.new(now), len(fresh), now)
    if next_check is not None:
        update = replace(update, next_check_at=next_check(rate))
    written = await unit.record_success(
        update,
        primed_at=state.primed_at if state.primed_at is not None else now,
        newest_timestamp_id=newest_timestamp(state, entries),
        rate=rate,
    )
    alerts, skipped = await _route(unit, fresh, router, now - rules.duplicate_window_ms)
    if alerts:
        await unit.enqueue_alerts(alerts, now)
    return CheckReport(
        entries=len(entries),
        inserted=len(inserted),
        fresh=len(fresh),
        queued=len(alerts),
        duplicates_skipped=skipped,
        recovered=written is Written.RECOVERED,
        lease_lost=written is Written.NOT_OWNER,
    )


async def _route(
    unit: CheckUnit, fresh: Sequence[NewStory], router: Router, duplicate_since: int
) -> tuple[list[QueuedAlert], int]:
    """Who is alerted about each fresh story, less the cross-feed duplicates."""
    if not fresh:
        return [], 0
    recipients = await unit.instant_recipients()
    if not recipients:
        return [], 0
    routed = [(story, deliveries) for story in fresh if (deliveries := router(story, recipients))]
    if not routed:
        return [], 0
    alerted: AlertedChats = {}
    for column in ("link_key", "title_key"):
        keys = {getattr(story.entry, column) for story, _ in routed}
        alerted[column] = await unit.chats_alerted(column, keys, duplicate_since)
    return without_duplicates(routed, alerted)
