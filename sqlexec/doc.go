// Package sqlexec owns the source side of a job: tasks (parsing the goyesql
// .sql files, validating and preparing them), connections to the databases
// that tasks read from, and running a task to a typed row stream with
// cancellation and timeouts enforced at the source. Each database is one
// implementation of one small interface (source), picked once when the pool
// is opened, as resultsink's sinks handle their dialects.
//
// It also defines the column model (Type, Column, Rows) that every result
// writer consumes, so that a row read from PostgreSQL, MySQL or SQLite is
// described once, in one vocabulary.
//
// sqlexec knows nothing of actors, HTTP or where results are written.
package sqlexec
