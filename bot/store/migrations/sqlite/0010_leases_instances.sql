-- 0010: several instances on one database (issue 14): feed leases and the instances table.
-- A feed is checked by the instance holding its lease: lease_owner is that instance's id
-- (instances.id), lease_until the epoch ms after which any instance may take the feed
-- (its holder died or hung). Both NULL: nobody is checking it. Recording a check clears
-- them (bot/store/feeds.py). On SQLite one instance runs, but it keeps the same columns, so
-- the store's SQL is one on both backends.
ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
ALTER TABLE feeds ADD COLUMN lease_until INTEGER;
-- Only the feeds being checked have an owner: a small index for handing them all back.
CREATE INDEX feeds_leased ON feeds (lease_owner) WHERE lease_owner IS NOT NULL;
-- One row per running instance (bot/usecases/instances.py): made at its start, its
-- heartbeat_at moved every few seconds, removed at a clean stop or, for one that died,
-- by another instance once it is found dead. role: whatever the instance's part is
-- ('leader', 'standby'), written by whoever knows it; '' until then.
CREATE TABLE instances (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    role          TEXT    NOT NULL DEFAULT ''
);
