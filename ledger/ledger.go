package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Defaults for Config.
const (
	TableDefault         = "sqljobber_jobs"
	GoneRetentionDefault = 7 * 24 * time.Hour
	groupsSuffix         = "_groups"
	goneSuffix           = "_gone"
	metaSuffix           = "_meta"
	leasesSuffix         = "_leases"
	capsSuffix           = "_caps"
	// MaxRunningMax is the largest cap on a source database's running
	// jobs.
	MaxRunningMax = 1_000_000
)

// Clock tells the time. The ledger reads it for every time it records or
// compares with (admissions, leases, readiness, expiry), so that tests can
// move it instead of sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config configures the job ledger.
type Config struct {
	// Table is the jobs table; Table + "_groups" holds the groups,
	// Table + "_gone" the IDs of jobs whose record and results were
	// removed (purged or expired), Table + "_leases" the leases of worker
	// names and roles, Table + "_meta" the ledger's identity, and
	// Table + "_caps" a row for each capped source database (see
	// MaxRunning).
	Table string
	// GoneRetention is how long a removed job's ID is remembered as gone
	// (see Ledger.Tombstone).
	GoneRetention time.Duration
	// Clock is the ledger's clock; nil is the system's.
	Clock Clock
	// MaxRunning caps, by source database ([db.<name>] max_running),
	// the jobs that run against it at once across every node that
	// shares the ledger: claims pass over its jobs while it has as many
	// STARTED. A database it does not name is not capped. Every node
	// should have the same caps: each claims by its own.
	MaxRunning map[string]int
}

// WithDefaults returns c with zero values replaced by defaults.
func (c Config) WithDefaults() Config {
	c.Table = cmp.Or(c.Table, TableDefault)
	c.GoneRetention = cmp.Or(c.GoneRetention, GoneRetentionDefault)
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	return c
}

// Validate checks c. Errors name the offending key.
func (c Config) Validate() error {
	if c.GoneRetention < 0 {
		return &sqlexec.KeyError{Key: "gone_retention", Err: errors.New("must not be negative")}
	}
	for _, db := range slices.Sorted(maps.Keys(c.MaxRunning)) {
		if !sqlexec.ValidName(db) {
			return &sqlexec.KeyError{Key: "max_running", Err: fmt.Errorf("invalid database name %q", db)}
		}
		if n := c.MaxRunning[db]; n < 1 || n > MaxRunningMax {
			return &sqlexec.KeyError{Key: "db." + db + ".max_running", Err: fmt.Errorf("must be between 1 and %d, got %d", MaxRunningMax, n)}
		}
	}
	return nil
}

// ErrRunSuperseded means a run tried to record a transition of a job that is
// no longer its own: cancelled, purged, or taken over after its lease
// expired.
var ErrRunSuperseded = errors.New("the run no longer owns the job")

// Job is one job's record: the job as its clients see it, and how the
// ledger runs it.
type Job struct {
	sqljobber.Job

	// RunID names the current or last run.
	RunID string
	// NodeID is the incarnation of the node (Job.Node) that runs or ran
	// it: a node that restarts under its name is another incarnation.
	NodeID string
	// Fence counts the runs ever started under this ID, across
	// admissions: the token that lets a run's results table be published
	// only if no later run's has been.
	Fence int64
	// Held marks a group member waiting for its group's concurrency; it
	// is not claimed until its group releases it.
	Held bool
	// ReadyAt is when the job may start: its ETA, or the end of a retry's
	// backoff.
	ReadyAt time.Time
	// LeaseUntil is when a STARTED job's run is presumed lost unless its
	// node renews the lease.
	LeaseUntil time.Time
	// UpdatedAt changes with every write of the record.
	UpdatedAt time.Time
	// Fingerprint identifies what the job computes, and for whom (see
	// Fingerprint): jobs of equal fingerprints have equal results.
	Fingerprint string
	// Flight identifies, for a job that may take part in a single flight
	// (see flight.go), the jobs it may join or be joined by: its
	// computation with any of its task's results backends. "" for a job
	// that takes no part (it may not reuse results, is in a group, or
	// waits for an ETA).
	Flight string
	// SourceDB is the source database the job runs against: the
	// request's DB, or one of its task's picked when it is admitted. ""
	// for jobs admitted by earlier versions, which pick at each run.
	SourceDB string
	// ReuseOf, on a member handed to AdmitGroup, admits it answered by
	// that job's results, as AdmitReused does. It is not recorded.
	ReuseOf *Job
	// Replaced, on a job that Admit or Start returns, is the finished job
	// of its ID that the admission replaced, as that job was recorded,
	// where the ledger reports it (ReportsReplaced); nil where the ID was
	// free, or the admission was read back after an error. It is not
	// recorded.
	Replaced *Replaced
}

// Replaced is what the ledger held of the job an admission replaced: where
// its results are, if it has a table of its own.
type Replaced struct {
	ResultsBackend, ResultsTable string
	// ReusedFrom is set when the table was another job's (see
	// Job.ReusedFrom): not the replaced job's to drop.
	ReusedFrom string
}

// OwnTableOtherThan reports whether the replaced job had a results table of its own
// that is not backend's table named table: once the admission that
// replaced it is written, nothing refers to it any more.
func (r *Replaced) OwnTableOtherThan(backend, table string) bool {
	return r != nil && r.ReusedFrom == "" && r.ResultsTable != "" && (r.ResultsBackend != backend || r.ResultsTable != table)
}

// Node is a node that runs jobs: its worker name, unique among live nodes,
// and the ID of its incarnation, new at every start.
type Node struct {
	Name string
	ID   string
}

// Group is a group's record.
type Group struct {
	ID string
	// Owner is the API token that submitted the group ("" without tokens).
	Owner       string
	Concurrency int
	JobIDs      []string // in submission order
	Cancelled   bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Tombstone remembers a job whose record and results table were removed.
type Tombstone struct {
	ID     string
	Reason string // sqljobber.GonePurged or sqljobber.GoneExpired
	At     time.Time
	// Owner is the API token that had submitted the job.
	Owner string
}

// Outcome is how a run ended.
type Outcome struct {
	State sqljobber.State // SUCCESS, FAILURE or RETRY
	Count int64
	Error string
	// RetryAt is when a RETRY may run again.
	RetryAt time.Time
	// TTL is how long a finished job's results are kept (the job's TTL);
	// 0 keeps them.
	TTL time.Duration
}

// Ledger is the durable record of every job and group, three tables in a
// database. It is the truth about jobs and also their queue: nodes claim
// ready jobs from it. Everything held in memory elsewhere is a cache of it.
type Ledger struct {
	db *sqlexec.DB
	q  sqlexec.Querier
	// durable and dq write what must survive a crash of the database the
	// moment it is acknowledged (admissions, cancellations, deletions);
	// they are db and q unless db commits asynchronously.
	durable *sqlexec.DB
	dq      sqlexec.Querier
	d       driver
	cfg     Config
	clock   Clock
	table   string // quoted jobs table
	groups  string // quoted groups table
	gone    string // quoted table of removed jobs' IDs
	meta    string // quoted table of the ledger's own facts
	leases  string // quoted table of leases
	caps    string // quoted table of capped source databases
	// identity is the ledger's random ID, read by Migrate.
	identity string

	admitting admissions
	finishing finishes
}

// New returns the ledger kept in cfg.Table's tables of db. durable is db,
// or a pool of the same database whose commits wait for the disk when db's
// do not. Migrate creates the tables.
func New(db, durable *sqlexec.DB, cfg Config) (*Ledger, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if durable == nil {
		durable = db
	}
	d := driverFor(db)
	return &Ledger{db: db, q: db.Querier(), durable: durable, dq: durable.Querier(), d: d, cfg: cfg, clock: cfg.Clock,
		table: d.quote(cfg.Table), groups: d.quote(cfg.Table + groupsSuffix), gone: d.quote(cfg.Table + goneSuffix),
		meta: d.quote(cfg.Table + metaSuffix), leases: d.quote(cfg.Table + leasesSuffix), caps: d.quote(cfg.Table + capsSuffix)}, nil
}

// Identity is the ledger's identity, a random ID written by the first
// Migrate of its tables: nodes that share a ledger share it. "" before
// Migrate.
func (l *Ledger) Identity() string { return l.identity }

// Tables are the names of the ledger's tables.
func (l *Ledger) Tables() []string {
	t := l.cfg.Table
	return []string{t, t + groupsSuffix, t + goneSuffix, t + metaSuffix, t + leasesSuffix, t + capsSuffix}
}

// DB is the database the ledger is kept in.
func (l *Ledger) DB() *sqlexec.DB { return l.db }

// ReportsReplaced reports whether the jobs Admit and Start return say
// which finished job they replaced (Job.Replaced): then nothing needs
// reading before an admission to learn it.
func (l *Ledger) ReportsReplaced() bool {
	_, ok := l.d.(replacedReporter)
	return ok
}

// Close waits for the admissions and finishes being written. Nothing may be
// admitted or finished after it.
func (l *Ledger) Close() {
	l.admitting.q.Wait()
	l.finishing.q.Wait()
}

// now is the clock's time as the ledger stores it: UTC, to the
// microsecond.
func (l *Ledger) now() time.Time { return l.clock.Now().UTC().Truncate(time.Microsecond) }

// Get returns the job recorded under id, or sqljobber.ErrJobNotFound.
func (l *Ledger) Get(ctx context.Context, id string) (*Job, error) {
	return l.get(ctx, l.q, id)
}

func (l *Ledger) get(ctx context.Context, q sqlexec.Querier, id string) (*Job, error) {
	jobs, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id = ?", jobColumns, l.table), id)
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, id)
	}
	return jobs[0], nil
}

// GetMany returns the jobs recorded under ids (those that are), in no
// order.
func (l *Ledger) GetMany(ctx context.Context, ids []string) ([]*Job, error) {
	var out []*Job
	for chunk := range slices.Chunk(ids, cancelChunk) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		jobs, err := l.jobs(ctx, l.q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id IN (%s)", jobColumns, l.table, sqlexec.Placeholders(len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("get jobs: %w", err)
		}
		out = append(out, jobs...)
	}
	return out, nil
}

// Pending returns the unfinished jobs of queue that have not started, in
// the order they will start: ready ones first in, first out, then those
// waiting for their time, then group members held back by their group.
func (l *Ledger) Pending(ctx context.Context, queue string, limit int) ([]*Job, error) {
	return l.pending(ctx, "", limit, queue)
}

// PendingOf is Pending for the jobs of one owner.
func (l *Ledger) PendingOf(ctx context.Context, queue, owner string, limit int) ([]*Job, error) {
	return l.pending(ctx, " AND owner = ?", limit, queue, owner)
}

// pending lists a queue's pending jobs that match cond as well.
func (l *Ledger) pending(ctx context.Context, cond string, limit int, args ...any) ([]*Job, error) {
	jobs, err := l.jobs(ctx, l.q, fmt.Sprintf(`SELECT %s FROM %s WHERE %s%s
	ORDER BY held, ready_at, enqueued_at, job_id LIMIT %d`, jobColumns, l.table, l.d.pending(), cond, limit), args...)
	if err != nil {
		return nil, fmt.Errorf("list pending jobs: %w", err)
	}
	return jobs, nil
}

// Waiting is what waits in one queue.
type Waiting struct {
	// Pending counts the jobs that have not started: ready, waiting for
	// an ETA or a retry, or held by their group.
	Pending int64
	// OldestReady is since when the oldest of them that could start now
	// (its time has come, and no group holds it) has been ready; zero
	// when none could.
	OldestReady time.Time
}

// PendingByQueue says what waits in each queue that has jobs not started,
// in one statement that reads the partial index of waiting jobs (not the
// finished ones).
func (l *Ledger) PendingByQueue(ctx context.Context) (map[string]Waiting, error) {
	out := map[string]Waiting{}
	err := l.q.Query(ctx, l.pendingByQueueSQL(), func(scan func(...any) error) error {
		var (
			q      string
			n      int64
			oldest ledgerTime
		)
		err := scan(&q, &n, &oldest)
		out[q] = Waiting{Pending: n, OldestReady: oldest.t}
		return err
	}, l.timeArg(l.now()))
	if err != nil {
		return nil, fmt.Errorf("count pending jobs: %w", err)
	}
	return out, nil
}

// pendingByQueueSQL counts the waiting jobs by queue (argument: the time
// now).
func (l *Ledger) pendingByQueueSQL() string {
	queue, cond := l.d.waiting()
	return fmt.Sprintf("SELECT %[2]s, COUNT(*), MIN(CASE WHEN held = 0 AND ready_at <= ? THEN ready_at END) FROM %[1]s WHERE %[3]s GROUP BY %[2]s",
		l.table, queue, cond)
}

// LiveRuns returns the run IDs of every STARTED job, on any node.
func (l *Ledger) LiveRuns(ctx context.Context) (map[string]bool, error) {
	live := map[string]bool{}
	err := l.q.Query(ctx, fmt.Sprintf("SELECT run_id FROM %s WHERE state = 'STARTED'", l.table),
		func(scan func(...any) error) error {
			var id string
			err := scan(&id)
			live[id] = true
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("list live runs: %w", err)
	}
	return live, nil
}
