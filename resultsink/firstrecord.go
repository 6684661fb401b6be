package resultsink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sql-jobber/sql-jobber/internal/batch"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Batches of first fence records (MySQL). A small result published in one
// statement (writeSmall) first inserts its table's fence record, in a
// commit of its own before the table's, and only while its run owns its
// job. The records of the results that arrive while one batch is being
// written go into the next, in one statement and one commit, as the
// ledger's admissions and SUCCESSes do. A batch that fails (one of its
// names has a record already, say) hands its records back to be inserted
// one by one. Nothing waits to fill a batch.
const (
	// recordBatchMax bounds a batch (six arguments a record).
	recordBatchMax = 64
	// recordTimeout bounds a batch's statement whatever its callers'
	// deadlines, which each caller's own wait still honours.
	recordTimeout = 30 * time.Second
)

// firstRecords queues the first fence records of one results database
// whose ledger shares it, waiting to be inserted.
type firstRecords struct {
	d mysqlDialect
	q batch.Queue[*pendingRecord]
}

type pendingRecord struct {
	ctx   context.Context
	db    *sqlexec.DB
	table string
	fence Fence
	done  chan error // buffered: the writer never blocks on it
}

func (p *pendingRecord) BatchKey() string { return p.table }

// errAlone hands a record back to its caller, to insert it by itself.
var errAlone = errors.New("insert the fence record alone")

// record inserts table's first fence record (see mysqlDialect.recordFirst),
// with the records that arrive meanwhile.
func (f *firstRecords) record(ctx context.Context, db *sqlexec.DB, table string, fence Fence) error {
	p := &pendingRecord{ctx: ctx, db: db, table: table, fence: fence, done: make(chan error, 1)}
	f.q.Add(p, batch.Limits{Max: recordBatchMax}, f.insert)
	var err error
	select {
	case err = <-p.done:
	case <-ctx.Done():
		// The record may have been inserted: the caller's publication
		// fails, and the job's next run finds the record and stages.
		return ctx.Err()
	}
	if errors.Is(err, errAlone) {
		return f.d.recordOne(ctx, db, table, fence)
	}
	return err
}

// insert writes batch: a batch of one as alone, a larger one in one
// INSERT ... SELECT whose every row depends on its run's ownership.
func (f *firstRecords) insert(records []*pendingRecord) {
	live, ctx, cancel := batch.Live(records, func(p *pendingRecord) context.Context { return p.ctx },
		func(p *pendingRecord, err error) { p.done <- err }, recordTimeout)
	defer cancel()
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		p := live[0]
		p.done <- f.d.recordOne(ctx, p.db, p.table, p.fence)
		return
	}
	recorded, inserted, err := f.d.recordMany(ctx, live)
	for _, p := range live {
		switch {
		case err != nil && !inserted:
			p.done <- errAlone
		case err != nil:
			p.done <- err
		case recorded[p.table]:
			p.done <- nil
		default:
			p.done <- ErrFenced
		}
	}
}

// recordFirst inserts final's first fence record before final is created
// by one statement: with the records of other publications when the
// ledger shares this database, else alone. It returns errStage if the name
// has a record (an earlier publication), ErrFenced if the run no longer
// owns its job.
func (d mysqlDialect) recordFirst(ctx context.Context, db *sqlexec.DB, final string, fence Fence) error {
	if d.records != nil && fence.here(db) {
		return d.records.record(ctx, db, final, fence)
	}
	return d.recordOne(ctx, db, final, fence)
}

// recordOne inserts final's first fence record by itself: only while the
// run owns its job, checked by the one statement when the ledger is here.
func (d mysqlDialect) recordOne(ctx context.Context, db *sqlexec.DB, final string, fence Fence) error {
	insert, args := fmt.Sprintf("INSERT INTO %s (table_name, token) VALUES (?, ?)", d.quote(fenceTable)), []any{final, fence.Token}
	if fence.here(db) {
		from, fromArgs := fence.Owner.Owns()
		insert, args = fmt.Sprintf("INSERT INTO %s (table_name, token) SELECT ?, ? %s", d.quote(fenceTable), from), append(args, fromArgs...)
	} else if err := checkOwner(ctx, nil, db, fence); err != nil {
		return err
	}
	n, err := db.Querier().Exec(ctx, insert, args...)
	var myErr *mysql.MySQLError
	switch {
	case errors.As(err, &myErr) && myErr.Number == 1062: // ER_DUP_ENTRY
		return errStage
	case err != nil:
		return err
	case n == 0:
		// The run no longer owns its job.
		return ErrFenced
	}
	return nil
}

// recordMany inserts the first fence records of batch (distinct names, the
// ledger here) in one statement, each only while its run owns its job, and
// returns the names it recorded. A name with a record already fails the
// whole statement, which then records none; inserted says whether the
// statement went through (an error after it leaves its records in place).
func (d mysqlDialect) recordMany(ctx context.Context, batch []*pendingRecord) (recorded map[string]bool, inserted bool, err error) {
	db := batch[0].db
	selects := make([]string, len(batch))
	var args []any
	for i, p := range batch {
		from, fromArgs := p.fence.Owner.Owns()
		selects[i] = "SELECT ?, ? " + from
		args = append(append(args, p.table, p.fence.Token), fromArgs...)
	}
	n, err := db.Querier().Exec(ctx, fmt.Sprintf("INSERT INTO %s (table_name, token) %s", d.quote(fenceTable), strings.Join(selects, " UNION ALL ")), args...)
	if err != nil {
		return nil, false, err
	}
	recorded = make(map[string]bool, len(batch))
	if n == int64(len(batch)) {
		for _, p := range batch {
			recorded[p.table] = true
		}
		return recorded, true, nil
	}
	// Some runs no longer own their jobs: the records inserted are those
	// with their runs' tokens (a name had none before, or the INSERT
	// would have failed).
	tokens := make(map[string]int64, len(batch))
	names := make([]any, len(batch))
	for i, p := range batch {
		tokens[p.table], names[i] = p.fence.Token, p.table
	}
	err = db.Querier().Query(ctx, fmt.Sprintf("SELECT table_name, token FROM %s WHERE table_name IN (%s)", d.quote(fenceTable), sqlexec.Placeholders(len(names))),
		func(scan func(...any) error) error {
			var name string
			var token int64
			if err := scan(&name, &token); err != nil {
				return err
			}
			recorded[name] = recorded[name] || tokens[name] == token
			return nil
		}, names...)
	return recorded, true, err
}
