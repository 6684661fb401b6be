package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/internal/retry"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
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
	NodeLeaseDefault        = 10 * time.Second
	maxQueueListing         = 10_000
	// housekeepingBatch bounds the jobs or groups one pass of housekeeping
	// handles of each kind.
	housekeepingBatch      = 100
	groupSweepEveryNthPoll = 30
)

// Config configures an Engine.
type Config struct {
	// NodeName names this node in logs and the ledger (--worker-name).
	// Two live nodes cannot share it: a node holds its name's lease in the
	// ledger while it runs, and refuses to start while another live node
	// holds it. At start a node takes back the runs that earlier runs of
	// its name lost.
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
	// a node that stops renewing (a crash no member saw) loses its runs
	// after it.
	Lease time.Duration
	// NodeLease is how long a node's hold on its name lasts without
	// renewal: how soon a node that died where no member saw it (or one
	// alone) may start again under its name at another address.
	NodeLease time.Duration
	// LostRunsMax is how many runs of one job may be lost with their
	// nodes (crashes, not failures of the job, which count against its
	// retries) before the job fails: a job that takes its node down
	// every time must not go round the cluster for ever.
	LostRunsMax int
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
	c.NodeLease = cmp.Or(c.NodeLease, NodeLeaseDefault)
	c.LostRunsMax = cmp.Or(c.LostRunsMax, ledger.LostRunsMaxDefault)
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
	if c.RetryBackoff < 0 || c.PollInterval < 0 || c.Lease < 0 || c.NodeLease < 0 {
		return errors.New("retry_backoff, poll interval and leases must not be negative")
	}
	if c.LostRunsMax < 1 {
		return errors.New("lost_runs_max: must be at least 1")
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
	// maxRunning are the ledger's caps on source databases (see
	// ledger.Config.MaxRunning), read once.
	maxRunning map[string]int

	// node is set by Start, before running is; self is who it is in the
	// ledger.
	node Node
	self ledger.Node
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

	// sweptTo is the last group the previous group sweep reached, when it
	// stopped at its batch's end; only the housekeeping loop (and Start,
	// before it) reads and writes it.
	sweptTo string

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
		queues: map[string]*queueRef{}, runs: map[string]*run{}, maxRunning: ledger.MaxRunning()}
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
// hosts Kinds. It takes its worker name's lease in the ledger, or fails
// saying which live node holds the name; takes back the runs that earlier
// runs of this node lost (they run again: see
// ledger.Ledger.TakeOverName); lets groups release held members; and
// starts this node's queue actors, which claim ready jobs from the ledger.
func (e *Engine) Start(ctx context.Context, node Node) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return errors.New("actors: engine already started")
	}
	e.started = true
	// Runs outlive the start-up context; Stop ends them.
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.node, e.self = node, ledger.Node{Name: e.cfg.NodeName, ID: node.ID()}
	if err := e.holdName(ctx); err != nil {
		return err
	}
	e.running.Store(true)
	// The name is this node's: the runs of its earlier incarnations are
	// lost.
	recovered, err := e.ledger.TakeOverName(ctx, e.self.Name, e.self.ID, e.cfg.LostRunsMax)
	if err != nil {
		return err
	}
	if len(recovered) > 0 {
		e.logger.Info("runs lost by an earlier run of this node were taken back", slog.Int("jobs", len(recovered)))
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
	e.wg.Add(2)
	go e.renew()
	go e.housekeep()
	return nil
}

// Drain stops taking jobs (submissions fail with sqljobber.ErrStopping and
// the queues claim nothing more) and waits, until ctx ends, for the jobs
// running here to finish. It reports whether they all did; Stop hands back
// the rest.
func (e *Engine) Drain(ctx context.Context) bool {
	e.draining.Store(true)
	err := retry.Do(ctx, retry.Backoff{First: 20 * time.Millisecond}, func(context.Context) (bool, error) {
		return len(e.localRuns()) == 0, nil
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
	// The name is free at once for this node's next run, wherever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), releaseTimeout)
	defer cancel()
	if err := e.ledger.DropLease(ctx, nameLease(e.self.Name), e.self.ID); err != nil {
		e.logger.Warn("let go of the worker name", slog.String("error_code", sqlexec.ErrorCode(err)))
	}
}

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
