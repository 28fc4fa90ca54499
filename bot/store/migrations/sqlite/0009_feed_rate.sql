-- 0009: adaptive polling (bot/feeds/freshness.py). Each feed's publishing rate, learned
-- from the stories its checks found new: two decayed sums kept as of rate_at, brought
-- forward when read (FeedRate). A busy feed is then checked more often, a quiet one less,
-- all of them together as often as if each were checked every poll.interval.

-- S: new stories seen, each weighted exp(-age/τ).
ALTER TABLE feeds ADD COLUMN rate_stories REAL NOT NULL DEFAULT 0;
-- W: hours the feed has been watched, weighted the same way (never above τ).
ALTER TABLE feeds ADD COLUMN rate_watched_hours REAL NOT NULL DEFAULT 0;
-- When S and W were last brought up to date (epoch ms). NULL: no record yet (a feed from
-- before this migration, or never checked): its record starts at its last check, else at
-- its next one, so it is scheduled at the mean interval until it has one.
ALTER TABLE feeds ADD COLUMN rate_at INTEGER;
