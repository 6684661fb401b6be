package sqlexec

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
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

// Defaults for DBConfig.
const (
	MaxActiveDefault      = 10
	MaxIdleDefault        = 2
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
	c.MaxIdle = cmp.Or(c.MaxIdle, min(MaxIdleDefault, c.MaxActive))
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

	pg  *pgxpool.Pool
	sql *sql.DB
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
	var err error
	switch cfg.Type {
	case Postgres:
		db.pg, err = openPostgres(ctx, cfg, opts)
	case MySQL:
		db.sql, err = openMySQL(cfg, opts)
	case SQLite:
		db.sql, err = openSQLite(cfg)
	}
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := db.Ping(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect: %w", redact(err))
	}
	if cfg.Type == MySQL {
		var version string
		if err := db.sql.QueryRowContext(pingCtx, "SELECT VERSION()").Scan(&version); err != nil {
			db.Close()
			return nil, fmt.Errorf("server version: %w", err)
		}
		db.MariaDB = strings.Contains(strings.ToLower(version), "mariadb")
	}
	return db, nil
}

// redact drops the DSN that some driver errors quote.
func redact(err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.Contains(err.Error(), "://") {
		return inner
	}
	return err
}

// Postgres returns the pgx pool of a PostgreSQL database, or nil.
func (db *DB) Postgres() *pgxpool.Pool { return db.pg }

// SQL returns the database/sql pool of a MySQL or SQLite database, or nil.
func (db *DB) SQL() *sql.DB { return db.sql }

// PoolStats counts a pool's connections.
type PoolStats struct {
	Open, InUse, Idle int
}

// Stats counts the pool's connections.
func (db *DB) Stats() PoolStats {
	if db.pg != nil {
		st := db.pg.Stat()
		return PoolStats{Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns())}
	}
	st := db.sql.Stats()
	return PoolStats{Open: st.OpenConnections, InUse: st.InUse, Idle: st.Idle}
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if db.pg != nil {
		return db.pg.Ping(ctx)
	}
	return db.sql.PingContext(ctx)
}

// Close closes the pool.
func (db *DB) Close() {
	if db.pg != nil {
		db.pg.Close()
	}
	if db.sql != nil {
		db.sql.Close()
	}
}

// Prepare prepares query on one connection to check it, returns the number
// of positional arguments it takes (-1 when the driver cannot tell), and
// closes the statement again.
func (db *DB) Prepare(ctx context.Context, query string) (int, error) {
	if db.pg != nil {
		conn, err := db.pg.Acquire(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Release()
		// The unnamed statement: nothing to deallocate.
		sd, err := conn.Conn().Prepare(ctx, "", query)
		if err != nil {
			return 0, err
		}
		return len(sd.ParamOIDs), nil
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := -1
	err = conn.Raw(func(dc any) error {
		var (
			st  driver.Stmt
			err error
		)
		if p, ok := dc.(driver.ConnPrepareContext); ok {
			st, err = p.PrepareContext(ctx, query)
		} else {
			st, err = dc.(driver.Conn).Prepare(query)
		}
		if err != nil {
			return err
		}
		n = st.NumInput()
		return st.Close()
	})
	if err == nil && n < 0 && db.Dialect == SQLite {
		n = sqliteParamCount(query)
	}
	return n, err
}
