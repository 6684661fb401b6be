package resultsink

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// A result of few rows (most report queries' summaries) is published in one
// step where the dialect allows (smallWriter): no staging table, no COPY,
// one round trip. Larger ones stream through a staging table.
const (
	smallMaxRows  = 500
	smallMaxBytes = 1 << 20
)

// smallWriter is a dialect that can create and fill final in the
// transaction that publishes it.
type smallWriter interface {
	writeSmall(ctx context.Context, db *sqlexec.DB, final string, cols []sqlexec.Column, rows [][]any, unlogged bool, fence Fence) (bool, error)
}

// bufferRows reads rows until limit rows or bytes; done reports that the rows
// ended within them.
func bufferRows(rows sqlexec.Rows, limit int) (buf [][]any, done bool, err error) {
	size := 0
	for len(buf) < limit && size < smallMaxBytes {
		if !rows.Next() {
			return buf, true, rows.Err()
		}
		vals := rows.Values()
		row := make([]any, len(vals))
		copy(row, vals) // the values themselves are not reused by Rows
		for _, v := range row {
			switch x := v.(type) {
			case string:
				size += len(x)
			case []byte:
				size += len(x)
			}
			size += 8
		}
		buf = append(buf, row)
	}
	return buf, false, nil
}

// prefixRows replays buffered rows, then goes on with the rest.
type prefixRows struct {
	sqlexec.Rows
	buf [][]any // nil once replayed
	i   int
	cur []any
}

func (r *prefixRows) Next() bool {
	if r.i < len(r.buf) {
		r.cur = r.buf[r.i]
		r.i++
		return true
	}
	r.buf = nil
	if !r.Rows.Next() {
		return false
	}
	r.cur = r.Rows.Values()
	return true
}

func (r *prefixRows) Values() []any { return r.cur }

func (d postgresDialect) writeSmall(ctx context.Context, db *sqlexec.DB, final string, cols []sqlexec.Column, rows [][]any, unlogged bool, fence Fence) (bool, error) {
	prefix := ""
	if unlogged {
		prefix = "UNLOGGED "
	}
	create := []string{createTableSQL(d, prefix, final, cols, "", false)}
	var insert string
	var lits []pgLiteralAt
	if len(rows) > 0 {
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = d.quote(c.Name)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", d.quote(final), strings.Join(names, ", "))
		for r, row := range rows {
			if r > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for i, v := range row {
				if i > 0 {
					b.WriteString(", ")
				}
				lit, err := pgLiteral(cols[i], v)
				if err != nil {
					return false, fmt.Errorf("column %q (row %d): %w", cols[i].Name, r+1, err)
				}
				lits = append(lits, pgLiteralAt{start: b.Len(), end: b.Len() + len(lit), row: r + 1, col: cols[i].Name})
				b.WriteString(lit)
			}
			b.WriteByte(')')
		}
		insert = b.String()
		create = append(create, insert)
	}
	finished, err := d.swap(ctx, db, final, int64(len(rows)), fence, create...)
	if err != nil {
		return false, pgLiteralError(err, insert, lits)
	}
	return finished, nil
}

// pgLiteralAt is where a value's literal is in the INSERT of small results.
type pgLiteralAt struct {
	start, end int // bytes
	row        int
	col        string
}

// pgLiteralError names the column and row of a value PostgreSQL refused in
// the INSERT of small results, from the error's position in the statement
// (a data exception, class 22, is only ever about a value).
func pgLiteralError(err error, insert string, lits []pgLiteralAt) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "22") || pgErr.Position < 1 {
		return err
	}
	// The position counts characters from 1.
	at, chars := -1, int32(0)
	for i := range insert {
		if chars++; chars == pgErr.Position {
			at = i
			break
		}
	}
	for _, l := range lits {
		if at >= l.start && at < l.end {
			return fmt.Errorf("column %q (row %d): %w", l.col, l.row, err)
		}
	}
	return err
}

// pgLiteral writes a value as a PostgreSQL literal of its column's type:
// a quoted string (standard_conforming_strings, so only quotes double) cast
// to the column's type, which PostgreSQL parses exactly.
func pgLiteral(c sqlexec.Column, v any) (string, error) {
	if v == nil {
		return "NULL", nil
	}
	var s string
	switch c.Type {
	case sqlexec.TypeInt64:
		return strconv.FormatInt(v.(int64), 10), nil
	case sqlexec.TypeUint64:
		return strconv.FormatUint(v.(uint64), 10), nil
	case sqlexec.TypeDecimal:
		s = v.(string)
		if _, err := parsePgDecimal(s); err != nil {
			return "", err
		}
	case sqlexec.TypeFloat64:
		f := v.(float64)
		switch {
		case math.IsNaN(f):
			s = "NaN"
		case math.IsInf(f, 1):
			s = "Infinity"
		case math.IsInf(f, -1):
			s = "-Infinity"
		default:
			s = strconv.FormatFloat(f, 'g', -1, 64)
		}
	case sqlexec.TypeBool:
		if v.(bool) {
			return "TRUE", nil
		}
		return "FALSE", nil
	case sqlexec.TypeDate:
		t := v.(time.Time)
		if t.Year() < 1 || t.Year() > 9999 {
			return "", fmt.Errorf("date %v out of range", t)
		}
		s = t.Format(time.DateOnly)
	case sqlexec.TypeTimestamp, sqlexec.TypeTimestampTZ:
		t := v.(time.Time)
		if err := microseconds(t); err != nil {
			return "", err
		}
		if t.Year() < 1 || t.Year() > 9999 {
			return "", fmt.Errorf("timestamp %v out of range", t)
		}
		if c.Type == sqlexec.TypeTimestampTZ {
			s = t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
		} else {
			s = t.Format("2006-01-02 15:04:05.999999")
		}
	case sqlexec.TypeBytes:
		s = `\x` + hex.EncodeToString(v.([]byte))
	default: // TypeText, TypeJSON
		s = v.(string)
		if strings.IndexByte(s, 0) >= 0 {
			return "", fmt.Errorf("PostgreSQL text cannot hold a NUL byte")
		}
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("PostgreSQL text must be UTF-8 (%.40q is not)", s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'::" + (postgresDialect{}).columnType(c), nil
}
