-- 0001: the whole first schema. Times are epoch milliseconds (INTEGER) everywhere.

-- A feed is stored once, however many chats subscribe to it.
CREATE TABLE feeds (
    id                    INTEGER PRIMARY KEY,
    url                   TEXT    NOT NULL UNIQUE,
    title                 TEXT    NOT NULL DEFAULT '',
    site_url              TEXT    NOT NULL DEFAULT '',
    -- active: polled; paused: failing for days (subscribers told); gone: answered 410
    status                TEXT    NOT NULL DEFAULT 'active',
    etag                  TEXT,
    last_modified         TEXT,
    body_hash             TEXT,
    -- the feed's own hint (<ttl>, Cache-Control max-age) in seconds, bounded by settings
    hint_seconds          INTEGER,
    next_check_at         INTEGER NOT NULL DEFAULT 0,
    last_checked_at       INTEGER,
    last_success_at       INTEGER,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    failing_since         INTEGER,
    last_error            TEXT,
    -- set by the first successful fetch: entries seen before it are never news
    primed_at             INTEGER,
    -- newest timestamp id seen in this feed, for the archive window
    newest_timestamp_id   INTEGER,
    created_at            INTEGER NOT NULL
);
CREATE INDEX feeds_due ON feeds (next_check_at) WHERE status = 'active';

CREATE TABLE chats (
    id                INTEGER PRIMARY KEY,          -- Telegram chat id
    kind              TEXT    NOT NULL,             -- private, group, supergroup, channel
    title             TEXT    NOT NULL DEFAULT '',
    language          TEXT    NOT NULL DEFAULT 'en',
    -- active, or paused: the bot was blocked or removed (subscriptions kept, /start resumes)
    status            TEXT    NOT NULL DEFAULT 'active',
    timezone          TEXT,
    digest_hour       INTEGER,                      -- NULL: no daily digest
    digest_minute     INTEGER,
    digest_thread_id  INTEGER,
    digest_set_at     INTEGER,
    last_digest_at    INTEGER,                      -- due time of the last daily digest sent
    next_digest_at    INTEGER,                      -- when the next daily digest falls due
    created_at        INTEGER NOT NULL
);

CREATE INDEX chats_digest_due ON chats (next_digest_at) WHERE digest_hour IS NOT NULL;

CREATE TABLE subscriptions (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL REFERENCES chats (id) ON UPDATE CASCADE ON DELETE CASCADE,
    feed_id     INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    thread_id   INTEGER,                            -- forum topic the subscription was made in
    mode        TEXT    NOT NULL DEFAULT 'instant', -- instant or digest
    created_at  INTEGER NOT NULL,
    UNIQUE (chat_id, feed_id)
);
CREATE INDEX subscriptions_feed ON subscriptions (feed_id);

CREATE TABLE keywords (
    chat_id   INTEGER NOT NULL REFERENCES chats (id) ON UPDATE CASCADE ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    text      TEXT    NOT NULL,
    exclude   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, position)
);

-- The seen set: one row per story per feed. (feed_id, identity) decides what is new.
CREATE TABLE stories (
    id               INTEGER PRIMARY KEY,
    feed_id          INTEGER NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    identity         TEXT    NOT NULL,
    timestamp_id     INTEGER NOT NULL,
    title            TEXT    NOT NULL,
    link             TEXT    NOT NULL DEFAULT '',
    summary          TEXT    NOT NULL DEFAULT '',
    link_key         TEXT    NOT NULL DEFAULT '',
    title_key        TEXT    NOT NULL DEFAULT '',
    first_seen_at    INTEGER NOT NULL,
    last_present_at  INTEGER NOT NULL,
    UNIQUE (feed_id, identity)
);
CREATE INDEX stories_feed_time ON stories (feed_id, timestamp_id);
CREATE INDEX stories_time ON stories (timestamp_id);
CREATE INDEX stories_link_key ON stories (link_key) WHERE link_key != '';
CREATE INDEX stories_title_key ON stories (title_key) WHERE title_key != '';
CREATE INDEX stories_present ON stories (last_present_at);

-- Every message owed to a chat, written before any send. The sender marks a row sent only
-- after Telegram accepted it, so a crash can at most resend what was in flight.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    chat_id     INTEGER NOT NULL,
    thread_id   INTEGER,
    kind        TEXT    NOT NULL,                 -- alert, digest, notice
    story_id    INTEGER REFERENCES stories (id) ON DELETE SET NULL,
    keyword     TEXT,                             -- the include keyword that matched (alerts)
    text        TEXT,                             -- ready HTML (digests, notices)
    status      TEXT    NOT NULL DEFAULT 'pending', -- pending, sent, dropped, failed
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    sent_at     INTEGER,
    last_error  TEXT
);
-- A story is sent to a chat at most once.
CREATE UNIQUE INDEX outbox_alert_once ON outbox (chat_id, story_id) WHERE kind = 'alert';
CREATE INDEX outbox_pending ON outbox (not_before, id) WHERE status = 'pending';
CREATE INDEX outbox_story ON outbox (story_id);
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE status = 'sent';

-- Counters for /stats: events per name per hour (flood waits, send errors by kind...).
CREATE TABLE counters (
    name   TEXT    NOT NULL,
    hour   INTEGER NOT NULL,                      -- epoch ms truncated to the hour
    count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, hour)
);
