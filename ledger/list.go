package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// List returns a page of the jobs that f selects, newest first (by
// created_at, then job_id), whoever owns them.
func (l *Ledger) List(ctx context.Context, f sqljobber.JobFilter) ([]*Job, string, error) {
	return l.list(ctx, f, nil)
}

// ListOf is List for the jobs of one owner.
func (l *Ledger) ListOf(ctx context.Context, f sqljobber.JobFilter, owner string) ([]*Job, string, error) {
	return l.list(ctx, f, &owner)
}

// maxListCursor bounds a cursor's text: those this ledger makes are far
// shorter, and a longer one is refused before it is decoded.
const maxListCursor = 1024

// listCursor is where a page of a listing starts: the (created_at, job_id)
// of the last job of the page before, and the filter it was made for.
type listCursor struct {
	CreatedAt int64  `json:"t"` // Unix microseconds, the ledger's precision
	JobID     string `json:"i"`
	Filter    string `json:"f"`
}

func (l *Ledger) list(ctx context.Context, f sqljobber.JobFilter, owner *string) ([]*Job, string, error) {
	limit := f.Limit
	if limit == 0 {
		limit = sqljobber.JobListLimitDefault
	}
	if limit < 1 || limit > sqljobber.JobListLimitMax {
		return nil, "", sqljobber.Invalid("limit", "must be between 1 and %d", sqljobber.JobListLimitMax)
	}
	fp := listFingerprint(f, owner)
	var conds []string
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	// The owner first: with it, the listing reads the _owned index from
	// the owner's newest job on; without, _created from the newest job.
	if owner != nil {
		add("owner = ?", *owner)
	}
	if len(f.States) > 0 {
		ph := make([]any, len(f.States))
		for i, s := range f.States {
			ph[i] = string(s)
		}
		add("state IN ("+sqlexec.Placeholders(len(ph))+")", ph...)
	}
	for _, c := range []struct{ col, v string }{{"queue", f.Queue}, {"task", f.Task}, {"group_id", f.GroupID}, {"node", f.Node}} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if !f.CreatedAfter.IsZero() {
		add("created_at >= ?", l.timeArg(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		add("created_at < ?", l.timeArg(f.CreatedBefore))
	}
	if f.Cursor != "" {
		cur, err := l.decodeCursor(f.Cursor, fp)
		if err != nil {
			return nil, "", err
		}
		t := l.timeArg(time.UnixMicro(cur.CreatedAt))
		// The bound on created_at alone is what the planners turn into
		// the index range; the OR picks up the rest of the last
		// timestamp's jobs. (A row comparison would say it in one, but
		// MySQL does not read an index range from one.)
		add("created_at <= ? AND (created_at < ? OR job_id < ?)", t, t, cur.JobID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	// One more than the page, to know whether another follows.
	jobs, err := l.jobs(ctx, l.q, fmt.Sprintf("SELECT %s FROM %s%s ORDER BY created_at DESC, job_id DESC LIMIT %d",
		jobColumns, l.table, where, limit+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	if len(jobs) <= limit {
		return jobs, "", nil
	}
	jobs = jobs[:limit]
	last := jobs[limit-1]
	return jobs, l.encodeCursor(listCursor{CreatedAt: last.CreatedAt.UnixMicro(), JobID: last.ID, Filter: fp}), nil
}

// listFingerprint identifies a filter and owner, so that a cursor is used
// only with the listing it was made for: with another, it would start a
// page at a place that listing never reached.
func listFingerprint(f sqljobber.JobFilter, owner *string) string {
	parts := []string{f.Queue, f.Task, f.GroupID, f.Node, timeKey(f.CreatedAfter), timeKey(f.CreatedBefore)}
	if owner != nil {
		parts = append(parts, "owner", *owner)
	}
	for _, s := range f.States {
		parts = append(parts, string(s))
	}
	for i, p := range parts {
		parts[i] = strconv.Quote(p)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, " ")))
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// cursorKey signs cursors. It derives from the ledger's identity, which
// every node of the cluster shares and no client sees, so that a cursor
// made by one node reads on every other, and a client cannot make one.
func (l *Ledger) cursorKey() []byte {
	k := sha256.Sum256([]byte("sqljobber job listing cursor\x00" + l.identity))
	return k[:]
}

func (l *Ledger) cursorMAC(payload string) string {
	m := hmac.New(sha256.New, l.cursorKey())
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

func (l *Ledger) encodeCursor(c listCursor) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + l.cursorMAC(payload)
}

func (l *Ledger) decodeCursor(s, fp string) (*listCursor, error) {
	bad := sqljobber.Invalid("cursor", "is not a cursor this server made: use the next of a page, unchanged")
	if len(s) > maxListCursor {
		return nil, bad
	}
	payload, mac, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(l.cursorMAC(payload))) {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var c listCursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.JobID == "" {
		return nil, bad
	}
	if c.Filter != fp {
		return nil, sqljobber.Invalid("cursor", "was made for a listing with other filters: give the same filters as the first page")
	}
	return &c, nil
}

// QueueCounts is what each queue with unfinished jobs, or jobs that
// finished in the last window, holds, whoever owns them. Workers is left
// to the caller, who knows the cluster.
func (l *Ledger) QueueCounts(ctx context.Context, window time.Duration) (map[string]*sqljobber.QueueSummary, error) {
	return l.queueCounts(ctx, window, nil)
}

// QueueCountsOf is QueueCounts for the jobs of one owner.
func (l *Ledger) QueueCountsOf(ctx context.Context, window time.Duration, owner string) (map[string]*sqljobber.QueueSummary, error) {
	return l.queueCounts(ctx, window, &owner)
}

// queueCounts counts in one statement, grouped by queue and state, whose
// three parts each read a partial index (waiting jobs from _pending,
// running from _running, finished from _finished), not the whole ledger
// with its finished jobs.
func (l *Ledger) queueCounts(ctx context.Context, window time.Duration, owner *string) (map[string]*sqljobber.QueueSummary, error) {
	now := l.now()
	since := now.Add(-window)
	own := ""
	var ownArg []any
	if owner != nil {
		own, ownArg = " AND owner = ?", []any{*owner}
	}
	args := append([]any{l.timeArg(now)}, ownArg...)
	args = append(args, ownArg...)
	args = append(append(args, l.timeArg(since)), ownArg...)
	queue, waiting := l.d.waiting()
	stmt := fmt.Sprintf(`SELECT %[3]s, state, COUNT(*), MIN(CASE WHEN held = 0 AND ready_at <= ? THEN ready_at END) FROM %[1]s
	WHERE %[4]s%[2]s GROUP BY %[3]s, state
UNION ALL SELECT queue, state, COUNT(*), NULL FROM %[1]s WHERE `+runningCond+`%[2]s GROUP BY queue, state
UNION ALL SELECT queue, state, COUNT(*), NULL FROM %[1]s WHERE `+finishedCond+` AND finished_at >= ? AND state IN ('SUCCESS', 'FAILURE', 'CANCELLED')%[2]s
	GROUP BY queue, state`, l.table, own, queue, waiting)
	out := map[string]*sqljobber.QueueSummary{}
	err := l.q.Query(ctx, stmt, func(scan func(...any) error) error {
		var (
			queue, state string
			n            int64
			oldest       ledgerTime
		)
		if err := scan(&queue, &state, &n, &oldest); err != nil {
			return err
		}
		s := out[queue]
		if s == nil {
			s = &sqljobber.QueueSummary{Queue: queue, Finished: map[sqljobber.State]int64{}}
			out[queue] = s
		}
		switch st := sqljobber.State(state); {
		case st == sqljobber.StateStarted:
			s.Running += n
		case st.Final():
			s.Finished[st] += n
		default:
			s.Pending += n
			if !oldest.t.IsZero() && (s.OldestReady.IsZero() || oldest.t.Before(s.OldestReady)) {
				s.OldestReady = oldest.t
			}
		}
		return nil
	}, args...)
	if err != nil {
		return nil, fmt.Errorf("count jobs by queue: %w", err)
	}
	return out, nil
}
