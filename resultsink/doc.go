// Package resultsink owns everything sql-jobber writes to results databases:
// the mapping of portable column types to each dialect's column types, the
// bulk writers (PostgreSQL COPY, MySQL LOAD DATA LOCAL, batched SQLite
// INSERTs), the staging-then-swap protocol that publishes a job's results
// table atomically, the job ledger table, and reading results tables back a
// page at a time (sorted, filtered, with cursors), each page in one
// snapshot.
//
// It knows nothing of actors or HTTP; it consumes row streams described by
// package sqlexec.
package resultsink
