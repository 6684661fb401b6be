package resultsink_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// names reads the name column (the first) of rows.
func names(rows []string) string {
	var out []string
	for _, r := range rows {
		name, _, _ := strings.Cut(r, "|")
		out = append(out, name)
	}
	return strings.Join(out, ",")
}

func TestReaderSortsAndFilters(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		e := newReaderEnv(t, d, resultsink.ReaderConfig{})
		e.Succeed("people", peopleRows())
		f := func(col, op, v string) resultsink.Filter {
			return resultsink.Filter{Param: fmt.Sprintf("filter[%s][%s]", col, op), Column: col, Op: resultsink.Op(op), Value: v}
		}
		for _, tc := range []struct {
			name string
			q    resultsink.Query
			want string
		}{
			{"task order", resultsink.Query{}, "b,B,NULL,a b,é,a,a "},
			// Text by code point, NULL first; equal values in task order.
			{"by name", resultsink.Query{OrderBy: "name"}, "NULL,B,a,a ,a b,b,é"},
			{"by name descending", resultsink.Query{OrderBy: "name", Desc: true}, "é,b,a b,a ,a,B,NULL"},
			{"by amount", resultsink.Query{OrderBy: "amount"}, "a,NULL,a ,B,b,a b,é"},
			{"by amount descending", resultsink.Query{OrderBy: "amount", Desc: true}, "é,b,a b,B,a ,NULL,a"},
			{"by n", resultsink.Query{OrderBy: "n"}, "B,a b,a ,NULL,a,b,é"},
			{"by time", resultsink.Query{OrderBy: "at"}, "NULL,a b,b,a ,a,B,é"},
			{"by float", resultsink.Query{OrderBy: "f"}, "B,NULL,a,a b,b,a ,é"},
			{"float < 0", resultsink.Query{Filters: []resultsink.Filter{f("f", "lt", "0")}}, "NULL,a"},
			{"amount >= 10", resultsink.Query{Filters: []resultsink.Filter{f("amount", "gte", "10")}}, "b,a b,é"},
			{"amount = 10.5, any spelling", resultsink.Query{Filters: []resultsink.Filter{f("amount", "eq", "10.5000")}}, "b,a b"},
			{"amount < 9.5", resultsink.Query{Filters: []resultsink.Filter{f("amount", "lt", "9.5")}}, "NULL,a "},
			{"amount <= 9.5", resultsink.Query{Filters: []resultsink.Filter{f("amount", "lte", "9.5")}}, "B,NULL,a "},
			{"amount is null", resultsink.Query{Filters: []resultsink.Filter{f("amount", "null", "true")}}, "a"},
			{"name = a, exactly", resultsink.Query{Filters: []resultsink.Filter{f("name", "eq", "a")}}, "a"},
			{"name <> b", resultsink.Query{Filters: []resultsink.Filter{f("name", "ne", "b")}}, "B,a b,é,a,a "},
			{"name > a", resultsink.Query{Filters: []resultsink.Filter{f("name", "gt", "a")}, OrderBy: "name"}, "a ,a b,b,é"},
			{"n in [1, 3), by n descending", resultsink.Query{OrderBy: "n", Desc: true,
				Filters: []resultsink.Filter{f("n", "gte", "1"), f("n", "lt", "3")}}, "a,NULL"},
			{"n is not null and doc is null", resultsink.Query{Filters: []resultsink.Filter{f("n", "null", "false"), f("doc", "null", "true")}}, ""},
			{"time after", resultsink.Query{Filters: []resultsink.Filter{f("at", "gt", "2024-01-02T03:04:05Z")}}, "B,é,a"},
			{"time equal to the microsecond", resultsink.Query{Filters: []resultsink.Filter{f("at", "eq", "2024-01-02T03:04:05.000001Z")}}, "a"},
		} {
			rows, _, err := e.page("people", tc.q)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if got := names(rows); got != tc.want {
				t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestReaderRefusesBadQueriesNamingTheParameter(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		e := newReaderEnv(t, d, resultsink.ReaderConfig{PageSize: 2, MaxPageSize: 5})
		e.Succeed("people", peopleRows())
		f := func(col, op, v string) []resultsink.Filter {
			return []resultsink.Filter{{Param: "filter[" + col + "][" + op + "]", Column: col, Op: resultsink.Op(op), Value: v}}
		}
		_, first, err := e.page("people", resultsink.Query{OrderBy: "name"})
		if err != nil || !first.More {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			q    resultsink.Query
			want string
		}{
			{"limit over the maximum", resultsink.Query{Limit: 6}, "limit: must be between 1 and 5"},
			{"unknown column", resultsink.Query{OrderBy: "nope"}, `order_by: no column "nope": the columns are "name", "amount", "n", "at", "doc", "f"`},
			{"the row number is no column", resultsink.Query{OrderBy: resultsink.RowColumn}, `order_by: no column "_row"`},
			{"column names are exact", resultsink.Query{OrderBy: "NAME"}, `order_by: no column "NAME"`},
			{"injection in order_by", resultsink.Query{OrderBy: `name"; DROP TABLE results_people; --`}, `order_by: no column "name\"; DROP TABLE`},
			{"injection in a filter's column", resultsink.Query{Filters: f("name` = 1 OR 1=1 -- ", "eq", "x")}, "filter[name` = 1 OR 1=1 -- ][eq]: no column"},
			{"JSON has no order", resultsink.Query{OrderBy: "doc"}, `order_by: column "doc" holds JSON, which has no order`},
			{"JSON compares only with null", resultsink.Query{Filters: f("doc", "eq", "{}")}, "filter[doc][eq]: column \"doc\" holds JSON"},
			{"unknown operator", resultsink.Query{Filters: f("n", "like", "1")}, `filter[n][like]: unknown operator "like"`},
			{"not an integer", resultsink.Query{Filters: f("n", "eq", "1 OR 1=1")}, `filter[n][eq]: "1 OR 1=1" is not a 64-bit integer`},
			{"not a decimal", resultsink.Query{Filters: f("amount", "gt", "1e3")}, `filter[amount][gt]: "1e3" is not a decimal number`},
			{"not a time", resultsink.Query{Filters: f("at", "gt", "tomorrow")}, `filter[at][gt]: "tomorrow" is not a timestamp`},
			{"null takes a boolean", resultsink.Query{Filters: f("n", "null", "yes please")}, `filter[n][null]: "yes please" is not true or false`},
			{"NaN compares with nothing", resultsink.Query{Filters: f("f", "gt", "NaN")}, `filter[f][gt]: "NaN" is not a finite number`},
			{"a decimal NaN compares with nothing", resultsink.Query{Filters: f("amount", "eq", "NaN")}, `filter[amount][eq]: "NaN" is not a finite number`},
			{"nor does a decimal infinity", resultsink.Query{Filters: f("amount", "gte", "-Infinity")}, `filter[amount][gte]: "-Infinity" is not a finite number`},
			{"not a cursor", resultsink.Query{Cursor: "bm90IGEgY3Vyc29y"}, "cursor: is not a cursor this server made"},
			{"another query's cursor", resultsink.Query{Cursor: first.NextCursor}, "cursor: was made for another order_by or filter"},
			{"another query's cursor, reversed", resultsink.Query{OrderBy: "name", Desc: true, Cursor: first.NextCursor}, "cursor: was made for another order_by or filter"},
		} {
			if strings.Contains(tc.name, "JSON") && d == sqlexec.MySQL {
				continue // MySQL's results hold JSON as text, which sorts.
			}
			_, _, err := e.page("people", tc.q)
			var qe *resultsink.QueryError
			if !errors.As(err, &qe) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%s: %v\nwant %s", tc.name, err, tc.want)
			}
		}
		// Values the database could not compare exactly.
		if d != sqlexec.SQLite {
			_, _, err := e.page("people", resultsink.Query{Filters: f("at", "eq", "2024-01-02T03:04:05.0000001Z")})
			if err == nil || !strings.HasPrefix(err.Error(), "filter[at][eq]: ") || !strings.Contains(err.Error(), "sub-microsecond") {
				t.Errorf("nanoseconds: %v", err)
			}
		}
		if d == sqlexec.MySQL {
			_, _, err := e.page("people", resultsink.Query{Filters: f("amount", "gt", "0.0000000000000000000000000000001")})
			if err == nil || !strings.HasPrefix(err.Error(), "filter[amount][gt]: ") || !strings.Contains(err.Error(), "DECIMAL(65,30)") {
				t.Errorf("31 decimal places on MySQL: %v", err)
			}
		}
		// Values are only ever bound: an injection in one is a value that
		// matches nothing, and the table is intact.
		for _, v := range []string{`' OR '1'='1`, `a'; DROP TABLE results_people; --`, `a" OR "1"="1`, "a`"} {
			rows, _, err := e.page("people", resultsink.Query{Filters: f("name", "eq", v)})
			if err != nil || len(rows) != 0 {
				t.Errorf("name = %q: %v, %v", v, rows, err)
			}
		}
		if n, err := countRows(context.Background(), e.Backend.DB(), "results_people"); err != nil || n != int64(len(people)) {
			t.Fatalf("the table after injection attempts: %d rows, %v", n, err)
		}
	})
}

// TestReaderStaleCursorsAndMissingTables: a cursor of an earlier version of
// a table is refused once the table is replaced; a table that is not there,
// or that has no row numbers, says so.
func TestReaderStaleCursorsAndMissingTables(t *testing.T) {
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		ctx := context.Background()
		e := newReaderEnv(t, d, resultsink.ReaderConfig{PageSize: 2})
		e.Succeed("people", peopleRows())
		_, p, err := e.page("people", resultsink.Query{})
		if err != nil || !p.More {
			t.Fatalf("first page: %v", err)
		}
		e.Succeed("people", peopleRows())
		if _, _, err := e.page("people", resultsink.Query{Cursor: p.NextCursor}); !errors.Is(err, resultsink.ErrCursorStale) {
			t.Fatalf("cursor of an earlier run: %v", err)
		}

		if err := e.Backend.Drop(ctx, "results_people"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.page("people", resultsink.Query{}); !errors.Is(err, resultsink.ErrNoTable) {
			t.Fatalf("a dropped table: %v", err)
		}
		sqlexectest.Exec(t, e.Backend.DB(), "CREATE TABLE results_old (x INTEGER)")
		if _, _, err := e.page("old", resultsink.Query{}); !errors.Is(err, resultsink.ErrNoRowColumn) {
			t.Fatalf("a table without row numbers: %v", err)
		}
	})
}

// TestReaderPagesNeverSkipOrRepeat pages through 10,001 rows 1,000 at a
// time, in the task's order and sorted by a column full of ties and NULLs,
// forwards and backwards.
func TestReaderPagesNeverSkipOrRepeat(t *testing.T) {
	const n = 10_001
	group := func(i int) any {
		if i%11 == 0 {
			return nil
		}
		return int64(i % 7)
	}
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "grp", Type: sqlexec.TypeInt64}, {Name: "label", Type: sqlexec.TypeText}}
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		e := newReaderEnv(t, d, resultsink.ReaderConfig{PageSize: 1000})
		e.Succeed("big", rowsOf(cols, n, func(i int) []any {
			return []any{int64(i), group(i), fmt.Sprintf("row %d", i)}
		}))
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		row := func(i int) string {
			g := "NULL"
			if v := group(i); v != nil {
				g = fmt.Sprint(v)
			}
			return fmt.Sprintf("%d|%s|row %d", i, g, i)
		}
		// NULLs first ascending, ties in task order.
		key := func(i int) int {
			if g := group(i); g != nil {
				return int(g.(int64))
			}
			return -1
		}
		for _, tc := range []struct {
			name string
			q    resultsink.Query
			less func(a, b int) int
		}{
			{"task order", resultsink.Query{}, func(a, b int) int { return a - b }},
			{"by grp", resultsink.Query{OrderBy: "grp"}, func(a, b int) int { return cmpOr(key(a)-key(b), a-b) }},
			{"by grp descending", resultsink.Query{OrderBy: "grp", Desc: true}, func(a, b int) int { return cmpOr(key(b)-key(a), a-b) }},
			{"filtered by grp", resultsink.Query{OrderBy: "label", Filters: []resultsink.Filter{{Param: "f", Column: "grp", Op: resultsink.OpNe, Value: "3"}}},
				func(a, b int) int { return strings.Compare(fmt.Sprintf("row %d", a), fmt.Sprintf("row %d", b)) }},
		} {
			order := slices.Clone(want)
			if len(tc.q.Filters) > 0 {
				order = slices.DeleteFunc(order, func(i int) bool { return group(i) == nil || group(i).(int64) == 3 })
			}
			slices.SortStableFunc(order, tc.less)
			var wantRows []string
			for _, i := range order {
				wantRows = append(wantRows, row(i))
			}
			got, pages := e.all("big", tc.q)
			if len(got) != len(wantRows) || !slices.Equal(got, wantRows) {
				t.Errorf("%s: %d rows in %d pages, want %d", tc.name, len(got), pages, len(wantRows))
				for i := range min(len(got), len(wantRows)) {
					if got[i] != wantRows[i] {
						t.Errorf("%s: first difference at %d: %s, want %s", tc.name, i, got[i], wantRows[i])
						break
					}
				}
			}
			if wantPages := (len(wantRows) + 999) / 1000; pages != wantPages {
				t.Errorf("%s: %d pages, want %d", tc.name, pages, wantPages)
			}
		}
	})
}

// TestReaderPagesThroughLongText pages through texts that differ only after
// their first 2,000 bytes. MySQL sorts text by its first max_sort_length
// bytes (1,024), so there they are all equal and keep the task's order;
// the pages agree with that order all the same.
func TestReaderPagesThroughLongText(t *testing.T) {
	const n = 30
	prefix := strings.Repeat("x", 2000)
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "t", Type: sqlexec.TypeText}}
	sqlexectest.EachDialect(t, func(t *testing.T, d sqlexec.Dialect) {
		e := newReaderEnv(t, d, resultsink.ReaderConfig{})
		e.Succeed("long", rowsOf(cols, n, func(i int) []any { return []any{int64(i), fmt.Sprintf("%s%03d", prefix, n-1-i)} }))
		rows, pages := e.all("long", resultsink.Query{OrderBy: "t", Limit: 7})
		var ids []string
		for _, r := range rows {
			id, _, _ := strings.Cut(r, "|")
			ids = append(ids, id)
		}
		var want []string
		for i := range n {
			want = append(want, fmt.Sprint(n-1-i))
			if d == sqlexec.MySQL {
				want[i] = fmt.Sprint(i)
			}
		}
		if !slices.Equal(ids, want) || pages != 5 {
			t.Fatalf("ids %v in %d pages, want %v", ids, pages, want)
		}
	})
}

func TestReaderConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  resultsink.ReaderConfig
		want string
	}{
		{resultsink.ReaderConfig{PageSize: -1}, "results_page_size: must be at least 1"},
		{resultsink.ReaderConfig{PageSize: 10, MaxPageSize: 5}, "results_max_page_size: must be at least results_page_size (10)"},
	} {
		if err := tc.cfg.WithDefaults().Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v", tc.cfg, err)
		}
	}
	if c := (resultsink.ReaderConfig{}).WithDefaults(); c.PageSize != 1000 || c.MaxPageSize != 1_000_000 {
		t.Errorf("defaults %+v", c)
	}
	if c := (resultsink.ReaderConfig{MaxPageSize: 10}).WithDefaults(); c.PageSize != 10 {
		t.Errorf("a maximum below the default page size: %+v", c)
	}
}
