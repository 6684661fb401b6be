package resultsink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sql-jobber/sql-jobber/sqlexec"
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

// Active reports whether a job in state is unfinished: it holds its ID.
func Active(state string) bool {
	return state == StatePending || state == StateStarted || state == StateRetry
}

// Defaults for LedgerConfig.
const (
	LedgerTableDefault   = "sqljobber_jobs"
	GoneRetentionDefault = 7 * 24 * time.Hour
	groupsSuffix         = "_groups"
	goneSuffix           = "_gone"
)

// LedgerConfig configures the job ledger.
type LedgerConfig struct {
	// Table is the jobs table; Table + "_groups" holds the groups, and
	// Table + "_gone" the IDs of jobs whose record and results were
	// removed (purged or expired).
	Table string
	// GoneRetention is how long a removed job's ID is remembered as gone
	// (see Ledger.Tombstone).
	GoneRetention time.Duration
}

// WithDefaults returns c with zero values replaced by defaults.
func (c LedgerConfig) WithDefaults() LedgerConfig {
	c.Table = cmp.Or(c.Table, LedgerTableDefault)
	c.GoneRetention = cmp.Or(c.GoneRetention, GoneRetentionDefault)
	return c
}

// Validate checks c. Errors name the offending key.
func (c LedgerConfig) Validate() error {
	if c.GoneRetention < 0 {
		return &sqlexec.KeyError{Key: "gone_retention", Err: errors.New("must not be negative")}
	}
	return nil
}

// Why a job's ID is remembered as gone.
const (
	GonePurged  = "purged"
	GoneExpired = "expired"
)

// Tombstone remembers a job whose record and results table were removed.
type Tombstone struct {
	ID     string
	Reason string // GonePurged or GoneExpired
	At     time.Time
}

// Errors the ledger returns for callers to branch on.
var (
	ErrJobNotFound   = errors.New("job not found")
	ErrGroupNotFound = errors.New("group not found")
	// ErrRunSuperseded means a run tried to record a transition of a job
	// that is no longer its own: cancelled, purged, or taken over after its
	// lease expired.
	ErrRunSuperseded = errors.New("the run no longer owns the job")
)

// ActiveError is returned when an unfinished job holds an ID that an
// operation needs free (admission, purge).
type ActiveError struct{ Job *Job }

func (e *ActiveError) Error() string {
	return fmt.Sprintf("job %s is %s", e.Job.ID, e.Job.State)
}

// FinishedError is returned when an operation needs an unfinished job (a
// cancellation) and the job has finished.
type FinishedError struct{ Job *Job }

func (e *FinishedError) Error() string {
	return fmt.Sprintf("job %s has finished (%s)", e.Job.ID, e.Job.State)
}

// Job is one job's record in the ledger.
type Job struct {
	ID      string
	Task    string
	Queue   string
	State   string
	Args    json.RawMessage // a JSON array
	DB      string          // the database the request asked for; "" for any
	GroupID string
	Retries int
	TTL     time.Duration
	ETA     time.Time // zero: none

	ResultsBackend string // chosen when the job is admitted
	ResultsTable   string
	Count          int64
	Error          string
	Attempt        int    // runs started so far
	RunID          string // the current or last run
	Node           string // the node that runs or ran it
	// Fence counts the runs ever started under this ID, across
	// admissions: the token that lets a run's results table be published
	// only if no later run's has been.
	Fence int64

	// Held marks a group member waiting for its group's concurrency; it
	// is not claimed until its group releases it.
	Held bool
	// EnqueuedAt is when the job (re)entered its queue; ReadyAt when it
	// may start (its ETA, or the end of a retry's backoff).
	EnqueuedAt time.Time
	ReadyAt    time.Time
	// LeaseUntil is when a STARTED job's run is presumed lost unless its
	// node renews the lease.
	LeaseUntil time.Time
	// ExpiresAt is when a finished job's results table and record are
	// removed; zero: kept.
	ExpiresAt time.Time

	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	UpdatedAt  time.Time
}

// Group is a group of jobs submitted together.
type Group struct {
	ID          string
	Concurrency int
	JobIDs      []string // in submission order
	Cancelled   bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Ledger is the durable record of every job and group, two tables in a
// results database. It is the truth about jobs and also their queue: nodes
// claim ready jobs from it. Everything held in memory is a cache of it.
type Ledger struct {
	db *sqlexec.DB
	q  querier
	// durable and dq write what must survive a crash of the database the
	// moment it is acknowledged (admissions, cancellations, deletions);
	// they are db and q unless the backend commits asynchronously.
	durable *sqlexec.DB
	dq      querier
	cfg     LedgerConfig
	table   string // quoted jobs table
	groups  string // quoted groups table
	gone    string // quoted table of removed jobs' IDs

	admitting admissions
}

// NewLedger returns the ledger kept in cfg.Table's tables on backend.
func NewLedger(backend *Backend, cfg LedgerConfig) (*Ledger, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := backend.d.quote
	return &Ledger{db: backend.db, q: poolQuerier(backend.db), durable: backend.durable, dq: poolQuerier(backend.durable),
		cfg: cfg, table: q(cfg.Table), groups: q(cfg.Table + groupsSuffix), gone: q(cfg.Table + goneSuffix)}, nil
}

// Tables are the names of the ledger's tables.
func (l *Ledger) Tables() []string {
	return []string{l.cfg.Table, l.cfg.Table + groupsSuffix, l.cfg.Table + goneSuffix}
}

// Migrate creates the ledger's tables if they do not exist.
func (l *Ledger) Migrate(ctx context.Context) error {
	if l.db.Dialect == sqlexec.Postgres {
		// Nodes that start together would otherwise race to create the
		// same tables, and their concurrent index builds would
		// deadlock, each waiting for the others' snapshots.
		unlock, err := l.pgMigrationLock(ctx)
		if err != nil {
			return fmt.Errorf("migrate ledger table %s: %w", l.cfg.Table, err)
		}
		defer unlock()
	}
	return l.migrate(ctx)
}

// pgMigrationLock takes the session advisory lock that makes one node at a
// time migrate this ledger, on a connection of its own: outside the pool,
// which may be as small as the one connection the migration needs. It
// polls pg_try_advisory_lock rather than wait in pg_advisory_lock, whose
// open statement would hold a snapshot that the holder's CREATE INDEX
// CONCURRENTLY then waits for.
func (l *Ledger) pgMigrationLock(ctx context.Context) (func(), error) {
	conn, err := pgx.ConnectConfig(ctx, l.db.Postgres().Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	closeConn := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// The session's end releases its lock.
		_ = conn.Close(ctx)
	}
	key := int64(fnv64("sqljobber migrate " + l.cfg.Table))
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			closeConn()
			return nil, err
		}
		if ok {
			return closeConn, nil
		}
		select {
		case <-ctx.Done():
			closeConn()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Ledger) migrate(ctx context.Context) error {
	var text, short, ts, key, bigint string
	switch l.db.Dialect {
	case sqlexec.Postgres:
		text, short, ts, key, bigint = "TEXT", "TEXT", "TIMESTAMPTZ", "TEXT", "BIGINT"
	case sqlexec.MySQL:
		// Job IDs are ASCII and case-sensitive.
		text, short, ts, key, bigint = "LONGTEXT", "VARCHAR(255)", "DATETIME(6)", "VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin", "BIGINT"
	default:
		text, short, ts, key, bigint = "TEXT", "TEXT", "TEXT", "TEXT", "INTEGER"
	}
	suffix := ""
	if l.db.Dialect == sqlexec.MySQL {
		// Whatever the database's default: error texts and arguments
		// are any Unicode.
		suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	}
	r := strings.NewReplacer("{text}", text, "{short}", short, "{ts}", ts, "{key}", key, "{bigint}", bigint, "{suffix}", suffix)
	stmts := []string{
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	job_id {key} NOT NULL PRIMARY KEY,
	task {short} NOT NULL,
	queue {short} NOT NULL,
	state {short} NOT NULL,
	args {text} NOT NULL,
	db {short} NOT NULL,
	group_id {key} NOT NULL,
	retries INTEGER NOT NULL,
	ttl_seconds {bigint} NOT NULL,
	eta {ts} NULL,
	results_backend {short} NOT NULL,
	results_table {short} NOT NULL,
	count {bigint} NOT NULL,
	error {text} NOT NULL,
	attempt INTEGER NOT NULL,
	run_id {short} NOT NULL,
	node {short} NOT NULL,
	fence {bigint} NOT NULL,
	held INTEGER NOT NULL,
	enqueued_at {ts} NOT NULL,
	ready_at {ts} NOT NULL,
	lease_until {ts} NULL,
	expires_at {ts} NULL,
	created_at {ts} NOT NULL,
	started_at {ts} NULL,
	finished_at {ts} NULL,
	updated_at {ts} NOT NULL
){suffix}`), l.table),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	group_id {key} NOT NULL PRIMARY KEY,
	concurrency INTEGER NOT NULL,
	job_ids {text} NOT NULL,
	cancelled INTEGER NOT NULL,
	created_at {ts} NOT NULL,
	updated_at {ts} NOT NULL
){suffix}`), l.groups),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	job_id {key} NOT NULL PRIMARY KEY,
	reason {short} NOT NULL,
	gone_at {ts} NOT NULL
){suffix}`), l.gone),
	}
	// A table of this name from another layout (an older sql-jobber, or
	// someone else's) must not be written to blindly.
	check := func() error {
		for _, t := range []struct{ table, cols string }{
			{l.table, jobColumns},
			{l.groups, "group_id, concurrency, job_ids, cancelled, created_at, updated_at"},
			{l.gone, "job_id, reason, gone_at"},
		} {
			if _, err := l.q.exec(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE 1 = 0", t.cols, t.table)); err != nil {
				return fmt.Errorf("ledger table %s exists without the columns this version needs (%w); rename or drop it", t.table, err)
			}
		}
		return nil
	}
	q := dialectFor(l.db.Dialect).quote
	indexes, replaced := l.indexes()
	if l.db.Dialect != sqlexec.Postgres {
		// On PostgreSQL, pgIndexes builds them without stopping a
		// ledger in use.
		for _, r := range replaced {
			stmts = append(stmts, "DROP INDEX IF EXISTS "+q(r))
		}
		for _, idx := range indexes {
			stmts = append(stmts, fmt.Sprintf("CREATE INDEX %s %s ON %s (%s)%s", l.ifNotExists(), q(idx.name), idx.table, idx.cols, idx.where))
		}
	}
	for _, s := range stmts {
		if _, err := l.q.exec(ctx, s); err != nil {
			// MySQL has no CREATE INDEX IF NOT EXISTS; an existing index
			// is the one error to pass over.
			if l.db.Dialect == sqlexec.MySQL && strings.Contains(err.Error(), "Duplicate key name") {
				continue
			}
			if cerr := check(); cerr != nil {
				return cerr
			}
			return fmt.Errorf("create ledger table %s: %w", l.cfg.Table, err)
		}
	}
	if err := check(); err != nil {
		return err
	}
	if l.db.Dialect == sqlexec.Postgres {
		if err := l.pgIndexes(ctx); err != nil {
			return fmt.Errorf("index ledger table %s: %w", l.cfg.Table, err)
		}
	}
	return nil
}

// ledgerIndex is an index of the ledger's tables.
type ledgerIndex struct{ name, table, cols, where string }

// indexes are the ledger's indexes, and the names of those they replace.
//
// Where the dialect has partial indexes, each holds only the rows that its
// queries look for, and repeats their condition word for word so that the
// planners see it applies:
//   - _pending: waiting jobs, in the order they start. A claim reads as many
//     entries as it takes jobs, however many finished jobs the ledger keeps.
//   - _grouped: jobs of a group (most jobs have none).
//   - _expiring: finished jobs with an expiry.
//
// A job's record is written three times (admitted, claimed, finished), and
// each write of a row adds an entry to every index it belongs in; the
// indexes these replace (_ready, _group, _expiry; sql-jobber before
// 2026-11-26) held every row, and claims scanned _ready whole.
func (l *Ledger) indexes() ([]ledgerIndex, []string) {
	t := l.cfg.Table
	gone := ledgerIndex{t + "_gone_at", l.gone, "gone_at", ""}
	if l.db.Dialect == sqlexec.MySQL {
		// No partial indexes: a claim reads the queue's waiting jobs
		// (two ranges of state), then sorts them.
		return []ledgerIndex{
			{t + "_ready", l.table, "queue, state, held, ready_at", ""},
			{t + "_group", l.table, "group_id", ""},
			{t + "_expiry", l.table, "expires_at", ""},
			gone,
		}, nil
	}
	return []ledgerIndex{
		{t + "_pending", l.table, "queue, held, ready_at, enqueued_at, job_id", " WHERE " + pendingCond},
		{t + "_grouped", l.table, "group_id", " WHERE " + groupedCond},
		{t + "_expiring", l.table, "expires_at", " WHERE " + expiringCond},
		gone,
	}, []string{t + "_ready", t + "_group", t + "_expiry"}
}

// The conditions of the partial indexes, which the queries that should use
// them repeat.
const (
	pendingCond  = "state IN ('PENDING', 'RETRY')"
	groupedCond  = "group_id <> ''"
	expiringCond = "expires_at IS NOT NULL"
)

// pgIndexes creates the ledger's indexes and drops those they replace on
// PostgreSQL. On a ledger in use, either done plainly would hold every
// claim and admission for as long as it takes (a build reads the whole
// table), so both are done CONCURRENTLY there; a concurrent build that was
// interrupted leaves an invalid index, which is built again.
func (l *Ledger) pgIndexes(ctx context.Context) error {
	// mode is how to build or drop an index of table: CONCURRENTLY, not
	// to block its writers, if it has rows.
	modes := map[string]string{}
	mode := func(table string) (string, error) {
		if m, ok := modes[table]; ok {
			return m, nil
		}
		var used bool
		err := l.q.query(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s)", table), func(scan func(...any) error) error {
			return scan(&used)
		})
		if err != nil {
			return "", err
		}
		modes[table] = ""
		if used {
			modes[table] = "CONCURRENTLY "
		}
		return modes[table], nil
	}
	q := postgresDialect{}.quote
	indexes, replaced := l.indexes()
	for _, idx := range indexes {
		concurrently, err := mode(idx.table)
		if err != nil {
			return err
		}
		var valid []bool
		err = l.q.query(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relname = ? AND c.relnamespace = current_schema()::regnamespace`, func(scan func(...any) error) error {
			var v bool
			err := scan(&v)
			valid = append(valid, v)
			return err
		}, idx.name)
		if err != nil {
			return err
		}
		if len(valid) == 1 && valid[0] {
			continue
		}
		if len(valid) == 1 {
			if _, err := l.q.exec(ctx, "DROP INDEX "+concurrently+"IF EXISTS "+q(idx.name)); err != nil {
				return err
			}
		}
		if _, err := l.q.exec(ctx, fmt.Sprintf("CREATE INDEX %sIF NOT EXISTS %s ON %s (%s)%s", concurrently, q(idx.name), idx.table, idx.cols, idx.where)); err != nil {
			return err
		}
	}
	jobs, err := mode(l.table)
	if err != nil {
		return err
	}
	for _, r := range replaced {
		if _, err := l.q.exec(ctx, "DROP INDEX "+jobs+"IF EXISTS "+q(r)); err != nil {
			return err
		}
	}
	return nil
}

func (l *Ledger) ifNotExists() string {
	if l.db.Dialect == sqlexec.MySQL {
		return ""
	}
	return "IF NOT EXISTS"
}

const jobColumns = `job_id, task, queue, state, args, db, group_id, retries, ttl_seconds, eta,
	results_backend, results_table, count, error, attempt, run_id, node, fence, held,
	enqueued_at, ready_at, lease_until, expires_at, created_at, started_at, finished_at, updated_at`

var jobColumnList = strings.Fields(strings.ReplaceAll(jobColumns, ",", " "))

const activeStates = `('PENDING', 'STARTED', 'RETRY')`

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Admit records a new PENDING job under j.ID, replacing a finished job of
// that ID. If an unfinished job holds the ID it returns *ActiveError and
// changes nothing. This conditional write is what makes "one active job per
// ID" hold across nodes and restarts.
//
// On PostgreSQL, admissions that arrive while others are being written go
// into the database together (see admissions).
func (l *Ledger) Admit(ctx context.Context, j Job) (*Job, error) {
	return l.write(ctx, admission(j))
}

// write writes admission j: on PostgreSQL together with the admissions
// that arrive while others are being written (see admissions), elsewhere
// alone.
func (l *Ledger) write(ctx context.Context, j Job) (*Job, error) {
	if l.db.Dialect == sqlexec.Postgres {
		return l.admitting.admit(ctx, l, j)
	}
	return l.admit(ctx, l.dq, j)
}

// admission is j as a new admission records it.
func admission(j Job) Job {
	t := now()
	j.State, j.CreatedAt, j.UpdatedAt, j.EnqueuedAt = StatePending, t, t, t
	j.ReadyAt = t
	if j.ETA.After(t) {
		j.ReadyAt = j.ETA.UTC().Truncate(time.Microsecond)
	}
	j.Count, j.Error, j.Attempt, j.RunID, j.Node, j.Fence = 0, "", 0, "", "", 0
	j.LeaseUntil, j.ExpiresAt, j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(j.Args) == 0 {
		j.Args = json.RawMessage("[]")
	}
	return j
}

// Start records a new job as Admit does, but already STARTED by a run on
// node with a fresh run ID and a lease: the admission and the claim in one
// write, for a job that starts the moment it is admitted because its queue
// has a free slot here and no job waits ahead of it. The job returned
// carries the run's fence token.
//
// A started admission written with its answer lost would hold its ID with
// nobody running it until its lease ran out, so it is not left to the
// caller's context: it is written within admitTimeout whatever that does,
// and after an error the ledger is asked whether it was written after all.
func (l *Ledger) Start(ctx context.Context, j Job, node string, lease time.Duration) (*Job, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), admitTimeout)
	defer cancel()
	j = admission(j)
	j.State, j.RunID, j.Node, j.Attempt = StateStarted, NewRunID(), node, 1
	j.StartedAt, j.LeaseUntil = j.CreatedAt, j.CreatedAt.Add(lease)
	// Added to the fence the ID has had (see admitSQL).
	j.Fence = 1
	started, err := l.write(wctx, j)
	var active *ActiveError
	if err != nil && !errors.As(err, &active) {
		// On a context of its own: wctx may be what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readBackTimeout)
		defer cancel()
		if cur, gerr := l.Get(rctx, j.ID); gerr == nil && cur.RunID == j.RunID && cur.State == StateStarted && cur.LeaseUntil.After(time.Now()) {
			return cur, nil
		}
	}
	return started, err
}

// readBackTimeout bounds Start's look at the ledger after an error.
const readBackTimeout = 10 * time.Second

// startsAt makes a started admission's run start at t, the time it is
// written, so that its lease runs from then rather than from when it was
// made (it may have waited for a batch). Other admissions are left as
// they are.
func startsAt(j *Job, t time.Time) {
	if j.State == StateStarted {
		j.LeaseUntil = t.Add(j.LeaseUntil.Sub(j.StartedAt))
		j.StartedAt = t
	}
}

// admitSQL inserts n admissions; a row whose ID an unfinished job holds is
// left as it is (on PostgreSQL and SQLite, the statement returns the IDs it
// wrote, with their fence tokens). An admission's fence is added to the one
// the ID already has, which outlives admissions and only ever grows: 0 for
// a job that waits to be claimed, 1 for one that starts at once (Start).
func (l *Ledger) admitSQL(n int) string {
	values := strings.TrimSuffix(strings.Repeat("("+placeholders(len(jobColumnList))+"), ", n), ", ")
	var set []string
	if l.db.Dialect == sqlexec.MySQL {
		// Every column keeps its old value while the old job is active;
		// state goes last so that the others still see the old state.
		for _, c := range jobColumnList[1:] {
			if c != "state" && c != "fence" {
				set = append(set, fmt.Sprintf("%s = IF(state IN %s, %s, VALUES(%s))", c, activeStates, c, c))
			}
		}
		set = append(set, fmt.Sprintf("fence = IF(state IN %s, fence, fence + VALUES(fence))", activeStates))
		set = append(set, fmt.Sprintf("state = IF(state IN %s, state, VALUES(state))", activeStates))
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON DUPLICATE KEY UPDATE %s",
			l.table, jobColumns, values, strings.Join(set, ", "))
	}
	for _, c := range jobColumnList[1:] {
		if c != "fence" {
			set = append(set, fmt.Sprintf("%s = excluded.%s", c, c))
		}
	}
	set = append(set, "fence = j.fence + excluded.fence")
	return fmt.Sprintf("INSERT INTO %s AS j (%s) VALUES %s ON CONFLICT (job_id) DO UPDATE SET %s WHERE j.state NOT IN %s RETURNING job_id, fence",
		l.table, jobColumns, values, strings.Join(set, ", "), activeStates)
}

// admit records j, made by admission, alone.
func (l *Ledger) admit(ctx context.Context, q querier, j Job) (*Job, error) {
	stmt := l.admitSQL(1)
	startsAt(&j, now())
	for try := 0; ; try++ {
		var n int64
		var err error
		if l.db.Dialect == sqlexec.MySQL {
			n, err = q.exec(ctx, stmt, l.jobArgs(&j)...)
			if err == nil && n == 2 && j.RunID != "" {
				// It replaced a finished job (1 is a new row, whose fence
				// is the run's own): the fence the ID had, plus the run's.
				found := false
				err = q.query(ctx, fmt.Sprintf("SELECT fence FROM %s WHERE job_id = ? AND run_id = ?", l.table),
					func(scan func(...any) error) error { found = true; return scan(&j.Fence) }, j.ID, j.RunID)
				if err == nil && !found {
					err = fmt.Errorf("job %s: its run %s is not in the ledger it was just written to", j.ID, j.RunID)
				}
			}
		} else {
			err = q.query(ctx, stmt, func(scan func(...any) error) error {
				n++
				var id string
				return scan(&id, &j.Fence)
			}, l.jobArgs(&j)...)
		}
		if err != nil {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		if n > 0 {
			return &j, nil
		}
		cur, err := l.get(ctx, q, j.ID)
		if err != nil && !errors.Is(err, ErrJobNotFound) {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		if err == nil && Active(cur.State) || try > 0 {
			if cur == nil {
				return nil, fmt.Errorf("admit job %s: refused, yet no record holds the ID", j.ID)
			}
			return nil, &ActiveError{Job: cur}
		}
		// The holder finished (or was purged) in between: try again.
	}
}

// AdmitGroup records a group and all its jobs, or nothing: if an unfinished
// job holds any of the IDs, or an unfinished member of an earlier group of
// this ID remains, it returns *ActiveError.
func (l *Ledger) AdmitGroup(ctx context.Context, g Group, jobs []Job) ([]*Job, error) {
	t := now()
	g.CreatedAt, g.UpdatedAt, g.Cancelled = t, t, false
	ids, err := json.Marshal(g.JobIDs)
	if err != nil {
		return nil, err
	}
	var admitted []*Job
	err = inTx(ctx, l.durable, func(q querier) error {
		active, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond+" AND state IN %s ORDER BY job_id",
			jobColumns, l.table, activeStates), g.ID)
		if err != nil {
			return err
		}
		if len(active) > 0 {
			return &ActiveError{Job: active[0]}
		}
		// A finished group of this ID is replaced: its jobs leave it, and
		// those the new group lists join again as they are admitted, so
		// that the group's status, its jobs' group_id and its purge mean
		// the same jobs. (The check above is a plain read: submissions of
		// one group ID are serialised by its grain.)
		if _, err := q.exec(ctx, fmt.Sprintf("UPDATE %s SET group_id = '', updated_at = ? WHERE group_id = ? AND "+groupedCond, l.table),
			l.timeArg(t), g.ID); err != nil {
			return fmt.Errorf("replace group %s: %w", g.ID, err)
		}
		var upsert string
		if l.db.Dialect == sqlexec.MySQL {
			upsert = fmt.Sprintf(`INSERT INTO %s (group_id, concurrency, job_ids, cancelled, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)
	ON DUPLICATE KEY UPDATE concurrency = VALUES(concurrency), job_ids = VALUES(job_ids), cancelled = 0,
	created_at = VALUES(created_at), updated_at = VALUES(updated_at)`, l.groups)
		} else {
			upsert = fmt.Sprintf(`INSERT INTO %s (group_id, concurrency, job_ids, cancelled, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)
	ON CONFLICT (group_id) DO UPDATE SET concurrency = excluded.concurrency, job_ids = excluded.job_ids, cancelled = 0,
	created_at = excluded.created_at, updated_at = excluded.updated_at`, l.groups)
		}
		if _, err := q.exec(ctx, upsert, g.ID, g.Concurrency, string(ids), l.timeArg(t), l.timeArg(t)); err != nil {
			return err
		}
		for _, j := range jobs {
			a, err := l.admit(ctx, q, admission(j))
			if err != nil {
				return err
			}
			admitted = append(admitted, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return admitted, nil
}

// Claim takes up to n of the next ready jobs of queue for new runs on node:
// the oldest PENDING or RETRY jobs whose time has come and that no group
// holds back, first in, first out. Each gets a fresh run ID. It returns none
// when none is ready. Concurrent claims from any number of nodes never take
// the same job.
func (l *Ledger) Claim(ctx context.Context, queue, node string, n int, lease time.Duration) ([]*Job, error) {
	if n < 1 {
		return nil, nil
	}
	t := now()
	pick := l.pickSQL(n)
	// A run ID per row, made by the database: random, 16 hex digits.
	var runID string
	switch l.db.Dialect {
	case sqlexec.Postgres:
		runID = "substr(md5(random()::text || clock_timestamp()::text || job_id), 1, 16)"
	case sqlexec.MySQL:
		runID = "SUBSTR(MD5(CONCAT(RAND(), UUID(), job_id)), 1, 16)"
	default:
		runID = "lower(hex(randomblob(8)))"
	}
	set := fmt.Sprintf(`UPDATE %s SET state = 'STARTED', run_id = %s, node = ?, attempt = attempt + 1, fence = fence + 1, started_at = ?,
	finished_at = NULL, lease_until = ?, updated_at = ?`, l.table, runID)
	args := []any{node, l.timeArg(t), l.timeArg(t.Add(lease)), l.timeArg(t)}
	pickArgs := []any{queue, l.timeArg(t)}

	var claimed []*Job
	var err error
	switch l.db.Dialect {
	case sqlexec.MySQL:
		err = inTx(ctx, l.db, func(q querier) error {
			var ids []any
			if err := q.query(ctx, pick+" FOR UPDATE SKIP LOCKED", func(scan func(...any) error) error {
				var id string
				err := scan(&id)
				ids = append(ids, id)
				return err
			}, pickArgs...); err != nil || len(ids) == 0 {
				return err
			}
			in := placeholders(len(ids))
			if _, err := q.exec(ctx, fmt.Sprintf("%s WHERE job_id IN (%s)", set, in), append(args, ids...)...); err != nil {
				return err
			}
			claimed, err = l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id IN (%s)", jobColumns, l.table, in), ids...)
			return err
		})
	case sqlexec.Postgres:
		claimed, err = l.jobs(ctx, l.q, fmt.Sprintf("%s WHERE job_id IN (%s FOR UPDATE SKIP LOCKED) AND state IN ('PENDING', 'RETRY') RETURNING %s",
			set, pick, jobColumns), append(args, pickArgs...)...)
	default:
		// SQLite has one writer at a time: the statement is the lock.
		claimed, err = l.jobs(ctx, l.q, fmt.Sprintf("%s WHERE job_id IN (%s) AND state IN ('PENDING', 'RETRY') RETURNING %s",
			set, pick, jobColumns), append(args, pickArgs...)...)
	}
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	// The order they start in: the queue's.
	slices.SortFunc(claimed, func(a, b *Job) int {
		if c := a.ReadyAt.Compare(b.ReadyAt); c != 0 {
			return c
		}
		if c := a.EnqueuedAt.Compare(b.EnqueuedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return claimed, nil
}

// pickSQL selects the IDs of the next n ready jobs of a queue (arguments:
// the queue and the time now). Its filter repeats the _pending index's
// predicate word for word, so that the planners see it applies.
func (l *Ledger) pickSQL(n int) string {
	return fmt.Sprintf(`SELECT job_id FROM %s WHERE queue = ? AND `+pendingCond+` AND held = 0 AND ready_at <= ?
	ORDER BY ready_at, enqueued_at, job_id LIMIT %d`, l.table, n)
}

// NextReady returns when the earliest waiting job of queue becomes ready,
// if any waits.
func (l *Ledger) NextReady(ctx context.Context, queue string) (time.Time, bool, error) {
	var t ledgerTime
	err := l.q.query(ctx, fmt.Sprintf(`SELECT MIN(ready_at) FROM %s WHERE queue = ? AND state IN ('PENDING', 'RETRY') AND held = 0`, l.table),
		func(scan func(...any) error) error { return scan(&t) }, queue)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next ready job: %w", err)
	}
	return t.t, !t.t.IsZero(), nil
}

// Renew extends the leases of runs that are still STARTED and returns the
// IDs of those it renewed; a run missing from the answer has lost its job.
func (l *Ledger) Renew(ctx context.Context, runIDs []string, lease time.Duration) (map[string]bool, error) {
	alive := map[string]bool{}
	if len(runIDs) == 0 {
		return alive, nil
	}
	args := []any{l.timeArg(now().Add(lease))}
	for _, id := range runIDs {
		args = append(args, id)
	}
	in := placeholders(len(runIDs))
	if _, err := l.q.exec(ctx, fmt.Sprintf("UPDATE %s SET lease_until = ? WHERE state = 'STARTED' AND run_id IN (%s)", l.table, in), args...); err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	err := l.q.query(ctx, fmt.Sprintf("SELECT run_id FROM %s WHERE state = 'STARTED' AND run_id IN (%s)", l.table, in),
		func(scan func(...any) error) error {
			var id string
			if err := scan(&id); err != nil {
				return err
			}
			alive[id] = true
			return nil
		}, args[1:]...)
	if err != nil {
		return nil, fmt.Errorf("renew leases: %w", err)
	}
	return alive, nil
}

// Fence is the fence of run runID of job id, whose fence token is token
// (its Job.Fence when claimed): it publishes only while the run owns the job.
func (l *Ledger) Fence(j *Job) Fence {
	return Fence{Token: j.Fence, ledger: l, job: j.ID, runID: j.RunID, ttl: j.TTL}
}

// success is the statement that records a run's SUCCESS with count rows,
// at t, inside its publication's transaction (the ledger being in the
// results database): it changes one row only if the run still owns its job.
func (l *Ledger) success(f Fence, count int64, t time.Time) (string, []any) {
	return fmt.Sprintf(`UPDATE %s SET state = 'SUCCESS', count = ?, error = '', lease_until = NULL, finished_at = ?, updated_at = ?,
	expires_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED' AND lease_until > ?`, l.table),
		[]any{count, l.timeArg(t), l.timeArg(t), l.expiry(t, f.ttl), f.job, f.runID, l.timeArg(t)}
}

// owns checks that run runID still owns job id: the job is STARTED by that
// run and its lease has not run out. A publication checks it first, in the
// publication's transaction where the ledger shares its database (MySQL,
// SQLite); a run that loses its job after the check is kept from replacing
// a later run's table by the fence token.
func (l *Ledger) owns(ctx context.Context, q querier, id, runID string) error {
	j, err := l.get(ctx, q, id)
	if err != nil {
		return err
	}
	switch {
	case j.State != StateStarted || j.RunID != runID:
		return ErrRunSuperseded
	case !j.LeaseUntil.After(time.Now()):
		return fmt.Errorf("%w: its lease ran out", ErrRunSuperseded)
	}
	return nil
}

// Outcome is how a run ended.
type Outcome struct {
	State string // SUCCESS, FAILURE or RETRY
	Count int64
	Error string
	// RetryAt is when a RETRY may run again.
	RetryAt time.Time
	// TTL is how long a finished job's results are kept (the job's
	// TTL); 0 keeps them.
	TTL time.Duration
}

// expiry is when results kept for ttl after t expire; nil for never.
func (l *Ledger) expiry(t time.Time, ttl time.Duration) any {
	if ttl <= 0 {
		return nil
	}
	return l.timeArg(t.Add(ttl))
}

// Finish records the outcome of run runID. It returns ErrRunSuperseded if
// the job is no longer this run's (cancelled, purged, or taken over).
func (l *Ledger) Finish(ctx context.Context, id, runID string, o Outcome) error {
	t := now()
	var stmt string
	var args []any
	if o.State == StateRetry {
		stmt = fmt.Sprintf(`UPDATE %s SET state = 'RETRY', count = 0, error = ?, lease_until = NULL, enqueued_at = ?, ready_at = ?,
	updated_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table)
		args = []any{o.Error, l.timeArg(t), l.timeArg(maxTime(o.RetryAt, t)), l.timeArg(t), id, runID}
	} else {
		stmt = fmt.Sprintf(`UPDATE %s SET state = ?, count = ?, error = ?, lease_until = NULL, finished_at = ?, updated_at = ?,
	expires_at = ? WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table)
		args = []any{o.State, o.Count, o.Error, l.timeArg(t), l.timeArg(t), l.expiry(t, o.TTL), id, runID}
	}
	n, err := l.q.exec(ctx, stmt, args...)
	if err != nil {
		return fmt.Errorf("finish job: %w", err)
	}
	if n == 0 {
		return ErrRunSuperseded
	}
	return nil
}

// Release hands back a run's job without counting the attempt, e.g. when
// its node shuts down: the job is ready again at once, for any node.
func (l *Ledger) Release(ctx context.Context, id, runID string) error {
	t := now()
	n, err := l.q.exec(ctx, fmt.Sprintf(`UPDATE %s SET state = CASE WHEN attempt > 1 THEN 'RETRY' ELSE 'PENDING' END,
	attempt = attempt - 1, lease_until = NULL, started_at = NULL, ready_at = ?, updated_at = ?
	WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.table), l.timeArg(t), l.timeArg(t), id, runID)
	if err != nil {
		return fmt.Errorf("release job: %w", err)
	}
	if n == 0 {
		return ErrRunSuperseded
	}
	return nil
}

// RecoverLost finds STARTED jobs whose run is lost: their lease has expired,
// or they ran on node, which has just started and so runs nothing yet. Each
// runs again if it has retries left or the lost run was its first (a crash
// is not the job's fault, but a job that takes its node down every time must
// not loop); otherwise it fails. It returns the jobs it recovered, with
// State their new state: RETRY (ready again) or FAILURE.
func (l *Ledger) RecoverLost(ctx context.Context, node string) ([]*Job, error) {
	t := now()
	lost, err := l.jobs(ctx, l.q, fmt.Sprintf("SELECT %s FROM %s WHERE state = 'STARTED' AND (node = ? OR lease_until < ?) ORDER BY job_id",
		jobColumns, l.table), node, l.timeArg(t))
	if err != nil {
		return nil, fmt.Errorf("find lost runs: %w", err)
	}
	var recovered []*Job
	for _, j := range lost {
		o := Outcome{State: StateFailure, Error: fmt.Sprintf("run %s was lost with node %q", j.RunID, j.Node), TTL: j.TTL}
		if j.Attempt <= j.Retries || j.Attempt == 1 {
			o.State, o.RetryAt = StateRetry, t
		}
		err = l.Finish(ctx, j.ID, j.RunID, o)
		switch {
		case err == nil:
			j.State = o.State
			recovered = append(recovered, j)
		case !errors.Is(err, ErrRunSuperseded):
			return recovered, err
		}
	}
	return recovered, nil
}

// Cancel cancels an unfinished job and returns it as it was before, so the
// caller can stop its run. A finished job gives *FinishedError.
func (l *Ledger) Cancel(ctx context.Context, id string) (*Job, error) {
	for {
		j, err := l.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if !Active(j.State) {
			return nil, &FinishedError{Job: j}
		}
		t := now()
		n, err := l.dq.exec(ctx, fmt.Sprintf(`UPDATE %s SET state = 'CANCELLED', error = 'cancelled', held = 0, lease_until = NULL,
	finished_at = ?, updated_at = ?, expires_at = ? WHERE job_id = ? AND state = ? AND run_id = ?`, l.table),
			l.timeArg(t), l.timeArg(t), l.expiry(t, j.TTL), id, j.State, j.RunID)
		if err != nil {
			return nil, fmt.Errorf("cancel job: %w", err)
		}
		if n > 0 {
			return j, nil
		}
		// It changed state meanwhile (e.g. it started): look again.
	}
}

// Delete removes a finished job's record and returns it, so the caller can
// drop its results table. An unfinished job gives *ActiveError.
func (l *Ledger) Delete(ctx context.Context, id string) (*Job, error) {
	j, err := l.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if Active(j.State) {
		return nil, &ActiveError{Job: j}
	}
	ok, err := l.DeleteIfUnchanged(ctx, j)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &ActiveError{Job: j}
	}
	return j, nil
}

// DeleteIfUnchanged removes j's record if nobody has written it since j was
// read, and remembers its ID as gone (see Tombstone).
func (l *Ledger) DeleteIfUnchanged(ctx context.Context, j *Job) (bool, error) {
	deleted := false
	err := inTx(ctx, l.durable, func(q querier) error {
		n, err := q.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE job_id = ? AND updated_at = ?", l.table), j.ID, l.timeArg(j.UpdatedAt))
		if err != nil || n == 0 {
			return err
		}
		deleted = true
		return l.bury(ctx, q, []*Job{j})
	})
	if err != nil {
		return false, fmt.Errorf("delete job: %w", err)
	}
	return deleted, nil
}

// bury remembers removed jobs' IDs as gone: expired if the job's results
// had outlived their TTL, else purged. It forgets those gone for longer than
// the retention.
func (l *Ledger) bury(ctx context.Context, q querier, jobs []*Job) error {
	t := now()
	upsert := fmt.Sprintf(`INSERT INTO %s (job_id, reason, gone_at) VALUES (?, ?, ?)
	ON CONFLICT (job_id) DO UPDATE SET reason = excluded.reason, gone_at = excluded.gone_at`, l.gone)
	if l.db.Dialect == sqlexec.MySQL {
		upsert = fmt.Sprintf(`INSERT INTO %s (job_id, reason, gone_at) VALUES (?, ?, ?)
	ON DUPLICATE KEY UPDATE reason = VALUES(reason), gone_at = VALUES(gone_at)`, l.gone)
	}
	for _, j := range jobs {
		reason := GonePurged
		if !j.ExpiresAt.IsZero() && !j.ExpiresAt.After(t) {
			reason = GoneExpired
		}
		if _, err := q.exec(ctx, upsert, j.ID, reason, l.timeArg(t)); err != nil {
			return err
		}
	}
	_, err := q.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE gone_at < ?", l.gone), l.timeArg(t.Add(-l.cfg.GoneRetention)))
	return err
}

// Tombstone returns how a job whose record was removed went, if that was
// less than the retention ago; else ErrJobNotFound. A job that holds the ID
// again may still have one: ask Get first.
func (l *Ledger) Tombstone(ctx context.Context, id string) (*Tombstone, error) {
	var found []*Tombstone
	err := l.q.query(ctx, fmt.Sprintf("SELECT job_id, reason, gone_at FROM %s WHERE job_id = ? AND gone_at >= ?", l.gone),
		func(scan func(...any) error) error {
			var ts Tombstone
			var at ledgerTime
			err := scan(&ts.ID, &ts.Reason, &at)
			ts.At = at.t
			found = append(found, &ts)
			return err
		}, id, l.timeArg(now().Add(-l.cfg.GoneRetention)))
	switch {
	case err != nil:
		return nil, fmt.Errorf("get tombstone: %w", err)
	case len(found) == 0:
		return nil, ErrJobNotFound
	}
	return found[0], nil
}

// expiredSQL selects up to limit finished jobs whose expiry has passed
// (argument: the time now), reading _expiring.
func (l *Ledger) expiredSQL(limit int) string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE "+expiringCond+" AND expires_at <= ? AND state NOT IN %s ORDER BY expires_at LIMIT %d",
		jobColumns, l.table, activeStates, limit)
}

// groupJobsSQL selects the jobs of a group (argument: its ID), reading
// _grouped.
func (l *Ledger) groupJobsSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond, jobColumns, l.table)
}

// Expired returns up to limit finished jobs whose results have outlived
// their TTL.
func (l *Ledger) Expired(ctx context.Context, limit int) ([]*Job, error) {
	jobs, err := l.jobs(ctx, l.q, l.expiredSQL(limit), l.timeArg(now()))
	if err != nil {
		return nil, fmt.Errorf("find expired jobs: %w", err)
	}
	return jobs, nil
}

// LiveRuns returns the run IDs of every STARTED job, on any node.
func (l *Ledger) LiveRuns(ctx context.Context) (map[string]bool, error) {
	live := map[string]bool{}
	err := l.q.query(ctx, fmt.Sprintf("SELECT run_id FROM %s WHERE state = 'STARTED'", l.table),
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

// Get returns the job recorded under id, or ErrJobNotFound.
func (l *Ledger) Get(ctx context.Context, id string) (*Job, error) {
	return l.get(ctx, l.q, id)
}

func (l *Ledger) get(ctx context.Context, q querier, id string) (*Job, error) {
	jobs, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE job_id = ?", jobColumns, l.table), id)
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if len(jobs) == 0 {
		return nil, ErrJobNotFound
	}
	return jobs[0], nil
}

// Pending returns the unfinished jobs of queue that have not started, in
// the order they will start: ready ones first in, first out, then those
// waiting for their time, then group members held back by their group.
func (l *Ledger) Pending(ctx context.Context, queue string, limit int) ([]*Job, error) {
	jobs, err := l.jobs(ctx, l.q, fmt.Sprintf(`SELECT %s FROM %s WHERE queue = ? AND state IN ('PENDING', 'RETRY')
	ORDER BY held, ready_at, enqueued_at, job_id LIMIT %d`, jobColumns, l.table, limit), queue)
	if err != nil {
		return nil, fmt.Errorf("list pending jobs: %w", err)
	}
	return jobs, nil
}

// PendingByQueue counts the jobs of each queue that have not started.
func (l *Ledger) PendingByQueue(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := l.q.query(ctx, fmt.Sprintf("SELECT queue, COUNT(*) FROM %s WHERE state IN ('PENDING', 'RETRY') GROUP BY queue", l.table),
		func(scan func(...any) error) error {
			var q string
			var n int64
			err := scan(&q, &n)
			out[q] = n
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("count pending jobs: %w", err)
	}
	return out, nil
}

// Queues lists the queues that have unfinished jobs.
func (l *Ledger) Queues(ctx context.Context) ([]string, error) {
	var out []string
	err := l.q.query(ctx, fmt.Sprintf("SELECT DISTINCT queue FROM %s WHERE state IN %s ORDER BY queue", l.table, activeStates),
		func(scan func(...any) error) error {
			var s string
			err := scan(&s)
			out = append(out, s)
			return err
		})
	return out, err
}

// Group returns a group and its jobs in submission order (jobs purged or
// expired since are left out).
func (l *Ledger) Group(ctx context.Context, id string) (*Group, []*Job, error) {
	var (
		g         Group
		ids       string
		cancelled int
		found     bool
		created   ledgerTime
		updated   ledgerTime
	)
	err := l.q.query(ctx, fmt.Sprintf("SELECT group_id, concurrency, job_ids, cancelled, created_at, updated_at FROM %s WHERE group_id = ?", l.groups),
		func(scan func(...any) error) error {
			found = true
			return scan(&g.ID, &g.Concurrency, &ids, &cancelled, &created, &updated)
		}, id)
	if err != nil {
		return nil, nil, fmt.Errorf("get group: %w", err)
	}
	if !found {
		return nil, nil, ErrGroupNotFound
	}
	g.Cancelled, g.CreatedAt, g.UpdatedAt = cancelled != 0, created.t, updated.t
	if err := json.Unmarshal([]byte(ids), &g.JobIDs); err != nil {
		return nil, nil, fmt.Errorf("group %s: job list: %w", id, err)
	}
	jobs, err := l.jobs(ctx, l.q, l.groupJobsSQL(), id)
	if err != nil {
		return nil, nil, fmt.Errorf("get group jobs: %w", err)
	}
	byID := map[string]*Job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	var ordered []*Job
	for _, jid := range g.JobIDs {
		if j, ok := byID[jid]; ok {
			ordered = append(ordered, j)
		}
	}
	return &g, ordered, nil
}

// ReleaseGroup lets held members of a group start, in submission order, until
// as many are unfinished and unheld as the group's concurrency allows. It
// returns the jobs it released.
func (l *Ledger) ReleaseGroup(ctx context.Context, id string) ([]*Job, error) {
	g, jobs, err := l.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	running := 0
	var held []*Job
	for _, j := range jobs {
		switch {
		case j.Held && j.State == StatePending:
			held = append(held, j)
		case !j.Held && Active(j.State):
			running++
		}
	}
	var released []*Job
	t := now()
	for _, j := range held[:min(len(held), max(0, g.Concurrency-running))] {
		n, err := l.q.exec(ctx, fmt.Sprintf(`UPDATE %s SET held = 0, enqueued_at = ?, ready_at = %s, updated_at = ?
	WHERE job_id = ? AND held = 1 AND state = 'PENDING'`, l.table, l.maxExpr()), l.timeArg(t), l.timeArg(t), l.timeArg(t), j.ID)
		if err != nil {
			return released, fmt.Errorf("release group member: %w", err)
		}
		if n > 0 {
			released = append(released, j)
		}
	}
	return released, nil
}

// maxExpr is "the later of ready_at and a time parameter".
func (l *Ledger) maxExpr() string {
	if l.db.Dialect == sqlexec.SQLite {
		return "MAX(ready_at, ?)"
	}
	return "GREATEST(ready_at, ?)"
}

// HeldGroups lists the groups that have members held back.
func (l *Ledger) HeldGroups(ctx context.Context) ([]string, error) {
	var out []string
	err := l.q.query(ctx, fmt.Sprintf("SELECT DISTINCT group_id FROM %s WHERE held = 1 AND state = 'PENDING' AND "+groupedCond+" ORDER BY group_id", l.table),
		func(scan func(...any) error) error {
			var s string
			err := scan(&s)
			out = append(out, s)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("list held groups: %w", err)
	}
	return out, nil
}

// MarkGroupCancelled records that a group was cancelled.
func (l *Ledger) MarkGroupCancelled(ctx context.Context, id string) error {
	n, err := l.dq.exec(ctx, fmt.Sprintf("UPDATE %s SET cancelled = 1, updated_at = ? WHERE group_id = ?", l.groups), l.timeArg(now()), id)
	if err != nil {
		return fmt.Errorf("cancel group: %w", err)
	}
	if n == 0 {
		return ErrGroupNotFound
	}
	return nil
}

// DeleteGroup removes a group whose jobs have all finished, and their
// records (remembering their IDs as gone), and returns those jobs so the
// caller can drop their tables. An unfinished member gives *ActiveError.
func (l *Ledger) DeleteGroup(ctx context.Context, id string) ([]*Job, error) {
	var deleted []*Job
	err := inTx(ctx, l.durable, func(q querier) error {
		jobs, err := l.jobs(ctx, q, fmt.Sprintf("SELECT %s FROM %s WHERE group_id = ? AND "+groupedCond+" ORDER BY job_id", jobColumns, l.table), id)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if Active(j.State) {
				return &ActiveError{Job: j}
			}
		}
		n, err := q.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE group_id = ?", l.groups), id)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrGroupNotFound
		}
		if _, err := q.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE group_id = ? AND "+groupedCond+" AND state NOT IN %s", l.table, activeStates), id); err != nil {
			return err
		}
		deleted = jobs
		return l.bury(ctx, q, jobs)
	})
	if err != nil {
		return nil, err
	}
	return deleted, nil
}

func (l *Ledger) jobArgs(j *Job) []any {
	null := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return l.timeArg(t)
	}
	held := 0
	if j.Held {
		held = 1
	}
	return []any{j.ID, j.Task, j.Queue, j.State, string(j.Args), j.DB, j.GroupID, j.Retries, int64(j.TTL / time.Second), null(j.ETA),
		j.ResultsBackend, j.ResultsTable, j.Count, j.Error, j.Attempt, j.RunID, j.Node, j.Fence, held,
		l.timeArg(j.EnqueuedAt), l.timeArg(j.ReadyAt), null(j.LeaseUntil), null(j.ExpiresAt),
		l.timeArg(j.CreatedAt), null(j.StartedAt), null(j.FinishedAt), l.timeArg(j.UpdatedAt)}
}

// ledgerTimeText is how SQLite stores ledger times: sortable text in UTC.
const ledgerTimeText = "2006-01-02 15:04:05.000000"

func (l *Ledger) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if l.db.Dialect == sqlexec.SQLite {
		return t.Format(ledgerTimeText)
	}
	return t
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (l *Ledger) jobs(ctx context.Context, q querier, stmt string, args ...any) ([]*Job, error) {
	var jobs []*Job
	err := q.query(ctx, stmt, func(scan func(...any) error) error {
		var (
			j                                   Job
			args                                string
			ttl                                 int64
			held                                int
			eta, enq, ready, lease, exp         ledgerTime
			created, started, finished, updated ledgerTime
		)
		if err := scan(&j.ID, &j.Task, &j.Queue, &j.State, &args, &j.DB, &j.GroupID, &j.Retries, &ttl, &eta,
			&j.ResultsBackend, &j.ResultsTable, &j.Count, &j.Error, &j.Attempt, &j.RunID, &j.Node, &j.Fence, &held,
			&enq, &ready, &lease, &exp, &created, &started, &finished, &updated); err != nil {
			return err
		}
		j.Args, j.TTL, j.Held = json.RawMessage(args), time.Duration(ttl)*time.Second, held != 0
		j.ETA, j.EnqueuedAt, j.ReadyAt, j.LeaseUntil, j.ExpiresAt = eta.t, enq.t, ready.t, lease.t, exp.t
		j.CreatedAt, j.StartedAt, j.FinishedAt, j.UpdatedAt = created.t, started.t, finished.t, updated.t
		jobs = append(jobs, &j)
		return nil
	}, args...)
	return jobs, err
}

// ledgerTime scans a nullable ledger timestamp from any of the dialects'
// representations into UTC.
type ledgerTime struct{ t time.Time }

func (lt *ledgerTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		lt.t = time.Time{}
	case time.Time:
		lt.t = v.UTC()
	case []byte:
		return lt.Scan(string(v))
	case string:
		t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", v, time.UTC)
		if err != nil {
			return fmt.Errorf("ledger time %q: %w", v, err)
		}
		lt.t = t
	default:
		return fmt.Errorf("ledger time: unexpected %T", src)
	}
	return nil
}
