"""The operators' command: /stats, the whole bot at a glance (telegram.admins only)."""

from __future__ import annotations

from bot.errors import UserError
from bot.reports import render_stats
from bot.telegram.command import Request, command
from bot.telegram.context import BotContext


@command()
async def stats(request: Request, context: BotContext) -> None:
    """The operators' view of the whole bot; nobody else sees it, in any chat."""
    rt = context.runtime
    user = request.update.effective_user
    if user is None or user.id not in rt.settings.telegram.admins:
        raise UserError("auth.operators_only")
    report = await rt.store.stats.gather(now_ms=rt.clock.now_ms())
    await request.respond(render_stats(request.language, report))
