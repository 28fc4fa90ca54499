-- 0008: a chat's choices in /settings (issue 15, part 3); pictures is chats.pictures (0006).
-- Link previews under its messages: NULL until the chat chooses (telegram.link_preview
-- then decides), else 1 on, 0 off.
ALTER TABLE chats ADD COLUMN link_preview INTEGER;
-- Its alerts, digests and notices arrive without a sound (disable_notification): 1 on.
ALTER TABLE chats ADD COLUMN silent INTEGER NOT NULL DEFAULT 0;
-- The language chosen in /settings, 'en' or 'zh'; '' is automatic: chats.language then
-- follows whoever last spoke to the bot there. A choice is written to chats.language too,
-- so every reader of chats.language (alerts, notices, digests) takes it as it is.
ALTER TABLE chats ADD COLUMN language_choice TEXT NOT NULL DEFAULT '';
