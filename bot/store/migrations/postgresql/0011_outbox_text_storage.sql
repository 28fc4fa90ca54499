-- 0011: outbox texts (digest parts, notices: up to 4096 characters of HTML each) stored
-- without compression. PostgreSQL compresses a text over about 2 KB (TOAST, pglz) as it is
-- written; a digest minute writes tens of thousands of them, sends each once and purges it
-- within days, so the compression was most of the server's CPU in bench/digest.py on
-- PostgreSQL (5,000 rows of 7 KB: 4.0-4.6 s written compressed, 0.8-1.4 s with EXTERNAL).
-- EXTERNAL keeps large values out of line, uncompressed. Rows written before keep theirs.
ALTER TABLE outbox ALTER COLUMN text SET STORAGE EXTERNAL;
