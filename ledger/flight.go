package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Single flight. Identical jobs (equal Job.Flight: one owner, task, query,
// arguments, requested database and the task's results backends) that may
// reuse results do not each run when they arrive while one of them is
// unfinished: the first leads the flight, and the others join it. A job
// that joins is recorded PENDING and held, with Joined naming the leader,
// so that no node claims it; it holds no slot.
//
// The ledger alone says who leads, whatever the actors believe: an index
// lets a flight have one unfinished leader (_flight), so that two nodes
// admitting identical jobs at the same moment cannot both lead, and a job
// joins in the transaction that reads its leader, locked, so that the
// leader cannot finish unseen meanwhile.
//
// Once the leader has finished (or was cancelled, or purged), SettleFlight
// settles the jobs that waited on it: if it succeeded, they are SUCCESS
// with its results, as AdmitReused records a job answered by another's; if
// not, the oldest of them leads the flight, ready to run, and the others
// wait on it. The node that finishes a leader settles its flight; a
// housekeeper settles whatever a crash left unsettled (UnsettledFlights).

// flightTries bounds the transactions of one admission or settlement that
// a leader written at the same moment by another transaction can undo.
const flightTries = 10

// errFlightRace means that what a flight transaction read changed before it
// wrote (a leader was written, or the ID's holder finished): try again.
var errFlightRace = errors.New("the flight changed meanwhile")

// AdmitFlight records j, whose Flight is set, as Admit does, but in its
// flight: if an unfinished job leads the flight, j joins it (PENDING, held,
// Joined naming the leader); else j leads it, waiting to be claimed, or,
// with node set, started at once by a run on node as Start would. It fails
// as Admit does when the ID is held.
func (l *Ledger) AdmitFlight(ctx context.Context, j Job, node *Node, lease time.Duration) (*Job, error) {
	a := l.admission(j)
	if node != nil {
		// A started admission is not left to the caller's context (see
		// Start).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), admitTimeout)
		defer cancel()
		a = l.startedAdmission(a, *node, lease)
	}
	for try := 1; ; try++ {
		w, err := l.admitFlightOnce(ctx, a)
		switch {
		case err == nil:
			return w, nil
		case !retryFlight(err):
			if node != nil {
				return l.readBack(ctx, a, w, err)
			}
			return nil, err
		case try == flightTries:
			// Every try met another leader being written: the job runs
			// on its own rather than fail.
			a.Flight = ""
			return l.write(ctx, a)
		}
		if err := flightPause(ctx, try); err != nil {
			return nil, err
		}
	}
}

// retryFlight reports whether a flight transaction that failed with err
// may succeed if tried again: what it read changed, another transaction
// wrote the flight's leader first, or the database broke a deadlock
// between them (InnoDB's checks of a unique key lock more than the rows
// read, whatever the isolation).
func retryFlight(err error) bool {
	return errors.Is(err, errFlightRace) || sqlexec.UniqueViolation(err) || sqlexec.Transient(err) && !sqlexec.ConnectionFailed(err)
}

// flightPause waits a little, more after each try, jittered, so that the
// transactions that met do not meet again.
func flightPause(ctx context.Context, try int) error {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(try) * int64(5*time.Millisecond))))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admitFlightOnce is one try of AdmitFlight, of admission a.
func (l *Ledger) admitFlightOnce(ctx context.Context, a Job) (*Job, error) {
	var out *Job
	err := l.d.flightTx(ctx, l, func(q sqlexec.Querier) error {
		leader, err := l.leaderOf(ctx, q, a.Flight)
		if err != nil {
			return err
		}
		w := a
		switch {
		case leader == nil || leader.ID == a.ID:
		case sameComputation(leader, &a):
			joining(&w, leader.ID)
		default:
			// Its flight outlived what it computes: w runs on its own.
			w.Flight = ""
		}
		startsAt(&w, l.now())
		written, err := l.d.admitOne(ctx, l, q, l.d.admitSQL(l.table, 1), l.jobArgs(&w), &w)
		if err != nil {
			return err
		}
		if written {
			out = &w
			return nil
		}
		cur, err := l.get(ctx, q, a.ID)
		switch {
		case errors.Is(err, sqljobber.ErrJobNotFound):
			// MySQL's upsert met the leader another transaction wrote.
			return errFlightRace
		case err != nil:
			return err
		case cur.State.Active():
			return &sqljobber.ActiveError{ID: cur.ID, State: cur.State}
		case cur.Owner != a.Owner:
			return &sqljobber.TakenError{Kind: "job", ID: a.ID}
		}
		// The holder finished in between.
		return errFlightRace
	})
	if err != nil {
		return nil, fmt.Errorf("admit job: %w", err)
	}
	return out, nil
}

// joining makes admission w wait on leader: held, and not started.
func joining(w *Job, leader string) {
	w.State, w.Held, w.Joined = sqljobber.StatePending, true, leader
	w.RunID, w.Node, w.NodeID, w.Attempt, w.Fence = "", "", "", 0, 0
	w.StartedAt, w.LeaseUntil = time.Time{}, time.Time{}
}

// sameComputation reports whether jobs a and b of one flight still compute
// the same, for the same owner. A flight names a computation, but a row's
// flight can outlive it: a build that knows no flights, admitting the ID
// again with other arguments, leaves the column as it was. Such a job
// neither leads nor answers the jobs of the flight it no longer computes.
func sameComputation(a, b *Job) bool {
	return a.Owner == b.Owner && a.Task == b.Task && a.DB == b.DB && bytes.Equal(a.Args, b.Args)
}

// leaderOf reads the unfinished job that leads flight, locked until q's
// transaction ends, or nil.
func (l *Ledger) leaderOf(ctx context.Context, q sqlexec.Querier, flight string) (*Job, error) {
	jobs, err := l.jobs(ctx, q, l.leaderSQL(), flight)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], nil
}

// leaderSQL selects the unfinished leader of a flight, locking it (reading
// _flight).
func (l *Ledger) leaderSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s%s", jobColumns, l.table, l.d.leads(), l.d.lockRows())
}

// waitingSQL selects the jobs waiting in a flight, oldest first, locking
// them (reading _joined).
func (l *Ledger) waitingSQL() string {
	return fmt.Sprintf("SELECT %s FROM %s WHERE flight = ? AND %s ORDER BY created_at, job_id%s", jobColumns, l.table, joinedCond, l.d.lockRows())
}

// Settled is what SettleFlight did.
type Settled struct {
	// Answered are the jobs it recorded SUCCESS with their leader's
	// results.
	Answered []*Job
	// Leader is the job it made the flight's leader, ready to run; nil
	// if none.
	Leader *Job
}

// SettleFlight settles the jobs waiting on flight's leader once it no
// longer leads: those whose leader succeeded are SUCCESS with its results
// (its count, backend, table and run, ReusedFrom naming it, expiring no
// later than it); the others wait on the flight's unfinished leader if it
// has one, else the oldest of them leads the flight, ready to run, and the
// rest wait on it. Jobs that wait on an unfinished leader are left as they
// are. It may be called any number of times, on any node.
func (l *Ledger) SettleFlight(ctx context.Context, flight string) (*Settled, error) {
	for try := 1; ; try++ {
		s, err := l.settleOnce(ctx, flight)
		if err == nil || try == flightTries || !retryFlight(err) {
			return s, err
		}
		if err := flightPause(ctx, try); err != nil {
			return nil, err
		}
	}
}

// settleOnce is one try of SettleFlight.
func (l *Ledger) settleOnce(ctx context.Context, flight string) (*Settled, error) {
	var s Settled
	err := l.d.flightTx(ctx, l, func(q sqlexec.Querier) error {
		s = Settled{}
		leader, err := l.leaderOf(ctx, q, flight)
		if err != nil {
			return err
		}
		waiting, err := l.jobs(ctx, q, l.waitingSQL(), flight)
		if err != nil {
			return err
		}
		t := l.now()
		// The leaders they waited on that succeeded, by ID (nil: it did
		// not, or is gone).
		succeeded := map[string]*Job{}
		var orphans []*Job
		for _, w := range waiting {
			if leader != nil && w.Joined == leader.ID {
				continue
			}
			src, seen := succeeded[w.Joined]
			if !seen {
				if src, err = l.succeededLeader(ctx, q, w.Joined, flight); err != nil {
					return err
				}
				succeeded[w.Joined] = src
			}
			if src == nil || !sameComputation(src, w) {
				orphans = append(orphans, w)
				continue
			}
			a, err := l.answer(ctx, q, *w, src, t)
			if err != nil {
				return err
			}
			if a != nil {
				s.Answered = append(s.Answered, a)
			}
		}
		if len(orphans) == 0 {
			return nil
		}
		next := leader
		if next == nil {
			// The oldest leads; it waited in its queue's order all along.
			next = orphans[0]
			n, err := q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET joined = '', held = 0, updated_at = ? WHERE job_id = ? AND joined = ? AND state = 'PENDING'`, l.table),
				l.timeArg(t), next.ID, next.Joined)
			if err != nil {
				return err
			}
			if n == 0 {
				return errFlightRace
			}
			next.Joined, next.Held, next.UpdatedAt = "", false, t
			s.Leader = next
		}
		_, err = q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET joined = ?, updated_at = ? WHERE flight = ? AND %s AND joined <> ?`, l.table, joinedCond),
			next.ID, l.timeArg(t), flight, next.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("settle flight: %w", err)
	}
	return &s, nil
}

// succeededLeader returns job id if it succeeded by running as flight's
// leader, with a results table; else nil.
func (l *Ledger) succeededLeader(ctx context.Context, q sqlexec.Querier, id, flight string) (*Job, error) {
	src, err := l.get(ctx, q, id)
	switch {
	case errors.Is(err, sqljobber.ErrJobNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case src.State == sqljobber.StateSuccess && src.Flight == flight && src.ReusedFrom == "" && src.ResultsTable != "":
		return src, nil
	}
	return nil, nil
}

// answer records waiting job w SUCCESS at t with the results of src, the
// leader it waited on, and returns it as recorded; nil if it changed
// meanwhile (it was cancelled).
func (l *Ledger) answer(ctx context.Context, q sqlexec.Querier, w Job, src *Job, t time.Time) (*Job, error) {
	joined := w.Joined
	w.State, w.Held, w.Joined, w.ReusedFrom, w.Count = sqljobber.StateSuccess, false, "", src.ID, src.Count
	w.ResultsBackend, w.ResultsTable, w.RunID = src.ResultsBackend, src.ResultsTable, src.RunID
	w.StartedAt, w.FinishedAt, w.UpdatedAt, w.ExpiresAt = t, t, t, time.Time{}
	if w.TTL > 0 {
		w.ExpiresAt = t.Add(w.TTL)
	}
	if !src.ExpiresAt.IsZero() && (w.ExpiresAt.IsZero() || src.ExpiresAt.Before(w.ExpiresAt)) {
		w.ExpiresAt = src.ExpiresAt
	}
	n, err := q.Exec(ctx, fmt.Sprintf(`UPDATE %s SET state = 'SUCCESS', held = 0, joined = '', reused_from = ?, count = ?, results_backend = ?,
	results_table = ?, run_id = ?, started_at = ?, finished_at = ?, expires_at = ?, updated_at = ? WHERE job_id = ? AND joined = ? AND state = 'PENDING'`, l.table),
		w.ReusedFrom, w.Count, w.ResultsBackend, w.ResultsTable, w.RunID, l.timeArg(t), l.timeArg(t), l.nullTime(w.ExpiresAt), l.timeArg(t), w.ID, joined)
	if err != nil || n == 0 {
		return nil, err
	}
	return &w, nil
}

// UnsettledFlights returns up to limit flights that have jobs waiting on a
// job that no longer leads them: it finished, was cancelled or purged, and
// the flight was not settled (its node died first, say).
func (l *Ledger) UnsettledFlights(ctx context.Context, limit int) ([]string, error) {
	var flights []string
	// The waiting jobs are read from _joined, whose condition this
	// repeats; their leaders by ID.
	err := l.q.Query(ctx, fmt.Sprintf(`SELECT DISTINCT w.flight FROM %[1]s w WHERE w.joined <> '' AND w.state = 'PENDING' AND NOT EXISTS (
	SELECT 1 FROM %[1]s l WHERE l.job_id = w.joined AND l.flight = w.flight AND l.joined = '' AND l.state IN %[2]s) LIMIT %[3]d`,
		l.table, activeStates, limit),
		func(scan func(...any) error) error {
			var f string
			err := scan(&f)
			flights = append(flights, f)
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("find unsettled flights: %w", err)
	}
	return flights, nil
}
