-- 0007: WebSub push (bot/feeds/websub.py). One row per subscription the bot holds, or is
-- making or ending, at a feed's hub.

-- A WebSub hub pushes this feed's stories: a subscription was verified and its lease runs.
-- The poller then checks the feed only as a slow safety net (websub.poll_interval).
ALTER TABLE feeds ADD COLUMN hub_push INTEGER NOT NULL DEFAULT 0;

CREATE TABLE websub_subscriptions (
    id                INTEGER PRIMARY KEY,
    feed_id           INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    hub               TEXT    NOT NULL,             -- the URL subscription requests go to
    topic             TEXT    NOT NULL,             -- hub.topic: the feed's rel="self" URL
    -- The callback is the public origin + /websub/<token>: unguessable, one per subscription.
    token             TEXT    NOT NULL UNIQUE,
    callback          TEXT    NOT NULL,             -- hub.callback as last sent (origin moves)
    secret            TEXT    NOT NULL,             -- hub.secret: the key of X-Hub-Signature
    -- subscribing: asked for (or to be asked), not verified yet; active: verified, lease
    -- running (renewed before it ends); unsubscribing: no chat follows the feed any more,
    -- or it names another hub: unsubscribe asked for, the row goes when verified
    state             TEXT    NOT NULL DEFAULT 'subscribing',
    lease_seconds     INTEGER,                      -- as the hub granted it at verification
    lease_expires_at  INTEGER,
    -- when the next request (subscribe, renewal, unsubscribe, or a retry) is due
    next_request_at   INTEGER NOT NULL,
    requested_at      INTEGER,                      -- the last request the hub accepted
    -- requests sent since the last verification or state change (the retries back off)
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,                         -- why the last request failed, or denied:…
    verified_at       INTEGER,
    last_delivery_at  INTEGER,
    created_at        INTEGER NOT NULL
);
-- One live subscription per feed; rows being unsubscribed may linger beside it.
CREATE UNIQUE INDEX websub_live_feed ON websub_subscriptions (feed_id)
    WHERE state IN ('subscribing', 'active');
CREATE INDEX websub_next_request ON websub_subscriptions (next_request_at);
