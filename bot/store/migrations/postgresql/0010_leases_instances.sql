-- 0010 (PostgreSQL): several instances on one database (issue 14), in step with
-- ../sqlite/0010_leases_instances.sql: feed leases and the instances table.
-- A feed is checked by the instance holding its lease: lease_owner is that instance's id
-- (instances.id), lease_until the epoch ms after which any instance may take the feed
-- (its holder died or hung). Both NULL: nobody is checking it. Instances claim due feeds
-- with UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) (bot/store/feeds.py).
ALTER TABLE feeds ADD COLUMN lease_owner TEXT;
ALTER TABLE feeds ADD COLUMN lease_until BIGINT;
-- Only the feeds being checked have an owner: a small index for handing them all back.
CREATE INDEX feeds_leased ON feeds (lease_owner) WHERE lease_owner IS NOT NULL;
-- One row per running instance (bot/usecases/instances.py): made at its start, its
-- heartbeat_at moved every few seconds, removed at a clean stop or, for one that died,
-- by another instance once it is found dead. role: whatever the instance's part is
-- ('leader', 'standby'), written by whoever knows it; '' until then.
CREATE TABLE instances (
    id            TEXT    PRIMARY KEY,
    host          TEXT    NOT NULL,
    pid           BIGINT  NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL,
    role          TEXT    NOT NULL DEFAULT ''
);
