package sqljobber

import (
	"encoding/json"
	"time"
)

// State is where a job is in its life. A group's state (GroupState) takes
// the same values but RETRY.
type State string

// Job states. A job is PENDING until a node starts it, STARTED while it
// runs, RETRY when a failed run will run again, and then SUCCESS, FAILURE
// or CANCELLED, its final state.
const (
	StatePending   State = "PENDING"
	StateStarted   State = "STARTED"
	StateRetry     State = "RETRY"
	StateSuccess   State = "SUCCESS"
	StateFailure   State = "FAILURE"
	StateCancelled State = "CANCELLED"
)

// Active reports whether a job in state s is unfinished: it holds its ID,
// which no other job may take until it finishes.
func (s State) Active() bool {
	return s == StatePending || s == StateStarted || s == StateRetry
}

// Final reports whether s is a final state: SUCCESS, FAILURE or CANCELLED.
func (s State) Final() bool {
	return s == StateSuccess || s == StateFailure || s == StateCancelled
}

// Job is a job as its clients see it: what was asked, where it stands, and
// where its results are.
type Job struct {
	ID    string
	Task  string
	Queue string
	State State
	Args  json.RawMessage // a JSON array
	// DB is the source database the request asked for; "" for any of the
	// task's.
	DB      string
	GroupID string
	// Retries is how many times a failed run may run again.
	Retries int
	// TTL is how long the results are kept once the job finishes; 0 keeps
	// them.
	TTL time.Duration
	ETA time.Time // zero: none

	// ResultsBackend and ResultsTable are where the results are written,
	// chosen when the job is admitted.
	ResultsBackend string
	ResultsTable   string
	// Count is how many rows the results table has.
	Count   int64
	Error   string
	Attempt int    // runs started so far, but those lost with their node
	Node    string // the node that runs or ran it
	// LostRuns counts the runs lost with their node (a crash, not the
	// job's failure): they do not count against Retries.
	LostRuns int
	// Owner is the name of the API token that submitted the job; "" when
	// the API ran without tokens.
	Owner string
	// ReusedFrom is the job whose results answered this one, which did
	// not run ("" if it ran): ResultsBackend and ResultsTable are that
	// job's, which alone owns the table.
	ReusedFrom string
	// Joined is the job this one waits on while it is PENDING: an
	// identical job that was unfinished when this one was submitted
	// (single flight). This job is answered by its results when it
	// succeeds (ReusedFrom then names it), and runs if it does not.
	Joined string

	// EnqueuedAt is when the job (re)entered its queue.
	EnqueuedAt time.Time
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	// ExpiresAt is when the results table and the record of a finished job
	// are removed; zero: kept.
	ExpiresAt time.Time

	// Progress is how far a STARTED job's run has got, as the node running
	// it counts, held in that node's memory (not in the ledger); nil for a
	// job that is not running, or whose node did not answer in time.
	Progress *Progress
}

// Progress is how far a running job has got.
type Progress struct {
	// Rows is how many rows the run has read from the source and handed
	// to the results table's writer so far.
	Rows int64
	// Elapsed is how long the run has been running.
	Elapsed time.Duration
}

// RowsPerSecond is the run's mean rate since it started: Rows over
// Elapsed (0 before any time has passed).
func (p Progress) RowsPerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Rows) / p.Elapsed.Seconds()
}

// Group is a group of jobs submitted together, and its members in
// submission order.
type Group struct {
	ID    string
	State State
	// Owner is the name of the API token that submitted the group.
	Owner string
	// Concurrency is how many members may run at once.
	Concurrency int
	Jobs        []*Job
}

// GroupState derives a group's state from its members': PENDING before any
// member starts, STARTED while any is unfinished, and once all have finished
// SUCCESS if all succeeded, FAILURE if any failed, else CANCELLED;
// CANCELLED as soon as the group is cancelled.
func GroupState(cancelled bool, jobs []*Job) State {
	if cancelled {
		return StateCancelled
	}
	var unfinished, begun, failed, cancelledJobs int
	for _, j := range jobs {
		switch {
		case j.State == StatePending && j.Attempt == 0:
			unfinished++
		case j.State.Active():
			unfinished++
			begun++
		default:
			begun++
			switch j.State {
			case StateFailure:
				failed++
			case StateCancelled:
				cancelledJobs++
			}
		}
	}
	switch {
	case unfinished > 0 && begun == 0:
		return StatePending
	case unfinished > 0:
		return StateStarted
	case failed > 0:
		return StateFailure
	case cancelledJobs > 0:
		return StateCancelled
	}
	return StateSuccess
}
