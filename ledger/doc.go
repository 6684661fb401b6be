// Package ledger owns the durable record of every job and group, kept in
// tables of a results database: jobs and their states, groups, the queue
// that nodes claim jobs from, runs with their leases and fence tokens,
// admissions and SUCCESSes (each batched into one commit where the database
// allows), expiry, and the IDs of removed jobs.
//
// What it guarantees, across nodes and restarts, by conditional writes:
//   - at most one unfinished job holds an ID (Admit, Start, AdmitGroup);
//   - concurrent claims from any number of nodes never take the same job,
//     and take the ready jobs of a queue first in, first out (Claim);
//   - a run records its outcome only while it owns its job (Finish), and a
//     run's results are published only while it owns its job and never
//     over a later run's (Run, the fence token);
//   - an acknowledged admission, cancellation or removal survives a crash
//     of the database.
//
// Each dialect (PostgreSQL, MySQL, SQLite) is a driver behind a small
// interface; the ledger's own logic is written once. It knows nothing of
// actors or HTTP.
package ledger
