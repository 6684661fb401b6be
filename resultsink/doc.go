// Package resultsink owns the results tables that sql-jobber writes to
// results databases: the mapping of portable column types to each
// dialect's column types, the bulk writers (PostgreSQL COPY, MySQL LOAD
// DATA LOCAL, batched SQLite INSERTs, whose byte streams package wire
// encodes), the staging-then-swap protocol that publishes a table
// atomically under a fence, dropping tables, and reading tables back a page
// at a time (sorted, filtered, with cursors), each page in one snapshot.
//
// It knows nothing of jobs, actors or HTTP: it consumes row streams
// described by package sqlexec, and a publication proves its right to
// publish through the Owner interface (the job ledger implements it).
package resultsink
