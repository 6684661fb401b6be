// Package actors owns the life of a job inside a node: the job grain (one
// virtual actor per job ID, which serialises everything done to that ID), the
// queue actors (one per queue this node works, each holding a fixed number of
// slots and a first-in-first-out line of waiting jobs), and the executors that
// run a job's query into its results table outside any grain's lifetime, so
// that a grain that passivates or moves never kills a running query.
//
// The job ledger is the truth; grains and queues are caches rebuilt from it.
// actors uses the task registry, the results backends and the ledger through
// small interfaces it declares; it knows nothing of HTTP or of how members
// find each other.
package actors
