// Package actors owns the life of a job inside a node. Its actors and what
// each serialises:
//
//   - The job grain, one virtual actor per job ID, cluster-wide: its mailbox
//     orders the submissions, cancellations, purges and expiry of that ID,
//     so that, say, a purge and a new submission of the ID cannot
//     interleave, and it answers the callers waiting for the job. It keeps
//     nothing the ledger does not (only its waiters), so it may passivate or
//     move at any time. Two activations of one ID are possible for a moment
//     while members disagree about membership; the ledger's conditional
//     writes, not the grain, keep one unfinished job per ID and one owner
//     per run.
//   - The group grain, one per group ID: it admits the group, releases held
//     members as others finish, and cancels or purges the group by asking
//     each member's job grain.
//   - The queue actor, one per queue this node works: it owns the node's
//     slots for that queue. It claims ready jobs from the ledger while a
//     slot is free, and gives a job grain a slot for a job it admits while
//     the queue is idle; nothing else counts slots.
//   - The node actor: what other members tell this node (wake a queue,
//     cancel a run here).
//
// A job's query runs outside every actor, in a goroutine of the engine (an
// executor), so that a grain that passivates or moves never kills it.
//
// The job ledger is the truth; grains and queues are caches rebuilt from it.
// actors uses the ledger, the task registry, the results backends and the
// cluster node through small interfaces it declares; it knows nothing of
// HTTP or of how members find each other.
package actors
