package actors

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/cluster"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Ledger is the durable record of jobs (resultsink.Ledger).
type Ledger interface {
	Admit(ctx context.Context, j resultsink.Job) (*resultsink.Job, error)
	Start(ctx context.Context, id, prevRunID, runID, node, backend, table string) (*resultsink.Job, error)
	Finish(ctx context.Context, id, runID, state string, count int64, errText string) error
	Get(ctx context.Context, id string) (*resultsink.Job, error)
	Unfinished(ctx context.Context) ([]*resultsink.Job, error)
}

// Tasks is the task registry (sqlexec.Registry).
type Tasks interface {
	Task(name string) (*sqlexec.Task, bool)
	Tasks() []*sqlexec.Task
	PickDB(t *sqlexec.Task, requested string) (string, error)
	Query(ctx context.Context, t *sqlexec.Task, db string, args []any) (sqlexec.Rows, error)
}

// Results is one results backend (resultsink.Backend).
type Results interface {
	TableName(jobID string) string
	MaxJobIDLen() int
	Write(ctx context.Context, table, runID string, rows sqlexec.Rows) (int64, error)
}

var (
	_ Ledger  = (*resultsink.Ledger)(nil)
	_ Tasks   = (*sqlexec.Registry)(nil)
	_ Results = (*resultsink.Backend)(nil)
)

// Job grain kind.
const jobKind = "job"

// Defaults for Config.
const (
	DefaultQueueDefault = "default"
	ConcurrencyDefault  = 10
	GrainIdleDefault    = 2 * time.Minute
	ledgerTimeout       = 30 * time.Second
)

// Config configures an Engine.
type Config struct {
	// NodeName names this node in logs and the ledger (--worker-name).
	NodeName string
	// Queues are the queues this node works, with the number of jobs of
	// each that may run at once on this node. Empty: DefaultQueue with
	// ConcurrencyDefault slots.
	Queues map[string]int
	// DefaultQueue is the queue of a job whose task and request name none.
	DefaultQueue string
	// DefaultTTL is how long results are kept when neither the request
	// nor the task says; 0 keeps them.
	DefaultTTL time.Duration
	// GrainIdle is how long a job grain stays in memory without messages.
	GrainIdle time.Duration
	// Cluster configures this node's cluster membership; Kinds is set by
	// the engine.
	Cluster cluster.Config
	Logger  *slog.Logger
}

// WithDefaults returns c with zero values replaced by defaults.
func (c Config) WithDefaults() Config {
	c.DefaultQueue = cmp.Or(c.DefaultQueue, DefaultQueueDefault)
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{c.DefaultQueue: ConcurrencyDefault}
	}
	c.GrainIdle = cmp.Or(c.GrainIdle, GrainIdleDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c.
func (c Config) Validate() error {
	if !sqlexec.ValidName(c.DefaultQueue) {
		return fmt.Errorf("default_queue: invalid queue name %q", c.DefaultQueue)
	}
	for q, n := range c.Queues {
		if !sqlexec.ValidName(q) {
			return fmt.Errorf("queue: invalid queue name %q", q)
		}
		if n < 1 {
			return fmt.Errorf("worker-concurrency: queue %q needs at least 1 slot, got %d", q, n)
		}
	}
	if c.DefaultTTL < 0 {
		return errors.New("default_job_ttl: must not be negative")
	}
	return nil
}

// Engine runs jobs on this node and answers for the job grains it hosts.
type Engine struct {
	cfg      Config
	ledger   Ledger
	tasks    Tasks
	results  map[string]Results
	maxIDLen int
	logger   *slog.Logger

	node   *cluster.Node
	queues map[string]*actor.PID

	// ctx ends when the engine stops; runs and grain I/O derive from it.
	ctx    context.Context
	cancel context.CancelFunc
	runs   sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
}

// NewEngine prepares an engine; Start starts it.
func NewEngine(ledger Ledger, tasks Tasks, results map[string]Results, cfg Config) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, errors.New("actors: no results backend")
	}
	e := &Engine{cfg: cfg, ledger: ledger, tasks: tasks, results: results, logger: cfg.Logger, queues: map[string]*actor.PID{}}
	// IDs must fit every results table name and the ledger's key.
	e.maxIDLen = 255
	for _, r := range results {
		e.maxIDLen = min(e.maxIDLen, r.MaxJobIDLen())
	}
	return e, nil
}

// MaxJobIDLen is the longest job ID this node accepts.
func (e *Engine) MaxJobIDLen() int { return e.maxIDLen }

// Start joins the cluster, starts this node's queue actors and hands them
// the unfinished jobs of their queues from the ledger: PENDING and RETRY
// jobs wait for a slot again; STARTED jobs, whose run died with the previous
// process, run again from the start (results are written to a staging table
// and published only at the end, so a re-run replaces nothing half-done).
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return errors.New("actors: engine already started")
	}
	e.started = true
	// Runs outlive the start-up context; Stop ends them.
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))

	ccfg := e.cfg.Cluster
	ccfg.Logger = cmp.Or(ccfg.Logger, e.logger)
	ccfg.Kinds = []*protocluster.Kind{protocluster.NewKind(jobKind,
		actor.PropsFromProducer(func() actor.Actor { return &jobGrain{e: e} }))}
	node, err := cluster.NewNode(ccfg)
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		node.Stop()
		return err
	}
	e.node = node

	for _, name := range slices.Sorted(maps.Keys(e.cfg.Queues)) {
		slots := e.cfg.Queues[name]
		props := actor.PropsFromProducer(func() actor.Actor { return newQueueActor(e, name, slots) })
		pid, err := node.System().Root.SpawnNamed(props, "queue/"+name)
		if err != nil {
			return fmt.Errorf("start queue %q: %w", name, err)
		}
		e.queues[name] = pid
	}
	return e.recover(ctx)
}

func (e *Engine) recover(ctx context.Context) error {
	jobs, err := e.ledger.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		e.dispatch(j)
	}
	if len(jobs) > 0 {
		e.logger.Info("recovered unfinished jobs from the ledger", slog.Int("jobs", len(jobs)))
	}
	return nil
}

// dispatch hands an admitted job to this node's queue actor for its queue.
// A job whose queue this node does not work stays PENDING in the ledger for
// a node that does.
func (e *Engine) dispatch(j *resultsink.Job) {
	if pid, ok := e.queues[j.Queue]; ok {
		e.node.System().Root.Send(pid, &enqueue{job: j})
	}
}

// Stop stops taking jobs, cancels running ones (which stay STARTED in the
// ledger and run again on the next start), and leaves the cluster. It is
// idempotent and safe before Start.
func (e *Engine) Stop() {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.stopped = true
	e.mu.Unlock()
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.runs.Wait()
	if e.node != nil {
		e.node.Stop()
	}
}

// SubmitRequest is a request for a new job.
type SubmitRequest struct {
	JobID   string // "" to generate one
	Task    string
	Queue   string // "" for the task's queue or the default queue
	DB      string // "" for any of the task's databases
	Args    []any  // string, json.Number, bool or nil each
	ETA     time.Time
	Retries int
	TTL     time.Duration
	GroupID string
}

// Receipt is what a client learns about an accepted job.
type Receipt struct {
	JobID   string
	Task    string
	Queue   string
	ETA     time.Time
	Retries int
}

var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9_:-]+$`)

// ValidateJobID checks an ID against the rule for job (and group) IDs.
func (e *Engine) ValidateJobID(field, id string) error {
	if id == "" || len(id) > e.maxIDLen || !jobIDRe.MatchString(id) {
		return invalid(field, "must be 1 to %d characters of letters, digits, '_', '-' or ':'", e.maxIDLen)
	}
	return nil
}

// NewJobID returns a random job ID.
func NewJobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit validates req, records the job PENDING and queues it. It returns
// ErrTaskNotFound, an *InvalidError, or an *ActiveError when an unfinished
// job holds the ID.
func (e *Engine) Submit(ctx context.Context, req SubmitRequest) (*Receipt, error) {
	spec, err := e.validate(req)
	if err != nil {
		return nil, err
	}
	if e.ctx == nil || e.ctx.Err() != nil {
		return nil, ErrStopping
	}
	res, err := e.node.Request(ctx, jobKind, spec.JobId, &jobpb.SubmitJob{Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	reply, ok := res.(*jobpb.SubmitJobReply)
	if !ok {
		return nil, fmt.Errorf("submit job: unexpected reply %T", res)
	}
	switch reply.Outcome {
	case jobpb.SubmitJobReply_OUTCOME_ACCEPTED:
		r := &Receipt{JobID: spec.JobId, Task: spec.Task, Queue: spec.Queue, Retries: int(spec.Retries)}
		if spec.EtaUnixMicros != 0 {
			r.ETA = time.UnixMicro(spec.EtaUnixMicros).UTC()
		}
		return r, nil
	case jobpb.SubmitJobReply_OUTCOME_ACTIVE:
		return nil, &ActiveError{ID: spec.JobId, State: reply.State}
	default:
		return nil, fmt.Errorf("submit job: %s", reply.Error)
	}
}

func (e *Engine) validate(req SubmitRequest) (*jobpb.JobSpec, error) {
	t, ok := e.tasks.Task(req.Task)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrTaskNotFound, req.Task)
	}
	if req.JobID == "" {
		req.JobID = NewJobID()
	} else if err := e.ValidateJobID("job_id", req.JobID); err != nil {
		return nil, err
	}
	queue := cmp.Or(req.Queue, t.Queue, e.cfg.DefaultQueue)
	if !sqlexec.ValidName(queue) {
		return nil, invalid("queue", "must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	if req.DB != "" {
		if _, err := e.tasks.PickDB(t, req.DB); err != nil {
			return nil, invalid("db", "%v", err)
		}
	}
	if t.NumArgs >= 0 && len(req.Args) != t.NumArgs {
		return nil, invalid("args", "task %q takes %d arguments, got %d", t.Name, t.NumArgs, len(req.Args))
	}
	for i, a := range req.Args {
		switch a.(type) {
		case string, json.Number, bool, nil:
		default:
			return nil, invalid(fmt.Sprintf("args[%d]", i), "must be a string, number, boolean or null")
		}
	}
	if req.Retries < 0 {
		return nil, invalid("retries", "must not be negative")
	}
	if req.TTL < 0 {
		return nil, invalid("ttl", "must not be negative")
	}
	args, err := json.Marshal(req.Args)
	if err != nil {
		return nil, invalid("args", "%v", err)
	}
	if req.Args == nil {
		args = []byte("[]")
	}
	ttl := cmp.Or(req.TTL, t.TTL, e.cfg.DefaultTTL)
	spec := &jobpb.JobSpec{
		JobId: req.JobID, Task: t.Name, Queue: queue, Db: req.DB, ArgsJson: string(args),
		Retries: int32(req.Retries), TtlSeconds: int64(ttl / time.Second), GroupId: req.GroupID,
	}
	if !req.ETA.IsZero() {
		spec.EtaUnixMicros = req.ETA.UnixMicro()
	}
	return spec, nil
}

// Job returns a job's record from the ledger.
func (e *Engine) Job(ctx context.Context, id string) (*resultsink.Job, error) {
	j, err := e.ledger.Get(ctx, id)
	if errors.Is(err, resultsink.ErrJobNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	}
	return j, err
}

// Tasks lists the registered tasks.
func (e *Engine) Tasks() []*sqlexec.Task { return e.tasks.Tasks() }

// ActiveGrains counts the job grains this node hosts.
func (e *Engine) ActiveGrains() int { return e.node.ActiveGrains() }

// decodeArgs turns a ledger's JSON arguments into driver arguments: integers
// that fit int64 as int64, other numbers as their exact text.
func decodeArgs(raw []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args []any
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("decode job arguments: %w", err)
	}
	for i, a := range args {
		if n, ok := a.(json.Number); ok {
			if v, err := n.Int64(); err == nil {
				args[i] = v
			} else {
				args[i] = n.String()
			}
		}
	}
	return args, nil
}
