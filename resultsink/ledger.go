package resultsink

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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

// LedgerTableDefault is the default name of the ledger table.
const LedgerTableDefault = "sqljobber_jobs"

// Errors the ledger returns for callers to branch on.
var (
	ErrJobNotFound = errors.New("job not found")
	// ErrRunSuperseded means a run tried to record a transition of a job
	// that another run (or a cancellation) has taken over since.
	ErrRunSuperseded = errors.New("job was taken over by another run")
)

// ActiveError is returned by Admit when an unfinished job holds the ID.
type ActiveError struct{ Job *Job }

func (e *ActiveError) Error() string {
	return fmt.Sprintf("job %s is %s", e.Job.ID, e.Job.State)
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

	ResultsBackend string
	ResultsTable   string
	Count          int64
	Error          string
	Attempt        int
	RunID          string // the run that last started the job
	Node           string // the node that runs or ran it

	CreatedAt  time.Time
	StartedAt  time.Time // zero: not started
	FinishedAt time.Time // zero: not finished
	UpdatedAt  time.Time
}

// Ledger is the durable record of every job, a table in a results database.
// It is the truth about jobs; everything held in memory is a cache of it.
type Ledger struct {
	db    *sqlexec.DB
	table string
	q     string // the quoted table name
}

// NewLedger returns the ledger kept in table on backend.
func NewLedger(backend *Backend, table string) *Ledger {
	if table == "" {
		table = LedgerTableDefault
	}
	return &Ledger{db: backend.db, table: table, q: backend.d.quote(table)}
}

// Migrate creates the ledger table if it does not exist.
func (l *Ledger) Migrate(ctx context.Context) error {
	var text, ts, key, bigint string
	switch l.db.Dialect {
	case sqlexec.Postgres:
		text, ts, key, bigint = "TEXT", "TIMESTAMPTZ", "TEXT", "BIGINT"
	case sqlexec.MySQL:
		// Job IDs are ASCII and case-sensitive.
		text, ts, key, bigint = "LONGTEXT", "DATETIME(6)", "VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin", "BIGINT"
	default:
		text, ts, key, bigint = "TEXT", "TEXT", "TEXT", "INTEGER"
	}
	short := text
	if l.db.Dialect == sqlexec.MySQL {
		short = "VARCHAR(255)"
	}
	stmts := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	job_id %s NOT NULL PRIMARY KEY,
	task %s NOT NULL,
	queue %s NOT NULL,
	state %s NOT NULL,
	args %s NOT NULL,
	db %s NOT NULL,
	group_id %s NOT NULL,
	retries INTEGER NOT NULL,
	ttl_seconds %s NOT NULL,
	eta %s NULL,
	results_backend %s NOT NULL,
	results_table %s NOT NULL,
	count %s NOT NULL,
	error %s NOT NULL,
	attempt INTEGER NOT NULL,
	run_id %s NOT NULL,
	node %s NOT NULL,
	created_at %s NOT NULL,
	started_at %s NULL,
	finished_at %s NULL,
	updated_at %s NOT NULL
)`, l.q, key, short, short, short, text, short, short, bigint, ts, short, short, bigint, text, short, short, ts, ts, ts, ts),
		fmt.Sprintf("CREATE INDEX %s %s ON %s (state, queue, created_at)",
			map[bool]string{true: "", false: "IF NOT EXISTS"}[l.db.Dialect == sqlexec.MySQL],
			l.quote(l.table+"_unfinished"), l.q),
	}
	for i, s := range stmts {
		if err := l.exec(ctx, s); err != nil {
			// MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB does, but
			// not MySQL); a duplicate index is the one error to ignore.
			if i == 1 && l.db.Dialect == sqlexec.MySQL && strings.Contains(err.Error(), "Duplicate key name") {
				continue
			}
			return fmt.Errorf("create ledger table %s: %w", l.table, err)
		}
	}
	return nil
}

func (l *Ledger) quote(s string) string { return dialectFor(l.db.Dialect).quote(s) }

const ledgerColumns = `job_id, task, queue, state, args, db, group_id, retries, ttl_seconds, eta,
	results_backend, results_table, count, error, attempt, run_id, node,
	created_at, started_at, finished_at, updated_at`

const activeStates = `('PENDING', 'STARTED', 'RETRY')`

// Admit records a new PENDING job under j.ID, replacing a finished job of
// that ID. If an unfinished job holds the ID it returns *ActiveError and
// changes nothing. This is the one check that makes "one active job per ID"
// hold across nodes and restarts.
func (l *Ledger) Admit(ctx context.Context, j Job) (*Job, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	j.State, j.CreatedAt, j.UpdatedAt = StatePending, now, now
	j.ResultsBackend, j.ResultsTable, j.Count, j.Error, j.Attempt, j.RunID, j.Node = "", "", 0, "", 0, "", ""
	j.StartedAt, j.FinishedAt = time.Time{}, time.Time{}
	if len(j.Args) == 0 {
		j.Args = json.RawMessage("[]")
	}

	cols := strings.Fields(strings.ReplaceAll(ledgerColumns, ",", " "))
	var set []string
	var q string
	switch l.db.Dialect {
	case sqlexec.MySQL:
		// Every column keeps its old value while the old job is active;
		// state goes last so that the others still see the old state.
		for _, c := range cols[1:] {
			if c != "state" {
				set = append(set, fmt.Sprintf("%s = IF(state IN %s, %s, VALUES(%s))", c, activeStates, c, c))
			}
		}
		set = append(set, fmt.Sprintf("state = IF(state IN %s, state, VALUES(state))", activeStates))
		q = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON DUPLICATE KEY UPDATE %s",
			l.q, ledgerColumns, placeholders(len(cols)), strings.Join(set, ", "))
	default:
		for _, c := range cols[1:] {
			set = append(set, fmt.Sprintf("%s = excluded.%s", c, c))
		}
		q = fmt.Sprintf("INSERT INTO %s AS j (%s) VALUES (%s) ON CONFLICT (job_id) DO UPDATE SET %s WHERE j.state NOT IN %s",
			l.q, ledgerColumns, placeholders(len(cols)), strings.Join(set, ", "), activeStates)
	}
	n, err := l.execN(ctx, q, l.jobArgs(&j)...)
	if err != nil {
		return nil, fmt.Errorf("admit job: %w", err)
	}
	if n == 0 {
		cur, err := l.Get(ctx, j.ID)
		if err != nil {
			return nil, fmt.Errorf("admit job: %w", err)
		}
		return nil, &ActiveError{Job: cur}
	}
	return &j, nil
}

// Start records that run runID of a job begins on node, writing to table on
// backend. It succeeds only if the job is unfinished and its last run is
// prevRunID ("" for a job that never started), so two runs cannot both start
// it; otherwise it returns ErrRunSuperseded.
func (l *Ledger) Start(ctx context.Context, id, prevRunID, runID, node, backend, table string) (*Job, error) {
	now := l.timeArg(time.Now())
	n, err := l.execN(ctx, fmt.Sprintf(`UPDATE %s SET state = 'STARTED', run_id = ?, node = ?, attempt = attempt + 1,
	results_backend = ?, results_table = ?, started_at = ?, finished_at = NULL, updated_at = ?
	WHERE job_id = ? AND run_id = ? AND state IN %s`, l.q, activeStates),
		runID, node, backend, table, now, now, id, prevRunID)
	if err != nil {
		return nil, fmt.Errorf("start job: %w", err)
	}
	if n == 0 {
		return nil, ErrRunSuperseded
	}
	return l.Get(ctx, id)
}

// Finish records the outcome of run runID. It returns ErrRunSuperseded if
// the job has moved on to another run (or was cancelled) in the meantime.
func (l *Ledger) Finish(ctx context.Context, id, runID, state string, count int64, errText string) error {
	now := l.timeArg(time.Now())
	n, err := l.execN(ctx, fmt.Sprintf(`UPDATE %s SET state = ?, count = ?, error = ?, finished_at = ?, updated_at = ?
	WHERE job_id = ? AND run_id = ? AND state = 'STARTED'`, l.q),
		state, count, errText, now, now, id, runID)
	if err != nil {
		return fmt.Errorf("finish job: %w", err)
	}
	if n == 0 {
		return ErrRunSuperseded
	}
	return nil
}

// Get returns the job recorded under id, or ErrJobNotFound.
func (l *Ledger) Get(ctx context.Context, id string) (*Job, error) {
	jobs, err := l.query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE job_id = ?", ledgerColumns, l.q), id)
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	if len(jobs) == 0 {
		return nil, ErrJobNotFound
	}
	return jobs[0], nil
}

// Unfinished returns every PENDING, STARTED or RETRY job, oldest first.
func (l *Ledger) Unfinished(ctx context.Context) ([]*Job, error) {
	jobs, err := l.query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE state IN %s ORDER BY created_at, job_id",
		ledgerColumns, l.q, activeStates))
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	return jobs, nil
}

func (l *Ledger) jobArgs(j *Job) []any {
	var eta any
	if !j.ETA.IsZero() {
		eta = l.timeArg(j.ETA)
	}
	null := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return l.timeArg(t)
	}
	return []any{j.ID, j.Task, j.Queue, j.State, string(j.Args), j.DB, j.GroupID, j.Retries, int64(j.TTL / time.Second), eta,
		j.ResultsBackend, j.ResultsTable, j.Count, j.Error, j.Attempt, j.RunID, j.Node,
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

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// rebind turns ? placeholders into PostgreSQL's $n. Only for the ledger's own
// statements, which have no ? in literals.
func rebind(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func (l *Ledger) exec(ctx context.Context, q string) error {
	_, err := l.execN(ctx, q)
	return err
}

func (l *Ledger) execN(ctx context.Context, q string, args ...any) (int64, error) {
	if pool := l.db.Postgres(); pool != nil {
		var tag pgconn.CommandTag
		tag, err := pool.Exec(ctx, rebind(q), args...)
		return tag.RowsAffected(), err
	}
	res, err := l.db.SQL().ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (l *Ledger) query(ctx context.Context, q string, args ...any) ([]*Job, error) {
	var jobs []*Job
	scan := func(scan func(dest ...any) error) error {
		var (
			j                 Job
			args              string
			ttl               int64
			eta, created      ledgerTime
			started, finished ledgerTime
			updated           ledgerTime
		)
		if err := scan(&j.ID, &j.Task, &j.Queue, &j.State, &args, &j.DB, &j.GroupID, &j.Retries, &ttl, &eta,
			&j.ResultsBackend, &j.ResultsTable, &j.Count, &j.Error, &j.Attempt, &j.RunID, &j.Node,
			&created, &started, &finished, &updated); err != nil {
			return err
		}
		j.Args, j.TTL = json.RawMessage(args), time.Duration(ttl)*time.Second
		j.ETA, j.CreatedAt, j.StartedAt, j.FinishedAt, j.UpdatedAt = eta.t, created.t, started.t, finished.t, updated.t
		jobs = append(jobs, &j)
		return nil
	}
	if pool := l.db.Postgres(); pool != nil {
		rows, err := pool.Query(ctx, rebind(q), args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows.Scan); err != nil {
				return nil, err
			}
		}
		return jobs, rows.Err()
	}
	rows, err := l.db.SQL().QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return nil, err
		}
	}
	return jobs, rows.Err()
}

// ledgerTime scans a nullable ledger timestamp from any of the dialects'
// representations into UTC.
type ledgerTime struct{ t time.Time }

var _ sql.Scanner = (*ledgerTime)(nil)

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
