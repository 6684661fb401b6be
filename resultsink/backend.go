package resultsink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// ResultsTableDefault is the default name pattern of a job's results table.
const ResultsTableDefault = "results_%s"

// stagingPrefix names the tables a run writes before it publishes. A table
// with this prefix is never a job's published result.
const stagingPrefix = "sqljobber_stage_"

// RowColumn is the column sql-jobber adds, last, to every results table:
// each row's number, from 1, in the order the task returned the rows. It is
// the table's primary key, and what orders paged reads (see Reader).
const RowColumn = "_row"

// Config configures one results backend.
type Config struct {
	sqlexec.DBConfig
	// ResultsTable is the name pattern of a job's results table; %s is
	// replaced by the job ID.
	ResultsTable string
	// Unlogged creates PostgreSQL results tables UNLOGGED: faster to write,
	// emptied by a crash of the results server. Results are a cache of the
	// source, so this is usually what a user wants.
	Unlogged bool
}

// WithDefaults returns c with zero values replaced by defaults.
func (c Config) WithDefaults() Config {
	c.DBConfig = c.DBConfig.WithDefaults()
	if c.ResultsTable == "" {
		c.ResultsTable = ResultsTableDefault
	}
	return c
}

// Validate checks c. Errors name the offending key.
func (c Config) Validate() error {
	if err := c.DBConfig.Validate(); err != nil {
		return err
	}
	if strings.Count(c.ResultsTable, "%s") != 1 || strings.Count(c.ResultsTable, "%") != 1 {
		return &sqlexec.KeyError{Key: "results_table", Err: errors.New(`must contain "%s" exactly once (the job ID) and no other '%'`)}
	}
	if strings.HasPrefix(c.ResultsTable, stagingPrefix) {
		return &sqlexec.KeyError{Key: "results_table", Err: fmt.Errorf("must not start with %q, which sql-jobber reserves", stagingPrefix)}
	}
	if c.Unlogged && c.Type != sqlexec.Postgres {
		return &sqlexec.KeyError{Key: "unlogged", Err: errors.New("only applies to postgres")}
	}
	if max := dialectFor(c.Type).maxIdentLen(); utf8.RuneCountInString(c.ResultsTable)-2 >= max {
		return &sqlexec.KeyError{Key: "results_table", Err: fmt.Errorf("leaves no room for a job ID within the %d-character table name limit", max)}
	}
	return nil
}

// Backend is one results database.
type Backend struct {
	Name     string
	cfg      Config
	db       *sqlexec.DB
	d        dialect
	reserved map[string]bool
}

// Open connects to a results database.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := sqlexec.Open(ctx, cfg.DBConfig, sqlexec.OpenOptions{Results: true})
	if err != nil {
		return nil, err
	}
	d := dialectFor(cfg.Type)
	if cfg.Type == sqlexec.MySQL {
		d = mysqlDialect{mariaDB: db.MariaDB}
	}
	return &Backend{Name: cfg.Name, cfg: cfg, db: db, d: d, reserved: map[string]bool{}}, nil
}

// Reserve marks table names that no job's results table may take (the
// ledger's own tables).
func (b *Backend) Reserve(names ...string) {
	for _, n := range names {
		b.reserved[n] = true
	}
}

// ReservedTable reports whether a results table may not be called name:
// it is a staging table's name or a reserved one.
func (b *Backend) ReservedTable(name string) bool {
	return strings.HasPrefix(name, stagingPrefix) || b.reserved[name]
}

// Close closes the backend's pool.
func (b *Backend) Close() { b.db.Close() }

// DB is the backend's connection pool.
func (b *Backend) DB() *sqlexec.DB { return b.db }

// MaxJobIDLen is the longest job ID whose results table name fits this
// database's identifier limit.
func (b *Backend) MaxJobIDLen() int {
	return b.d.maxIdentLen() - (utf8.RuneCountInString(b.cfg.ResultsTable) - 2)
}

// TableName is the results table of a job ID.
func (b *Backend) TableName(jobID string) string {
	return strings.Replace(b.cfg.ResultsTable, "%s", jobID, 1)
}

// NewRunID returns a random identifier for one run of a job. It names the
// run's staging table and fences the run's ledger updates.
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cleanupTimeout bounds the removal of a failed run's staging table, which
// runs even when the job's own context has been cancelled.
const cleanupTimeout = 30 * time.Second

// Write streams rows into a staging table and then publishes it as table,
// replacing any previous table of that name in one step: a reader sees the
// old complete table or the new complete one. On error nothing is published
// and the staging table is dropped. It returns the number of rows written.
func (b *Backend) Write(ctx context.Context, table, runID string, rows sqlexec.Rows) (int64, error) {
	cols, err := b.columnNames(rows.Columns())
	if err != nil {
		return 0, err
	}
	cols = append(cols, sqlexec.Column{Name: RowColumn, Type: sqlexec.TypeInt64})
	numbered := &numberedRows{Rows: rows, cols: cols, vals: make([]any, len(cols))}
	staging := stagingPrefix + runID
	n, err := b.stageAndPublish(ctx, staging, table, cols, numbered)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := b.d.drop(cctx, b.db, staging); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop staging table: %w", derr))
		}
		return 0, err
	}
	return n, nil
}

func (b *Backend) stageAndPublish(ctx context.Context, staging, table string, cols []sqlexec.Column, rows sqlexec.Rows) (int64, error) {
	if err := b.d.create(ctx, b.db, staging, cols, b.cfg.Unlogged); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	n, err := b.d.load(ctx, b.db, staging, cols, rows)
	if err != nil {
		return 0, fmt.Errorf("write results: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if err := b.d.publish(ctx, b.db, staging, table); err != nil {
		return 0, fmt.Errorf("publish results table: %w", err)
	}
	return n, nil
}

// numberedRows adds RowColumn to the rows it reads.
type numberedRows struct {
	sqlexec.Rows
	cols []sqlexec.Column
	vals []any
	n    int64
}

func (r *numberedRows) Columns() []sqlexec.Column { return r.cols }

func (r *numberedRows) Next() bool {
	if !r.Rows.Next() {
		return false
	}
	r.n++
	return true
}

func (r *numberedRows) Values() []any {
	copy(r.vals, r.Rows.Values())
	r.vals[len(r.vals)-1] = r.n
	return r.vals
}

// Drop removes a job's results table, if it exists.
func (b *Backend) Drop(ctx context.Context, table string) error {
	return b.d.drop(ctx, b.db, table)
}

// DropStaging drops the staging tables of runs that are not live: those a
// crash left behind. liveRuns is asked after the tables are listed, so that a
// run that starts meanwhile (its claim precedes its staging table) is live.
func (b *Backend) DropStaging(ctx context.Context, liveRuns func(context.Context) (map[string]bool, error)) (int, error) {
	names, err := b.d.tables(ctx, b.db, stagingPrefix)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	live, err := liveRuns(ctx)
	if err != nil {
		return 0, err
	}
	dropped := 0
	for _, name := range names {
		if live[strings.TrimPrefix(name, stagingPrefix)] {
			continue
		}
		if err := b.d.drop(ctx, b.db, name); err != nil {
			return dropped, err
		}
		dropped++
	}
	return dropped, nil
}

// columnNames makes the source's column names valid and distinct for this
// database: no NUL, within the identifier limit, no two equal ignoring case
// (MySQL and SQLite compare column names without case), none RowColumn. A
// name that clashes gets a suffix: id, id_2, id_3.
func (b *Backend) columnNames(in []sqlexec.Column) ([]sqlexec.Column, error) {
	if len(in) == 0 {
		return nil, errors.New("the query returned no columns")
	}
	max := b.d.maxIdentLen()
	out := make([]sqlexec.Column, len(in))
	seen := map[string]bool{RowColumn: true}
	for i, c := range in {
		name := strings.TrimRight(strings.ReplaceAll(c.Name, "\x00", ""), " ")
		if name == "" {
			name = fmt.Sprintf("column_%d", i+1)
		}
		base := truncateIdent(name, max)
		name = base
		for n := 2; seen[strings.ToLower(name)]; n++ {
			suffix := fmt.Sprintf("_%d", n)
			name = truncateIdent(base, max-len(suffix)) + suffix
		}
		seen[strings.ToLower(name)] = true
		c.Name = name
		out[i] = c
	}
	return out, nil
}

// truncateIdent cuts s to at most max bytes without splitting a character.
func truncateIdent(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
