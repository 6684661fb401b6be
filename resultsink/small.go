package resultsink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/resultsink/wire"
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
// transaction that publishes it, or in one statement that publishes it. It
// may answer errStage, having changed nothing, when its small path does
// not apply.
type smallWriter interface {
	writeSmall(ctx context.Context, db *sqlexec.DB, final string, cols []sqlexec.Column, rows [][]any, unlogged bool, fence Fence) (bool, error)
}

// errStage is a smallWriter's answer for a result that is to go through a
// staging table after all.
var errStage = errors.New("publish through a staging table")

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
		types := make([]string, len(cols))
		for i, c := range cols {
			names[i], types[i] = d.quote(c.Name), d.columnType(c)
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
				lit, err := wire.PgLiteral(cols[i].Type, types[i], v)
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
	if d.group != nil && fence.Token == 1 && fence.here(db) {
		// The first run of its ID, with its SUCCESS in this database:
		// with the others finishing now, in one transaction.
		stmts, _, _ := d.swapStatements(final, int64(len(rows)), fence, true, false, create)
		err := d.group.publish(&pendingPublication{ctx: ctx, db: db, final: final, stmts: stmts})
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, errPublishAlone) {
			return false, err
		}
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
