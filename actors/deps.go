package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// Ledger is the durable record of jobs and groups, and their queue
// (ledger.Ledger). Each part is what one side of the engine needs.
type Ledger interface {
	jobRecords
	runRecords
	groupRecords
	reuseRecords
	flightRecords
	leases
	jobLister
}

// jobRecords is what a job's grain does to its job, and what readers of a
// job read.
type jobRecords interface {
	Admit(ctx context.Context, j ledger.Job) (*ledger.Job, error)
	Start(ctx context.Context, j ledger.Job, node ledger.Node, lease time.Duration) (*ledger.Job, error)
	// ReportsReplaced: Admit's and Start's jobs say what they replaced.
	ReportsReplaced() bool
	Get(ctx context.Context, id string) (*ledger.Job, error)
	GetMany(ctx context.Context, ids []string) ([]*ledger.Job, error)
	Cancel(ctx context.Context, id string) (*ledger.Job, error)
	DeleteIfUnchanged(ctx context.Context, j *ledger.Job) (bool, error)
	Tombstone(ctx context.Context, id string) (*ledger.Tombstone, error)
	Pending(ctx context.Context, queue string, limit int) ([]*ledger.Job, error)
	PendingOf(ctx context.Context, queue, owner string, limit int) ([]*ledger.Job, error)
}

// runRecords is what queues, runs and the node's housekeeping do.
type runRecords interface {
	Claim(ctx context.Context, queue string, node ledger.Node, n int, lease time.Duration, except ...string) ([]*ledger.Job, error)
	NextReady(ctx context.Context, queue string) (time.Time, bool, error)
	Renew(ctx context.Context, runs []ledger.JobRun, lease time.Duration) (map[string]bool, error)
	Finish(ctx context.Context, id, runID string, o ledger.Outcome) (time.Time, error)
	Release(ctx context.Context, id, runID string) error
	Run(j *ledger.Job) *ledger.Run
	TakeOverNode(ctx context.Context, nodeID string, maxLost int) ([]*ledger.Job, error)
	TakeOverName(ctx context.Context, name, except string, maxLost int) ([]*ledger.Job, error)
	RecoverExpired(ctx context.Context, maxLost, limit int) ([]*ledger.Job, error)
	Expired(ctx context.Context, limit int) ([]*ledger.Job, error)
	PendingByQueue(ctx context.Context) (map[string]ledger.Waiting, error)
	// MaxRunning are the caps on source databases' running jobs, which
	// the ledger's claims keep.
	MaxRunning() map[string]int
	DBLoads(ctx context.Context, owner *string) (map[string]*ledger.DBLoad, error)
}

// leases is what a node holds in the ledger: its worker name, and the
// housekeeping role.
type leases interface {
	TakeLease(ctx context.Context, name, holder, detail string, ttl time.Duration, replace func(cur *ledger.Lease) bool) (*ledger.Lease, error)
	RenewLease(ctx context.Context, name, holder string, ttl time.Duration) error
	DropLease(ctx context.Context, name, holder string) error
}

// groupRecords is what a group's grain does to its group.
type groupRecords interface {
	AdmitGroup(ctx context.Context, g ledger.Group, jobs []ledger.Job) ([]*ledger.Job, error)
	Group(ctx context.Context, id string) (*ledger.Group, []*ledger.Job, error)
	ReleaseGroup(ctx context.Context, id string) ([]*ledger.Job, error)
	HeldGroups(ctx context.Context, after string, limit int) ([]string, error)
	CancelGroup(ctx context.Context, id string) ([]*ledger.Job, error)
	DeleteGroup(ctx context.Context, id string) ([]*ledger.Job, error)
}

// Tasks is the task registry (sqlexec.Registry).
type Tasks interface {
	Task(name string) (*sqlexec.Task, bool)
	Tasks() []*sqlexec.Task
	PickDB(t *sqlexec.Task, requested string) (string, error)
	Query(ctx context.Context, t *sqlexec.Task, db string, args []any) (sqlexec.Rows, error)
}

// Results is one results backend (resultsink.Backend).
type Results interface {
	TableName(jobID string) string
	MaxJobIDLen() int
	Write(ctx context.Context, table, runID string, rows sqlexec.Rows, fence resultsink.Fence) (int64, bool, error)
	Drop(ctx context.Context, table string) error
	ReservedTable(name string) bool
}

// TableReader reads pages of results tables (resultsink.Reader).
type TableReader interface {
	Read(ctx context.Context, t resultsink.Table, q resultsink.Query) (*resultsink.Page, error)
}

// Node is this process's member of the cluster (cluster.Node): the actor
// system the engine's actors live in, and requests to grains wherever they
// are.
type Node interface {
	// ID is this incarnation's ID, new at every start (the ledger's
	// NodeID of the runs it starts).
	ID() string
	// Address is where this node's actors are reached, host:port.
	Address() string
	System() *actor.ActorSystem
	// Request sends msg to the grain kind/identity, wherever it is, and
	// returns its reply; an unreachable grain gives an error wrapping
	// sqljobber.ErrUnavailable.
	Request(ctx context.Context, kind, identity string, msg proto.Message) (any, error)
	// RequestTimeout bounds a request whose context has no deadline.
	RequestTimeout() time.Duration
	Members() []sqljobber.Member
	ActiveGrains() int
}

var (
	_ Ledger           = (*ledger.Ledger)(nil)
	_ Tasks            = (*sqlexec.Registry)(nil)
	_ Results          = (*resultsink.Backend)(nil)
	_ TableReader      = (*resultsink.Reader)(nil)
	_ resultsink.Owner = (*ledger.Run)(nil)
)
