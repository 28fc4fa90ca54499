"""The reports a command ends with, in the reader's language: an import's summary (/import
and `news-notifier import-opml`) and the operators' /stats."""

from __future__ import annotations

from bot.i18n import TEXTS, failure_reason, t
from bot.opml import Failure, ImportReport
from bot.store import Stats
from bot.text import html_to_plain

MAX_FAILURE_EXAMPLES = 10
MAX_FAILURE_GROUPS = 12  # with the examples, keeps the summary well inside one message


def import_failure_reason(lang: str, failure: Failure) -> str:
    """A short label for why feeds failed; the full text for a reason without one."""
    if failure.feed_failure is not None:
        return failure_reason(lang, failure.feed_failure)
    short = f"import.reason.{failure.key}"
    if short in TEXTS:
        return t(lang, short, **failure.values)
    return html_to_plain(t(lang, failure.key, **failure.values))


def import_summary(lang: str, report: ImportReport) -> str:
    """Counts, then failures grouped by reason with at most MAX_FAILURE_EXAMPLES addresses."""
    lines = [
        t(
            lang,
            "import.summary",
            total=report.total,
            added=len(report.added),
            already=len(report.already),
            failed=len(report.failures),
        )
    ]
    budget = MAX_FAILURE_EXAMPLES
    groups = report.failure_groups()
    for group in groups[:MAX_FAILURE_GROUPS]:
        reason = import_failure_reason(lang, group.first)
        lines.append("")
        lines.append(t(lang, "import.failed_group", reason=reason, count=len(group.urls)))
        shown = group.urls[: max(budget, 0)]
        budget -= len(shown)
        lines.extend(t(lang, "import.failed_example", url=url[:200]) for url in shown)
        if len(group.urls) > len(shown):
            lines.append(t(lang, "import.failed_more", count=len(group.urls) - len(shown)))
    if len(groups) > MAX_FAILURE_GROUPS:
        rest = sum(len(group.urls) for group in groups[MAX_FAILURE_GROUPS:])
        lines.append("")
        lines.append(t(lang, "import.failed_other", count=rest))
    if report.not_checked:
        lines.append("")
        lines.append(t(lang, "import.stopped", count=report.not_checked))
    return "\n".join(lines)


def render_stats(lang: str, stats: Stats) -> str:
    """The operators' view of the whole bot, as /stats shows it."""
    errors = {
        name.removeprefix("error."): count
        for name, count in sorted(stats.counters.items())
        if name.startswith("error.") and count
    }
    report = t(
        lang,
        "stats.report",
        chats_active=stats.chats_active,
        chats_paused=stats.chats_paused,
        subscriptions=stats.subscriptions,
        feeds_healthy=stats.feeds_healthy,
        feeds_failing=stats.feeds_failing,
        feeds_paused=stats.feeds_paused,
        feeds_gone=stats.feeds_gone,
        stories_today=stats.stories_today,
        outbox_pending=stats.outbox_pending,
        sent_last_hour=stats.sent_last_hour,
        hours=stats.counters_hours,
        flood_waits=stats.counters.get("flood_wait", 0),
        too_fast=stats.counters.get("too_fast", 0),
        unanswered=stats.counters.get("unanswered", 0),
        assumed_delivered=stats.counters.get("assumed_delivered", 0),
        errors=", ".join(f"{name} {count}" for name, count in errors.items())
        or t(lang, "stats.no_errors"),
        database_mb=f"{stats.database_bytes / 1_048_576:.1f}",
        database_kind=t(lang, f"stats.database.{stats.database_dialect}"),
    )
    return "\n".join([report, *instance_lines(lang, stats)])


def instance_lines(lang: str, stats: Stats) -> list[str]:
    """The running instances, each with its role and how long ago it last gave a sign."""
    if not stats.instances:
        return []
    lines = [t(lang, "stats.instances", count=len(stats.instances))]
    for row in stats.instances:
        lines.append(
            t(
                lang,
                "stats.instance",
                id=row.id,
                host=row.host,
                pid=row.pid,
                role=row.role or t(lang, "stats.role.none"),
                ago=max(0, (stats.now_ms - row.heartbeat_at) // 1000),
            )
        )
    return lines
