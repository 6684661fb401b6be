package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// What a job computes, for Fingerprint.
type Computation struct {
	// Owner is the API token that submits the job: results are reused
	// only within one owner's jobs.
	Owner string
	Task  string
	// SQL is the task's query: a task file edited under the same name
	// computes something else.
	SQL string
	// Args are the job's arguments as the ledger records them (JSON as
	// encoding/json writes it): the same text is the same driver
	// arguments.
	Args string
	// DB is the source database the request named, "" for any of the
	// task's.
	DB string
	// ResultsBackend is where the results are written.
	ResultsBackend string
}

// Fingerprint identifies c: jobs whose computations are equal have equal
// fingerprints, and (but for a SHA-256 collision) no others do. Each field
// is length-prefixed, so that no two computations run together into the
// same bytes.
func Fingerprint(c Computation) string {
	h := sha256.New()
	for _, f := range []string{"v1", c.Owner, c.Task, c.SQL, c.Args, c.DB, c.ResultsBackend} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// reusableSQL selects the newest job of n fingerprints, one owner and a
// task that succeeded by running (not by reuse) at or after a time and
// whose results have not expired by another (arguments: the fingerprints,
// owner, task, the times, an ID to pass over), reading _reusable.
func (l *Ledger) reusableSQL(n int) string {
	return fmt.Sprintf(`SELECT %s FROM %s WHERE fingerprint IN (%s) AND `+reusableCond+` AND finished_at >= ?
	AND owner = ? AND task = ? AND reused_from = '' AND (expires_at IS NULL OR expires_at > ?) AND job_id <> ?
	ORDER BY finished_at DESC LIMIT 1`, jobColumns, l.table, sqlexec.Placeholders(n))
}

// Reusable returns the newest job of owner and task whose fingerprint is
// one of fingerprints, that succeeded by running within maxAge and whose
// results have not expired: a job whose results may answer a new one of
// those fingerprints, whose ID is newID. It returns
// sqljobber.ErrJobNotFound if there is none. Jobs that were themselves
// answered by reuse are not returned: their tables are their sources',
// which those alone keep. Nor is a job of newID, which the new job
// replaces.
func (l *Ledger) Reusable(ctx context.Context, owner, task, newID string, fingerprints []string, maxAge time.Duration) (*Job, error) {
	if len(fingerprints) == 0 || maxAge <= 0 {
		return nil, sqljobber.ErrJobNotFound
	}
	t := l.now()
	args := make([]any, 0, len(fingerprints)+4)
	for _, f := range fingerprints {
		args = append(args, f)
	}
	args = append(args, l.timeArg(t.Add(-maxAge)), owner, task, l.timeArg(t), newID)
	jobs, err := l.jobs(ctx, l.q, l.reusableSQL(len(fingerprints)), args...)
	if err != nil {
		return nil, fmt.Errorf("find results to reuse: %w", err)
	}
	if len(jobs) == 0 {
		return nil, sqljobber.ErrJobNotFound
	}
	return jobs[0], nil
}

// AdmitReused records j as Admit does, but finished already: SUCCESS,
// answered by src's results (src's backend, table, count and run, which
// names the publication it reads), with src's ID in ReusedFrom. Its results
// expire with its own TTL but never after src's, whose table they are. It
// fails as Admit does when the ID is held.
func (l *Ledger) AdmitReused(ctx context.Context, j Job, src *Job) (*Job, error) {
	return l.write(ctx, l.reusedAdmission(j, src))
}

// reusedAdmission is j as AdmitReused records it, answered by src.
func (l *Ledger) reusedAdmission(j Job, src *Job) Job {
	j = l.admission(j)
	j.Held, j.ReuseOf = false, nil
	j.State, j.ReusedFrom, j.Count = sqljobber.StateSuccess, src.ID, src.Count
	j.ResultsBackend, j.ResultsTable, j.RunID = src.ResultsBackend, src.ResultsTable, src.RunID
	j.StartedAt, j.FinishedAt = j.CreatedAt, j.CreatedAt
	if j.TTL > 0 {
		j.ExpiresAt = j.CreatedAt.Add(j.TTL)
	}
	if !src.ExpiresAt.IsZero() && (j.ExpiresAt.IsZero() || src.ExpiresAt.Before(j.ExpiresAt)) {
		j.ExpiresAt = src.ExpiresAt
	}
	return j
}

// memberAdmission is group member j as AdmitGroup records it: answered by
// j.ReuseOf's results if set, else waiting to run.
func (l *Ledger) memberAdmission(j Job) Job {
	if j.ReuseOf != nil {
		return l.reusedAdmission(j, j.ReuseOf)
	}
	return l.admission(j)
}
