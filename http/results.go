package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Headers of a results answer, in every format.
const (
	// HeaderMore is "true" when rows follow the page, else "false".
	HeaderMore = "Sql-Jobber-More"
	// HeaderNextCursor is the cursor of the next page, when there is one.
	HeaderNextCursor = "Sql-Jobber-Next-Cursor"
)

// resultsFormats maps the format parameter to the encoder of the format.
var resultsFormats = map[string]func(w io.Writer) rowEncoder{
	"json":   func(w io.Writer) rowEncoder { return &jsonEncoder{w: w} },
	"ndjson": func(w io.Writer) rowEncoder { return &ndjsonEncoder{w: w} },
	"csv":    func(w io.Writer) rowEncoder { return &csvEncoder{w: w} },
}

// resultsParams are how a results page is written.
type resultsParams struct {
	format string
	// csvSafe: neutralise formula cells in CSV; nil when not asked.
	csvSafe *bool
}

// resultsRequest reads the query of GET /jobs/{jobID}/results: format, limit,
// cursor, order_by, filter[column][op] and csv_safe. Anything else is
// refused, naming the parameter.
func resultsRequest(v url.Values) (resultsink.Query, resultsParams, error) {
	var q resultsink.Query
	p, err := resultsQuery(v, &q)
	if err == nil && p.csvSafe != nil && p.format != "csv" {
		err = badRequest{msg: "csv_safe: only applies to format=csv"}
	}
	return q, p, err
}

func resultsQuery(v url.Values, q *resultsink.Query) (resultsParams, error) {
	p := resultsParams{format: "json"}
	for _, key := range slices.Sorted(maps.Keys(v)) {
		// Text the databases cannot hold (PostgreSQL refuses NUL and
		// invalid UTF-8) would fail there as an internal error.
		if !cleanText(key) {
			return p, badRequest{msg: fmt.Sprintf("parameter %s: its name holds a NUL byte or is not UTF-8", quote(key))}
		}
		if len(v[key]) > 1 {
			return p, badRequest{msg: fmt.Sprintf("%s: given %d times; give it once", clip(key), len(v[key]))}
		}
		val := v.Get(key)
		if !cleanText(val) {
			return p, badRequest{msg: fmt.Sprintf("%s: holds a NUL byte or is not UTF-8", clip(key))}
		}
		switch {
		case key == "format":
			if _, ok := resultsFormats[val]; !ok {
				return p, badRequest{msg: fmt.Sprintf("format: %s is not json, ndjson or csv", quote(val))}
			}
			p.format = val
		case key == "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return p, badRequest{msg: fmt.Sprintf("limit: %s is not a positive integer", quote(val))}
			}
			q.Limit = n
		case key == "cursor":
			q.Cursor = val
		case key == "csv_safe":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return p, badRequest{msg: fmt.Sprintf("csv_safe: %s is not true or false", quote(val))}
			}
			p.csvSafe = &b
		case key == "order_by":
			q.OrderBy, q.Desc = strings.CutPrefix(val, "-")
			if q.OrderBy == "" {
				return p, badRequest{msg: "order_by: name a column, with a '-' before it to sort descending"}
			}
		case strings.HasPrefix(key, "filter[") && strings.HasSuffix(key, "]"):
			inner := key[len("filter[") : len(key)-1]
			i := strings.LastIndex(inner, "][")
			if i < 1 {
				return p, badRequest{msg: fmt.Sprintf("%s: write filter[column][op], op one of eq, ne, lt, lte, gt, gte, null", clip(key))}
			}
			q.Filters = append(q.Filters, resultsink.Filter{Param: key, Column: inner[:i], Op: resultsink.Op(inner[i+2:]), Value: val})
		default:
			return p, badRequest{msg: fmt.Sprintf("unknown parameter %s: use format, limit, cursor, order_by, filter[column][op] or csv_safe", quote(key))}
		}
	}
	return p, nil
}

// cleanText reports whether s is UTF-8 without NUL bytes.
func cleanText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

func (s *Server) handleResults(w http.ResponseWriter, r *http.Request) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// r.URL.Query() would drop what it cannot read.
		s.writeError(w, r, badRequest{msg: "malformed query string: " + clip(err.Error())})
		return
	}
	q, params, err := resultsRequest(vals)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// A read holds a results database connection until its last row is
	// sent: one client must not take them all.
	leave, err := s.hold(r, readsGate, "results reads")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer leave()
	page, err := s.svc.Results(r.Context(), mux.Vars(r)["jobID"], q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer page.Close()

	h := w.Header()
	h.Set(HeaderMore, strconv.FormatBool(page.More))
	if page.More {
		h.Set(HeaderNextCursor, page.NextCursor)
		next := *r.URL
		vals := next.Query()
		vals.Set("cursor", page.NextCursor)
		next.RawQuery = vals.Encode()
		h.Set("Link", "<"+next.RequestURI()+`>; rel="next"`)
	}
	out := &errWriter{w: w}
	bw := bufio.NewWriterSize(out, 32<<10)
	enc := resultsFormats[params.format](bw)
	if c, ok := enc.(*csvEncoder); ok {
		c.safe = s.cfg.CSVSafe
		if params.csvSafe != nil {
			c.safe = *params.csvSafe
		}
	}
	h.Set("Content-Type", enc.contentType())
	w.WriteHeader(http.StatusOK)

	enc.begin(page.Columns, page.More, page.NextCursor)
	for out.err == nil && page.Rows.Next() {
		enc.row(page.Columns, page.Rows.Values())
	}
	if err := page.Rows.Err(); err != nil && out.err == nil && r.Context().Err() == nil {
		// The status is sent: abort the answer, so that the client sees
		// a broken one rather than a short one.
		s.logger.Error("results stream failed", slog.String("route", routeOf(r)), slog.String("error_code", sqlexec.ErrorCode(err)))
		panic(http.ErrAbortHandler)
	}
	enc.end()
	_ = bw.Flush()
}

// errWriter remembers the first write error (the client went away), so
// that the rows stop being read.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// rowEncoder writes a page of results in one format, a row at a time.
type rowEncoder interface {
	contentType() string
	begin(cols []sqlexec.Column, more bool, next string)
	row(cols []sqlexec.Column, vals []any)
	end()
}

// jsonEncoder writes the JSON envelope: {"status": "success", "data":
// {"columns": [{"name", "type"}], "more", "next", "rows": [[...], ...]}}.
type jsonEncoder struct {
	w    io.Writer
	buf  []byte
	rows int
	js   bytes.Buffer
}

func (e *jsonEncoder) contentType() string { return "application/json; charset=utf-8" }

func (e *jsonEncoder) begin(cols []sqlexec.Column, more bool, next string) {
	b := append(e.buf[:0], `{"status":"success","data":{"columns":[`...)
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, c.Name)
		b = append(b, `,"type":`...)
		b = appendJSONString(b, c.Type.String())
		b = append(b, '}')
	}
	b = append(b, `],"more":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, `,"next":`...)
	if more {
		b = appendJSONString(b, next)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"rows":[`...)
	e.buf = b
	_, _ = e.w.Write(b)
}

func (e *jsonEncoder) row(cols []sqlexec.Column, vals []any) {
	b := e.buf[:0]
	if e.rows > 0 {
		b = append(b, ',')
	}
	e.rows++
	b = append(b, "\n["...)
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONValue(b, &e.js, cols[i].Type, v)
	}
	e.buf = append(b, ']')
	_, _ = e.w.Write(e.buf)
}

func (e *jsonEncoder) end() { _, _ = io.WriteString(e.w, "\n]}}\n") }

// ndjsonEncoder writes one JSON object a row, keyed by column name.
type ndjsonEncoder struct {
	w    io.Writer
	keys [][]byte // `"name":` of each column
	buf  []byte
	js   bytes.Buffer
}

func (e *ndjsonEncoder) contentType() string { return "application/x-ndjson" }

func (e *ndjsonEncoder) begin(cols []sqlexec.Column, _ bool, _ string) {
	for _, c := range cols {
		e.keys = append(e.keys, append(appendJSONString(nil, c.Name), ':'))
	}
}

func (e *ndjsonEncoder) row(cols []sqlexec.Column, vals []any) {
	b := append(e.buf[:0], '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.keys[i]...)
		b = appendJSONValue(b, &e.js, cols[i].Type, v)
	}
	e.buf = append(b, '}', '\n')
	_, _ = e.w.Write(e.buf)
}

func (e *ndjsonEncoder) end() {}

// csvEncoder writes RFC 4180 CSV with a header row. NULL is an empty field;
// an empty string is a quoted empty field ("").
type csvEncoder struct {
	w   io.Writer
	buf []byte
	// safe: cells that a spreadsheet would run as a formula begin with
	// a "'" (the OWASP advice on CSV injection).
	safe bool
}

// formulaLead reports whether a spreadsheet may read a cell that starts
// as s does as a formula.
func formulaLead(s string) bool {
	return s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0
}

// neutral is cell s as a safe CSV writes it. Numbers are not formulas:
// a numeric column keeps its "-5".
func (e *csvEncoder) neutral(t sqlexec.Type, s string) string {
	if !e.safe || !formulaLead(s) {
		return s
	}
	switch t {
	case sqlexec.TypeInt64, sqlexec.TypeUint64, sqlexec.TypeDecimal, sqlexec.TypeFloat64:
		return s
	}
	return "'" + s
}

func (e *csvEncoder) contentType() string { return "text/csv; charset=utf-8; header=present" }

func (e *csvEncoder) begin(cols []sqlexec.Column, _ bool, _ string) {
	b := e.buf[:0]
	for i, c := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendCSVField(b, e.neutral(sqlexec.TypeText, c.Name))
	}
	e.buf = append(b, '\r', '\n')
	_, _ = e.w.Write(e.buf)
}

func (e *csvEncoder) row(cols []sqlexec.Column, vals []any) {
	b := e.buf[:0]
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		if v != nil {
			b = appendCSVField(b, e.neutral(cols[i].Type, sqlexec.FormatText(cols[i].Type, v)))
		}
	}
	e.buf = append(b, '\r', '\n')
	_, _ = e.w.Write(e.buf)
}

func (e *csvEncoder) end() {}

// appendCSVField quotes a field that is empty (so that it differs from
// NULL), holds a comma, quote or line break, or starts with a space.
func appendCSVField(b []byte, s string) []byte {
	if s != "" && !strings.ContainsAny(s, ",\"\r\n") && s[0] != ' ' && s[0] != '\t' {
		return append(b, s...)
	}
	b = append(b, '"')
	b = append(b, strings.ReplaceAll(s, `"`, `""`)...)
	return append(b, '"')
}

// appendJSONValue appends a value of a column of type t: integers and
// finite floats as numbers, booleans as booleans, JSON as itself (without
// insignificant white space), anything else as a string of its text form
// (decimals, non-finite floats, times, base64 bytes). js is scratch space.
func appendJSONValue(b []byte, js *bytes.Buffer, t sqlexec.Type, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case uint64:
		return strconv.AppendUint(b, x, 10)
	case float64:
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		if t == sqlexec.TypeJSON {
			js.Reset()
			if json.Compact(js, []byte(x)) == nil {
				return append(b, js.Bytes()...)
			}
		}
	}
	return appendJSONString(b, sqlexec.FormatText(t, v))
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json has it.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
