package http

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// envResults serves the results tables that env's Succeed published, each
// under its job's ID, and fails every other call.
type envResults struct {
	failing
	env *resultsinktest.Env
}

func (s envResults) Results(ctx context.Context, id string, q resultsink.Query) (*resultsink.Page, error) {
	t := s.env.Table(id)
	if t.Version == "" {
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrJobNotFound, id)
	}
	return s.env.Reader.Read(ctx, t, q)
}

// resultsServer serves the results API of env.
func resultsServer(t *testing.T, env *resultsinktest.Env) string {
	t.Helper()
	srv := httptest.NewServer(NewServer(envResults{env: env}, Config{}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// get fetches path and returns its status, headers and body.
func get(t *testing.T, url string) (int, nethttp.Header, []byte) {
	t.Helper()
	res, err := nethttp.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, body
}

// cell is one value of an answer as the client sees it: its text (a JSON
// value as it is written, a CSV field unquoted), and whether it is NULL.
type cell struct {
	text string
	null bool
}

type resultsJSON struct {
	Status string `json:"status"`
	Data   struct {
		Columns []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"columns"`
		More bool                `json:"more"`
		Next *string             `json:"next"`
		Rows [][]json.RawMessage `json:"rows"`
	} `json:"data"`
}

// parseCSV reads RFC 4180 CSV, keeping apart an empty field (NULL) and a
// quoted empty one (an empty string).
func parseCSV(t *testing.T, b []byte) [][]cell {
	t.Helper()
	var rows [][]cell
	var row []cell
	s := string(b)
	for len(s) > 0 {
		var c cell
		if s[0] == '"' {
			end := 1
			for {
				i := strings.IndexByte(s[end:], '"')
				if i < 0 {
					t.Fatalf("unterminated quoted field in %q", b)
				}
				end += i + 1
				if end < len(s) && s[end] == '"' {
					end++
					continue
				}
				break
			}
			c.text = strings.ReplaceAll(s[1:end-1], `""`, `"`)
			s = s[end:]
		} else {
			i := strings.IndexAny(s, ",\r")
			c.text, c.null, s = s[:i], i == 0, s[i:]
		}
		row = append(row, c)
		switch {
		case strings.HasPrefix(s, ","):
			s = s[1:]
		case strings.HasPrefix(s, "\r\n"):
			rows, row, s = append(rows, row), nil, s[2:]
		default:
			t.Fatalf("CSV field not followed by a comma or CRLF: %q", s)
		}
	}
	return rows
}

// jsonCell reads a JSON value of a column of type typ, checking that it is
// of the JSON kind the API promises for the type.
func jsonCell(t *testing.T, typ string, raw json.RawMessage) cell {
	t.Helper()
	if string(raw) == "null" {
		return cell{null: true}
	}
	kind := raw[0]
	switch {
	case typ == "json":
		return cell{text: string(raw)}
	case typ == "bool" && (kind == 't' || kind == 'f'):
		return cell{text: string(raw)}
	case (typ == "int64" || typ == "uint64" || typ == "float64") && (kind == '-' || kind >= '0' && kind <= '9'):
		return cell{text: string(raw)}
	case kind == '"' && typ != "int64" && typ != "uint64" && typ != "bool":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return cell{text: s}
	}
	t.Errorf("a %s column holds %s", typ, raw)
	return cell{}
}

// fetchAll reads job id's results in format, as columns and cells.
func fetchAll(t *testing.T, base, id, format string) ([]sqlexec.Column, [][]cell) {
	t.Helper()
	status, h, body := get(t, base+"/jobs/"+id+"/results?format="+format)
	if status != 200 || h.Get(HeaderMore) != "false" {
		t.Fatalf("%s: %d %s %s", format, status, h, body)
	}
	// The columns and their types come from the JSON answer.
	_, _, jbody := get(t, base+"/jobs/"+id+"/results")
	var env resultsJSON
	if err := json.Unmarshal(jbody, &env); err != nil || env.Status != "success" || env.Data.More || env.Data.Next != nil {
		t.Fatalf("JSON envelope %s: %v", jbody, err)
	}
	var cols []sqlexec.Column
	types := map[string]sqlexec.Type{}
	for typ := sqlexec.TypeText; typ <= sqlexec.TypeBytes; typ++ {
		types[typ.String()] = typ
	}
	for _, c := range env.Data.Columns {
		typ, ok := types[c.Type]
		if !ok {
			t.Fatalf("column %s has type %q", c.Name, c.Type)
		}
		cols = append(cols, sqlexec.Column{Name: c.Name, Type: typ})
	}
	var rows [][]cell
	switch format {
	case "json":
		for _, r := range env.Data.Rows {
			var row []cell
			for i, raw := range r {
				row = append(row, jsonCell(t, env.Data.Columns[i].Type, raw))
			}
			rows = append(rows, row)
		}
	case "ndjson":
		for _, line := range strings.SplitAfter(string(body), "\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Fatalf("NDJSON line %q", line)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &obj); err != nil || len(obj) != len(cols) {
				t.Fatalf("NDJSON line %q: %v", line, err)
			}
			var row []cell
			for _, c := range env.Data.Columns {
				row = append(row, jsonCell(t, c.Type, obj[c.Name]))
			}
			rows = append(rows, row)
		}
	case "csv":
		rows = parseCSV(t, body)
		var header []string
		for _, c := range rows[0] {
			header = append(header, c.text)
		}
		var names []string
		for _, c := range cols {
			names = append(names, c.Name)
		}
		if strings.Join(header, ",") != strings.Join(names, ",") {
			t.Fatalf("CSV header %v, want %v", header, names)
		}
		rows = rows[1:]
	}
	return cols, rows
}

// TestResultsTypeMatrixInEachFormat reads the type matrix, written from
// every source dialect to every results dialect, in each format, and
// checks that every value reads back whole, with the JSON kind promised.
func TestResultsTypeMatrixInEachFormat(t *testing.T) {
	for _, srcDialect := range sqlexectest.Dialects {
		for _, resDialect := range sqlexectest.Dialects {
			t.Run(fmt.Sprintf("%s_to_%s", srcDialect, resDialect), func(t *testing.T) {
				t.Parallel()
				src := sqlexectest.Open(t, srcDialect, "src", sqlexec.OpenOptions{})
				cases := sqlexectest.SeedTypeMatrix(t, src)
				env := resultsinktest.NewEnv(t, resDialect, resultsink.ReaderConfig{})
				reg, err := sqlexec.NewRegistry([]*sqlexec.Task{{Name: "matrix", SQL: "SELECT * FROM src ORDER BY id", NumArgs: -1}},
					[]*sqlexec.DB{src}, []string{resultsinktest.BackendName})
				if err != nil {
					t.Fatal(err)
				}
				task, _ := reg.Task("matrix")
				rows, err := reg.Query(context.Background(), task, "src", nil)
				if err != nil {
					t.Fatal(err)
				}
				env.Succeed("matrix", rows)
				rows.Close()
				base := resultsServer(t, env)

				for _, format := range []string{"json", "ndjson", "csv"} {
					cols, got := fetchAll(t, base, "matrix", format)
					if len(cols) != len(cases)+1 || len(got) != 3 {
						t.Fatalf("%s: %d columns, %d rows", format, len(cols), len(got))
					}
					for row := range 3 {
						for i, c := range cases {
							col, g := cols[i+1], got[row][i+1]
							want := c.Want[row]
							var v any
							if !g.null {
								v, err = sqlexec.ParseText(col.Type, g.text)
								if err != nil {
									t.Errorf("%s row %d column %s: %v", format, row, c.Name, err)
									continue
								}
							}
							if col.Type == sqlexec.TypeJSON && !g.null && format != "csv" {
								compact, _ := json.Marshal(json.RawMessage(want))
								want = string(compact)
							}
							if s := sqlexectest.Canonical(col, v); s != want {
								t.Errorf("%s row %d column %s (%s): got %q, want %q", format, row, c.Name, col.Type, s, want)
							}
						}
					}
				}

				// A value as CSV spells it finds its row, whatever the type:
				// the first two rows differ in every column.
				cols, got := fetchAll(t, base, "matrix", "csv")
				for i, col := range cols[1:] {
					if col.Type == sqlexec.TypeJSON {
						continue // only null applies
					}
					q := url.Values{"format": {"csv"}, "filter[" + col.Name + "][eq]": {got[0][i+1].text}}
					status, _, body := get(t, base+"/jobs/matrix/results?"+q.Encode())
					if rows := parseCSV(t, body); status != 200 || len(rows) != 2 || rows[1][0].text != "0" {
						t.Errorf("%s = its first value: %d %q", col.Name, status, body)
					}
				}
			})
		}
	}
}

func TestResultsRequests(t *testing.T) {
	env := resultsinktest.NewEnv(t, sqlexec.SQLite, resultsink.ReaderConfig{PageSize: 2, MaxPageSize: 10})
	cols := []sqlexec.Column{{Name: "id", Type: sqlexec.TypeInt64}, {Name: "name", Type: sqlexec.TypeText}}
	names := []any{"b", "a", "", nil, "c,\"d\"\n"}
	env.Succeed("t", &resultsinktest.FuncRows{Cols: cols, N: len(names), Row: func(i int) []any { return []any{int64(i), names[i]} }})
	base := resultsServer(t, env)

	for _, tc := range []struct {
		query  string
		status int
		want   string // the body, or the start of the error message
	}{
		{"format=csv&order_by=-name", 200, "id,name\r\n4,\"c,\"\"d\"\"\n\"\r\n0,b\r\n"},
		{"format=csv&filter[name][null]=true", 200, "id,name\r\n3,\r\n"},
		{"format=csv&filter[name][eq]=", 200, "id,name\r\n2,\"\"\r\n"},
		{"format=ndjson&limit=1&filter[id][gte]=1", 200, `{"id":1,"name":"a"}` + "\n"},
		{"format=ndjson&filter[name][eq]=" + url.QueryEscape("' OR ''='"), 200, ""},
		{"format=xml", 400, `format: "xml" is not json, ndjson or csv`},
		{"limit=0", 400, `limit: "0" is not a positive integer`},
		{"limit=11", 400, "limit: must be between 1 and 10"},
		{"limit=1&limit=2", 400, "limit: given 2 times"},
		{"order_by=-", 400, "order_by: name a column"},
		{"sort=name", 400, `unknown parameter "sort"`},
		{"filter[name]=a", 400, "filter[name]: write filter[column][op]"},
		{"filter[][eq]=a", 400, "filter[][eq]: write filter[column][op]"},
		{"filter[name][like]=a%25", 400, `filter[name][like]: unknown operator "like"`},
		{"filter[id][eq]=1%3BDROP", 400, `filter[id][eq]: "1;DROP" is not a 64-bit integer`},
		{"filter[id][eq]=1;DROP", 400, "malformed query string: invalid semicolon separator in query"},
		{"order_by=" + url.QueryEscape(`name" DESC; DROP TABLE "results_t`), 400, `order_by: no column "name\" DESC; DROP TABLE \"results_t"`},
		{"filter[" + url.QueryEscape(`id] = 1 OR [id`) + "][eq]=1", 400, `filter[id] = 1 OR [id][eq]: no column "id] = 1 OR [id"`},
		{"cursor=x", 400, "cursor: is not a cursor this server made"},
	} {
		status, h, body := get(t, base+"/jobs/t/results?"+tc.query)
		if status != tc.status {
			t.Errorf("%s: %d %s", tc.query, status, body)
			continue
		}
		if status == 200 {
			if string(body) != tc.want {
				t.Errorf("%s: body %q, want %q", tc.query, body, tc.want)
			}
			continue
		}
		var env struct{ Message string }
		if err := json.Unmarshal(body, &env); err != nil || !strings.HasPrefix(env.Message, tc.want) || h.Get(HeaderMore) != "" {
			t.Errorf("%s: %s, want %q", tc.query, body, tc.want)
		}
	}

	// Pages: the headers say whether more rows follow, and where.
	status, h, body := get(t, base+"/jobs/t/results?format=csv&order_by=name")
	if status != 200 || string(body) != "id,name\r\n3,\r\n2,\"\"\r\n" || h.Get(HeaderMore) != "true" || h.Get("Content-Type") != "text/csv; charset=utf-8; header=present" {
		t.Fatalf("first page: %d %q %v", status, body, h)
	}
	next := h.Get(HeaderNextCursor)
	if link := h.Get("Link"); link != "</jobs/t/results?cursor="+next+`&format=csv&order_by=name>; rel="next"` {
		t.Fatalf("Link %q", link)
	}
	_, h, body = get(t, base+"/jobs/t/results?format=csv&order_by=name&cursor="+next)
	if string(body) != "id,name\r\n1,a\r\n0,b\r\n" || h.Get(HeaderMore) != "true" {
		t.Fatalf("second page: %q %v", body, h)
	}
	_, h, body = get(t, base+"/jobs/t/results?order_by=name&cursor="+h.Get(HeaderNextCursor))
	var page resultsJSON
	if err := json.Unmarshal(body, &page); err != nil || h.Get(HeaderMore) != "false" || page.Data.More || page.Data.Next != nil ||
		len(page.Data.Rows) != 1 || string(page.Data.Rows[0][0]) != "4" {
		t.Fatalf("last page: %s %v", body, h)
	}
	if status, _, _ := get(t, base+"/jobs/nope/results"); status != 404 {
		t.Fatalf("unknown job: %d", status)
	}
}

// FuzzResultsRequest: any query either reads as a request or is refused as
// a bad request naming a parameter; nothing panics.
func FuzzResultsRequest(f *testing.F) {
	for _, seed := range []string{"", "format=csv&limit=10", "order_by=-a", "filter[a][eq]=1&filter[a][gt]=0", "filter[a]=1",
		"filter[a][b][c]=1", "limit=-1", "cursor=abc&x=1", "filter%5Ba%5D%5Beq%5D=1", "filter[a][eq]=%00", "order_by=%ff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, p, err := resultsRequest(v)
		if err != nil {
			if status, _ := statusOf(err); status != 400 {
				t.Fatalf("%q: %v maps to %d", raw, err, status)
			}
			return
		}
		if _, ok := resultsFormats[p.format]; !ok || p.csvSafe != nil && p.format != "csv" || q.Limit < 0 || (q.Desc && q.OrderBy == "") {
			t.Fatalf("%q: accepted as %+v, %+v", raw, q, p)
		}
		if !cleanText(q.OrderBy) || !cleanText(q.Cursor) {
			t.Fatalf("%q: accepted NUL or invalid UTF-8: %+v", raw, q)
		}
		for _, f := range q.Filters {
			if f.Column == "" || f.Param == "" || !cleanText(f.Value) || !cleanText(f.Column) {
				t.Fatalf("%q: filter %+v", raw, f)
			}
		}
	})
}
