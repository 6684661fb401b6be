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
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Ledger is the durable record of jobs and groups, and their queue
// (ledger.Ledger). Each part is what one side of the engine needs.
type Ledger interface {
	jobRecords
	runRecords
	groupRecords
}

// jobRecords is what a job's grain does to its job, and what readers of a
// job read.
type jobRecords interface {
	Admit(ctx context.Context, j ledger.Job) (*ledger.Job, error)
	Start(ctx context.Context, j ledger.Job, node string, lease time.Duration) (*ledger.Job, error)
	Get(ctx context.Context, id string) (*ledger.Job, error)
	Cancel(ctx context.Context, id string) (*ledger.Job, error)
	DeleteIfUnchanged(ctx context.Context, j *ledger.Job) (bool, error)
	Tombstone(ctx context.Context, id string) (*ledger.Tombstone, error)
	Pending(ctx context.Context, queue string, limit int) ([]*ledger.Job, error)
}

// runRecords is what queues, runs and the node's housekeeping do.
type runRecords interface {
	Claim(ctx context.Context, queue, node string, n int, lease time.Duration) ([]*ledger.Job, error)
	NextReady(ctx context.Context, queue string) (time.Time, bool, error)
	Renew(ctx context.Context, runIDs []string, lease time.Duration) (map[string]bool, error)
	Finish(ctx context.Context, id, runID string, o ledger.Outcome) error
	Release(ctx context.Context, id, runID string) error
	Run(j *ledger.Job) *ledger.Run
	RecoverLost(ctx context.Context, node string) ([]*ledger.Job, error)
	Expired(ctx context.Context, limit int) ([]*ledger.Job, error)
	PendingByQueue(ctx context.Context) (map[string]int64, error)
}

// groupRecords is what a group's grain does to its group.
type groupRecords interface {
	AdmitGroup(ctx context.Context, g ledger.Group, jobs []ledger.Job) ([]*ledger.Job, error)
	Group(ctx context.Context, id string) (*ledger.Group, []*ledger.Job, error)
	ReleaseGroup(ctx context.Context, id string) ([]*ledger.Job, error)
	HeldGroups(ctx context.Context) ([]string, error)
	MarkGroupCancelled(ctx context.Context, id string) error
	DeleteGroup(ctx context.Context, id string) ([]*ledger.Job, error)
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
	Write(ctx context.Context, table, runID string, rows sqlexec.Rows, fence resultsink.Fence) (int64, bool, error)
	Drop(ctx context.Context, table string) error
	ReservedTable(name string) bool
}

// TableReader reads pages of results tables (resultsink.Reader).
type TableReader interface {
	Read(ctx context.Context, t resultsink.Table, q resultsink.Query) (*resultsink.Page, error)
}

// Node is this process's member of the cluster (cluster.Node): the actor
// system the engine's actors live in, and requests to grains wherever they
// are.
type Node interface {
	System() *actor.ActorSystem
	// Request sends msg to the grain kind/identity, wherever it is, and
	// returns its reply; an unreachable grain gives an error wrapping
	// sqljobber.ErrUnavailable.
	Request(ctx context.Context, kind, identity string, msg proto.Message) (any, error)
	// RequestTimeout bounds a request whose context has no deadline.
	RequestTimeout() time.Duration
	Members() []sqljobber.Member
	ActiveGrains() int
}

var (
	_ Ledger           = (*ledger.Ledger)(nil)
	_ Tasks            = (*sqlexec.Registry)(nil)
	_ Results          = (*resultsink.Backend)(nil)
	_ TableReader      = (*resultsink.Reader)(nil)
	_ resultsink.Owner = (*ledger.Run)(nil)
)

// Grain kinds.
const (
	jobKind   = "job"
	groupKind = "group"
)

// Defaults for Config.
const (
	DefaultQueueDefault     = "default"
	ConcurrencyDefault      = 10
	GroupConcurrencyDefault = 5
	GrainIdleDefault        = 2 * time.Minute
	PollIntervalDefault     = time.Second
	LeaseDefault            = 30 * time.Second
	RetryBackoffDefault     = time.Second
	ledgerTimeout           = 30 * time.Second
	maxQueueListing         = 10_000
	expiredBatch            = 100
	groupSweepEveryNthPoll  = 30
)

// Config configures an Engine.
type Config struct {
	// NodeName names this node in logs and the ledger (--worker-name).
	// It must be unique in the cluster: at start a node takes back the
	// runs the ledger says it had.
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
	// GroupConcurrency is how many jobs of a group run at once when the
	// request does not say.
	GroupConcurrency int
	// RetryBackoff is the wait before a failed job's first retry; it
	// doubles for each further one, up to retryMax.
	RetryBackoff time.Duration
	// PollInterval is how often queues look for ready jobs they were not
	// told about, and expired results are removed.
	PollInterval time.Duration
	// Lease is how long a run's claim on its job lasts without renewal;
	// a node that stops renewing (a crash) loses its runs after it.
	Lease time.Duration
	// GrainIdle is how long a grain stays in memory without messages.
	GrainIdle time.Duration
	Logger    *slog.Logger
	// Metrics is where the engine registers its Prometheus metrics; nil
	// keeps them to itself.
	Metrics prometheus.Registerer
}

// WithDefaults returns c with zero values replaced by defaults.
func (c Config) WithDefaults() Config {
	c.DefaultQueue = cmp.Or(c.DefaultQueue, DefaultQueueDefault)
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{c.DefaultQueue: ConcurrencyDefault}
	}
	c.GroupConcurrency = cmp.Or(c.GroupConcurrency, GroupConcurrencyDefault)
	c.RetryBackoff = cmp.Or(c.RetryBackoff, RetryBackoffDefault)
	c.PollInterval = cmp.Or(c.PollInterval, PollIntervalDefault)
	c.Lease = cmp.Or(c.Lease, LeaseDefault)
	c.GrainIdle = cmp.Or(c.GrainIdle, GrainIdleDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return errors.New("worker-name: must not be empty")
	}
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
	if c.GroupConcurrency < 1 {
		return errors.New("default_group_concurrency: must be at least 1")
	}
	if c.RetryBackoff < 0 || c.PollInterval < 0 || c.Lease < 0 {
		return errors.New("retry_backoff, poll interval and lease must not be negative")
	}
	return nil
}

// Engine runs jobs on this node and answers for the grains it hosts.
type Engine struct {
	cfg      Config
	ledger   Ledger
	tasks    Tasks
	results  map[string]Results
	reader   TableReader
	maxIDLen int
	logger   *slog.Logger

	// node is set by Start, before running is.
	node Node
	// queues are this node's queue actors. The map is made with the
	// engine, so that grains (which other members may reach while Start
	// runs) read it unlocked.
	queues map[string]*queueRef

	metrics *metrics

	// running is set once Start has set up what grains and queues use
	// (node, ctx): until then, grains refuse requests, as they do once
	// ctx ends.
	running atomic.Bool
	// ctx ends when the engine stops; runs and grain I/O derive from it.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // runs and background loops
	draining atomic.Bool

	runsMu sync.Mutex
	runs   map[string]*run // by run ID

	mu      sync.Mutex
	started bool
	stopped bool
}

// NewEngine prepares an engine over the ledger, the tasks, the results
// backends (by name) and their reader; Start starts it.
func NewEngine(ledger Ledger, tasks Tasks, results map[string]Results, reader TableReader, cfg Config) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, errors.New("actors: no results backend")
	}
	e := &Engine{cfg: cfg, ledger: ledger, tasks: tasks, results: results, reader: reader, logger: cfg.Logger,
		queues: map[string]*queueRef{}, runs: map[string]*run{}}
	for name, slots := range cfg.Queues {
		e.queues[name] = &queueRef{name: name, slots: slots}
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	e.metrics = newMetrics(reg, e)
	e.metrics.zero(tasks.Tasks(), cfg.DefaultQueue, cfg.Queues)
	// IDs must fit every results table name and the ledger's key.
	e.maxIDLen = 255
	for _, r := range results {
		e.maxIDLen = min(e.maxIDLen, r.MaxJobIDLen())
	}
	return e, nil
}

// MaxJobIDLen is the longest job ID this node accepts.
func (e *Engine) MaxJobIDLen() int { return e.maxIDLen }

// Kinds are the grain kinds the engine's node hosts: give them to the
// node's cluster configuration.
func (e *Engine) Kinds() []*protocluster.Kind {
	return []*protocluster.Kind{
		protocluster.NewKind(jobKind, actor.PropsFromProducer(func() actor.Actor { return newJobGrain(e) })),
		protocluster.NewKind(groupKind, actor.PropsFromProducer(func() actor.Actor { return newGroupGrain(e) })),
	}
}

// Start starts the engine on node, a started member of the cluster that
// hosts Kinds: it takes back the runs this node had when it last stopped
// (they are lost: they run again, see ledger.Ledger.RecoverLost), lets
// groups release held members, and starts this node's queue actors, which
// claim ready jobs from the ledger.
func (e *Engine) Start(ctx context.Context, node Node) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return errors.New("actors: engine already started")
	}
	e.started = true
	// Runs outlive the start-up context; Stop ends them.
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.node = node
	e.running.Store(true)

	recovered, err := e.ledger.RecoverLost(ctx, e.cfg.NodeName)
	if err != nil {
		return err
	}
	if len(recovered) > 0 {
		e.logger.Info("runs lost by an earlier stop were recovered", slog.Int("jobs", len(recovered)))
	}
	e.sweepGroups(ctx)

	root := node.System().Root
	if _, err := root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &nodeActor{e: e} }), nodeActorName); err != nil {
		return fmt.Errorf("start node actor: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(e.cfg.Queues)) {
		ref := e.queues[name]
		e.metrics.slots.WithLabelValues(name).Set(float64(ref.slots))
		e.metrics.running.WithLabelValues(name).Set(0)
		pid, err := root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return newQueueActor(e, ref) }), "queue/"+name)
		if err != nil {
			return fmt.Errorf("start queue %q: %w", name, err)
		}
		ref.pid.Store(pid)
	}
	for _, j := range recovered {
		e.recovered(j)
	}
	e.wg.Add(1)
	go e.maintain()
	return nil
}

// Drain stops taking jobs (submissions fail with sqljobber.ErrStopping and
// the queues claim nothing more) and waits, until ctx ends, for the jobs
// running here to finish. It reports whether they all did; Stop hands back
// the rest.
func (e *Engine) Drain(ctx context.Context) bool {
	e.draining.Store(true)
	err := retry.Do(ctx, retry.Backoff{First: 20 * time.Millisecond}, func(context.Context) (bool, error) {
		return len(e.runIDs()) == 0, nil
	})
	return err == nil
}

// Stop stops taking jobs and hands the jobs it is running back to the
// ledger (they run again at once, here after a restart or on another node).
// It is idempotent and safe before Start. The node it ran on is its
// owner's to stop, after it.
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
	e.wg.Wait()
}

// nodeActorName is the actor on every member that takes messages for the
// node as a whole (wake-ups, run cancellations).
const nodeActorName = "sqljobber-node"

// wake tells every member that works queue (this one included) that jobs
// may be ready, so a free slot anywhere takes them at once rather than at
// its next poll.
func (e *Engine) wake(queue string) {
	e.wakeLocal(queue)
	root := e.node.System().Root
	for _, m := range e.node.Members() {
		if _, works := m.Queues[queue]; works && !m.Self && m.State == sqljobber.MemberAlive {
			root.Send(actor.NewPID(m.Address, nodeActorName), &jobpb.WakeQueue{Queue: queue})
		}
	}
}

// queueActor is this node's actor for queue, or nil if the node does not
// work it or the actor has not started.
func (e *Engine) queueActor(queue string) *actor.PID {
	if ref, ok := e.queues[queue]; ok {
		return ref.pid.Load()
	}
	return nil
}

// wakeLocal wakes this node's actor for queue, if it works that queue.
func (e *Engine) wakeLocal(queue string) {
	if pid := e.queueActor(queue); pid != nil {
		e.node.System().Root.Send(pid, wake{})
	}
}

// stopRun stops a cancelled job's run wherever it is: here at once, on
// another member by a message (which also learns of it at its next lease
// renewal, should the message be lost). It returns a channel closed when a
// run here has ended, or nil.
func (e *Engine) stopRun(j *ledger.Job) <-chan struct{} {
	if j.Node == e.cfg.NodeName {
		return e.cancelRun(j.RunID, errCancelled)
	}
	for _, m := range e.node.Members() {
		if m.Name == j.Node && !m.Self {
			e.node.System().Root.Send(actor.NewPID(m.Address, nodeActorName), &jobpb.CancelRun{RunId: j.RunID})
		}
	}
	return nil
}

// nodeActor receives what other members send this node.
type nodeActor struct{ e *Engine }

func (a *nodeActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *jobpb.WakeQueue:
		a.e.wakeLocal(msg.Queue)
	case *jobpb.CancelRun:
		a.e.cancelRun(msg.RunId, errCancelled)
	}
}

// Members describes the cluster's members.
func (e *Engine) Members() []sqljobber.Member {
	if !e.running.Load() {
		return nil
	}
	return e.node.Members()
}

func (e *Engine) request(ctx context.Context, kind, id string, msg proto.Message) (*jobpb.Reply, error) {
	if !e.running.Load() || e.ctx.Err() != nil {
		return nil, sqljobber.ErrStopping
	}
	switch msg.(type) {
	case *jobpb.SubmitJob, *jobpb.SubmitGroup:
		if e.draining.Load() {
			return nil, sqljobber.ErrStopping
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.node.RequestTimeout())
		defer cancel()
	}
	// A grain whose node is stopping refuses, having done nothing: ask
	// again until the ID's next owner answers, or the time is up (and
	// then the refusal is the answer).
	var reply *jobpb.Reply
	err := retry.Do(ctx, retry.Backoff{First: 20 * time.Millisecond, Max: 250 * time.Millisecond}, func(ctx context.Context) (bool, error) {
		res, err := e.node.Request(ctx, kind, id, msg)
		if err != nil {
			return true, err
		}
		r, ok := res.(*jobpb.Reply)
		if !ok {
			return true, fmt.Errorf("unexpected reply %T", res)
		}
		reply = r
		return r.Outcome != jobpb.Reply_OUTCOME_UNAVAILABLE, nil
	})
	if err != nil && (reply == nil || reply.Outcome != jobpb.Reply_OUTCOME_UNAVAILABLE) {
		return nil, err
	}
	return reply, nil
}

// replyError maps a grain's reply to the errors callers branch on.
func replyError(r *jobpb.Reply, kind string, notFound error, id string) error {
	switch r.Outcome {
	case jobpb.Reply_OUTCOME_OK:
		return nil
	case jobpb.Reply_OUTCOME_NOT_FOUND:
		return fmt.Errorf("%w: %q", notFound, id)
	case jobpb.Reply_OUTCOME_ACTIVE:
		return &sqljobber.ActiveError{ID: r.JobId, State: sqljobber.State(r.State)}
	case jobpb.Reply_OUTCOME_FINISHED:
		return &sqljobber.FinishedError{Kind: kind, ID: r.JobId, State: sqljobber.State(r.State)}
	case jobpb.Reply_OUTCOME_UNAVAILABLE:
		return sqljobber.ErrStopping
	case jobpb.Reply_OUTCOME_TIMED_OUT:
		return fmt.Errorf("%w: %s timed out: %w", sqljobber.ErrUnavailable, kind, context.DeadlineExceeded)
	}
	return errors.New(r.Error)
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

// reservedJobID is the one valid-looking job ID the API's paths cannot
// tell from a route of their own.
const reservedJobID = "queue"

// ValidateID checks a job or group ID against the rule for IDs.
func (e *Engine) ValidateID(field, id string) error {
	if id == "" || len(id) > e.maxIDLen || !jobIDRe.MatchString(id) {
		return sqljobber.Invalid(field, "must be 1 to %d characters of letters, digits, '_', '-' or ':'", e.maxIDLen)
	}
	return nil
}

// NewID returns a random job or group ID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit validates req, records the job PENDING and wakes its queue. It
// returns sqljobber.ErrTaskNotFound, an *InvalidError, or an *ActiveError when an
// unfinished job holds the ID.
func (e *Engine) Submit(ctx context.Context, req SubmitRequest) (*Receipt, error) {
	spec, err := e.spec("", req)
	if err != nil {
		return nil, err
	}
	reply, err := e.request(ctx, jobKind, spec.JobId, &jobpb.SubmitJob{Spec: spec, DeadlineUnixMicros: deadlineOf(ctx, e.node.RequestTimeout())})
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	if err := replyError(reply, "job", sqljobber.ErrJobNotFound, spec.JobId); err != nil {
		return nil, err
	}
	return receipt(spec), nil
}

// deadlineOf is when a request made now with ctx gives up: ctx's deadline or
// the node's default request timeout.
func deadlineOf(ctx context.Context, def time.Duration) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return dl.UnixMicro()
	}
	return time.Now().Add(def).UnixMicro()
}

func receipt(spec *jobpb.JobSpec) *Receipt {
	r := &Receipt{JobID: spec.JobId, Task: spec.Task, Queue: spec.Queue, Retries: int(spec.Retries)}
	if spec.EtaUnixMicros != 0 {
		r.ETA = time.UnixMicro(spec.EtaUnixMicros).UTC()
	}
	return r
}

// spec validates a job request (field names prefixed by prefix) and makes
// its spec, choosing its results backend.
func (e *Engine) spec(prefix string, req SubmitRequest) (*jobpb.JobSpec, error) {
	t, ok := e.tasks.Task(req.Task)
	if !ok {
		if prefix != "" {
			return nil, sqljobber.Invalid(prefix+"task", "no task %q", req.Task)
		}
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrTaskNotFound, req.Task)
	}
	if req.JobID == "" {
		req.JobID = NewID()
	} else if err := e.ValidateID(prefix+"job_id", req.JobID); err != nil {
		return nil, err
	} else if req.JobID == reservedJobID {
		// GET /jobs/queue/results would list queue "results", not this
		// job's results.
		return nil, sqljobber.Invalid(prefix+"job_id", "%q is reserved: /jobs/queue/{queue} lists a queue", reservedJobID)
	}
	queue := cmp.Or(req.Queue, t.Queue, e.cfg.DefaultQueue)
	if !sqlexec.ValidName(queue) {
		return nil, sqljobber.Invalid(prefix+"queue", "must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	if req.DB != "" {
		if _, err := e.tasks.PickDB(t, req.DB); err != nil {
			return nil, sqljobber.Invalid(prefix+"db", "%v", err)
		}
	}
	if t.NumArgs >= 0 && len(req.Args) != t.NumArgs {
		return nil, sqljobber.Invalid(prefix+"args", "task %q takes %d arguments, got %d", t.Name, t.NumArgs, len(req.Args))
	}
	for i, a := range req.Args {
		switch a.(type) {
		case string, json.Number, bool, nil:
		default:
			return nil, sqljobber.Invalid(fmt.Sprintf("%sargs[%d]", prefix, i), "must be a string, number, boolean or null")
		}
	}
	if req.Retries < 0 {
		return nil, sqljobber.Invalid(prefix+"retries", "must not be negative")
	}
	if req.TTL < 0 {
		return nil, sqljobber.Invalid(prefix+"ttl", "must not be negative")
	}
	args := []byte("[]")
	if len(req.Args) > 0 {
		var err error
		if args, err = json.Marshal(req.Args); err != nil {
			return nil, sqljobber.Invalid(prefix+"args", "%v", err)
		}
	}
	backend, results := e.pickResults(t)
	if results == nil {
		return nil, fmt.Errorf("task %q has no results backend on this node", t.Name)
	}
	if table := results.TableName(req.JobID); results.ReservedTable(table) {
		return nil, sqljobber.Invalid(prefix+"job_id", "its results table %q would take a name sql-jobber reserves", table)
	}
	ttl := cmp.Or(req.TTL, t.TTL, e.cfg.DefaultTTL)
	spec := &jobpb.JobSpec{
		JobId: req.JobID, Task: t.Name, Queue: queue, Db: req.DB, ArgsJson: string(args),
		Retries: int32(req.Retries), TtlSeconds: int64((ttl + time.Second - 1) / time.Second),
		ResultsBackend: backend, ResultsTable: results.TableName(req.JobID),
	}
	if !req.ETA.IsZero() {
		spec.EtaUnixMicros = req.ETA.UnixMicro()
	}
	return spec, nil
}

// Job returns a job as the ledger records it.
func (e *Engine) Job(ctx context.Context, id string) (*sqljobber.Job, error) {
	j, err := e.ledger.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &j.Job, nil
}

// Results opens a page of job id's results. It returns
// sqljobber.ErrJobNotFound for a job it never knew, *sqljobber.GoneError
// for one whose results were removed, *sqljobber.NotReadyError for one that
// has not succeeded, and the errors of resultsink.Reader.Read for a query
// that does not fit the table.
func (e *Engine) Results(ctx context.Context, id string, q resultsink.Query) (*resultsink.Page, error) {
	j, err := e.ledger.Get(ctx, id)
	if errors.Is(err, sqljobber.ErrJobNotFound) {
		ts, terr := e.ledger.Tombstone(ctx, id)
		if terr != nil {
			return nil, terr
		}
		return nil, &sqljobber.GoneError{ID: id, Reason: ts.Reason, At: ts.At}
	}
	if err != nil {
		return nil, err
	}
	if j.State != sqljobber.StateSuccess {
		return nil, &sqljobber.NotReadyError{ID: id, State: j.State}
	}
	p, err := e.reader.Read(ctx, resultsink.Table{Backend: j.ResultsBackend, Name: j.ResultsTable, Version: j.RunID}, q)
	switch {
	case errors.Is(err, resultsink.ErrNoTable):
		return nil, &sqljobber.GoneError{ID: id}
	case errors.Is(err, resultsink.ErrNoRowColumn):
		return nil, &sqljobber.NotReadyError{ID: id, State: j.State, Why: err.Error()}
	}
	return p, err
}

// Cancel cancels an unfinished job: a waiting job leaves its queue, a
// running one has its query cancelled at the database. With purge, the
// job's record and results table are then deleted too, finished or not. A
// finished job without purge gives *FinishedError.
func (e *Engine) Cancel(ctx context.Context, id string, purge bool) error {
	reply, err := e.request(ctx, jobKind, id, &jobpb.CancelJob{JobId: id, Purge: purge})
	if err != nil {
		return fmt.Errorf("cancel job: %w", err)
	}
	return replyError(reply, "job", sqljobber.ErrJobNotFound, id)
}

// Queue lists the jobs of a queue that have not started, in the order they
// will start (at most maxQueueListing).
func (e *Engine) Queue(ctx context.Context, queue string) ([]*sqljobber.Job, error) {
	if !sqlexec.ValidName(queue) {
		return nil, sqljobber.Invalid("queue", "must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	pending, err := e.ledger.Pending(ctx, queue, maxQueueListing)
	if err != nil {
		return nil, err
	}
	return jobsOf(pending), nil
}

// jobsOf is the jobs of records.
func jobsOf(records []*ledger.Job) []*sqljobber.Job {
	out := make([]*sqljobber.Job, len(records))
	for i, r := range records {
		out[i] = &r.Job
	}
	return out
}

// Tasks lists the registered tasks.
func (e *Engine) Tasks() []*sqlexec.Task { return e.tasks.Tasks() }

// Joined reports whether the node is a member of its cluster and takes
// jobs.
func (e *Engine) Joined() error {
	switch {
	case !e.running.Load():
		return errors.New("not started")
	case e.ctx.Err() != nil, e.draining.Load():
		return sqljobber.ErrStopping
	case len(e.node.Members()) == 0:
		return errors.New("not a member of the cluster")
	}
	return nil
}

// ActiveGrains counts the grains this node hosts.
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
