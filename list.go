package sqljobber

import "time"

// Bounds of a page of a job listing.
const (
	JobListLimitDefault = 100
	JobListLimitMax     = 1000
)

// JobFilter selects jobs for a listing, newest first (by creation, then
// ID). Zero fields select everything.
type JobFilter struct {
	// States: jobs in any of these states.
	States  []State
	Queue   string
	Task    string
	GroupID string
	// Node is the worker name that runs or ran the job.
	Node string
	// CreatedAfter and CreatedBefore bound the creation time: at or after
	// the one, before the other, so that adjacent windows do not overlap.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Limit is the most jobs in a page (JobListLimitDefault when 0, at
	// most JobListLimitMax).
	Limit int
	// Cursor is where the page starts: a previous page's JobPage.Next,
	// for the same filter; "" for the first page.
	Cursor string
}

// JobPage is a page of a job listing.
type JobPage struct {
	Jobs []*Job
	// Next is the cursor of the next page; "" when this page is the last.
	Next string
}

// QueueSummary is what a queue holds: its unfinished jobs, the jobs that
// finished in the last hour, and who works it.
type QueueSummary struct {
	Queue string
	// Pending counts the jobs not started (PENDING and RETRY, waiting or
	// ready).
	Pending int64
	// Running counts the STARTED jobs.
	Running int64
	// Finished counts the jobs that finished in the last hour, by final
	// state.
	Finished map[State]int64
	// OldestReady is when the oldest job that could start now became
	// ready (its ETA, backoff and group allow it); zero when none is.
	OldestReady time.Time
	// Workers counts the cluster members that work the queue.
	Workers int
}

// DBSummary is what runs and waits against one source database, across
// the cluster.
type DBSummary struct {
	DB string
	// MaxRunning caps the jobs that run against it at once, across the
	// cluster ([db.<name>] max_running); 0 when it is not capped.
	MaxRunning int
	// Running counts the jobs running against it, on every node.
	Running int64
	// Ready counts the jobs that could start now but for a free slot or
	// its cap.
	Ready int64
	// HeldBack counts the ready jobs that wait because it runs
	// MaxRunning jobs already.
	HeldBack int64
}
