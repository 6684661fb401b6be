// Package client is a Go client for sql-jobber's HTTP API: a method per
// endpoint, a context on every call, and errors that callers test with
// errors.Is (ErrNotFound, ErrConflict, ErrGone, ErrBadRequest,
// ErrUnavailable, ...) or errors.As (*Error).
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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

// Client calls one sql-jobber server.
type Client struct {
	base string
	hc   *http.Client
	// token is the secret sent as a bearer token, if any.
	token string
}

// New returns a client of the server at baseURL (e.g.
// "http://127.0.0.1:6060"). hc nil means http.DefaultClient.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
}

// WithToken returns a client that sends secret, the secret of one of the
// server's API tokens ([auth.tokens.*]), with every request. It sees, and
// acts on, only the jobs and groups that token submitted, unless the token
// is an admin's.
func (c *Client) WithToken(secret string) *Client {
	cc := *c
	cc.token = secret
	return &cc
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
	// Workers is how many cluster members work the task's queue.
	Workers int `json:"workers"`
	// SQL is the task's query.
	SQL string `json:"sql"`
}

// JobRequest is a request for a job; every field may be left zero.
type JobRequest struct {
	JobID   string
	Args    []any // strings, numbers (json.Number keeps them exact), booleans, nil
	Queue   string
	DB      string
	ETA     time.Time
	Retries int
	TTL     time.Duration // rounded up to whole seconds; 0 for the task's or the server's default
	// KeepResults keeps the results until the job ID runs again or is
	// purged, whatever the defaults (it sends "ttl": 0).
	KeepResults bool
	// MaxAge, above zero, lets the server answer the job from the results
	// of an identical job that succeeded at most this long ago (rounded up
	// to whole seconds); Fresh runs it whatever the task's -- cache: says.
	MaxAge time.Duration
	Fresh  bool
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
	if r.MaxAge > 0 {
		b["max_age"] = int64((r.MaxAge + time.Second - 1) / time.Second)
	}
	if r.Fresh {
		b["fresh"] = true
	}
	if r.KeepResults {
		b["ttl"] = 0
	} else if r.TTL != 0 {
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
	// Workers is how many cluster members work the job's queue: 0 says
	// it waits until a node that does joins.
	Workers int `json:"workers"`
}

// Job is a job's status.
type Job struct {
	JobID string `json:"job_id"`
	Task  string `json:"task"`
	Queue string `json:"queue"`
	State string `json:"state"`
	// Count is the rows written; while the job runs, the rows its node
	// has counted so far.
	Count          int64  `json:"count"`
	Error          string `json:"error"`
	ResultsBackend string `json:"results_backend"`
	ResultsTable   string `json:"results_table"`
	Attempt        int    `json:"attempt"` // runs started, but those lost with their node
	// LostRuns counts the runs lost with their node (a crash, not the
	// job's failure): they do not count against Retries.
	LostRuns int    `json:"lost_runs"`
	Node     string `json:"node"` // the node that runs or ran the job
	Retries  int    `json:"retries"`
	GroupID  string `json:"group_id"`
	// Owner is the name of the token that submitted the job, shown to
	// admin tokens ("" without tokens).
	Owner      string     `json:"owner"`
	ETA        *time.Time `json:"eta"`
	CreatedAt  *time.Time `json:"created_at"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	// ReusedFrom names the job whose results answered this one, if any.
	ReusedFrom string `json:"reused_from"`
	// RowsPerSecond is a running job's rate since its run started; nil
	// when it is not running or its node did not answer in time.
	RowsPerSecond *float64 `json:"rows_per_second"`
	// Joined names the identical unfinished job this one waits on
	// instead of running (single flight), while it is PENDING.
	Joined string `json:"joined"`
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
// that it answers before ctx's deadline: a second before it, or within
// the last two seconds half the time left, so that the polls never spin.
func pollWait(ctx context.Context) string {
	d := longPoll
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left > 2*time.Second {
			left -= time.Second
		} else {
			left /= 2
		}
		d = min(d, left)
	}
	return max(time.Millisecond, d.Round(time.Millisecond)).String()
}

// WaitJob waits until a job has finished, with long-polls (?wait=), and
// returns it. When ctx ends first it returns the job as last seen and
// ctx's error.
func (c *Client) WaitJob(ctx context.Context, id string) (*Job, error) {
	return waitUntilFinished(ctx, c, "/jobs/"+url.PathEscape(id), func(j *Job) string { return j.State })
}

// WaitGroup is WaitJob for a group: it returns once every job of the group
// has finished, or the group is cancelled.
func (c *Client) WaitGroup(ctx context.Context, id string) (*Group, error) {
	return waitUntilFinished(ctx, c, "/groups/"+url.PathEscape(id), func(g *Group) string { return g.State })
}

// waitUntilFinished GETs path with ?wait= until state says it has finished.
func waitUntilFinished[T any](ctx context.Context, c *Client, path string, state func(*T) string) (*T, error) {
	var last *T
	for {
		v := new(T)
		err := c.do(ctx, http.MethodGet, path+"?wait="+pollWait(ctx), nil, v)
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil:
			return nil, err
		case Finished(state(v)):
			return v, nil
		}
		last = v
	}
}

// Column is a column of a job's results: its name, and its type, one of
// "int64", "uint64", "decimal", "float64", "bool", "date", "timestamp",
// "timestamptz", "json", "text", "bytes".
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Filter keeps the rows whose Column compares with Value by Op: "eq",
// "ne", "lt", "lte", "gt", "gte", or "null" with Value "true" (the column
// is NULL) or "false". Value is written as in CSV: see the README.
type Filter struct {
	Column, Op, Value string
}

// ResultsQuery says which rows of a job's results to read; every field may
// be left zero.
type ResultsQuery struct {
	// Limit is the most rows in the page; 0 for the server's default.
	Limit int
	// OrderBy is a column to sort by, "-column" to sort descending; ""
	// keeps the task's order.
	OrderBy string
	Filters []Filter
	// Cursor is a page's Next: the page after it.
	Cursor string
}

func (q ResultsQuery) values(format string) url.Values {
	v := url.Values{}
	if format != "" {
		v.Set("format", format)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.OrderBy != "" {
		v.Set("order_by", q.OrderBy)
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	for _, f := range q.Filters {
		v.Set("filter["+f.Column+"]["+f.Op+"]", f.Value)
	}
	return v
}

// ResultsPage is a page of a job's results.
type ResultsPage struct {
	Columns []Column
	// Rows are the page's rows, each value typed by its column's type:
	// int64, uint64, float64, bool, string (decimal, text), time.Time
	// (date and timestamp in UTC; timestamptz), json.RawMessage (json),
	// []byte (bytes), or nil for NULL.
	Rows [][]any
	// More says whether rows follow; Next is the cursor that reads them.
	More bool
	Next string
}

// Results reads a page of job id's results, with typed values. A job that
// has not succeeded is ErrConflict; one whose results were purged or
// expired, ErrGone.
func (c *Client) Results(ctx context.Context, id string, q ResultsQuery) (*ResultsPage, error) {
	var page struct {
		Columns []Column            `json:"columns"`
		More    bool                `json:"more"`
		Next    *string             `json:"next"`
		Rows    [][]json.RawMessage `json:"rows"`
	}
	if err := c.do(ctx, http.MethodGet, resultsPath(id, q.values("")), nil, &page); err != nil {
		return nil, err
	}
	out := &ResultsPage{Columns: page.Columns, More: page.More, Rows: make([][]any, len(page.Rows))}
	if page.Next != nil {
		out.Next = *page.Next
	}
	for i, raw := range page.Rows {
		if len(raw) != len(page.Columns) {
			return nil, fmt.Errorf("sql-jobber: row %d has %d values for %d columns", i, len(raw), len(page.Columns))
		}
		out.Rows[i] = make([]any, len(raw))
		for j, r := range raw {
			v, err := typedValue(page.Columns[j].Type, r)
			if err != nil {
				return nil, fmt.Errorf("sql-jobber: row %d, column %q: %w", i, page.Columns[j].Name, err)
			}
			out.Rows[i][j] = v
		}
	}
	return out, nil
}

func resultsPath(id string, v url.Values) string {
	p := "/jobs/" + url.PathEscape(id) + "/results"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// typedValue decodes a JSON value of a column of type typ.
func typedValue(typ string, raw json.RawMessage) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	switch typ {
	case "json":
		return raw, nil
	case "int64":
		return strconv.ParseInt(string(raw), 10, 64)
	case "uint64":
		return strconv.ParseUint(string(raw), 10, 64)
	case "bool":
		return strconv.ParseBool(string(raw))
	case "float64":
		if raw[0] != '"' {
			return strconv.ParseFloat(string(raw), 64)
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("a %s value %s: %w", typ, raw, err)
	}
	switch typ {
	case "float64":
		return strconv.ParseFloat(s, 64) // NaN, Infinity, -Infinity
	case "date":
		return time.Parse(time.DateOnly, s)
	case "timestamp":
		return time.Parse("2006-01-02T15:04:05.999999999", s)
	case "timestamptz":
		return time.Parse(time.RFC3339Nano, s)
	case "bytes":
		return base64.StdEncoding.DecodeString(s)
	}
	return s, nil // decimal, text, and types this client does not know
}

// ResultsStream is a page of a job's results as the server sends it, in
// one format. Read it, then Close it.
type ResultsStream struct {
	io.ReadCloser
	// ContentType is the format's media type.
	ContentType string
	// More says whether rows follow; Next is the cursor that reads them.
	More bool
	Next string
}

// DownloadResults streams a page of job id's results in format: "json",
// "ndjson" or "csv" (see the README). Nothing is held in memory: the page
// is read as the caller reads the stream.
func (c *Client) DownloadResults(ctx context.Context, id, format string, q ResultsQuery) (*ResultsStream, error) {
	res, err := c.send(ctx, http.MethodGet, resultsPath(id, q.values(format)), nil)
	if err != nil {
		return nil, err
	}
	return &ResultsStream{ReadCloser: res.Body, ContentType: res.Header.Get("Content-Type"),
		More: strings.EqualFold(res.Header.Get("Sql-Jobber-More"), "true"), Next: res.Header.Get("Sql-Jobber-Next-Cursor")}, nil
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
	res, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var env envelope
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return &Error{StatusCode: res.StatusCode, Message: "the answer is not sql-jobber's JSON envelope: " + err.Error()}
	}
	if env.Status != "success" {
		return &Error{StatusCode: res.StatusCode, Message: env.Message}
	}
	if out != nil {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("sql-jobber: decode answer: %w", err)
		}
	}
	return nil
}

// send makes a request and returns the answer if it succeeded (the caller
// closes its body), else the API's *Error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("sql-jobber: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("sql-jobber: %w", err)
	}
	if body != nil || method == http.MethodPost {
		// The API refuses a POST that is not JSON, even an empty one.
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sql-jobber: %s %s: %w", method, path, err)
	}
	if res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	apiErr := &Error{StatusCode: res.StatusCode}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 {
		apiErr.RetryAfter = time.Duration(s) * time.Second
	}
	var env envelope
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		apiErr.Message = "the answer is not sql-jobber's JSON envelope: " + err.Error()
		return nil, apiErr
	}
	apiErr.Message = env.Message
	return nil, apiErr
}
