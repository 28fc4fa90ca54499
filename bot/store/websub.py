"""WebSub subscriptions: what the bot asked of which hub, for which feed, and how it stands.

The rules (when to subscribe, renew, give up, unsubscribe) are in bot/feeds/websub.py; here
is how a subscription is stored and moved from state to state. A state change that decides
whether the hub pushes a feed writes `feeds.hub_push` in the same transaction, so the
poller's safety-net interval never disagrees with the subscriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.db import Connection, Database, Row

SUBSCRIBING = "subscribing"
ACTIVE = "active"
UNSUBSCRIBING = "unsubscribing"
LIVE = (SUBSCRIBING, ACTIVE)


@dataclass(frozen=True, slots=True)
class HubSubscription:
    id: int
    feed_id: int
    hub: str
    topic: str
    token: str
    callback: str
    secret: str
    state: str
    lease_seconds: int | None
    lease_expires_at: int | None
    next_request_at: int
    requested_at: int | None
    attempts: int
    last_error: str | None
    verified_at: int | None
    last_delivery_at: int | None
    created_at: int


_COLUMNS = (
    "id, feed_id, hub, topic, token, callback, secret, state, lease_seconds, lease_expires_at,"
    " next_request_at, requested_at, attempts, last_error, verified_at, last_delivery_at,"
    " created_at"
)


def _subscription(row: Row) -> HubSubscription:
    return HubSubscription(*row)


async def _set_hub_push(conn: Connection, feed_id: int, pushed: bool, now_ms: int) -> None:
    """The feed's hub pushes (or no longer pushes) its stories. When push ends, the feed
    is due at once: it waited at the slow safety-net interval, and nothing pushes now."""
    if pushed:
        await conn.execute("UPDATE feeds SET hub_push = 1 WHERE id = ?", (feed_id,))
    else:
        await conn.execute(
            "UPDATE feeds SET hub_push = 0,"
            " next_check_at = CASE WHEN next_check_at > ? THEN ? ELSE next_check_at END"
            " WHERE id = ? AND hub_push = 1",
            (now_ms, now_ms, feed_id),
        )


class WebSubStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reading ------------------------------------------------------------------------

    async def by_token(self, token: str) -> HubSubscription | None:
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE token = ?", (token,)
        )
        return _subscription(row) if row else None

    async def live_for_feed(self, feed_id: int) -> HubSubscription | None:
        """The feed's subscription being made or held (at most one), if any."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE feed_id = ? AND state IN (?, ?)",
            (feed_id, *LIVE),
        )
        return _subscription(row) if row else None

    async def due(self, now_ms: int, limit: int) -> list[HubSubscription]:
        """Subscriptions whose next request (subscribe, renew, unsubscribe, retry) is due."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE next_request_at <= ?"
            " ORDER BY next_request_at LIMIT ?",
            (now_ms, limit),
        )
        return [_subscription(row) for row in rows]

    async def count_by_state(self) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT state, COUNT(*) FROM websub_subscriptions GROUP BY state"
        )
        return {row[0]: int(row[1]) for row in rows}

    # --- changing -----------------------------------------------------------------------

    async def add(
        self,
        feed_id: int,
        *,
        hub: str,
        topic: str,
        token: str,
        callback: str,
        secret: str,
        now_ms: int,
    ) -> HubSubscription | None:
        """A new subscription to make, its request due now. None when the feed already has
        a live one (another check added it meanwhile)."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "INSERT INTO websub_subscriptions (feed_id, hub, topic, token, callback, secret,"
                " state, next_request_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING " + _COLUMNS,
                (feed_id, hub, topic, token, callback, secret, SUBSCRIBING, now_ms, now_ms),
            )
        return _subscription(row) if row else None

    async def asked(
        self,
        subscription_id: int,
        *,
        sent_at: int,
        accepted: bool,
        error: str | None,
        next_request_at: int,
    ) -> None:
        """A request went to the hub at `sent_at`: accepted (it verifies next) or not
        (`error`). Asked again at `next_request_at`, unless a verification came meanwhile
        and set the next request itself (a hub may verify before it answers)."""
        await self.db.execute(
            "UPDATE websub_subscriptions SET attempts = attempts + 1, last_error = ?,"
            " requested_at = CASE WHEN ? = 1 THEN ? ELSE requested_at END,"
            " next_request_at = CASE WHEN verified_at >= ? THEN next_request_at ELSE ? END"
            " WHERE id = ?",
            (
                None if accepted else (error or "")[:500],
                1 if accepted else 0,
                sent_at,
                sent_at,
                next_request_at,
                subscription_id,
            ),
        )

    async def set_callback(self, subscription: HubSubscription, callback: str, now_ms: int) -> None:
        """The public origin moved: the hub delivers to a callback nobody serves. Subscribe
        again (with the new callback) now; the feed is polled at its own rate meanwhile."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE websub_subscriptions SET callback = ?, state = CASE WHEN state = ?"
                " THEN ? ELSE state END, next_request_at = ?, attempts = 0 WHERE id = ?",
                (callback, ACTIVE, SUBSCRIBING, now_ms, subscription.id),
            )
            await _set_hub_push(conn, subscription.feed_id, False, now_ms)

    async def verified(
        self, subscription_id: int, *, lease_seconds: int, now_ms: int, renew_at: int
    ) -> bool:
        """The hub verified a subscribe (new or renewed): active, lease from now, the feed
        pushed. False when the row is no longer live (unsubscribed meanwhile)."""
        async with self.db.transaction() as conn:
            row = await conn.fetchone(
                "UPDATE websub_subscriptions SET state = ?, lease_seconds = ?,"
                " lease_expires_at = ?, verified_at = ?, next_request_at = ?, attempts = 0,"
                " last_error = NULL WHERE id = ? AND state IN (?, ?) RETURNING feed_id",
                (
                    ACTIVE,
                    lease_seconds,
                    now_ms + lease_seconds * 1000,
                    now_ms,
                    renew_at,
                    subscription_id,
                    *LIVE,
                ),
            )
            if row is None:
                return False
            await _set_hub_push(conn, row[0], True, now_ms)
            return True

    async def lapse(
        self, subscription: HubSubscription, *, error: str, now_ms: int, retry_at: int
    ) -> None:
        """The hub no longer pushes (it denied the subscription, or the lease ran out
        unrenewed): back to subscribing, asked again at `retry_at`; the feed is polled at
        its own rate again from now."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE websub_subscriptions SET state = ?, lease_expires_at = NULL,"
                " last_error = ?, next_request_at = ? WHERE id = ? AND state IN (?, ?)",
                (SUBSCRIBING, error[:500], retry_at, subscription.id, *LIVE),
            )
            await _set_hub_push(conn, subscription.feed_id, False, now_ms)

    async def begin_unsubscribe(self, subscription: HubSubscription, *, now_ms: int) -> None:
        """Stop wanting the feed's pushes: unsubscribe is asked for now, and the feed is
        polled at its own rate again (it still is when chats follow it)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE websub_subscriptions SET state = ?, next_request_at = ?, attempts = 0"
                " WHERE id = ?",
                (UNSUBSCRIBING, now_ms, subscription.id),
            )
            await _set_hub_push(conn, subscription.feed_id, False, now_ms)

    async def stop_all(self, now_ms: int) -> int:
        """Push is off (no public URL, or websub.enabled false): no feed waits for a hub;
        live subscriptions are made again when push is on again. Returns the feeds freed."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE websub_subscriptions SET state = ?, next_request_at = ?, attempts = 0"
                " WHERE state = ?",
                (SUBSCRIBING, now_ms, ACTIVE),
            )
            return await conn.execute(
                "UPDATE feeds SET hub_push = 0,"
                " next_check_at = CASE WHEN next_check_at > ? THEN ? ELSE next_check_at END"
                " WHERE hub_push = 1",
                (now_ms, now_ms),
            )

    async def live(self) -> list[HubSubscription]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE state IN (?, ?)", LIVE
        )
        return [_subscription(row) for row in rows]

    async def remove(self, subscription_id: int) -> None:
        await self.db.execute("DELETE FROM websub_subscriptions WHERE id = ?", (subscription_id,))

    async def delivered(self, subscription_id: int, now_ms: int) -> None:
        await self.db.execute(
            "UPDATE websub_subscriptions SET last_delivery_at = ? WHERE id = ?",
            (now_ms, subscription_id),
        )

    async def orphaned(self, *, created_before: int) -> list[HubSubscription]:
        """Live subscriptions of feeds no active chat follows any more (the last one left,
        or blocked the bot, or removed it), made before `created_before`: a /subscribe checks
        the feed before it subscribes the chat, so a brand-new row may not have its chat
        yet."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM websub_subscriptions w WHERE state IN (?, ?)"
            " AND created_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM subscriptions s JOIN chats c ON c.id = s.chat_id"
            " WHERE s.feed_id = w.feed_id AND c.status = 'active')",
            (*LIVE, created_before),
        )
        return [_subscription(row) for row in rows]

    async def followed_by_paused_chats_only(self, feed_id: int) -> bool:
        """The feed has followers and every one is paused (it blocked or removed the bot):
        no hub is asked to push it. A feed without followers yet is being subscribed to."""
        row = await self.db.fetchone(
            "SELECT COUNT(*), COUNT(CASE WHEN c.status = 'active' THEN 1 END)"
            " FROM subscriptions s JOIN chats c ON c.id = s.chat_id WHERE s.feed_id = ?",
            (feed_id,),
        )
        return bool(row and row[0] > 0 and row[1] == 0)

    async def lease_ended(self, now_ms: int) -> list[HubSubscription]:
        """Active subscriptions whose lease ran out (every renewal failed)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE state = ?"
            " AND lease_expires_at <= ?",
            (ACTIVE, now_ms),
        )
        return [_subscription(row) for row in rows]
