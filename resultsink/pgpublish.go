package resultsink

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sql-jobber/sql-jobber/internal/batch"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Batches of small publications (PostgreSQL). A one-row job's publication
// is a transaction of its own: its table, its rows, its fence record and
// its job's SUCCESS (the ledger is in the same database). When the queue is
// backed up, many finish at once, and each transaction's BEGIN, COMMIT and
// statements cost the database about as much as the table itself. The
// publications that arrive while a batch is being written go into the next,
// in one transaction sent in one round trip: each still commits whole or
// not at all, and never over a later run's table, since each keeps its own
// ownership check. A batch that fails (one run lost its job, one name was
// taken) hands every publication back to be made alone, which names the
// one that failed. Nothing waits to fill a batch: a batch of one is the
// transaction the publication would have made alone, and while it is
// written the next ones gather.
const (
	// publishBatchMax bounds a batch: the tables a transaction holds
	// locks on until it commits.
	publishBatchMax = 8
	// publishWriters is how many batches may be in flight at once: the
	// database creates tables on several connections at a time.
	publishWriters = 2
	// publishTimeout bounds a batch whatever its callers' deadlines:
	// they wait for its outcome, which decides whether they published.
	publishTimeout = 30 * time.Second
)

// pgPublications queues the small publications of one results database
// whose ledger shares it, waiting to be made.
type pgPublications struct {
	q batch.Queue[*pendingPublication]
	// together counts the publications made in batches of more than one.
	together atomic.Int64
}

type pendingPublication struct {
	ctx   context.Context
	db    *sqlexec.DB
	final string
	stmts []pgStatement // its transaction's, BEGIN and COMMIT aside
	done  chan error    // buffered: the writer never blocks on it
}

func (p *pendingPublication) BatchKey() string { return p.final }

// pgStatement is a statement of a publication's transaction, with its
// parameters in text format.
type pgStatement struct {
	sql    string
	params [][]byte
}

// addTo appends s to b, to be sent on conn. A statement with parameters is
// a template, the same text for every publication: it goes as a statement
// prepared on conn (a round trip on the connection's first use of it),
// whose plan PostgreSQL keeps. Sent unprepared, the SUCCESS on the jobs
// table (35 columns, 11 indexes) was planned for every job, a third of a
// millisecond of the database's time.
func (s pgStatement) addTo(ctx context.Context, conn *pgx.Conn, b *pgconn.Batch) error {
	if len(s.params) == 0 {
		b.ExecParams(s.sql, nil, nil, nil, nil)
		return nil
	}
	sd, err := conn.Prepare(ctx, fmt.Sprintf("sqljobber_%016x", fnv64(s.sql)), s.sql)
	if err != nil {
		return err
	}
	b.ExecPrepared(sd.Name, s.params, nil, nil)
	return nil
}

// errPublishAlone hands a publication back to its caller, to make it in a
// transaction of its own.
var errPublishAlone = errors.New("publish alone")

// publish makes p's publication with those that arrive meanwhile, or
// returns errPublishAlone. Once queued, it waits for the batch's outcome
// whatever ctx does: that outcome is whether the table was published.
func (g *pgPublications) publish(p *pendingPublication) error {
	p.done = make(chan error, 1)
	g.q.Add(p, batch.Limits{Max: publishBatchMax, Writers: publishWriters}, g.write)
	return <-p.done
}

// write makes batch in one transaction, or hands it back.
func (g *pgPublications) write(pubs []*pendingPublication) {
	live, ctx, cancel := batch.Live(pubs, func(p *pendingPublication) context.Context { return p.ctx },
		func(p *pendingPublication, err error) { p.done <- err }, publishTimeout)
	defer cancel()
	if len(live) == 0 {
		return
	}
	err := publishTogether(ctx, live[0].db, live)
	if err == nil && len(live) > 1 {
		g.together.Add(int64(len(live)))
	}
	for _, p := range live {
		if err != nil {
			p.done <- errPublishAlone
			continue
		}
		p.done <- nil
	}
}

// publishTogether sends the publications' statements in one transaction
// and one round trip.
func publishTogether(ctx context.Context, db *sqlexec.DB, ps []*pendingPublication) error {
	conn, err := db.Postgres().Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := &pgconn.Batch{}
	b.ExecParams("BEGIN", nil, nil, nil, nil)
	for _, p := range ps {
		for _, s := range p.stmts {
			if err := s.addTo(ctx, conn.Conn(), b); err != nil {
				return err
			}
		}
	}
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	rr := conn.Conn().PgConn().ExecBatch(ctx, b)
	var failed error
	for rr.NextResult() {
		if _, err := rr.ResultReader().Close(); err != nil && failed == nil {
			failed = err
		}
	}
	if err := rr.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		// An error leaves the explicit transaction open and aborted.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			conn.Conn().PgConn().Close(context.WithoutCancel(ctx))
		}
	}
	return failed
}
