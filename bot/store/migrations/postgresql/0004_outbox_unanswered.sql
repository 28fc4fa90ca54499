-- 0004 (PostgreSQL), as ../0004_outbox_unanswered.sql: sends of this message that went out
-- and got no answer (the wait for it ran out, or the connection closed first). Telegram may
-- have delivered each, so the sender tries such a message once more at most. A count, not a
-- flag: INTEGER, as in SQLite.
ALTER TABLE outbox ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;
