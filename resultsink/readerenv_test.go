package resultsink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// readerEnv reads pages of results.
type readerEnv struct {
	*resultsinktest.Env
	t *testing.T
}

func newReaderEnv(t *testing.T, d sqlexec.Dialect, cfg resultsink.ReaderConfig) *readerEnv {
	return &readerEnv{Env: resultsinktest.NewEnv(t, d, cfg), t: t}
}

// page reads one page as text forms ("NULL" for NULL), one string a row
// with the values separated by "|".
func (e *readerEnv) page(id string, q resultsink.Query) ([]string, *resultsink.Page, error) {
	e.t.Helper()
	p, err := e.Reader.Read(context.Background(), e.Table(id), q)
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	var out []string
	for p.Rows.Next() {
		var vals []string
		for i, v := range p.Rows.Values() {
			if v == nil {
				vals = append(vals, "NULL")
				continue
			}
			vals = append(vals, sqlexec.FormatText(p.Columns[i].Type, v))
		}
		out = append(out, strings.Join(vals, "|"))
	}
	return out, p, p.Rows.Err()
}

// all reads every page of q, following the cursors, and counts the pages.
func (e *readerEnv) all(id string, q resultsink.Query) ([]string, int) {
	e.t.Helper()
	var out []string
	for pages := 1; ; pages++ {
		rows, p, err := e.page(id, q)
		if err != nil {
			e.t.Fatalf("page %d: %v", pages, err)
		}
		out = append(out, rows...)
		if pages > 1000 {
			e.t.Fatalf("%d pages, and more to come", pages)
		}
		if !p.More {
			if p.NextCursor != "" {
				e.t.Fatalf("last page has a cursor")
			}
			return out, pages
		}
		if len(rows) != cmpOr(q.Limit, resultsink.PageSizeDefault) {
			e.t.Fatalf("page %d has %d rows but more follow", pages, len(rows))
		}
		q.Cursor = p.NextCursor
	}
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

var peopleCols = []sqlexec.Column{
	{Name: "name", Type: sqlexec.TypeText},
	{Name: "amount", Type: sqlexec.TypeDecimal, Precision: 12, Scale: 2},
	{Name: "n", Type: sqlexec.TypeInt64},
	{Name: "at", Type: sqlexec.TypeTimestampTZ},
	{Name: "doc", Type: sqlexec.TypeJSON},
	{Name: "f", Type: sqlexec.TypeFloat64},
}

// people is the known table of the sort and filter tests, in insert order.
var people = [][]any{
	{"b", "10.50", int64(3), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), `{"a": 1}`, 1.5},
	{"B", "9.50", nil, time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC), nil, nil},
	{nil, "-1.00", int64(1), nil, `[]`, -2.0},
	{"a b", "10.50", int64(-7), time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), `{}`, 0.0},
	{"é", "100.00", int64(3), time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), `1`, 1e300},
	{"a", nil, int64(2), time.Date(2024, 1, 2, 3, 4, 5, 1000, time.UTC), `"x"`, -0.5},
	{"a ", "0.00", int64(0), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), `null`, 3.25},
}

func peopleRows() sqlexec.Rows {
	return rowsOf(peopleCols, len(people), func(i int) []any { return people[i] })
}

// rowsOf yields n rows made by row.
func rowsOf(cols []sqlexec.Column, n int, row func(i int) []any) sqlexec.Rows {
	return &resultsinktest.FuncRows{Cols: cols, N: n, Row: row}
}
