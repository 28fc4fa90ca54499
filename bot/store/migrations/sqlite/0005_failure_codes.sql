-- 0005: feeds.last_error holds a FeedFailure's code (bot/errors.py), no longer an English
-- phrase: "timeout", "http_status:404", "gone:410", "not_a_feed", "internal:ValueError".
UPDATE feeds SET last_error = 'gone:410' WHERE last_error = 'HTTP 410 Gone';
UPDATE feeds SET last_error = 'http_status:' || substr(last_error, 6)
    WHERE last_error LIKE 'HTTP ___';
UPDATE feeds SET last_error = 'not_a_feed' WHERE last_error = 'not a feed';
UPDATE feeds SET last_error = 'internal' WHERE last_error = 'internal error';
UPDATE feeds SET last_error = replace(last_error, ' ', '_')
    WHERE last_error IN ('invalid url', 'bad scheme', 'address not allowed', 'too large',
                         'too many redirects');
-- What is left and no code: an exception's class name, stored by older versions.
UPDATE feeds SET last_error = 'internal:' || last_error
    WHERE last_error IS NOT NULL
      AND last_error NOT IN ('invalid_url', 'bad_scheme', 'address_not_allowed', 'dns',
                             'connection', 'timeout', 'too_large', 'too_many_redirects', 'tls',
                             'gone', 'not_a_feed', 'internal')
      AND last_error NOT LIKE 'http\_status:%' ESCAPE '\'
      AND last_error NOT LIKE 'gone:%';
