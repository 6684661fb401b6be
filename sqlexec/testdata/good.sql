-- Tasks used by the parser tests.

-- name: summary
SELECT SUM(amount) AS total, entry_date
FROM entries
WHERE user_id = ?
GROUP BY entry_date;

-- name: entries
-- db: db0, other_db
-- queue: myqueue
-- results: my_res_db
-- timeout: 90s
-- ttl: 1h
-- conc: 3
-- cache: 10m
SELECT * FROM entries WHERE user_id = ?;

-- name: by_date
-- raw: 1
-- This query will not be prepared (raw=1)
SELECT * FROM entries WHERE user_id = ? AND timestamp > ? and timestamp < ?;
