-- 0006: pictures (issue 15).
-- The story's picture: an absolute http(s) URL, '' when it has none (bot/feeds/entry.py).
ALTER TABLE stories ADD COLUMN image_url TEXT NOT NULL DEFAULT '';
-- Whether the chat's alerts come as photos when their story has a picture (default on).
ALTER TABLE chats ADD COLUMN pictures INTEGER NOT NULL DEFAULT 1;
-- Telegram refused this alert's photo: it goes as text. Written before the text is sent,
-- so a kill in between sends the text at the next start, not the photo again.
ALTER TABLE outbox ADD COLUMN photo_refused INTEGER NOT NULL DEFAULT 0;
