-- Demo tasks over the demo "entries" table (see config.toml.sample).
-- SQLite and MySQL take ? placeholders; PostgreSQL takes $1, $2, ...

-- name: get_profit_summary
-- db: demo
-- Per-day totals for one user.
SELECT entry_date, COUNT(*) AS entries, ROUND(SUM(amount), 2) AS total
FROM entries
WHERE user_id = ?
GROUP BY entry_date
ORDER BY entry_date;

-- name: get_profit_entries
-- db: demo
-- queue: default
-- results: demo_results
SELECT * FROM entries WHERE user_id = ?;

-- name: get_profit_entries_by_date
-- db: demo
SELECT * FROM entries WHERE user_id = ? AND created_at > ? AND created_at < ?;

-- name: get_all_entries
-- db: demo
-- timeout: 5m
SELECT * FROM entries ORDER BY id;
