package resultsink

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Defaults for ReaderConfig.
const (
	PageSizeDefault    = 1000
	MaxPageSizeDefault = 1_000_000
)

// ReaderConfig configures reading results.
type ReaderConfig struct {
	// PageSize is how many rows a page has when the reader does not say.
	PageSize int
	// MaxPageSize is the most rows a page may have.
	MaxPageSize int
}

// WithDefaults returns c with zero values replaced by defaults.
func (c ReaderConfig) WithDefaults() ReaderConfig {
	if c.MaxPageSize == 0 {
		c.MaxPageSize = max(MaxPageSizeDefault, c.PageSize)
	}
	if c.PageSize == 0 {
		c.PageSize = min(PageSizeDefault, c.MaxPageSize)
	}
	return c
}

// Validate checks c. Errors name the offending key.
func (c ReaderConfig) Validate() error {
	if c.PageSize < 1 {
		return &sqlexec.KeyError{Key: "results_page_size", Err: errors.New("must be at least 1")}
	}
	if c.MaxPageSize < c.PageSize {
		return &sqlexec.KeyError{Key: "results_max_page_size", Err: fmt.Errorf("must be at least results_page_size (%d)", c.PageSize)}
	}
	return nil
}

// ErrCursorStale means a cursor belongs to an earlier version of its table,
// which a later run of the job replaced.
var ErrCursorStale = errors.New("cursor: the job has run again since this cursor was made, replacing its results; start again from the first page")

// ErrNoTable means a results table does not exist: dropped meanwhile, or by
// hand.
var ErrNoTable = errors.New("its results table no longer exists")

// ErrNoRowColumn means a results table has no RowColumn: an older
// sql-jobber wrote it, and it cannot be paged.
var ErrNoRowColumn = fmt.Errorf("its results table has no %s column (an older sql-jobber wrote it): run the job again to read it here", RowColumn)

// QueryError is a read request that cannot be answered as it is, naming the
// request parameter at fault.
type QueryError struct {
	Param string
	Err   error
}

func (e *QueryError) Error() string { return e.Param + ": " + e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }

func queryErr(param, format string, args ...any) error {
	return &QueryError{Param: param, Err: fmt.Errorf(format, args...)}
}

// Op compares a column with a filter's value.
type Op string

// Filter operators. OpNull's value is "true" (the column is NULL) or
// "false" (it is not); the others compare with the value as SQL does, so a
// NULL matches none of them.
const (
	OpEq   Op = "eq"
	OpNe   Op = "ne"
	OpLt   Op = "lt"
	OpLte  Op = "lte"
	OpGt   Op = "gt"
	OpGte  Op = "gte"
	OpNull Op = "null"
)

var opSQL = map[Op]string{OpEq: "=", OpNe: "<>", OpLt: "<", OpLte: "<=", OpGt: ">", OpGte: ">="}

// Filter keeps the rows whose Column compares to Value with Op.
type Filter struct {
	// Param is the request parameter that asked for the filter, named in
	// errors (e.g. "filter[amount][gte]").
	Param  string
	Column string
	Op     Op
	// Value is in the column type's text form (see sqlexec.ParseText).
	Value string
}

// Query says which rows of a job's results to read, in which order.
type Query struct {
	// OrderBy is the column to sort by; "" keeps the task's order. Desc
	// sorts it from the largest value down.
	OrderBy string
	Desc    bool
	// Filters keep the rows that pass all of them.
	Filters []Filter
	// Limit is the most rows to read; 0 means the configured page size.
	Limit int
	// Cursor, from an earlier page of the same query, reads the rows that
	// follow that page.
	Cursor string
}

// Page is one page of a job's results.
type Page struct {
	Columns []sqlexec.Column
	// More says whether rows follow this page; NextCursor, a Query's
	// Cursor, reads them.
	More       bool
	NextCursor string
	// Rows are the page's rows, in order. Read them, then Close the page.
	Rows sqlexec.Rows
	tx   *sqlexec.ReadTx
}

// Close releases the page's rows and its database connection.
func (p *Page) Close() error {
	return errors.Join(p.Rows.Close(), p.tx.Close())
}

// Table is a published results table to read.
type Table struct {
	// Backend names the results backend the table is in.
	Backend string
	Name    string
	// Version names the publication (a job's run): a cursor made on
	// another version is stale.
	Version string
}

// Reader reads results tables through their backends' pools.
//
// Rows are in a total order: by the order column if there is one (NULLs
// first ascending, last descending; text by Unicode code point, numbers
// and times by value; on MySQL, text and bytes by their first
// max_sort_length bytes, as its ORDER BY sorts them), then by RowColumn, the
// row's place in the task's order, which no two rows share. A cursor holds
// the place in that order of the first row of the next page, and the next
// page starts there: pages never skip or repeat a row. Each page is read in
// one snapshot of its table, and results tables never change once
// published; a cursor of a version whose table was since replaced is
// refused (ErrCursorStale).
type Reader struct {
	backends map[string]*Backend
	cfg      ReaderConfig
}

// NewReader returns a reader of the results tables in backends.
func NewReader(backends []*Backend, cfg ReaderConfig) (*Reader, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{backends: map[string]*Backend{}, cfg: cfg}
	for _, b := range backends {
		r.backends[b.Name] = b
	}
	return r, nil
}

// Read opens a page of table t. It returns *QueryError for a query that
// does not fit the table, ErrCursorStale, ErrNoTable, ErrNoRowColumn, and
// *UnavailableError (sqljobber.ErrUnavailable) when the table's backend
// cannot be reached.
func (r *Reader) Read(ctx context.Context, t Table, q Query) (*Page, error) {
	limit := cmp.Or(q.Limit, r.cfg.PageSize)
	if limit < 1 || limit > r.cfg.MaxPageSize {
		return nil, queryErr("limit", "must be between 1 and %d", r.cfg.MaxPageSize)
	}
	b, ok := r.backends[t.Backend]
	if !ok {
		return nil, fmt.Errorf("results backend %q of table %q is not configured on this node", t.Backend, t.Name)
	}
	var cur *cursor
	if q.Cursor != "" {
		var err error
		if cur, err = decodeCursor(q.Cursor); err != nil {
			return nil, err
		}
		if cur.Run != t.Version {
			return nil, ErrCursorStale
		}
		if cur.Query != q.fingerprint() {
			return nil, queryErr("cursor", "was made for another order_by or filter; keep them as they were, or start again without a cursor")
		}
	}

	tx, err := b.db.BeginRead(ctx, b.d.readPrelude(t.Name)...)
	if err != nil {
		return nil, b.unreachable(ctx, b.missing(ctx, t.Name, err))
	}
	p, err := b.read(ctx, tx, t, q, cur, limit)
	if err != nil {
		tx.Close()
		return nil, b.unreachable(ctx, err)
	}
	return p, nil
}

// UnavailableError is a results backend that could not be reached: its
// connections refused, reset, timed out or lost. It is
// sqljobber.ErrUnavailable (asking again later may succeed) and wraps the
// driver's error. Its text names the backend by its configured name and
// leaves out the driver's error, which can name the database's host, user
// and database.
type UnavailableError struct {
	Backend string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("results backend %q cannot be reached; try again later", e.Backend)
}

func (e *UnavailableError) Unwrap() []error { return []error{sqljobber.ErrUnavailable, e.Err} }

// unreachable makes err an *UnavailableError if it says that the backend's
// database could not be reached, and the caller has not gone away (then
// ctx's end is the cause).
func (b *Backend) unreachable(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || !sqlexec.ConnectionFailed(err) {
		return err
	}
	return &UnavailableError{Backend: b.Name, Err: err}
}

// missing turns the failure to read a table into ErrNoTable if the table is
// not there.
func (b *Backend) missing(ctx context.Context, table string, err error) error {
	names, lerr := b.d.tables(ctx, b.db, table)
	if lerr != nil || slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, table) }) {
		return fmt.Errorf("read results table %s: %w", table, err)
	}
	return ErrNoTable
}

// read reads a page of t in tx.
func (b *Backend) read(ctx context.Context, tx *sqlexec.ReadTx, t Table, q Query, cur *cursor, limit int) (*Page, error) {
	table := b.d.quote(t.Name)
	cols, err := b.tableColumns(ctx, tx, t.Name)
	if err != nil {
		return nil, err
	}
	plan, err := b.plan(table, cols, q, cur)
	if err != nil {
		return nil, err
	}

	// The rows are numbered 1..n, so the largest number is their count.
	total, err := queryInt(ctx, tx, fmt.Sprintf("SELECT MAX(%s) FROM %s", b.d.quote(RowColumn), table))
	if err != nil {
		return nil, err
	}
	p := &Page{Columns: cols, tx: tx}
	next := &cursor{Run: t.Version, Query: q.fingerprint()}
	switch {
	case int64(limit) >= total:
		// No more rows than that in the whole table.
	case plan.order == nil && len(q.Filters) == 0:
		// Every row, in number order: the next page starts limit on.
		next.Row = max(cur.row(), 1) + int64(limit)
		p.More = next.Row <= total
	default:
		if p.More, err = b.probe(ctx, tx, plan, limit, next); err != nil {
			return nil, err
		}
	}
	if p.More {
		p.NextCursor = next.encode()
	}

	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = b.d.quote(c.Name)
	}
	if p.Rows, err = tx.Query(ctx, plan.sql(names, limit, 0), plan.args...); err != nil {
		return nil, err
	}
	return p, nil
}

// probe finds where the page after this one starts, its first row, and
// records its place in next. It reports whether there is one.
func (b *Backend) probe(ctx context.Context, tx *sqlexec.ReadTx, plan *readPlan, limit int, next *cursor) (bool, error) {
	key := []string{b.d.quote(RowColumn)}
	if plan.order != nil {
		key = append([]string{b.d.quote(plan.order.Name)}, key...)
	}
	rows, err := tx.Query(ctx, plan.sql(key, 1, limit), plan.args...)
	if err != nil {
		return false, err
	}
	found := rows.Next()
	if found {
		vals := rows.Values()
		next.Row = vals[len(vals)-1].(int64)
		if plan.order != nil && vals[0] != nil {
			k := sqlexec.FormatText(plan.order.Type, vals[0])
			next.Key = &k
		}
	}
	return found, errors.Join(rows.Err(), rows.Close())
}

// tableColumns reads the columns of a table, as its rows will be typed,
// without RowColumn.
func (b *Backend) tableColumns(ctx context.Context, tx *sqlexec.ReadTx, table string) ([]sqlexec.Column, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT * FROM %s WHERE 1 = 0", b.d.quote(table)))
	if err != nil {
		return nil, b.missing(ctx, table, err)
	}
	cols := slices.Clone(rows.Columns())
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(cols) == 0 || cols[len(cols)-1].Name != RowColumn {
		return nil, ErrNoRowColumn
	}
	return cols[:len(cols)-1], nil
}

func queryInt(ctx context.Context, tx *sqlexec.ReadTx, query string) (int64, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return 0, err
	}
	var n int64
	if rows.Next() {
		if v, ok := rows.Values()[0].(int64); ok {
			n = v
		}
	}
	return n, errors.Join(rows.Err(), rows.Close())
}

// readPlan is the FROM, WHERE and ORDER BY of a page's queries, and their
// arguments.
type readPlan struct {
	from, where, orderBy string
	args                 []any
	order                *sqlexec.Column // nil: by RowColumn alone
}

// sql selects cols under the plan.
func (p *readPlan) sql(cols []string, limit, offset int) string {
	s := "SELECT " + strings.Join(cols, ", ") + " FROM " + p.from
	if p.where != "" {
		s += " WHERE " + p.where
	}
	s += " ORDER BY " + p.orderBy + " LIMIT " + strconv.Itoa(limit)
	if offset > 0 {
		s += " OFFSET " + strconv.Itoa(offset)
	}
	return s
}

// sqlArgs accumulates bound arguments and hands out their placeholders.
type sqlArgs struct {
	d    dialect
	args []any
}

func (a *sqlArgs) add(c sqlexec.Column, v any) string {
	a.args = append(a.args, v)
	return a.d.param(c, len(a.args))
}

// plan checks q against the table's columns and builds its SQL. Column
// names only ever reach the SQL quoted, and only when they are the table's
// own; values only as bound arguments.
func (b *Backend) plan(table string, cols []sqlexec.Column, q Query, cur *cursor) (*readPlan, error) {
	find := func(param, name string) (*sqlexec.Column, error) {
		i := slices.IndexFunc(cols, func(c sqlexec.Column) bool { return c.Name == name })
		if i < 0 {
			names := make([]string, len(cols))
			for i, c := range cols {
				names[i] = strconv.Quote(c.Name)
			}
			return nil, queryErr(param, "no column %q: the columns are %s", name, strings.Join(names, ", "))
		}
		return &cols[i], nil
	}
	d := b.d
	a := &sqlArgs{d: d}
	var where []string
	for _, f := range q.Filters {
		c, err := find(f.Param, f.Column)
		if err != nil {
			return nil, err
		}
		if f.Op == OpNull {
			isNull, err := strconv.ParseBool(f.Value)
			if err != nil {
				return nil, queryErr(f.Param, "%q is not true or false", f.Value)
			}
			test := " IS NOT NULL"
			if isNull {
				test = " IS NULL"
			}
			where = append(where, d.quote(c.Name)+test)
			continue
		}
		op, ok := opSQL[f.Op]
		if !ok {
			return nil, queryErr(f.Param, "unknown operator %q: use eq, ne, lt, lte, gt, gte or null", f.Op)
		}
		if c.Type == sqlexec.TypeJSON {
			return nil, queryErr(f.Param, "column %q holds JSON, which has no order: only null applies", c.Name)
		}
		v, err := bindValue(d, *c, f.Value, false)
		if err != nil {
			return nil, &QueryError{Param: f.Param, Err: err}
		}
		where = append(where, d.key(*c, d.quote(c.Name), true)+" "+op+" "+d.key(*c, a.add(*c, v), true))
	}

	row := d.quote(RowColumn)
	p := &readPlan{from: table, orderBy: row}
	if q.OrderBy != "" {
		c, err := find("order_by", q.OrderBy)
		if err != nil {
			return nil, err
		}
		if c.Type == sqlexec.TypeJSON {
			return nil, queryErr("order_by", "column %q holds JSON, which has no order", c.Name)
		}
		p.order = c
		dir := " ASC"
		if q.Desc {
			dir = " DESC"
		}
		p.orderBy = d.key(*c, d.quote(c.Name), false) + dir + d.nullsOrder(q.Desc) + ", " + row
	}
	if cur != nil {
		from, err := p.after(d, a, cur, q.Desc)
		if err != nil {
			return nil, err
		}
		where = append(where, from)
	}
	p.where = strings.Join(where, " AND ")
	p.args = a.args
	return p, nil
}

// after is the condition that keeps the rows from cur's row on, in the
// plan's order (NULLs first ascending, last descending). Placeholders are
// added in the order they appear, as MySQL's and SQLite's "?" need.
func (p *readPlan) after(d dialect, a *sqlArgs, cur *cursor, desc bool) (string, error) {
	rowCol := sqlexec.Column{Name: RowColumn, Type: sqlexec.TypeInt64}
	rowFrom := func() string { return d.quote(RowColumn) + " >= " + a.add(rowCol, cur.Row) }
	if p.order == nil {
		return rowFrom(), nil
	}
	col := d.quote(p.order.Name)
	expr := d.key(*p.order, col, false)
	if cur.Key == nil {
		s := "(" + col + " IS NULL AND " + rowFrom() + ")"
		if !desc {
			s = "(" + s + " OR " + col + " IS NOT NULL)"
		}
		return s, nil
	}
	v, err := bindValue(d, *p.order, *cur.Key, true)
	if err != nil {
		return "", queryErr("cursor", "is not a cursor this server made")
	}
	cmp := " > "
	if desc {
		cmp = " < "
	}
	s := "(" + expr + cmp + d.key(*p.order, a.add(*p.order, v), false)
	s += " OR (" + expr + " = " + d.key(*p.order, a.add(*p.order, v), false) + " AND " + rowFrom() + ")"
	if desc {
		s += " OR " + col + " IS NULL"
	}
	return s + ")", nil
}

// bindValue reads a filter's (or a cursor's) value of column c and converts
// it to what d binds. A cursor may hold values a filter may not: NaN and
// infinities, which a filter would compare in surprising ways.
func bindValue(d dialect, c sqlexec.Column, s string, fromCursor bool) (any, error) {
	v, err := sqlexec.ParseText(c.Type, s)
	if err != nil {
		return nil, err
	}
	if fromCursor {
		return d.bind(c, v)
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil, fmt.Errorf("%q is not a finite number", s)
	}
	if c.Type == sqlexec.TypeDecimal && sqlexec.NonFiniteDecimal(s) {
		return nil, fmt.Errorf("%q is not a finite number", s)
	}
	return d.bind(c, v)
}

// cursor is where a page starts: the place in the read order of its first
// row.
type cursor struct {
	Run   string  `json:"r"`           // the version of the table it reads
	Query string  `json:"q"`           // the order and filters it is for
	Key   *string `json:"k,omitempty"` // the order column's value, text form; nil for NULL
	Row   int64   `json:"i"`           // the row's RowColumn
}

func (c *cursor) row() int64 {
	if c == nil {
		return 0
	}
	return c.Row
}

func (c *cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Row < 1 {
		return nil, queryErr("cursor", "is not a cursor this server made")
	}
	return &c, nil
}

// fingerprint identifies a query's order and filters, whatever the order
// of the filters.
func (q Query) fingerprint() string {
	parts := []string{strconv.Quote(q.OrderBy) + strconv.FormatBool(q.Desc)}
	for _, f := range q.Filters {
		parts = append(parts, strconv.Quote(f.Column)+string(f.Op)+strconv.Quote(f.Value))
	}
	slices.Sort(parts[1:])
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(sum[:8])
}
