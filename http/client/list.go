package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// JobFilter selects jobs for ListJobs; zero fields select everything.
type JobFilter struct {
	// States: jobs in any of these states (PENDING, STARTED, RETRY,
	// SUCCESS, FAILURE, CANCELLED).
	States  []string
	Queue   string
	Task    string
	GroupID string
	// Node is the worker name that runs or ran the job.
	Node string
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound when
	// the jobs were created.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Limit is the most jobs in a page: 0 for the server's 100, at most
	// 1000.
	Limit int
	// Cursor is a previous page's Next, with the same filter; "" for the
	// first page.
	Cursor string
}

func (f JobFilter) query() string {
	v := url.Values{}
	for _, s := range f.States {
		v.Add("state", s)
	}
	for k, s := range map[string]string{"queue": f.Queue, "task": f.Task, "group_id": f.GroupID, "node": f.Node, "cursor": f.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !f.CreatedAfter.IsZero() {
		v.Set("created_after", f.CreatedAfter.Format(time.RFC3339Nano))
	}
	if !f.CreatedBefore.IsZero() {
		v.Set("created_before", f.CreatedBefore.Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// JobPage is a page of a job listing, newest first.
type JobPage struct {
	Jobs []Job `json:"jobs"`
	// Next is the cursor of the next page (JobFilter.Cursor); "" when
	// this page is the last.
	Next string `json:"next"`
}

// ListJobs returns a page of the jobs f selects, newest first: every
// client's for an admin token (or without tokens), else the token's own.
func (c *Client) ListJobs(ctx context.Context, f JobFilter) (*JobPage, error) {
	var out JobPage
	if err := c.do(ctx, http.MethodGet, "/jobs"+f.query(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Queue is a queue's summary.
type Queue struct {
	Queue   string `json:"queue"`
	Pending int64  `json:"pending"` // PENDING and RETRY
	Running int64  `json:"running"` // STARTED
	// FinishedLastHour counts the jobs that finished in the last hour, by
	// final state.
	FinishedLastHour map[string]int64 `json:"finished_last_hour"`
	// OldestReadySeconds is how long the oldest job that could start has
	// waited since it could; nil when none waits.
	OldestReadySeconds *float64 `json:"oldest_ready_seconds"`
	// Workers counts the cluster members that work the queue.
	Workers int `json:"workers"`
}

// Queues summarises each queue, by name: with a token that is not an
// admin's, of the token's own jobs.
func (c *Client) Queues(ctx context.Context) ([]Queue, error) {
	var out []Queue
	return out, c.do(ctx, http.MethodGet, "/queues", nil, &out)
}

// Database is a source database's summary.
type Database struct {
	DB string `json:"db"`
	// MaxRunning is the database's cap on running jobs across the
	// cluster ([db.<name>] max_running); nil when it has none.
	MaxRunning *int  `json:"max_running"`
	Running    int64 `json:"running"` // STARTED, on every node
	// Ready counts the jobs that could start now but for a free slot or
	// the cap; HeldBack those of them that wait for the cap.
	Ready    int64 `json:"ready"`
	HeldBack int64 `json:"held_back"`
}

// Databases summarises each source database: its cap and its jobs; with a
// token that is not an admin's, the token's own jobs.
func (c *Client) Databases(ctx context.Context) ([]Database, error) {
	var out []Database
	return out, c.do(ctx, http.MethodGet, "/databases", nil, &out)
}

// Member is a node of the cluster as the answering node sees it.
type Member struct {
	// Name is the node's worker name, unique in the cluster.
	Name string `json:"name"`
	// ID is the node's actor system ID, new at every start.
	ID      string `json:"id"`
	Address string `json:"address"`
	// API is the node's HTTP API address; "" if it serves none.
	API string `json:"api"`
	// Queues are the queues the node works, with their slots.
	Queues map[string]int `json:"queues"`
	// Self is the answering node.
	Self bool `json:"self"`
	// State is "alive", "suspect" or "leaving".
	State string `json:"state"`
}

// Members lists the cluster's members as the server sees them; it needs an
// admin token where tokens are configured.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out []Member
	return out, c.do(ctx, http.MethodGet, "/cluster/members", nil, &out)
}
