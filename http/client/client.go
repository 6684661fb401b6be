// Package client is a Go client for sql-jobber's HTTP API: a method per
// endpoint, a context on every call, and errors that callers test with
// errors.Is (ErrNotFound, ErrConflict, ErrBadRequest) or errors.As (*Error).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Job states.
const (
	StatePending   = "PENDING"
	StateStarted   = "STARTED"
	StateRetry     = "RETRY"
	StateSuccess   = "SUCCESS"
	StateFailure   = "FAILURE"
	StateCancelled = "CANCELLED"
)

// Finished reports whether a job (or group) in state has finished.
func Finished(state string) bool {
	return state == StateSuccess || state == StateFailure || state == StateCancelled
}

// Errors to test for with errors.Is.
var (
	ErrBadRequest = errors.New("bad request")
	ErrNotFound   = errors.New("not found")
	// ErrConflict: the job ID is held by an unfinished job, or the job has
	// finished and cannot be cancelled.
	ErrConflict = errors.New("conflict")
)

// Error is an error answer of the API.
type Error struct {
	StatusCode int
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sql-jobber: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is matches ErrBadRequest, ErrNotFound and ErrConflict by status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	}
	return false
}

// Client calls one sql-jobber server.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the server at baseURL (e.g.
// "http://127.0.0.1:6060"). hc nil means http.DefaultClient.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
}

// Task is a registered task.
type Task struct {
	Name    string   `json:"name"`
	Queue   string   `json:"queue"`
	DBs     []string `json:"dbs"`
	Results []string `json:"results"`
	Raw     bool     `json:"raw"`
	// NumArgs is nil when the server does not know it (raw tasks).
	NumArgs *int `json:"num_args"`
}

// JobRequest is a request for a job; every field may be left zero.
type JobRequest struct {
	JobID   string
	Args    []any // strings, numbers (json.Number keeps them exact), booleans, nil
	Queue   string
	DB      string
	ETA     time.Time
	Retries int
	TTL     time.Duration // rounded up to whole seconds
}

func (r JobRequest) body(task string) map[string]any {
	b := map[string]any{}
	if task != "" {
		b["task"] = task
	}
	if r.JobID != "" {
		b["job_id"] = r.JobID
	}
	if r.Args != nil {
		b["args"] = r.Args
	}
	if r.Queue != "" {
		b["queue"] = r.Queue
	}
	if r.DB != "" {
		b["db"] = r.DB
	}
	if !r.ETA.IsZero() {
		b["eta"] = r.ETA.UTC().Format(time.RFC3339Nano)
	}
	if r.Retries != 0 {
		b["retries"] = r.Retries
	}
	if r.TTL != 0 {
		b["ttl"] = int64((r.TTL + time.Second - 1) / time.Second)
	}
	return b
}

// JobReceipt is the server's answer to an accepted job.
type JobReceipt struct {
	JobID   string     `json:"job_id"`
	Task    string     `json:"task"`
	Queue   string     `json:"queue"`
	ETA     *time.Time `json:"eta"`
	Retries int        `json:"retries"`
}

// Job is a job's status.
type Job struct {
	JobID          string     `json:"job_id"`
	Task           string     `json:"task"`
	Queue          string     `json:"queue"`
	State          string     `json:"state"`
	Count          int64      `json:"count"` // rows written
	Error          string     `json:"error"`
	ResultsBackend string     `json:"results_backend"`
	ResultsTable   string     `json:"results_table"`
	Attempt        int        `json:"attempt"`
	Retries        int        `json:"retries"`
	GroupID        string     `json:"group_id"`
	ETA            *time.Time `json:"eta"`
	CreatedAt      *time.Time `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
}

// PendingJob is a job waiting in a queue.
type PendingJob struct {
	JobID      string     `json:"job_id"`
	Task       string     `json:"task"`
	Queue      string     `json:"queue"`
	ETA        *time.Time `json:"eta"`
	EnqueuedAt *time.Time `json:"enqueued_at"`
}

// GroupJob is one job of a group request.
type GroupJob struct {
	Task string
	JobRequest
}

// GroupRequest is a request for a group of jobs.
type GroupRequest struct {
	GroupID string
	// Concurrency is how many jobs of the group run at once; 0 for the
	// server's default.
	Concurrency int
	Jobs        []GroupJob
}

// GroupReceipt is the server's answer to an accepted group.
type GroupReceipt struct {
	GroupID string       `json:"group_id"`
	Jobs    []JobReceipt `json:"jobs"`
}

// Group is a group's status, with its jobs in submission order.
type Group struct {
	GroupID     string `json:"group_id"`
	State       string `json:"state"`
	Concurrency int    `json:"concurrency"`
	Jobs        []Job  `json:"jobs"`
}

// Tasks lists the registered tasks.
func (c *Client) Tasks(ctx context.Context) ([]Task, error) {
	var out []Task
	return out, c.do(ctx, http.MethodGet, "/tasks", nil, &out)
}

// PostJob queues a job of task.
func (c *Client) PostJob(ctx context.Context, task string, req JobRequest) (*JobReceipt, error) {
	var out JobReceipt
	if err := c.do(ctx, http.MethodPost, "/tasks/"+url.PathEscape(task)+"/jobs", req.body(""), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetJob returns a job's status.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var out Job
	if err := c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PendingJobs lists the jobs of queue that have not started, in the order
// they will start.
func (c *Client) PendingJobs(ctx context.Context, queue string) ([]PendingJob, error) {
	var out []PendingJob
	return out, c.do(ctx, http.MethodGet, "/jobs/queue/"+url.PathEscape(queue), nil, &out)
}

// DeleteJob cancels an unfinished job (its query is stopped at the
// database). With purge it also deletes the job's record and results table,
// finished or not; a finished job without purge is ErrConflict.
func (c *Client) DeleteJob(ctx context.Context, id string, purge bool) error {
	return c.do(ctx, http.MethodDelete, "/jobs/"+url.PathEscape(id)+purgeQuery(purge), nil, nil)
}

// PostGroup queues a group of jobs.
func (c *Client) PostGroup(ctx context.Context, req GroupRequest) (*GroupReceipt, error) {
	body := map[string]any{}
	if req.GroupID != "" {
		body["group_id"] = req.GroupID
	}
	if req.Concurrency != 0 {
		body["concurrency"] = req.Concurrency
	}
	jobs := make([]map[string]any, 0, len(req.Jobs))
	for _, j := range req.Jobs {
		jobs = append(jobs, j.body(j.Task))
	}
	body["jobs"] = jobs
	var out GroupReceipt
	if err := c.do(ctx, http.MethodPost, "/groups", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetGroup returns a group's status.
func (c *Client) GetGroup(ctx context.Context, id string) (*Group, error) {
	var out Group
	if err := c.do(ctx, http.MethodGet, "/groups/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteGroup cancels every unfinished job of a group; with purge it also
// deletes the group, its jobs' records and their results tables.
func (c *Client) DeleteGroup(ctx context.Context, id string, purge bool) error {
	return c.do(ctx, http.MethodDelete, "/groups/"+url.PathEscape(id)+purgeQuery(purge), nil, nil)
}

// longPoll is the wait each request of WaitJob and WaitGroup asks for; the
// server may shorten it (its max_wait).
const longPoll = 30 * time.Second

// pollWait is how long the next long-poll may wait: longPoll, or less so
// that it answers before ctx's deadline.
func pollWait(ctx context.Context) string {
	d := longPoll
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)-time.Second)
	}
	return strconv.Itoa(max(0, int(d/time.Second)))
}

// WaitJob waits until a job has finished, with long-polls (?wait=), and
// returns it. When ctx ends first it returns the job as last seen and
// ctx's error.
func (c *Client) WaitJob(ctx context.Context, id string) (*Job, error) {
	var last *Job
	for {
		var j Job
		err := c.do(ctx, http.MethodGet, "/jobs/"+url.PathEscape(id)+"?wait="+pollWait(ctx), nil, &j)
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil:
			return nil, err
		case Finished(j.State):
			return &j, nil
		}
		last = &j
	}
}

// WaitGroup is WaitJob for a group: it returns once every job of the group
// has finished, or the group is cancelled.
func (c *Client) WaitGroup(ctx context.Context, id string) (*Group, error) {
	var last *Group
	for {
		var g Group
		err := c.do(ctx, http.MethodGet, "/groups/"+url.PathEscape(id)+"?wait="+pollWait(ctx), nil, &g)
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil:
			return nil, err
		case Finished(g.State):
			return &g, nil
		}
		last = &g
	}
}

func purgeQuery(purge bool) string {
	if purge {
		return "?purge=" + strconv.FormatBool(purge)
	}
	return ""
}

type envelope struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("sql-jobber: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("sql-jobber: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sql-jobber: %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	var env envelope
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return &Error{StatusCode: res.StatusCode, Message: "the answer is not sql-jobber's JSON envelope: " + err.Error()}
	}
	if res.StatusCode >= 300 || env.Status != "success" {
		return &Error{StatusCode: res.StatusCode, Message: env.Message}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("sql-jobber: decode answer: %w", err)
		}
	}
	return nil
}
