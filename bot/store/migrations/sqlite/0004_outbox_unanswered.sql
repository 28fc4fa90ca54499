-- Sends of this message that went out and got no answer (the wait for it ran out, or the
-- connection closed first). Telegram may have delivered each, so the sender tries such a
-- message once more at most; kept here so that a restart does not forget it.
ALTER TABLE outbox ADD COLUMN unanswered INTEGER NOT NULL DEFAULT 0;
