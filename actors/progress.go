package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// A running job's progress lives in the memory of the node that runs it,
// in its run (see run.rows): the executor counts each row it reads from the
// source, and a read of the job asks that node, here or on another member
// (its "sqljobber-node" actor, which does nothing slow), rather than the
// ledger being written as rows go by. The ledger keeps the final count.

// progressTimeout bounds how long a read of jobs waits for the nodes that
// run them to say how far they got: a node that does not answer in time
// (gone, cut off, busy, or of an older build that ignores the question)
// leaves those jobs as the ledger has them, and the read is no slower.
const progressTimeout = 200 * time.Millisecond

// countedRows counts the rows read through it into n, which others read
// while the run goes on. One uncontended atomic add a row is nothing beside
// what writing the row costs.
type countedRows struct {
	sqlexec.Rows
	n *atomic.Int64
}

func (r *countedRows) Next() bool {
	if !r.Rows.Next() {
		return false
	}
	r.n.Add(1)
	return true
}

// countedWireRows is countedRows for rows that a writer may read as their
// database sent them (sqlexec.WireRows): those are counted as they pass,
// without being decoded.
type countedWireRows struct {
	sqlexec.WireRows
	n *atomic.Int64
}

func (r *countedWireRows) Next() bool {
	if !r.WireRows.Next() {
		return false
	}
	r.n.Add(1)
	return true
}

func (r *countedWireRows) NextWire() bool {
	if !r.WireRows.NextWire() {
		return false
	}
	r.n.Add(1)
	return true
}

// counted wraps rows so that every row read, typed or as sent, adds one to
// n; rows that can be read as sent still can.
func counted(rows sqlexec.Rows, n *atomic.Int64) sqlexec.Rows {
	if w, ok := rows.(sqlexec.WireRows); ok {
		return &countedWireRows{WireRows: w, n: n}
	}
	return &countedRows{Rows: rows, n: n}
}

// localProgress is how far those of runIDs that run on this node have got.
func (e *Engine) localProgress(runIDs []string) []*jobpb.RunProgressReply_Run {
	now := time.Now()
	e.runsMu.Lock()
	defer e.runsMu.Unlock()
	var out []*jobpb.RunProgressReply_Run
	for _, id := range runIDs {
		if r, ok := e.runs[id]; ok {
			out = append(out, &jobpb.RunProgressReply_Run{RunId: id, Rows: r.rows.Load(), ElapsedMicros: now.Sub(r.begin).Microseconds()})
		}
	}
	return out
}

// withProgress sets the Progress of those of jobs that are STARTED, asking
// each node that runs some of them (this one directly, the others all at
// once, for at most progressTimeout or until ctx ends). It returns the
// jobs whose node answered that it no longer runs them: they ended, or
// were handed back, since the ledger was read. A job whose node did not
// answer keeps no Progress.
func (e *Engine) withProgress(ctx context.Context, jobs []*ledger.Job) (ended []*ledger.Job) {
	byNode := map[string][]*ledger.Job{}
	for _, j := range jobs {
		if j.State == sqljobber.StateStarted && j.RunID != "" && j.NodeID != "" {
			byNode[j.NodeID] = append(byNode[j.NodeID], j)
		}
	}
	if len(byNode) == 0 || !e.running.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, progressTimeout)
	defer cancel()
	addresses := map[string]string{}
	if len(byNode) > 1 || byNode[e.self.ID] == nil {
		for _, m := range e.node.Members() {
			// A leaving member runs its jobs until its drain ends; a
			// suspect one is not answering.
			if !m.Self && m.State != sqljobber.MemberSuspect {
				addresses[m.ID] = m.Address
			}
		}
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for node, js := range byNode {
		ids := make([]string, len(js))
		for i, j := range js {
			ids[i] = j.RunID
		}
		answer := func(runs []*jobpb.RunProgressReply_Run) {
			got := make(map[string]*jobpb.RunProgressReply_Run, len(runs))
			for _, r := range runs {
				got[r.RunId] = r
			}
			mu.Lock()
			defer mu.Unlock()
			for _, j := range js {
				r, ok := got[j.RunID]
				if !ok {
					ended = append(ended, j)
					continue
				}
				j.Progress = &sqljobber.Progress{Rows: r.Rows, Elapsed: time.Duration(r.ElapsedMicros) * time.Microsecond}
			}
		}
		if node == e.self.ID {
			answer(e.localProgress(ids))
			continue
		}
		addr, ok := addresses[node]
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if runs, ok := e.askProgress(ctx, addr, ids); ok {
				answer(runs)
			}
		}()
	}
	wg.Wait()
	return ended
}

// askProgress asks the node at addr how far runIDs have got; ok is false
// when it did not answer before ctx ended.
func (e *Engine) askProgress(ctx context.Context, addr string, runIDs []string) ([]*jobpb.RunProgressReply_Run, bool) {
	timeout := progressTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, false
	}
	f := e.node.System().Root.RequestFuture(actor.NewPID(addr, nodeActorName), &jobpb.RunProgress{RunIds: runIDs}, timeout)
	res, err := f.Result()
	reply, ok := res.(*jobpb.RunProgressReply)
	if err != nil || !ok {
		return nil, false
	}
	return reply.Runs, true
}
