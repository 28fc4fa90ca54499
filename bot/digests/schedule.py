"""When a daily digest falls due, and which stories a digest lists.

Pure logic: no database, no Telegram, no clock. Every instant is passed in as epoch
milliseconds, so the store, the scheduler and the tests decide what "now" is.

- schedule math: parse_digest_time, parse_zone, next_due, due_since;
- the window: digest_window (daily) and on_demand_window (/digest), which say exactly
  which stored stories a digest lists (the store runs the rule: IN_DIGEST_WINDOW).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from bot.clock import DAY_MS
from bot.errors import UserError

# ---------------------------------------------------------------------------------------
# Schedule math
# ---------------------------------------------------------------------------------------

# ASCII digits only: NFKC has already folded full-width digits, and int() would otherwise
# accept digits of other scripts that nobody types for a clock time.
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")

# Names tzdata ships that are not places: "localtime" is the host's own setting and
# "Factory" means "zone not configured"; neither is a choice a chat should make.
_NOT_ZONES = frozenset({"localtime", "Factory"})


def parse_digest_time(text: str) -> tuple[int, int]:
    """Read "HH:MM" (also "H:MM" and full-width "０７：３０") as (hour, minute).

    Raises UserError("digest.bad_time", given=text) for anything else, "24:00" included:
    the day has no 24th hour, and accepting it would make two spellings of midnight.
    """
    folded = unicodedata.normalize("NFKC", text).strip()
    match = _TIME_RE.fullmatch(folded)
    if match is None:
        raise UserError("digest.bad_time", given=text)
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise UserError("digest.bad_time", given=text)
    return hour, minute


@cache
def _zones_by_folded_name() -> dict[str, str]:
    # available_timezones() walks the tzdata package; do it once per process.
    return {name.casefold(): name for name in available_timezones() if name not in _NOT_ZONES}


def parse_zone(text: str) -> str:
    """The IANA zone name the user meant, matched ignoring case ("asia/shanghai").

    Returns the canonical spelling ("Asia/Shanghai"); "UTC" and "GMT" are zones too.
    Raises UserError("digest.bad_zone", given=text) for names tzdata does not know.
    """
    folded = unicodedata.normalize("NFKC", text).strip().casefold()
    name = _zones_by_folded_name().get(folded)
    if name is None:
        raise UserError("digest.bad_zone", given=text)
    return name


def _to_ms(moment: datetime) -> int:
    # Integer arithmetic on the timedelta avoids float rounding of .timestamp().
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def local_time(epoch_ms: int, zone: ZoneInfo) -> datetime:
    """The instant as wall-clock time in `zone` (exact: no float rounding)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)).astimezone(zone)


def _gap_end_ms(wall: datetime, zone: ZoneInfo) -> int:
    """The instant a spring-forward gap containing the wall time `wall` ends.

    Inside a gap, fold=0 and fold=1 map `wall` with the offsets from either side of the
    transition, so the transition lies between those two instants. zoneinfo has no public
    way to ask for the transition itself, so find it by bisection on whole seconds (tzdata
    transitions fall on whole seconds): the first second whose local wall clock has
    reached `wall` or passed it is the first one after the gap.
    """
    a = _to_ms(wall.replace(tzinfo=zone, fold=0)) // 1000
    b = _to_ms(wall.replace(tzinfo=zone, fold=1)) // 1000
    low, high = min(a, b), max(a, b)  # local(low) < wall <= local(high)
    while high - low > 1:
        middle = (low + high) // 2
        if local_time(middle * 1000, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high * 1000


def _due_on(day: date, hour: int, minute: int, zone: ZoneInfo) -> int:
    """The due instant that local calendar day `day` owes: hour:minute local time.

    - A repeated hour (fall back): fold=0, the first occurrence; the second is never
      considered, so the digest goes out once.
    - A skipped hour (spring forward): the first instant after the gap, which is what a
      person who set an alarm for 02:30 expects (Berlin 2025-03-30 02:30 -> 03:00 CEST).
      Where the gap runs over midnight (America/Nuuk every March: Saturday 23:00 ->
      Sunday 00:00), that instant is on the next local date, yet it is still Saturday's
      digest: skipping it would leave that day's stories in no digest.
    """
    wall = datetime.combine(day, time(hour, minute))
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return _to_ms(first)
    return _gap_end_ms(wall, zone)


def _check_clock(hour: int, minute: int) -> None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"not a clock time: {hour}:{minute}")


def _due_instants(
    hour: int, minute: int, zone: ZoneInfo, around_ms: int, step: int
) -> Iterator[int]:
    """The due instants of the local days around `around_ms`, walking one way (step 1:
    forwards from the day before; step -1: backwards from the day after). They rise with
    the days they belong to, even across gaps, so the first one past a bound is the one.
    Three days always contain the answer; the rest are slack for a bug to show as the
    ValueError below rather than as a wrong instant.
    """
    start = local_time(around_ms, zone).date() - timedelta(days=step)
    for offset in range(5):
        yield _due_on(start + timedelta(days=offset * step), hour, minute, zone)


def next_due(hour: int, minute: int, zone: str, after_ms: int) -> int:
    """The first due instant strictly after `after_ms` (epoch ms) for a daily digest at
    hour:minute local time in `zone`. One per local calendar day; _due_on says how DST
    gaps and repeats are handled.
    """
    _check_clock(hour, minute)
    tz = ZoneInfo(zone)
    for due in _due_instants(hour, minute, tz, after_ms, step=1):
        if due > after_ms:
            return due
    raise ValueError(f"no {hour:02}:{minute:02} in {zone} near {after_ms}")


def previous_due(hour: int, minute: int, zone: str, at_or_before_ms: int) -> int:
    """The most recent due instant at or before `at_or_before_ms` (the mirror of next_due)."""
    _check_clock(hour, minute)
    tz = ZoneInfo(zone)
    # Walking backwards from the day after, the first instant not in the future is it.
    for due in _due_instants(hour, minute, tz, at_or_before_ms, step=-1):
        if due <= at_or_before_ms:
            return due
    raise ValueError(f"no {hour:02}:{minute:02} in {zone} near {at_or_before_ms}")


def due_since(
    hour: int,
    minute: int,
    zone: str,
    last_sent_ms: int | None,
    now_ms: int,
    grace_ms: int,
) -> int | None:
    """At start-up: the daily digest that fell due while the bot was down, if still worth it.

    Returns the most recent due instant <= now_ms that is strictly after `last_sent_ms`,
    provided it fell due less than `grace_ms` ago; otherwise None. Only that one can be
    returned: digests missed before it are skipped, never piled up.

    `last_sent_ms` is the due instant of the chat's last daily digest (the `seen_until` of
    its window) or, when none has been sent yet, the moment the schedule was set, so a
    restart between setting "08:00" at 07:00 and 08:00 does not send yesterday's. None
    means no lower bound at all.
    """
    due = previous_due(hour, minute, zone, now_ms)
    if last_sent_ms is not None and due <= last_sent_ms:
        return None
    if now_ms - due >= grace_ms:
        return None
    return due


# ---------------------------------------------------------------------------------------
# Which stories a digest lists
# ---------------------------------------------------------------------------------------

# How late a story may be found (first seen minus its timestamp id) and still count as
# news in the next daily digest. A feed polled every few minutes is a few minutes late; a
# feed that failed for hours is hours late. A story that first shows up much later than
# that is a backlog (the entries of a feed the chat just added) or an archive, not news.
LATE_FIND_ALLOWANCE_MS = DAY_MS


@dataclass(frozen=True, slots=True)
class DigestWindow:
    """Which stored stories one digest lists. A story is in it exactly when

        seen_from <= first_seen_ms < seen_until  and  timestamp_id >= published_from

    where first_seen_ms is when the bot first stored the story (not its publication time)
    and timestamp_id is its publication time (PRODUCT.md: the story's id).

    This class only holds the bounds. The rule runs in one place, the store
    (bot/store/stories.py, IN_DIGEST_WINDOW), given exactly these three numbers: Story
    does not carry first_seen_ms, since nothing after selection needs it.
    """

    seen_from: int  # inclusive, epoch ms, on the first-seen axis
    seen_until: int  # exclusive, epoch ms, on the first-seen axis
    published_from: int  # inclusive, epoch ms, on the timestamp-id axis


def digest_window(last_digest_ms: int | None, due_ms: int) -> DigestWindow:
    """The stories of the daily digest due at `due_ms`.

    `last_digest_ms` is the `seen_until` of the chat's previous daily digest (its due
    instant, not when the message went out: a story found while that digest waited in the
    outbox belongs to the next one), or None when there was none.

    Why select by first-seen time, not by timestamp id: a story published at 07:59 and
    found at 08:01 was not in the store when the 08:00 digest was made; a timestamp window
    [08:00 yesterday, 08:00 today) for that digest and [08:00 today, 08:00 tomorrow) for
    the next would lose it between the two. Windows on the first-seen axis, each starting
    where the previous one ended, put every story found into exactly one digest, the first
    one made after it was found.

    - After an earlier daily digest: first seen in [max(last, due - 24h), due), and
      published no more than LATE_FIND_ALLOWANCE_MS before that window starts. The 24 h
      bound is PRODUCT's "at most 24 hours' worth" after a long pause (digest off, bot
      down).
    - First digest: published in [due - 24h, due) (PRODUCT: "those published in the last
      24 hours"). No first-seen bound is needed below: a story's timestamp id is never
      after its first-seen time, so first_seen >= timestamp_id >= due - 24h.
    """
    if last_digest_ms is not None and last_digest_ms >= due_ms:
        # A digest for an instant already covered would repeat stories: a caller bug.
        raise ValueError(f"digest due at {due_ms} is not after the last one at {last_digest_ms}")
    day_before = due_ms - DAY_MS
    if last_digest_ms is None:
        return DigestWindow(seen_from=day_before, seen_until=due_ms, published_from=day_before)
    seen_from = max(last_digest_ms, day_before)
    return DigestWindow(
        seen_from=seen_from,
        seen_until=due_ms,
        published_from=seen_from - LATE_FIND_ALLOWANCE_MS,
    )


def on_demand_window(now_ms: int) -> DigestWindow:
    """The stories of `/digest` sent on command: published (by timestamp id) in the last
    24 hours, whenever found, those already in a feed when the chat subscribed included.
    It reads nothing from, and changes nothing in, the daily schedule's windows.
    """
    return DigestWindow(seen_from=0, seen_until=now_ms + 1, published_from=now_ms - DAY_MS)
