-- The address the user typed at /subscribe. The feed's URL may differ (it redirected there,
-- then or later); /unsubscribe and /mode take either.
ALTER TABLE subscriptions ADD COLUMN given_url TEXT NOT NULL DEFAULT '';
