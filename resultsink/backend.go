package resultsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// ResultsTableDefault is the default name pattern of a job's results table.
const ResultsTableDefault = "results_%s"

// Table names sql-jobber keeps for itself in results databases: no job's
// results table may start with reservedPrefix. stagingPrefix names the
// tables a run writes before it publishes; fenceTable records, per results
// table, the fence token of the run that last published it. That record is
// also what makes a table sql-jobber's: a table of a results table's name
// without one (a user's own table) is never replaced or dropped.
const (
	reservedPrefix = "sqljobber_"
	stagingPrefix  = reservedPrefix + "stage_"
	fenceTable     = reservedPrefix + "fence"
)

// Fence guards a publication, so that of two runs of one job (say, one cut
// off from the cluster whose lease was taken over) the older can never
// replace the newer's table.
type Fence struct {
	// Token grows with every run of a job ID (ledger.Job.Fence). A
	// publication whose token is not above the last one published for
	// the table is refused, in the same transaction as the swap (under
	// a named lock on MySQL, whose DDL is not transactional).
	Token int64
	// Owner, when set, is the record of the run that publishes, which
	// must say that the run still owns its job: checked inside the
	// publishing transaction when the record lives in the same database
	// (on the record's own pool otherwise: never a second connection of
	// one pool, which a pool of one would deadlock on).
	Owner Owner
}

// Owner is the record that says whether a run may publish its job's results
// (ledger.Run).
type Owner interface {
	// DB is the database the record is kept in.
	DB() *sqlexec.DB
	// Check returns an error unless the run still owns its job. It reads
	// the record with q.
	Check(ctx context.Context, q sqlexec.Querier) error
	// Owns is a FROM clause, with ? placeholders, and its arguments,
	// that yield one row if the run still owns its job and none
	// otherwise, for a statement of a publication in the record's
	// database to depend on.
	Owns() (string, []any)
	// Success is the statement, with ? placeholders, and the arguments
	// that record the run's SUCCESS with count rows, for the publishing
	// transaction when the record is in the results database: it changes
	// one row if the run still owns its job, and none otherwise.
	Success(count int64) (string, []any)
}

// here reports whether the fence's owner keeps its record in db, so that
// its check and the job's SUCCESS join the publishing transaction.
func (f Fence) here(db *sqlexec.DB) bool { return f.Owner != nil && f.Owner.DB() == db }

// ErrFenced refuses a publication: a newer run of the job has published its
// table, or this run no longer owns the job.
var ErrFenced = errors.New("results not published: a newer run of the job has published, or this run no longer owns the job")

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
	// AsyncCommit (PostgreSQL) writes results, and the ledger's job
	// transitions when the ledger is here, without waiting for the disk
	// at each commit; admissions and cancellations still wait. A crash of
	// the database can then lose the last moment of transitions, in log
	// order: a job's SUCCESS is never kept without its published table,
	// and a lost transition runs the job again. Only sensible for the
	// ledger's own database (elsewhere a durable SUCCESS could outlive
	// the table it names).
	AsyncCommit bool
	// Logger receives the warnings of a backend that leaves a table
	// alone; nil discards them.
	Logger *slog.Logger
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
	if strings.HasPrefix(c.ResultsTable, reservedPrefix) {
		return &sqlexec.KeyError{Key: "results_table", Err: fmt.Errorf("must not start with %q, which sql-jobber reserves", reservedPrefix)}
	}
	if c.Unlogged && c.Type != sqlexec.Postgres {
		return &sqlexec.KeyError{Key: "unlogged", Err: errors.New("only applies to postgres")}
	}
	if c.AsyncCommit && c.Type != sqlexec.Postgres {
		return &sqlexec.KeyError{Key: "async_commit", Err: errors.New("only applies to postgres")}
	}
	if max := dialectFor(c.Type).maxIdentLen(); utf8.RuneCountInString(c.ResultsTable)-2 >= max {
		return &sqlexec.KeyError{Key: "results_table", Err: fmt.Errorf("leaves no room for a job ID within the %d-character table name limit", max)}
	}
	return nil
}

// Backend is one results database.
type Backend struct {
	Name string
	cfg  Config
	db   *sqlexec.DB
	// durable is db, or with AsyncCommit a second pool whose commits wait
	// for the disk.
	durable  *sqlexec.DB
	d        dialect
	logger   *slog.Logger
	reserved map[string]bool
	// smallMax is the most rows published in one step (see smallWriter).
	smallMax int
}

// Open connects to a results database.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := sqlexec.Open(ctx, cfg.DBConfig, sqlexec.OpenOptions{Results: true, AsyncCommit: cfg.AsyncCommit})
	if err != nil {
		return nil, err
	}
	durable := db
	if cfg.AsyncCommit {
		if durable, err = sqlexec.Open(ctx, cfg.DBConfig, sqlexec.OpenOptions{Results: true}); err != nil {
			db.Close()
			return nil, err
		}
	}
	d := dialectFor(cfg.Type)
	if cfg.Type == sqlexec.Postgres {
		d = postgresDialect{group: &pgPublications{}}
	}
	if cfg.Type == sqlexec.MySQL {
		my := mysqlDialect{mariaDB: db.MariaDB}
		my.records = &firstRecords{d: my}
		d = my
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{Name: cfg.Name, cfg: cfg, db: db, durable: durable, d: d, logger: logger, reserved: map[string]bool{}, smallMax: smallMaxRows}
	if err := b.migrate(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// migrate creates the fence table if it does not exist. It runs at Open,
// and again whenever a statement finds the table gone (see withFence).
//
// A fence table without its marker row (fenceTable's own name) was just
// created, or comes from a build that did not record every publication
// (with the ledger in the same database it recorded none): the results
// tables already there that have RowColumn, which only sql-jobber adds, are
// recorded as sql-jobber's, once, and the marker says it is done. From
// then on only publications are recorded.
func (b *Backend) migrate(ctx context.Context) error {
	q := b.db.Querier()
	if _, err := q.Exec(ctx, b.d.fenceTableSQL()); err != nil {
		return fmt.Errorf("create table %s: %w", fenceTable, err)
	}
	marked, err := b.recorded(ctx, q, fenceTable)
	if err != nil || marked {
		return err
	}
	before, after, _ := strings.Cut(b.cfg.ResultsTable, "%s")
	if _, err := q.Exec(ctx, b.d.adoptTables(), likeEscape(before)+"%"+likeEscape(after), likePrefix(reservedPrefix)); err != nil {
		return fmt.Errorf("record the results tables already in the database: %w", err)
	}
	if _, err := q.Exec(ctx, b.d.fenceUpsert(), fenceTable, 0); err != nil {
		return fmt.Errorf("insert into %s: %w", fenceTable, err)
	}
	return nil
}

// recorded reports whether the fence table records a publication of table
// (compared as the database compares table names), with q.
func (b *Backend) recorded(ctx context.Context, q sqlexec.Querier, table string) (bool, error) {
	found := false
	err := q.Query(ctx, fmt.Sprintf("SELECT 1 FROM %s WHERE %s", b.d.quote(fenceTable), b.d.fenceNameIs()),
		func(func(...any) error) error { found = true; return nil }, table)
	return found, err
}

// ErrForeignTable refuses to replace a table that sql-jobber did not
// create (its fence table has no record of it): a user's own table that
// happens to have a job's results table name.
var ErrForeignTable = errors.New("exists and was not created by sql-jobber; refusing to replace it")

func foreignTable(table string) error {
	return fmt.Errorf("results table %q %w", table, ErrForeignTable)
}

// withFence runs fn, which uses the fence table; if the table is missing
// (the results database was dropped and created again, or the table
// dropped by hand, while sql-jobber ran), it creates the table and runs fn
// once more. fn must leave nothing behind when it fails.
func (b *Backend) withFence(ctx context.Context, fn func() error) error {
	err := fn()
	if err == nil || !fenceMissing(err) {
		return err
	}
	if merr := b.migrate(ctx); merr != nil {
		return errors.Join(err, merr)
	}
	return fn()
}

// fenceMissing reports whether err says that the fence table does not
// exist (and not some other table, such as the ledger's).
func fenceMissing(err error) bool {
	var pgErr *pgconn.PgError
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code == "42P01" && strings.Contains(pgErr.Message, fenceTable) // undefined_table
	case errors.As(err, &myErr):
		return myErr.Number == 1146 && strings.Contains(myErr.Message, fenceTable) // ER_NO_SUCH_TABLE
	}
	// SQLite's errors carry a generic code; the text names the table.
	return strings.Contains(err.Error(), "no such table: "+fenceTable)
}

// Check is the backend's readiness: its database answers and has the fence
// table, created again if it went missing. It costs one query (two after
// a recreation). The error names the backend by its configured name, never
// by its DSN.
func (b *Backend) Check(ctx context.Context) error {
	err := b.withFence(ctx, func() error {
		_, err := b.db.Querier().Exec(ctx, "SELECT COUNT(*) FROM "+b.d.quote(fenceTable)+" WHERE 1 = 0")
		return err
	})
	if err != nil {
		return fmt.Errorf("results backend %q: %w", b.Name, err)
	}
	return nil
}

// Reserve marks table names that no job's results table may take (the
// ledger's own tables).
func (b *Backend) Reserve(names ...string) {
	for _, n := range names {
		b.reserved[n] = true
	}
}

// ReservedTable reports whether a results table may not be called name:
// sql-jobber's own tables start with "sqljobber_", and others may be
// reserved (the ledger's).
func (b *Backend) ReservedTable(name string) bool {
	return strings.HasPrefix(name, reservedPrefix) || b.reserved[name]
}

// Close closes the backend's pools, once the fence records being written
// are.
func (b *Backend) Close() {
	if my, ok := b.d.(mysqlDialect); ok && my.records != nil {
		my.records.q.Wait()
	}
	b.db.Close()
	if b.durable != b.db {
		b.durable.Close()
	}
}

// DB is the backend's connection pool.
func (b *Backend) DB() *sqlexec.DB { return b.db }

// Durable is the backend's pool whose commits wait for the disk: DB, unless
// the backend commits asynchronously (Config.AsyncCommit).
func (b *Backend) Durable() *sqlexec.DB { return b.durable }

// MaxJobIDLen is the longest job ID whose results table name fits this
// database's identifier limit.
func (b *Backend) MaxJobIDLen() int {
	return b.d.maxIdentLen() - (utf8.RuneCountInString(b.cfg.ResultsTable) - 2)
}

// TableName is the results table of a job ID.
func (b *Backend) TableName(jobID string) string {
	return strings.Replace(b.cfg.ResultsTable, "%s", jobID, 1)
}

// cleanupTimeout bounds the removal of a failed run's staging table, which
// runs even when the job's own context has been cancelled.
const cleanupTimeout = 30 * time.Second

// Write streams rows into a staging table and then publishes it as table,
// replacing any previous table of that name in one step: a reader sees the
// old complete table or the new complete one. The publication is fenced
// (see Fence). On error nothing is published and the staging table is
// dropped. It returns the number of rows written, and whether the
// publication also recorded the job's SUCCESS in the ledger (when the
// fence's ledger is in this database and the dialect's DDL is
// transactional): the table and the SUCCESS then commit together.
func (b *Backend) Write(ctx context.Context, table, runID string, rows sqlexec.Rows, fence Fence) (int64, bool, error) {
	cols, err := b.columnNames(rows.Columns())
	if err != nil {
		return 0, false, err
	}
	cols = append(cols, sqlexec.Column{Name: RowColumn, Type: sqlexec.TypeInt64})
	rows = &numberedRows{Rows: rows, cols: cols, vals: make([]any, len(cols))}
	if sw, ok := b.d.(smallWriter); ok && b.smallMax > 0 {
		buf, done, err := bufferRows(rows, b.smallMax)
		if err != nil {
			return 0, false, err
		}
		if done {
			var finished bool
			err := b.withFence(ctx, func() (err error) {
				finished, err = sw.writeSmall(ctx, b.db, table, cols, buf, b.cfg.Unlogged, fence)
				return err
			})
			switch {
			case err == nil:
				return int64(len(buf)), finished, nil
			case !errors.Is(err, errStage):
				return 0, false, fmt.Errorf("publish results table: %w", err)
			}
		}
		rows = &prefixRows{Rows: rows, buf: buf}
	}
	staging := stagingPrefix + runID
	n, finished, err := b.stageAndPublish(ctx, staging, table, cols, rows, fence)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := b.d.drop(cctx, b.db, staging); derr != nil {
			err = errors.Join(err, fmt.Errorf("drop staging table: %w", derr))
		}
		return 0, false, err
	}
	return n, finished, nil
}

func (b *Backend) stageAndPublish(ctx context.Context, staging, table string, cols []sqlexec.Column, rows sqlexec.Rows, fence Fence) (int64, bool, error) {
	if err := b.d.create(ctx, b.db, staging, cols, b.cfg.Unlogged); err != nil {
		return 0, false, fmt.Errorf("create staging table: %w", err)
	}
	n, err := b.d.load(ctx, b.db, staging, cols, rows)
	if err != nil {
		return 0, false, fmt.Errorf("write results: %w", err)
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	var finished bool
	err = b.withFence(ctx, func() (err error) {
		finished, err = b.d.publish(ctx, b.db, staging, table, n, fence)
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("publish results table: %w", err)
	}
	return n, finished, nil
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

// Drop removes a job's results table, if it exists, and its fence record.
// A table that sql-jobber did not publish (no fence record) is left alone,
// with a warning: it is a user's, whatever its name.
func (b *Backend) Drop(ctx context.Context, table string) error {
	return b.withFence(ctx, func() error {
		q := b.db.Querier()
		ours, err := b.recorded(ctx, q, table)
		if err != nil {
			return err
		}
		if !ours {
			names, err := b.d.tables(ctx, b.db, table)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, table) }) {
				b.logger.Warn("results table left in place: sql-jobber did not create it",
					slog.String("results_backend", b.Name), slog.String("results_table", table))
			}
			return nil
		}
		// The table before its record: a crash in between leaves a
		// record of no table, never a table that is no longer ours.
		if err := b.d.drop(ctx, b.db, table); err != nil {
			return err
		}
		_, err = q.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", b.d.quote(fenceTable), b.d.fenceNameIs()), table)
		return err
	})
}

// claimFence records the fence's token as table's publication in a
// transaction (q), refusing it if a run of a token at least as high has
// published, or if its owner no longer owns its job.
func claimFence(ctx context.Context, q sqlexec.Querier, db *sqlexec.DB, d dialect, table string, fence Fence) error {
	// Ownership first: on MySQL the fence record commits at once, and a
	// run that does not own its job must not move it.
	if err := checkOwner(ctx, q, db, fence); err != nil {
		return err
	}
	n, err := q.Exec(ctx, d.fenceUpsert(), table, fence.Token)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrFenced
	}
	return nil
}

// checkOwner checks that the fence's owner, if any, still owns its job: with
// q, in the publishing transaction, where the record is in db.
func checkOwner(ctx context.Context, q sqlexec.Querier, db *sqlexec.DB, fence Fence) error {
	if fence.Owner == nil {
		return nil
	}
	if !fence.here(db) {
		q = fence.Owner.DB().Querier()
	}
	if err := fence.Owner.Check(ctx, q); err != nil {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return nil
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
