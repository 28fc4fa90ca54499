-- An /import's progress message, kept while the import runs: the next start after a kill
-- edits it to say that the import stopped and how to finish it (bot/telegram/ops.py).
CREATE TABLE imports (
    chat_id     INTEGER PRIMARY KEY,              -- one import at a time per chat
    message_id  INTEGER NOT NULL,                 -- the progress message
    language    TEXT    NOT NULL,
    total       INTEGER NOT NULL,                 -- feeds in the file
    started_at  INTEGER NOT NULL
);
