// Package sqljobber is the domain of sql-jobber, shared by every other
// package: what a job, a group of jobs and a cluster member are, the states
// a job goes through, and the errors that callers branch on, which the
// HTTP API maps to status codes in one place.
//
// It holds no logic that needs a database, an actor or a network: the job
// ledger (package ledger) records jobs, the engine (package actors) runs
// them, the API (package http) serves them.
package sqljobber
