package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Service is what the API needs from the job engine (actors.Engine).
type Service interface {
	Tasks() []*sqlexec.Task
	Submit(ctx context.Context, req actors.SubmitRequest) (*actors.Receipt, error)
	Job(ctx context.Context, id string) (*sqljobber.Job, error)
	Results(ctx context.Context, id string, q resultsink.Query) (*resultsink.Page, error)
	Cancel(ctx context.Context, id string, purge bool) error
	Queue(ctx context.Context, queue string) ([]*sqljobber.Job, error)
	SubmitGroup(ctx context.Context, req actors.GroupRequest) (*actors.GroupReceipt, error)
	Group(ctx context.Context, id string) (*sqljobber.Group, error)
	// WaitJob returns the finished job when the wait learnt it, else nil
	// (the job is read then).
	WaitJob(ctx context.Context, id string, d time.Duration) (*sqljobber.Job, error)
	WaitGroup(ctx context.Context, id string, d time.Duration) error
	CancelGroup(ctx context.Context, id string, purge bool) error
	Members() []sqljobber.Member
	// Workers is how many members work queue ("" for the default).
	Workers(queue string) int
	// ValidateID checks a job or group ID (named field in the error)
	// against the rule submissions use.
	ValidateID(field, id string) error
	Lister
}

var _ Service = (*actors.Engine)(nil)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// ETALayout is the seed's ETA format; RFC 3339 is accepted too.
const ETALayout = "2006-01-02 15:04:05"

// Config configures the API.
type Config struct {
	// ETALocation is the zone of ETAs given without one; nil means UTC.
	ETALocation *time.Location
	Logger      *slog.Logger
	// Metrics is where HTTP metrics are registered; nil keeps them
	// unregistered.
	Metrics prometheus.Registerer
	// Ops, if set, adds /metrics, /healthz and /readyz to the API.
	Ops *Ops
	// MaxWait caps ?wait= on GET /jobs/{id} and /groups/{id}; 0 means
	// MaxWaitDefault.
	MaxWait time.Duration
	// Auth holds the API's tokens and the caps on what clients hold at
	// once; nil (or no tokens) leaves the API open to every client.
	Auth *Auth
	// CSVSafe makes CSV results neutralise cells that spreadsheets would
	// run as formulas, unless a request says ?csv_safe=false.
	CSVSafe bool
	// BodyTimeout is how long a request body may take to arrive, from
	// when its handler starts reading it; 0 means BodyTimeoutDefault.
	BodyTimeout time.Duration
}

// BodyTimeoutDefault is the default of Config.BodyTimeout: a body is at
// most MaxBodyBytes, which any working client sends in far less.
const BodyTimeoutDefault = 30 * time.Second

// MaxWaitDefault is the default cap on ?wait=.
const MaxWaitDefault = time.Minute

// Server is the HTTP API.
type Server struct {
	svc     Service
	cfg     Config
	logger  *slog.Logger
	router  *mux.Router
	metrics *httpMetrics
}

func newServer(svc Service, cfg Config) *Server {
	if cfg.ETALocation == nil {
		cfg.ETALocation = time.UTC
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = MaxWaitDefault
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = BodyTimeoutDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, cfg: cfg, logger: cfg.Logger, router: mux.NewRouter(), metrics: newHTTPMetrics(cfg.Metrics)}
}

// NewServer returns the API over svc.
func NewServer(svc Service, cfg Config) *Server {
	s := newServer(svc, cfg)
	r := s.router
	for _, rt := range []struct {
		method, path string
		scope        Scope
		h            http.HandlerFunc
	}{
		{http.MethodGet, "/tasks", anyToken, s.handleTasks},
		{http.MethodPost, "/tasks/{taskName}/jobs", ScopeSubmit, s.handlePostJob},
		{http.MethodGet, "/jobs", ScopeRead, s.handleListJobs},
		{http.MethodGet, "/jobs/queue/{queue}", ScopeRead, s.handleQueue},
		{http.MethodGet, "/jobs/{jobID}", ScopeRead, s.handleGetJob},
		{http.MethodGet, "/jobs/{jobID}/results", ScopeResults, s.handleResults},
		{http.MethodDelete, "/jobs/{jobID}", ScopeCancel, s.handleDeleteJob},
		{http.MethodPost, "/groups", ScopeSubmit, s.handlePostGroup},
		{http.MethodGet, "/groups/{groupID}", ScopeRead, s.handleGetGroup},
		{http.MethodDelete, "/groups/{groupID}", ScopeCancel, s.handleDeleteGroup},
		{http.MethodGet, "/queues", ScopeRead, s.handleQueues},
		{http.MethodGet, "/databases", ScopeRead, s.handleDatabases},
		{http.MethodGet, "/cluster/members", ScopeAdmin, s.handleMembers},
	} {
		r.HandleFunc(rt.path, s.authorize(rt.scope, s.checked(rt.h))).Methods(rt.method)
	}
	r.HandleFunc("/openapi.json", s.handleOpenAPI).Methods(http.MethodGet)
	if cfg.Ops != nil {
		cfg.Ops.Register(r, s)
	} else {
		r.HandleFunc("/healthz", s.handleHealthz).Methods(http.MethodGet)
	}
	s.registerUI()
	s.notFound()
	return s
}

func (s *Server) notFound() {
	s.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errRoute{status: http.StatusNotFound, msg: "no such endpoint: " + clip(r.Method) + " " + clip(r.URL.Path)})
	})
	s.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allow := strings.Join(s.allowed(r), ", ")
		w.Header().Set("Allow", allow)
		s.writeError(w, r, errRoute{status: http.StatusMethodNotAllowed,
			msg: "method " + clip(r.Method) + " is not allowed on " + clip(r.URL.Path) + ": use " + allow})
	})
}

// allowed lists the methods of the routes that match r's path, for the
// Allow header of a 405 (RFC 9110 requires it).
func (s *Server) allowed(r *http.Request) []string {
	var methods []string
	_ = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		ms, err := route.GetMethods()
		if err != nil {
			return nil
		}
		for _, m := range ms {
			probe := r.WithContext(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if route.Match(probe, &match) && match.MatchErr == nil {
				methods = append(methods, m)
			}
		}
		return nil
	})
	slices.Sort(methods)
	return slices.Compact(methods)
}

// Handler is the API's handler.
func (s *Server) Handler() http.Handler { return s.instrument(s.router) }

type envelope struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Data    any    `json:"data"`
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v envelope) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) writeData(w http.ResponseWriter, data any) {
	s.writeJSON(w, http.StatusOK, envelope{Status: "success", Data: data})
}

// errRoute is an error that already knows its status.
type errRoute struct {
	status int
	msg    string
}

func (e errRoute) Error() string { return e.msg }

// badRequest is a request whose shape is wrong (JSON, types, formats).
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

// writeError is the one place errors become statuses.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := statusOf(err)
	switch status {
	case http.StatusUnauthorized:
		v := realm
		if ae := (*authError)(nil); errors.As(err, &ae) && ae.invalid {
			v += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", v)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfter)
	}
	if status >= 500 {
		// The code, not the text, which can quote request values.
		s.logger.Error("request failed", slog.String("method", r.Method), slog.String("route", routeOf(r)),
			slog.Int("status", status), slog.String("error_code", sqlexec.ErrorCode(err)))
	}
	s.writeJSON(w, status, envelope{Status: "error", Message: clipMessage(msg)})
}

func statusOf(err error) (int, string) {
	var (
		route   errRoute
		bad     badRequest
		invalid *sqljobber.InvalidError
		query   *resultsink.QueryError
		tooBig  *http.MaxBytesError
		auth    *authError
		limit   *limitError
		media   *mediaTypeError
		body    *bodyError
	)
	switch {
	case errors.As(err, &route):
		return route.status, route.msg
	case errors.As(err, &auth):
		return auth.status, auth.msg
	case errors.As(err, &limit):
		return http.StatusTooManyRequests, limit.Error()
	case errors.As(err, &bad), errors.As(err, &invalid), errors.As(err, &query):
		return http.StatusBadRequest, err.Error()
	case errors.As(err, &media):
		return http.StatusUnsupportedMediaType, media.Error()
	case errors.As(err, &body) && body.timeout():
		return http.StatusRequestTimeout, body.Error()
	case errors.As(err, &body):
		return http.StatusBadRequest, body.Error()
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, sqljobber.ErrTaskNotFound), errors.Is(err, sqljobber.ErrJobNotFound), errors.Is(err, sqljobber.ErrGroupNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, sqljobber.ErrGone):
		return http.StatusGone, err.Error()
	case errors.Is(err, sqljobber.ErrJobActive), errors.Is(err, sqljobber.ErrJobFinished),
		errors.Is(err, sqljobber.ErrNotReady), errors.Is(err, resultsink.ErrCursorStale):
		return http.StatusConflict, err.Error()
	case errors.Is(err, sqljobber.ErrStopping), errors.Is(err, sqljobber.ErrUnavailable):
		return http.StatusServiceUnavailable, err.Error()
	case sqlexec.Transient(err):
		// The driver's words can name hosts and users: they stay in the
		// log.
		return http.StatusServiceUnavailable, "a database cannot be reached or is busy; try again later"
	}
	return http.StatusInternalServerError, "internal error"
}

func routeOf(r *http.Request) string {
	if rt := mux.CurrentRoute(r); rt != nil {
		if tpl, err := rt.GetPathTemplate(); err == nil {
			return tpl
		}
	}
	return "unmatched"
}

type taskJSON struct {
	Name    string   `json:"name"`
	Queue   string   `json:"queue"`
	DBs     []string `json:"dbs"`
	Results []string `json:"results"`
	Raw     bool     `json:"raw"`
	// NumArgs is the number of arguments, null when not known (raw).
	NumArgs *int `json:"num_args"`
	// Workers is how many cluster members work the task's queue: 0 says
	// its jobs wait until a node that does joins.
	Workers int `json:"workers"`
	// SQL is the task's query as its file has it, for the dashboard and
	// for clients that want to know what a task reads.
	SQL string `json:"sql"`
}

func (s *Server) handleTasks(w http.ResponseWriter, _ *http.Request) {
	tasks := s.svc.Tasks()
	out := make([]taskJSON, 0, len(tasks))
	for _, t := range tasks {
		tj := taskJSON{Name: t.Name, Queue: t.Queue, DBs: t.DBs, Results: t.Results, Raw: t.Raw, Workers: s.svc.Workers(t.Queue), SQL: t.SQL}
		if t.NumArgs >= 0 {
			n := t.NumArgs
			tj.NumArgs = &n
		}
		out = append(out, tj)
	}
	s.writeData(w, out)
}

// jobRequest is the body of POST /tasks/{taskName}/jobs.
type jobRequest struct {
	JobID   string            `json:"job_id"`
	Queue   string            `json:"queue"`
	ETA     string            `json:"eta"`
	Retries *int              `json:"retries"`
	TTL     *int64            `json:"ttl"`
	Args    []json.RawMessage `json:"args"`
	DB      string            `json:"db"`
	// MaxAge and Fresh ask for result reuse (see reuse.go).
	MaxAge json.RawMessage `json:"max_age"`
	Fresh  bool            `json:"fresh"`
}

type receiptJSON struct {
	JobID   string  `json:"job_id"`
	Task    string  `json:"task"`
	Queue   string  `json:"queue"`
	ETA     *string `json:"eta"`
	Retries int     `json:"retries"`
	// Workers is how many cluster members work the job's queue: 0 says
	// it waits until a node that does joins.
	Workers int `json:"workers"`
}

func (s *Server) handlePostJob(w http.ResponseWriter, r *http.Request) {
	var body jobRequest
	if err := s.decodeBody(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := s.submitRequest("", mux.Vars(r)["taskName"], body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	rec, err := s.svc.Submit(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeData(w, receiptOf(rec))
}

func receiptOf(rec *actors.Receipt) receiptJSON {
	return receiptJSON{JobID: rec.JobID, Task: rec.Task, Queue: rec.Queue, Retries: rec.Retries, ETA: timeJSON(rec.ETA), Workers: rec.Workers}
}

// Bounds on request numbers, far beyond any sensible use, so that no
// conversion overflows.
const (
	maxRetries    = 1000
	maxTTLSeconds = 100 * 365 * 24 * 3600
)

// submitRequest turns a job body into a request; prefix names the job's
// place in a group ("jobs[2].") in errors.
func (s *Server) submitRequest(prefix, task string, b jobRequest) (actors.SubmitRequest, error) {
	req := actors.SubmitRequest{JobID: b.JobID, Task: task, Queue: b.Queue, DB: b.DB}
	if b.ETA != "" {
		eta, err := ParseETA(b.ETA, s.cfg.ETALocation)
		if err != nil {
			return req, badRequest{msg: prefix + err.Error()}
		}
		req.ETA = eta
	}
	if b.Retries != nil {
		if *b.Retries < 0 || *b.Retries > maxRetries {
			return req, badRequest{msg: fmt.Sprintf("%sretries: must be between 0 and %d", prefix, maxRetries)}
		}
		req.Retries = *b.Retries
	}
	if b.TTL != nil {
		if *b.TTL < 0 || *b.TTL > maxTTLSeconds {
			return req, badRequest{msg: fmt.Sprintf("%sttl: must be between 0 and %d seconds", prefix, maxTTLSeconds)}
		}
		ttl := time.Duration(*b.TTL) * time.Second
		req.TTL = &ttl
	}
	maxAge, err := maxAgeOf(prefix, b.MaxAge)
	if err != nil {
		return req, err
	}
	req.MaxAge, req.Fresh = maxAge, b.Fresh
	args, err := decodeArgs(prefix, b.Args)
	if err != nil {
		return req, err
	}
	req.Args = args
	return req, nil
}

type jobJSON struct {
	JobID          string  `json:"job_id"`
	Task           string  `json:"task"`
	Queue          string  `json:"queue"`
	State          string  `json:"state"`
	Count          int64   `json:"count"`
	Error          string  `json:"error"`
	ResultsBackend string  `json:"results_backend"`
	ResultsTable   string  `json:"results_table"`
	Attempt        int     `json:"attempt"`
	LostRuns       int     `json:"lost_runs"`
	Node           string  `json:"node"`
	Retries        int     `json:"retries"`
	GroupID        string  `json:"group_id,omitempty"`
	Owner          string  `json:"owner,omitempty"`
	ETA            *string `json:"eta"`
	CreatedAt      *string `json:"created_at"`
	StartedAt      *string `json:"started_at"`
	FinishedAt     *string `json:"finished_at"`
	ExpiresAt      *string `json:"expires_at"`
	// ReusedFrom is the job whose results answered this one, which did
	// not run.
	ReusedFrom string `json:"reused_from,omitempty"`
	// RowsPerSecond is a running job's rate since its run started, from
	// the node that runs it (count is then that node's count too); null
	// otherwise.
	RowsPerSecond *float64 `json:"rows_per_second"`
	// Joined is the identical job this one waits on, unfinished, instead
	// of running (single flight).
	Joined string `json:"joined,omitempty"`
}

// jobOf is a job as the API shows it. Its results table is named only once
// the job has published it: a job that failed, was cancelled or has not
// finished has none to read. A running job's count is its node's live
// count, when that node answered.
func jobOf(j *sqljobber.Job) jobJSON {
	table := ""
	if j.State == sqljobber.StateSuccess {
		table = j.ResultsTable
	}
	out := jobJSON{
		JobID: j.ID, Task: j.Task, Queue: j.Queue, State: string(j.State), Count: j.Count, Error: j.Error,
		ResultsBackend: j.ResultsBackend, ResultsTable: table, Attempt: j.Attempt, LostRuns: j.LostRuns, Node: j.Node, Retries: j.Retries,
		GroupID: j.GroupID, Owner: j.Owner, ETA: timeJSON(j.ETA), CreatedAt: timeJSON(j.CreatedAt), StartedAt: timeJSON(j.StartedAt),
		FinishedAt: timeJSON(j.FinishedAt), ExpiresAt: timeJSON(j.ExpiresAt), ReusedFrom: j.ReusedFrom,
		Joined: j.Joined,
	}
	if p := j.Progress; p != nil {
		out.Count = p.Rows
		rate := p.RowsPerSecond()
		out.RowsPerSecond = &rate
	}
	return out
}

func timeJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["jobID"]
	wait, err := s.waitParam(r)
	var j *sqljobber.Job
	if err == nil && wait > 0 {
		err = s.waitOn(r, func() (werr error) {
			j, werr = s.svc.WaitJob(r.Context(), id, wait)
			return werr
		})
	}
	if err == nil && j == nil {
		j, err = s.svc.Job(r.Context(), id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeData(w, jobOf(j))
}

type deletedJSON struct {
	ID     string `json:"job_id,omitempty"`
	Group  string `json:"group_id,omitempty"`
	Purged bool   `json:"purged"`
}

func (s *Server) handleDeleteJob(w http.ResponseWriter, r *http.Request) {
	purge, err := purgeParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := mux.Vars(r)["jobID"]
	if err := s.svc.Cancel(r.Context(), id, purge); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeData(w, deletedJSON{ID: id, Purged: purge})
}

type pendingJSON struct {
	JobID      string  `json:"job_id"`
	Task       string  `json:"task"`
	Queue      string  `json:"queue"`
	ETA        *string `json:"eta"`
	EnqueuedAt *string `json:"enqueued_at"`
}

func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.svc.Queue(r.Context(), mux.Vars(r)["queue"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]pendingJSON, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, pendingJSON{JobID: j.ID, Task: j.Task, Queue: j.Queue, ETA: timeJSON(j.ETA), EnqueuedAt: timeJSON(j.EnqueuedAt)})
	}
	s.writeData(w, out)
}

type memberJSON struct {
	Name    string         `json:"name"`
	ID      string         `json:"id"`
	Address string         `json:"address"`
	API     string         `json:"api"`
	Queues  map[string]int `json:"queues"`
	Self    bool           `json:"self"`
	State   string         `json:"state"`
}

func (s *Server) handleMembers(w http.ResponseWriter, _ *http.Request) {
	members := s.svc.Members()
	out := make([]memberJSON, 0, len(members))
	for _, m := range members {
		q := m.Queues
		if q == nil {
			q = map[string]int{}
		}
		out = append(out, memberJSON{Name: m.Name, ID: m.ID, Address: m.Address, API: m.API, Queues: q, Self: m.Self, State: string(m.State)})
	}
	s.writeData(w, out)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	s.writeData(w, map[string]string{"status": "ok"})
}
