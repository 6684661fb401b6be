package actors

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/actors/jobpb"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// SubmitRequest is a request for a new job.
type SubmitRequest struct {
	JobID   string // "" to generate one
	Task    string
	Queue   string // "" for the task's queue or the default queue
	DB      string // "" for any of the task's databases
	Args    []any  // string, json.Number, bool or nil each
	ETA     time.Time
	Retries int
	// TTL is how long the results are kept after the job finishes: nil
	// for the task's (-- ttl:) or the configured default, 0 to keep them
	// until the ID runs again or is purged.
	TTL *time.Duration
	// MaxAge is how old the results of an identical earlier job (see
	// reuse.go) may be to answer this one instead of running it: nil for
	// the task's (-- cache:), 0 to run. Fresh runs it, whatever the task
	// says.
	MaxAge *time.Duration
	Fresh  bool
}

// Receipt is what a client learns about an accepted job.
type Receipt struct {
	JobID   string
	Task    string
	Queue   string
	ETA     time.Time
	Retries int
	// Workers is how many members work the job's queue when it is
	// accepted: 0 says it waits until one that does joins.
	Workers int
}

var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9_:-]+$`)

// reservedJobID is the one valid-looking job ID the API's paths cannot
// tell from a route of their own.
const reservedJobID = "queue"

// ValidateID checks a job or group ID against the rule for IDs; field
// names it in the error.
func (e *Engine) ValidateID(field, id string) error { return CheckID(field, id, e.maxIDLen) }

// CheckID checks id against the rule for job and group IDs, of at most
// maxLen bytes. It is Engine.ValidateID without an engine, for callers
// that know the limit.
func CheckID(field, id string, maxLen int) error {
	// The length first: a long ID is refused without being scanned.
	if id == "" || len(id) > maxLen || !jobIDRe.MatchString(id) {
		return sqljobber.Invalid(field, "must be 1 to %d characters of letters, digits, '_', '-' or ':'", maxLen)
	}
	return nil
}

// NewID returns a random job or group ID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit validates req, records the job PENDING and wakes its queue. It
// returns sqljobber.ErrTaskNotFound, an *InvalidError, an *ActiveError when an
// unfinished job holds the ID, or a *TakenError when another client's
// finished job does. The job is the caller's (sqljobber.Owner).
func (e *Engine) Submit(ctx context.Context, req SubmitRequest) (*Receipt, error) {
	spec, err := e.spec("", req)
	if err != nil {
		return nil, err
	}
	spec.Owner = sqljobber.Owner(ctx)
	e.fingerprint(spec)
	reply, err := e.request(ctx, jobKind, spec.JobId, &jobpb.SubmitJob{Spec: spec, DeadlineUnixMicros: deadlineOf(ctx, e.node.RequestTimeout())})
	if err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	if err := replyError(reply, "job", sqljobber.ErrJobNotFound, spec.JobId); err != nil {
		return nil, err
	}
	r := receipt(spec)
	r.Workers = e.Workers(r.Queue)
	return r, nil
}

// deadlineOf is when a request made now with ctx gives up: ctx's deadline or
// the node's default request timeout.
func deadlineOf(ctx context.Context, def time.Duration) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return dl.UnixMicro()
	}
	return time.Now().Add(def).UnixMicro()
}

func receipt(spec *jobpb.JobSpec) *Receipt {
	r := &Receipt{JobID: spec.JobId, Task: spec.Task, Queue: spec.Queue, Retries: int(spec.Retries)}
	if spec.EtaUnixMicros != 0 {
		r.ETA = time.UnixMicro(spec.EtaUnixMicros).UTC()
	}
	return r
}

// spec validates a job request (field names prefixed by prefix) and makes
// its spec, choosing its results backend.
func (e *Engine) spec(prefix string, req SubmitRequest) (*jobpb.JobSpec, error) {
	t, ok := e.tasks.Task(req.Task)
	if !ok {
		if prefix != "" {
			return nil, sqljobber.Invalid(prefix+"task", "no task %q", req.Task)
		}
		return nil, fmt.Errorf("%w: %q", sqljobber.ErrTaskNotFound, req.Task)
	}
	if req.JobID == "" {
		req.JobID = NewID()
	} else if err := e.ValidateID(prefix+"job_id", req.JobID); err != nil {
		return nil, err
	} else if req.JobID == reservedJobID {
		// GET /jobs/queue/results would list queue "results", not this
		// job's results.
		return nil, sqljobber.Invalid(prefix+"job_id", "%q is reserved: /jobs/queue/{queue} lists a queue", reservedJobID)
	}
	queue := cmp.Or(req.Queue, t.Queue, e.cfg.DefaultQueue)
	if !sqlexec.ValidName(queue) {
		return nil, sqljobber.Invalid(prefix+"queue", "must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	if req.DB != "" {
		if _, err := e.tasks.PickDB(t, req.DB); err != nil {
			return nil, sqljobber.Invalid(prefix+"db", "%v", err)
		}
	}
	if t.NumArgs >= 0 && len(req.Args) != t.NumArgs {
		return nil, sqljobber.Invalid(prefix+"args", "task %q takes %d arguments, got %d", t.Name, t.NumArgs, len(req.Args))
	}
	for i, a := range req.Args {
		switch a.(type) {
		case string, json.Number, bool, nil:
		default:
			return nil, sqljobber.Invalid(fmt.Sprintf("%sargs[%d]", prefix, i), "must be a string, number, boolean or null")
		}
	}
	if req.Retries < 0 {
		return nil, sqljobber.Invalid(prefix+"retries", "must not be negative")
	}
	if req.TTL != nil && *req.TTL < 0 {
		return nil, sqljobber.Invalid(prefix+"ttl", "must not be negative")
	}
	args := []byte("[]")
	if len(req.Args) > 0 {
		var err error
		if args, err = json.Marshal(req.Args); err != nil {
			return nil, sqljobber.Invalid(prefix+"args", "%v", err)
		}
	}
	maxAge, err := reuseAge(prefix, t, req)
	if err != nil {
		return nil, err
	}
	backend, results := e.pickResults(t)
	if results == nil {
		return nil, fmt.Errorf("task %q has no results backend on this node", t.Name)
	}
	if table := results.TableName(req.JobID); results.ReservedTable(table) {
		return nil, sqljobber.Invalid(prefix+"job_id", "its results table %q would take a name sql-jobber reserves", table)
	}
	ttl := cmp.Or(t.TTL, e.cfg.DefaultTTL)
	if req.TTL != nil {
		ttl = *req.TTL
	}
	spec := &jobpb.JobSpec{
		JobId: req.JobID, Task: t.Name, Queue: queue, Db: req.DB, ArgsJson: string(args),
		Retries: int32(req.Retries), TtlSeconds: int64((ttl + time.Second - 1) / time.Second),
		ResultsBackend: backend, ResultsTable: results.TableName(req.JobID), ReuseMaxAgeMicros: maxAge.Microseconds(),
	}
	if !req.ETA.IsZero() {
		spec.EtaUnixMicros = req.ETA.UnixMicro()
	}
	return spec, nil
}

// decodeArgs turns a ledger's JSON arguments into driver arguments: integers
// that fit int64 as int64, other numbers as their exact text.
func decodeArgs(raw []byte) ([]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var args []any
	if err := dec.Decode(&args); err != nil {
		return nil, fmt.Errorf("decode job arguments: %w", err)
	}
	for i, a := range args {
		if n, ok := a.(json.Number); ok {
			if v, err := n.Int64(); err == nil {
				args[i] = v
			} else {
				args[i] = n.String()
			}
		}
	}
	return args, nil
}
