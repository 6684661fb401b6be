package sqlexec

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Dialect is the kind of database server.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
	SQLite   Dialect = "sqlite"
)

// Defaults for DBConfig. MaxIdle defaults to MaxActive: a pool that keeps
// fewer idle connections than the jobs it serves at once closes one as each
// job ends and opens one as the next begins, which on MySQL cost a one-row
// job more of the database's time than its query and its results together
// (a connection's handshake, session settings and ID). Idle MySQL
// connections still close after five minutes unused. PostgreSQL's pool
// (pgxpool) has no such cap: it closes idle connections after 30 minutes.
const (
	MaxActiveDefault      = 10
	ConnectTimeoutDefault = 10 * time.Second
)

// DBConfig configures one database connection pool.
type DBConfig struct {
	Name           string
	Type           Dialect
	DSN            string
	MaxIdle        int
	MaxActive      int
	ConnectTimeout time.Duration
}

// WithDefaults returns c with zero values replaced by defaults.
func (c DBConfig) WithDefaults() DBConfig {
	c.MaxActive = cmp.Or(c.MaxActive, MaxActiveDefault)
	c.MaxIdle = cmp.Or(c.MaxIdle, c.MaxActive)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, ConnectTimeoutDefault)
	return c
}

// Validate checks c. Errors name the offending key.
func (c DBConfig) Validate() error {
	switch c.Type {
	case Postgres, MySQL, SQLite:
	case "":
		return &KeyError{Key: "type", Err: errors.New(`required: "postgres", "mysql" or "sqlite"`)}
	default:
		return &KeyError{Key: "type", Err: fmt.Errorf(`unknown type %q: use "postgres", "mysql" or "sqlite"`, c.Type)}
	}
	if strings.TrimSpace(c.DSN) == "" {
		return &KeyError{Key: "dsn", Err: errors.New("required")}
	}
	if c.MaxActive < 0 {
		return &KeyError{Key: "max_active", Err: errors.New("must not be negative")}
	}
	if c.MaxIdle < 0 || c.MaxIdle > c.MaxActive {
		return &KeyError{Key: "max_idle", Err: fmt.Errorf("must be between 0 and max_active (%d)", c.MaxActive)}
	}
	if c.ConnectTimeout < 0 {
		return &KeyError{Key: "connect_timeout", Err: errors.New("must not be negative")}
	}
	return nil
}

// KeyError is a configuration error about one key.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// DB is a connection pool to one configured database. PostgreSQL goes through
// pgx's own pool (for binary rows, COPY and query cancellation); MySQL and
// SQLite through database/sql.
type DB struct {
	Name    string
	Dialect Dialect
	// MariaDB is set for a MySQL-dialect server that is MariaDB, whose
	// statement timeout and some DDL differ from MySQL's.
	MariaDB bool

	src source
}

// OpenOptions says what a pool is for.
type OpenOptions struct {
	// Results marks a pool that sql-jobber writes to: its sessions run in
	// UTC and, on MySQL, in strict mode, so that a value that does not fit
	// is an error rather than a silent truncation. Source pools keep the
	// server's session defaults, so that a task means what it means when a
	// user runs it by hand.
	Results bool
	// AsyncCommit (PostgreSQL) makes the sessions commit without waiting
	// for the disk: a crash of the database may lose the last moment of
	// commits, all of them after a point (the log is written in order).
	AsyncCommit bool
}

// Open opens the pool and checks that the database answers. Errors never
// contain the DSN.
func Open(ctx context.Context, cfg DBConfig, opts OpenOptions) (*DB, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db := &DB{Name: cfg.Name, Dialect: cfg.Type}
	// The one place that picks a database's source.
	var err error
	switch cfg.Type {
	case Postgres:
		db.src, err = openPostgres(ctx, cfg, opts)
	case MySQL:
		var my *mysqlSource
		if my, err = openMySQL(ctx, cfg, opts); err == nil {
			db.src, db.MariaDB = my, my.mariaDB
		}
	case SQLite:
		db.src, err = openSQLite(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// connect checks, within cfg.ConnectTimeout, that the newly opened s
// answers, then runs learn (if not nil) in the time left, to ask the server
// what s needs to know of it. s is closed if either fails.
func connect(ctx context.Context, cfg DBConfig, s source, learn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	err := s.ping(ctx)
	if err != nil {
		err = fmt.Errorf("connect: %w", redact(err))
	} else if learn != nil {
		err = learn(ctx)
	}
	if err != nil {
		s.close()
	}
	return err
}

// redact drops the DSN that some driver errors quote.
func redact(err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.Contains(err.Error(), "://") {
		return inner
	}
	return err
}

// Postgres returns the pgx pool of a PostgreSQL database, or nil.
func (db *DB) Postgres() *pgxpool.Pool { return db.src.pgxPool() }

// SQL returns the database/sql pool of a MySQL or SQLite database, or nil.
func (db *DB) SQL() *sql.DB { return db.src.sqlPool() }

// PoolStats counts a pool's connections.
type PoolStats struct {
	Open, InUse, Idle int
}

// Stats counts the pool's connections.
func (db *DB) Stats() PoolStats { return db.src.stats() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.src.ping(ctx) }

// Close closes the pool.
func (db *DB) Close() { db.src.close() }

// Scripts is, for a MySQL results pool, a pool whose statements may be
// several, separated by semicolons, sent and answered in one round trip
// (each answer a result set of its own); nil elsewhere. Its arguments are
// interpolated by the driver. Only fixed statements of sql-jobber's own go
// to it: a value spliced into one unescaped could run statements of its
// own there.
func (db *DB) Scripts() *sql.DB {
	if s, ok := db.src.(*mysqlSource); ok {
		return s.scripts
	}
	return nil
}

// Prepare prepares query on one connection to check it, returns the number
// of positional arguments it takes (-1 when the driver cannot tell), and
// closes the statement again.
func (db *DB) Prepare(ctx context.Context, query string) (int, error) {
	return db.src.prepare(ctx, query)
}
