package sqlexec

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// postgresSource reads from PostgreSQL through pgx's own pool, for binary
// rows, COPY and query cancellation.
type postgresSource struct{ pool *pgxpool.Pool }

var _ source = (*postgresSource)(nil)

// openPostgres opens a pgx pool and checks that the database answers.
func openPostgres(ctx context.Context, cfg DBConfig, opts OpenOptions) (*postgresSource, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, &KeyError{Key: "dsn", Err: fmt.Errorf("invalid PostgreSQL DSN: %w", redact(err))}
	}
	pcfg.MaxConns = int32(cfg.MaxActive)
	pcfg.MinIdleConns = 0
	pcfg.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	rp := pcfg.ConnConfig.RuntimeParams
	if opts.Results {
		rp["timezone"] = "UTC"
		// Results are written as literals in places: backslashes must
		// be plain characters.
		rp["standard_conforming_strings"] = "on"
	}
	if opts.AsyncCommit {
		rp["synchronous_commit"] = "off"
	}
	if rp["application_name"] == "" {
		rp["application_name"] = "sql-jobber"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	s := &postgresSource{pool: pool}
	if err := connect(ctx, cfg, s, nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *postgresSource) pgxPool() *pgxpool.Pool { return s.pool }
func (s *postgresSource) sqlPool() *sql.DB       { return nil }

func (s *postgresSource) ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *postgresSource) stats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{Open: int(st.TotalConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns())}
}

func (s *postgresSource) close() { s.pool.Close() }

func (s *postgresSource) prepare(ctx context.Context, query string) (int, error) {
	conn, err := s.pool.Acquire(ctx)
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

func (s *postgresSource) querier() Querier { return pgQuerier{q: s.pool} }

func (s *postgresSource) inTx(ctx context.Context, fn func(Querier) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(pgQuerier{q: tx}) })
}

// pgBinaryOIDs are the types decoded from PostgreSQL's binary format. Every
// other type travels in text format, which is exact for numeric, keeps JSON
// byte for byte, and gives the canonical spelling of types sql-jobber stores
// as text (uuid, interval, arrays, ...).
var pgBinaryOIDs = pgx.QueryResultFormatsByOID{
	pgtype.Int2OID:        pgx.BinaryFormatCode,
	pgtype.Int4OID:        pgx.BinaryFormatCode,
	pgtype.Int8OID:        pgx.BinaryFormatCode,
	pgtype.OIDOID:         pgx.BinaryFormatCode,
	pgtype.Float8OID:      pgx.BinaryFormatCode,
	pgtype.BoolOID:        pgx.BinaryFormatCode,
	pgtype.DateOID:        pgx.BinaryFormatCode,
	pgtype.TimestampOID:   pgx.BinaryFormatCode,
	pgtype.TimestamptzOID: pgx.BinaryFormatCode,
	pgtype.ByteaOID:       pgx.BinaryFormatCode,
}

// pgEpoch is where PostgreSQL's binary dates and timestamps count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *postgresSource) query(ctx context.Context, t *Task, args []any) (Rows, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	cleanupCtx := context.WithoutCancel(ctx)
	var tx pgx.Tx
	release := func() {
		if tx != nil {
			// A read that ended early leaves nothing to keep; rollback
			// also clears the statement_timeout set for it.
			ctx, cancel := context.WithTimeout(cleanupCtx, 10*time.Second)
			_ = tx.Rollback(ctx)
			cancel()
		}
		conn.Release()
	}
	var q pgQueryer = conn
	if t.Timeout > 0 {
		// SET LOCAL scopes the timeout to this transaction, so that a
		// pooled connection never keeps it.
		tx, err = conn.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)",
				strconv.FormatInt(t.Timeout.Milliseconds(), 10))
		}
		if err != nil {
			release()
			return nil, err
		}
		q = tx
	}
	mode := pgx.QueryExecModeCacheStatement
	if t.Raw {
		mode = pgx.QueryExecModeDescribeExec
	}
	return pgQuery(ctx, q, t.SQL, mode, args, release)
}

// pgQueryer is a pooled connection or a transaction.
type pgQueryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pgQuery runs query on q and returns its typed rows; release (if not nil)
// runs when the rows are closed, or at once if the query fails.
func pgQuery(ctx context.Context, q pgQueryer, query string, mode pgx.QueryExecMode, args []any, release func()) (*pgRows, error) {
	r := &pgRows{release: release}
	var err error
	r.rows, err = q.Query(ctx, query, append([]any{mode, pgBinaryOIDs}, args...)...)
	if err != nil {
		r.Close()
		return nil, err
	}
	fds := r.rows.FieldDescriptions()
	r.decodedRow = decodedRow{cols: make([]Column, len(fds)), dec: make([]decoder, len(fds)), vals: make([]any, len(fds))}
	if len(fds) == 0 {
		// pgx gives no columns when the query failed before describing
		// them (e.g. a statement timeout): the error is in the rows.
		r.rows.Next()
		if err := r.rows.Err(); err != nil {
			r.Close()
			return nil, err
		}
	}
	for i, fd := range fds {
		r.cols[i], r.dec[i] = pgColumn(fd)
	}
	return r, nil
}

// pgReadConn is a ReadTx's connection to PostgreSQL.
type pgReadConn struct{ conn *pgxpool.Conn }

func (s *postgresSource) readConn(ctx context.Context) (readConn, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return pgReadConn{conn: conn}, nil
}

func (c pgReadConn) begin(ctx context.Context) error {
	return c.exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
}

func (c pgReadConn) exec(ctx context.Context, stmt string) error {
	_, err := c.conn.Exec(ctx, stmt)
	return err
}

func (c pgReadConn) query(ctx context.Context, query string, args []any) (Rows, error) {
	return pgQuery(ctx, c.conn, query, pgx.QueryExecModeDescribeExec, args, nil)
}

func (c pgReadConn) end(ctx context.Context) error {
	err := c.exec(ctx, "ROLLBACK")
	// The pool closes a connection left inside a transaction.
	c.conn.Release()
	return err
}

type pgRows struct {
	decodedRow
	rows    pgx.Rows
	release func()
	closed  bool
}

func (r *pgRows) Next() bool {
	return r.err == nil && r.rows.Next() && decode(&r.decodedRow, r.rows.RawValues())
}

var _ WireRows = (*pgRows)(nil)

func (r *pgRows) Wire() (Dialect, []WireColumn) {
	fds := r.rows.FieldDescriptions()
	out := make([]WireColumn, len(fds))
	for i, fd := range fds {
		out[i] = WireColumn{OID: fd.DataTypeOID, Binary: fd.Format == pgx.BinaryFormatCode}
	}
	return Postgres, out
}

func (r *pgRows) NextWire() bool { return r.err == nil && r.rows.Next() }

func (r *pgRows) WireValues() [][]byte { return r.rows.RawValues() }

func (r *pgRows) DecodeWire(i int, b []byte) (any, error) { return r.dec[i](b) }

func (r *pgRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if r.rows != nil {
		return r.rows.Err()
	}
	return nil
}

func (r *pgRows) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rows != nil {
		r.rows.Close()
	}
	if r.release != nil {
		r.release()
	}
	return nil
}

// pgColumn maps a PostgreSQL result column to its portable type and the
// decoder for the format it arrives in.
func pgColumn(fd pgconn.FieldDescription) (Column, decoder) {
	col := Column{Name: fd.Name}
	binary := fd.Format == pgx.BinaryFormatCode
	switch fd.DataTypeOID {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		col.Type = TypeInt64
		if binary {
			return col, pgBinaryInt
		}
		return col, textInt
	case pgtype.OIDOID:
		col.Type = TypeInt64
		if binary {
			return col, pgBinaryOID
		}
		return col, textInt
	case pgtype.NumericOID:
		col.Type = TypeDecimal
		if fd.TypeModifier >= 4 {
			mod := fd.TypeModifier - 4
			col.Precision, col.Scale = int(mod>>16&0xffff), int(mod&0xffff)
			if col.Scale > col.Precision { // negative scale (PostgreSQL 15+): keep unconstrained
				col.Precision, col.Scale = 0, 0
			}
		}
		return col, textString
	case pgtype.Float4OID, pgtype.Float8OID:
		col.Type = TypeFloat64
		if binary {
			return col, pgBinaryFloat8
		}
		// float4 arrives as text: its shortest spelling ("0.1") is the
		// value a user sees, where widening the binary float32 would
		// store 0.10000000149011612.
		return col, textFloat
	case pgtype.BoolOID:
		col.Type = TypeBool
		if binary {
			return col, pgBinaryBool
		}
		return col, textBool
	case pgtype.DateOID:
		col.Type = TypeDate
		if binary {
			return col, pgBinaryDate
		}
		return col, textDate
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		col.Type = TypeTimestamp
		if fd.DataTypeOID == pgtype.TimestamptzOID {
			col.Type = TypeTimestampTZ
		}
		if binary {
			return col, pgBinaryTimestamp
		}
		return col, textTimestamp
	case pgtype.JSONOID, pgtype.JSONBOID:
		col.Type = TypeJSON
		return col, textString
	case pgtype.ByteaOID:
		col.Type = TypeBytes
		if binary {
			return col, copyBytes
		}
		return col, pgTextBytea
	default:
		col.Type = TypeText
		return col, textString
	}
}

var errPgSize = errors.New("unexpected binary value size")

func pgBinaryInt(b []byte) (any, error) {
	switch len(b) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b))), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))), nil
	case 8:
		return int64(binary.BigEndian.Uint64(b)), nil
	}
	return nil, errPgSize
}

// pgBinaryOID reads an oid, which is unsigned.
func pgBinaryOID(b []byte) (any, error) {
	if len(b) != 4 {
		return nil, errPgSize
	}
	return int64(binary.BigEndian.Uint32(b)), nil
}

func pgBinaryFloat8(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, errPgSize
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

func pgBinaryBool(b []byte) (any, error) {
	if len(b) != 1 {
		return nil, errPgSize
	}
	return b[0] != 0, nil
}

func pgBinaryDate(b []byte) (any, error) {
	if len(b) != 4 {
		return nil, errPgSize
	}
	days := int32(binary.BigEndian.Uint32(b))
	if days == math.MaxInt32 || days == math.MinInt32 {
		return nil, errors.New("date infinity has no portable representation")
	}
	return pgEpoch.AddDate(0, 0, int(days)), nil
}

func pgBinaryTimestamp(b []byte) (any, error) {
	if len(b) != 8 {
		return nil, errPgSize
	}
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return nil, errors.New("timestamp infinity has no portable representation")
	}
	return pgEpoch.Add(time.Duration(us%86_400_000_000)*time.Microsecond).AddDate(0, 0, int(us/86_400_000_000)), nil
}

// pgTextBytea decodes bytea's hex text format (\x...).
func pgTextBytea(b []byte) (any, error) {
	h, ok := bytes.CutPrefix(b, []byte(`\x`))
	if !ok {
		return nil, errors.New("bytea text is not in hex format")
	}
	out := make([]byte, hex.DecodedLen(len(h)))
	_, err := hex.Decode(out, h)
	return out, err
}
