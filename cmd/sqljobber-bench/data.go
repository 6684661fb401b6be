package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Names of the benchmark's schemas (PostgreSQL) and databases (MySQL): the
// source data, kept between runs, and the results, made afresh each run.
// The MySQL one-row jobs have a scratch database of their own, for their
// ledger, results and floor: the server that keeps its ledger there is
// alone in it, as the PostgreSQL server is alone in the results schema.
const (
	sourceName  = "sqljobber_bench"
	resultsName = "sqljobber_bench_results"
	myTinyName  = "sqljobber_bench_tiny"
)

// dbs are the connections of a run.
type dbs struct {
	pgDSN, myDSN       string // base DSNs
	pgSource, pgResult string // DSNs of the bench schemas
	mySource, myResult string
	myTinyDSN          string
	pg                 *pgxpool.Pool // the source schema
	pgRes              *pgxpool.Pool // the results schema
	my                 *sql.DB       // the source database
	myRes              *sql.DB       // the results database
	myTiny             *sql.DB       // the MySQL one-row jobs' scratch database
	// The connections that hold the run's locks (see lockRun).
	pgLock   *pgx.Conn
	myLock   *sql.Conn
	myLockDB *sql.DB // myLock's pool, closed with it: an idle connection would keep the lock
}

// runLockName names the lock a run holds on each database server for its
// whole length: a second run would empty the schemas and databases the
// first one's servers are writing to, and both would fail at random (a
// server's "internal error" on a POST whose ledger was dropped under it).
const runLockName = "sqljobber-bench"

// errBusy: another run holds the lock.
var errBusy = errors.New("another sqljobber-bench run is using these databases; wait for it to end")

// lockRun takes the run's lock on the PostgreSQL and MySQL servers, on
// connections of their own that hold it until close, or fails at once
// with errBusy.
func (d *dbs) lockRun(ctx context.Context) error {
	var err error
	if d.pgLock, err = pgx.Connect(ctx, d.pgDSN); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	var got bool
	if err := d.pgLock.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", runLockName).Scan(&got); err != nil {
		return fmt.Errorf("postgres: take the run's lock: %w", err)
	} else if !got {
		return fmt.Errorf("%w (PostgreSQL advisory lock hashtext('%s'))", errBusy, runLockName)
	}
	if d.myLockDB, err = sql.Open("mysql", d.myDSN); err != nil {
		return err
	}
	if d.myLock, err = d.myLockDB.Conn(ctx); err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	var gotMy sql.NullInt64
	if err := d.myLock.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", runLockName).Scan(&gotMy); err != nil {
		return fmt.Errorf("mysql: take the run's lock: %w", err)
	} else if gotMy.Int64 != 1 {
		return fmt.Errorf("%w (MySQL GET_LOCK('%s'))", errBusy, runLockName)
	}
	return nil
}

func pgSchemaDSN(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("--pg must be a URL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func myDatabaseDSN(base, db string) (string, error) {
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		return "", fmt.Errorf("--mysql: %w", err)
	}
	cfg.DBName = db
	cfg.AllowAllFiles = false
	return cfg.FormatDSN(), nil
}

// dropTablesInChunks drops the tables of schema whose names start with
// prefix ("" for all), a thousand per transaction: one DROP SCHEMA ...
// CASCADE over the tables of a long tiny-jobs run takes more locks than
// PostgreSQL's default lock table holds.
func dropTablesInChunks(ctx context.Context, db *pgxpool.Pool, schema, prefix string) error {
	for {
		var stmt *string
		err := db.QueryRow(ctx, `SELECT string_agg(format('DROP TABLE %I.%I', schemaname, tablename), '; ')
	FROM (SELECT schemaname, tablename FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2) LIMIT 1000) t`,
			schema, prefix).Scan(&stmt)
		if err != nil {
			return fmt.Errorf("postgres: list the tables of %s: %w", schema, err)
		}
		if stmt == nil {
			return nil
		}
		if _, err := db.Exec(ctx, "BEGIN; "+*stmt+"; COMMIT"); err != nil {
			return fmt.Errorf("postgres: drop the tables of %s: %w", schema, err)
		}
	}
}

// connect prepares the schemas and databases: the source ones are kept, the
// results ones emptied.
func connect(ctx context.Context, pgDSN, myDSN string) (_ *dbs, err error) {
	d := &dbs{pgDSN: pgDSN, myDSN: myDSN}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if err := d.lockRun(ctx); err != nil {
		return nil, err
	}
	admin, err := pgxpool.New(ctx, pgDSN)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if err := dropTablesInChunks(ctx, admin, resultsName, ""); err != nil {
		return nil, err
	}
	for _, stmt := range []string{
		"CREATE SCHEMA IF NOT EXISTS " + sourceName,
		"DROP SCHEMA IF EXISTS " + resultsName + " CASCADE",
		"CREATE SCHEMA " + resultsName,
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", stmt, err)
		}
	}
	if d.pgSource, err = pgSchemaDSN(pgDSN, sourceName); err != nil {
		return nil, err
	}
	if d.pgResult, err = pgSchemaDSN(pgDSN, resultsName); err != nil {
		return nil, err
	}
	if d.pg, err = pgxpool.New(ctx, d.pgSource); err != nil {
		return nil, err
	}
	resCfg, err := pgxpool.ParseConfig(d.pgResult)
	if err != nil {
		return nil, err
	}
	// The tiny floor runs --concurrency transactions at once: pgxpool's
	// default of four connections (on two cores) would have the rest
	// wait for one, and the floor would not be what it says.
	resCfg.MaxConns = 64
	if d.pgRes, err = pgxpool.NewWithConfig(ctx, resCfg); err != nil {
		return nil, err
	}

	myAdmin, err := sql.Open("mysql", myDSN)
	if err != nil {
		return nil, err
	}
	defer myAdmin.Close()
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS " + sourceName + " CHARACTER SET utf8mb4",
		"DROP DATABASE IF EXISTS " + resultsName,
		"CREATE DATABASE " + resultsName + " CHARACTER SET utf8mb4",
		"DROP DATABASE IF EXISTS " + myTinyName,
		"CREATE DATABASE " + myTinyName + " CHARACTER SET utf8mb4",
	} {
		if _, err := myAdmin.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("mysql: %s: %w", stmt, err)
		}
	}
	if d.mySource, err = myDatabaseDSN(myDSN, sourceName); err != nil {
		return nil, err
	}
	if d.myResult, err = myDatabaseDSN(myDSN, resultsName); err != nil {
		return nil, err
	}
	if d.myTinyDSN, err = myDatabaseDSN(myDSN, myTinyName); err != nil {
		return nil, err
	}
	if d.my, err = sql.Open("mysql", d.mySource); err != nil {
		return nil, err
	}
	if d.myRes, err = sql.Open("mysql", d.myResult); err != nil {
		return nil, err
	}
	if d.myTiny, err = sql.Open("mysql", d.myTinyDSN); err != nil {
		return nil, err
	}
	// The tiny floor runs many transactions at once: with database/sql's
	// default of two idle connections, most would open a connection of
	// their own, and the floor would measure connecting.
	d.myTiny.SetMaxIdleConns(64)
	return d, nil
}

// dropScratch drops the MySQL one-row jobs' scratch database: its thousands
// of tables would otherwise stay until the next run.
func (d *dbs) dropScratch(ctx context.Context) error {
	if _, err := d.myRes.ExecContext(ctx, "DROP DATABASE IF EXISTS "+myTinyName); err != nil {
		return fmt.Errorf("mysql: drop %s: %w", myTinyName, err)
	}
	return nil
}

func (d *dbs) close() {
	if d.pgLock != nil {
		d.pgLock.Close(context.Background())
	}
	if d.myLock != nil {
		d.myLock.Close()
	}
	if d.myLockDB != nil {
		d.myLockDB.Close()
	}
	for _, c := range []*pgxpool.Pool{d.pg, d.pgRes} {
		if c != nil {
			c.Close()
		}
	}
	for _, c := range []*sql.DB{d.my, d.myRes, d.myTiny} {
		if c != nil {
			c.Close()
		}
	}
}

// entryValues are the values of row i of the entries tables, the same in
// both databases.
func entryValues(i int64) (id int64, user, amount, date, created, note string) {
	created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second).Format("2006-01-02 15:04:05")
	date = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(i%365)).Format(time.DateOnly)
	cents := (i * 7919) % 10_000_000
	return i, "USER" + strconv.FormatInt(i%1000, 10), fmt.Sprintf("%d.%02d", cents/100, cents%100), date, created,
		fmt.Sprintf("note %x", i*2654435761)
}

// ensureEntries creates the entries table of n rows in both source
// databases, if it is not there yet, and returns its name.
func (d *dbs) ensureEntries(ctx context.Context, n int64) (string, error) {
	table := fmt.Sprintf("entries_%d", n)
	var have int64
	_ = d.pg.QueryRow(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s", table)).Scan(&have)
	if have != n {
		stmts := []string{
			"DROP TABLE IF EXISTS " + table,
			fmt.Sprintf(`CREATE TABLE %s (id BIGINT PRIMARY KEY, user_id TEXT NOT NULL, amount NUMERIC(12,2) NOT NULL,
	entry_date DATE NOT NULL, created_at TIMESTAMP NOT NULL, note TEXT)`, table),
			fmt.Sprintf(`INSERT INTO %s SELECT g, 'USER' || (g %% 1000), ((g * 7919) %% 10000000) / 100.0,
	DATE '2024-01-01' + (g %% 365)::int, TIMESTAMP '2024-01-01' + g * INTERVAL '1 second', 'note ' || to_hex(g * 2654435761)
	FROM generate_series(1::bigint, %d) g`, table, n),
			"ANALYZE " + table,
		}
		for _, s := range stmts {
			if _, err := d.pg.Exec(ctx, s); err != nil {
				return "", fmt.Errorf("postgres: create %s: %w", table, err)
			}
		}
	}
	have = 0
	_ = d.my.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM %s", table)).Scan(&have)
	if have != n {
		for _, s := range []string{
			"DROP TABLE IF EXISTS " + table,
			fmt.Sprintf(`CREATE TABLE %s (id BIGINT PRIMARY KEY, user_id VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL,
	entry_date DATE NOT NULL, created_at DATETIME(6) NOT NULL, note TEXT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`, table),
		} {
			if _, err := d.my.ExecContext(ctx, s); err != nil {
				return "", fmt.Errorf("mysql: create %s: %w", table, err)
			}
		}
		var next atomic.Int64
		gen := readerFunc(func() ([]byte, bool) {
			i := next.Add(1)
			if i > n {
				return nil, false
			}
			id, user, amount, date, created, note := entryValues(i)
			return fmt.Appendf(nil, "%d\t%s\t%s\t%s\t%s\t%s\n", id, user, amount, date, created, note), true
		})
		if err := loadData(ctx, d.my, table, "id, user_id, amount, entry_date, created_at, note", gen); err != nil {
			return "", fmt.Errorf("mysql: fill %s: %w", table, err)
		}
	}
	return table, nil
}

// readerFunc is an io.Reader over lines a function produces.
type readerFunc func() ([]byte, bool)

func (f readerFunc) reader() io.Reader { return &lineReader{next: f} }

type lineReader struct {
	next func() ([]byte, bool)
	buf  []byte
}

func (r *lineReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		line, ok := r.next()
		if !ok {
			break
		}
		r.buf = append(r.buf, line...)
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// loadData runs LOAD DATA LOCAL INFILE from gen into table.
func loadData(ctx context.Context, db *sql.DB, table, cols string, gen readerFunc) error {
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	rd := gen.reader()
	mysql.RegisterReaderHandler(name, func() io.Reader { return rd })
	defer mysql.DeregisterReaderHandler(name)
	_, err := db.ExecContext(ctx, fmt.Sprintf(`LOAD DATA LOCAL INFILE 'Reader::%s' INTO TABLE %s CHARACTER SET utf8mb4
	FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' (%s)`, name, table, cols))
	return err
}
