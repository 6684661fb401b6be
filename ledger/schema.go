package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Migrate creates the ledger's tables and indexes if they do not exist, and
// replaces indexes of earlier versions. Nodes may migrate one ledger at the
// same time, also while others use it.
func (l *Ledger) Migrate(ctx context.Context) error {
	unlock, err := l.d.lockMigration(ctx, l)
	if err != nil {
		return fmt.Errorf("migrate ledger table %s: %w", l.cfg.Table, err)
	}
	defer unlock()
	r := l.typeReplacer()
	for _, s := range l.tablesSQL(r) {
		if _, err := l.q.Exec(ctx, s); err != nil {
			if cerr := l.checkLayout(ctx); cerr != nil {
				return cerr
			}
			return fmt.Errorf("create ledger table %s: %w", l.cfg.Table, err)
		}
	}
	for _, c := range addedColumns {
		if err := l.addColumn(ctx, c.table(l), c.name, r.Replace(c.decl)); err != nil {
			return fmt.Errorf("migrate ledger table %s: %w", l.cfg.Table, err)
		}
	}
	if err := l.checkLayout(ctx); err != nil {
		return err
	}
	// After the check: they are computed from the columns it checks.
	for _, c := range l.d.generated() {
		if err := l.addColumn(ctx, l.table, c.name, r.Replace(c.decl)); err != nil {
			return fmt.Errorf("migrate ledger table %s: %w", l.cfg.Table, err)
		}
	}
	if err := l.writeIdentity(ctx); err != nil {
		return fmt.Errorf("ledger table %s: identity: %w", l.cfg.Table, err)
	}
	if err := l.addCapRows(ctx, l.q, slices.Sorted(maps.Keys(l.cfg.MaxRunning))); err != nil {
		return fmt.Errorf("ledger table %s: database caps: %w", l.cfg.Table, err)
	}
	want, replaced := l.indexes()
	if err := l.d.createIndexes(ctx, l, want, replaced); err != nil {
		return fmt.Errorf("index ledger table %s: %w", l.cfg.Table, err)
	}
	return nil
}

// typeReplacer puts the driver's types in place of {text}, {short}, {ts},
// {key}, {bigint} and {suffix}.
func (l *Ledger) typeReplacer() *strings.Replacer {
	t := l.d.types()
	return strings.NewReplacer("{text}", t.text, "{short}", t.short, "{ts}", t.ts, "{key}", t.key, "{bigint}", t.bigint, "{suffix}", t.suffix)
}

// tablesSQL creates the ledger's tables, with the driver's types (r), if
// they do not exist.
func (l *Ledger) tablesSQL(r *strings.Replacer) []string {
	return []string{
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	job_id {key} NOT NULL PRIMARY KEY,
	task {short} NOT NULL,
	queue {short} NOT NULL,
	state {short} NOT NULL,
	args {text} NOT NULL,
	db {short} NOT NULL,
	group_id {key} NOT NULL,
	retries INTEGER NOT NULL,
	ttl_seconds {bigint} NOT NULL,
	eta {ts} NULL,
	results_backend {short} NOT NULL,
	results_table {short} NOT NULL,
	count {bigint} NOT NULL,
	error {text} NOT NULL,
	attempt INTEGER NOT NULL,
	run_id {short} NOT NULL,
	node {short} NOT NULL,
	fence {bigint} NOT NULL,
	held INTEGER NOT NULL,
	enqueued_at {ts} NOT NULL,
	ready_at {ts} NOT NULL,
	lease_until {ts} NULL,
	expires_at {ts} NULL,
	created_at {ts} NOT NULL,
	started_at {ts} NULL,
	finished_at {ts} NULL,
	updated_at {ts} NOT NULL,
	node_id {short} NOT NULL DEFAULT '',
	lost_runs INTEGER NOT NULL DEFAULT 0,
	owner {short} NOT NULL DEFAULT '',
	reused_from {key} NOT NULL DEFAULT '',
	fingerprint {short} NOT NULL DEFAULT '',
	joined {key} NOT NULL DEFAULT '',
	flight {key} NOT NULL DEFAULT '',
	source_db {short} NOT NULL DEFAULT ''
){suffix}`), l.table),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	group_id {key} NOT NULL PRIMARY KEY,
	concurrency INTEGER NOT NULL,
	job_ids {text} NOT NULL,
	cancelled INTEGER NOT NULL,
	created_at {ts} NOT NULL,
	updated_at {ts} NOT NULL,
	owner {short} NOT NULL DEFAULT ''
){suffix}`), l.groups),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	job_id {key} NOT NULL PRIMARY KEY,
	reason {short} NOT NULL,
	gone_at {ts} NOT NULL,
	owner {short} NOT NULL DEFAULT ''
){suffix}`), l.gone),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	name {key} NOT NULL PRIMARY KEY,
	value {text} NOT NULL
){suffix}`), l.meta),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	db {key} NOT NULL PRIMARY KEY
){suffix}`), l.caps),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	name {key} NOT NULL PRIMARY KEY,
	holder {short} NOT NULL,
	detail {text} NOT NULL,
	held_until {ts} NOT NULL
){suffix}`), l.leases),
	}
}

// checkLayout refuses tables of the ledger's names from another layout (an
// older sql-jobber's, or someone else's), which must not be written to
// blindly.
func (l *Ledger) checkLayout(ctx context.Context) error {
	for _, t := range []struct{ table, cols string }{
		{l.table, jobColumns},
		{l.groups, groupColumns},
		{l.gone, goneColumns},
		{l.meta, "name, value"},
		{l.leases, leaseColumns},
		{l.caps, "db"},
	} {
		if _, err := l.q.Exec(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE 1 = 0", t.cols, t.table)); err != nil {
			return fmt.Errorf("ledger table %s exists without the columns this version needs (%w); rename or drop it", t.table, err)
		}
	}
	return nil
}

// The columns of the groups table and of the table of removed jobs' IDs.
const (
	groupColumns = "group_id, concurrency, job_ids, cancelled, created_at, updated_at, owner"
	goneColumns  = "job_id, reason, gone_at, owner"
)

// addedColumns are the columns of the ledger's tables that earlier versions
// did not create, added to their tables by Migrate ({...} are the driver's
// types).
var addedColumns = []struct {
	table      func(*Ledger) string
	name, decl string
}{
	// The node's incarnation that runs or ran the job (2026-12-06).
	{jobsTable, "node_id", "{short} NOT NULL DEFAULT ''"},
	// The runs lost with their nodes, which count against a cap of their
	// own rather than the job's retries (2026-12-06).
	{jobsTable, "lost_runs", "INTEGER NOT NULL DEFAULT 0"},
	// The API token that submitted the job or group, whose alone they
	// are; jobs and groups from before tokens (2026-12-06) are nobody's
	// (""), which only admin tokens see.
	{jobsTable, "owner", "{short} NOT NULL DEFAULT ''"},
	{func(l *Ledger) string { return l.groups }, "owner", "{short} NOT NULL DEFAULT ''"},
	// What a job computes and for whom, and the job whose results answered
	// it, for result reuse (2026-12-06; see reuse.go).
	{jobsTable, "reused_from", "{key} NOT NULL DEFAULT ''"},
	{jobsTable, "fingerprint", "{short} NOT NULL DEFAULT ''"},
	{func(l *Ledger) string { return l.gone }, "owner", "{short} NOT NULL DEFAULT ''"},
	// The flight a job may lead or join, and the job it waits on, for
	// single flights (2026-12-07; see flight.go).
	{jobsTable, "joined", "{key} NOT NULL DEFAULT ''"},
	{jobsTable, "flight", "{key} NOT NULL DEFAULT ''"},
	// The source database a job runs against, chosen as it is admitted,
	// which [db.*] max_running counts (2026-12-07; see cap.go). Jobs of
	// earlier versions have none: they choose at each run, uncounted.
	{jobsTable, "source_db", "{short} NOT NULL DEFAULT ''"},
}

func jobsTable(l *Ledger) string { return l.table }

// addColumn adds a column to table unless it is there; another node may add
// it at the same moment.
func (l *Ledger) addColumn(ctx context.Context, table, name, decl string) error {
	has := func() bool {
		_, err := l.q.Exec(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE 1 = 0", name, table))
		return err == nil
	}
	if has() {
		return nil
	}
	if _, err := l.q.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, name, decl)); err != nil && !has() {
		return fmt.Errorf("add column %s: %w", name, err)
	}
	return nil
}

// writeIdentity gives a new ledger its identity, a random ID that members
// of one cluster share (they must keep the same ledger), and reads it.
func (l *Ledger) writeIdentity(ctx context.Context) error {
	if _, err := l.q.Exec(ctx, l.d.insertIfAbsentSQL(l.meta, []string{"name", "value"}), "identity", NewRunID()+NewRunID()); err != nil {
		return err
	}
	return l.q.Query(ctx, fmt.Sprintf("SELECT value FROM %s WHERE name = 'identity'", l.meta), func(scan func(...any) error) error {
		return scan(&l.identity)
	})
}

// index is an index of the ledger's tables; a unique one refuses two rows
// of equal columns (that it holds).
type index struct {
	name, table, cols, where string
	unique                   bool
}

// uniqueness is what CREATE says before INDEX for idx.
func uniqueness(idx index) string {
	if idx.unique {
		return "UNIQUE "
	}
	return ""
}

// indexes are the ledger's indexes, and the names of those they replace.
//
// Where the database has partial indexes, each holds only the rows that its
// queries look for, and repeats their condition word for word so that the
// planners see it applies:
//   - _pending: waiting jobs, in the order they start. A claim reads as many
//     entries as it takes jobs, however many finished jobs the ledger keeps.
//   - _running: running jobs, by the node that runs them.
//   - _grouped: jobs of a group (most jobs have none).
//   - _expiring: finished jobs with an expiry.
//   - _finished: finished jobs (and those waiting to retry), by when, for
//     the queues' summary of the last hour.
//   - _reusable: jobs that succeeded, by fingerprint and when they
//     finished: the one place a submission looks for results to reuse
//     (see Ledger.Reusable); a job enters it once, when it succeeds.
//   - _flight: the unfinished leaders of flights, by flight, unique: the
//     database itself keeps a flight from having two (see flight.go).
//   - _joined: the jobs waiting on a flight's leader, by flight.
//
// _created and _owned hold every job, newest last, for the job listing
// (GET /jobs), which must not scan the ledger for a page; like every full
// index, each takes an entry at each of a job's three writes.
//
// A job's record is written three times (admitted, claimed, finished), and
// each write of a row adds an entry to every index it belongs in; the
// indexes these replace (_ready, _group, _expiry; sql-jobber before
// 2026-11-26) held every row, and claims scanned _ready whole. Without
// partial indexes (MySQL) the others are still the indexes; _pending and
// _flight index a generated column that is NULL outside the rows the
// partial index would hold (see mysqlDriver.generated). MySQL's _ready
// (queue, state, held, ready_at; before 2026-12-07) made a claim read and
// sort every waiting job of its queue.
func (l *Ledger) indexes() (want []index, replaced []string) {
	t := l.cfg.Table
	gone := index{t + "_gone_at", l.gone, "gone_at", "", false}
	// The job listing's orders (GET /jobs), for every owner and for one.
	created := index{t + "_created", l.table, "created_at, job_id", "", false}
	owned := index{t + "_owned", l.table, "owner, created_at, job_id", "", false}
	if !l.d.partialIndexes() {
		return []index{
			// Waiting jobs, in the order they start: the generated
			// column is the queue of a job not started, else NULL.
			// With state, the counts of waiting jobs by queue read
			// this index alone.
			{t + "_pending", l.table, pendingColumnName + ", held, ready_at, enqueued_at, job_id, state", "", false},
			{t + "_running", l.table, "state, node_id", "", false},
			{t + "_group", l.table, "group_id", "", false},
			{t + "_expiry", l.table, "expires_at", "", false},
			{t + "_finished", l.table, "finished_at", "", false},
			{t + "_fingerprint", l.table, "fingerprint, finished_at", "", false},
			// The leaders of flights: the generated column is the flight
			// of a job that leads one, unfinished, else NULL, which a
			// unique index holds any number of.
			{t + "_flight", l.table, leaderColumnName, "", true},
			{t + "_joined", l.table, "joined, flight", "", false},
			created, owned, gone,
		}, []string{t + "_ready"}
	}
	return []index{
		{t + "_pending", l.table, "queue, held, ready_at, enqueued_at, job_id", " WHERE " + pendingCond, false},
		{t + "_running", l.table, "node_id", " WHERE " + runningCond, false},
		{t + "_grouped", l.table, "group_id", " WHERE " + groupedCond, false},
		{t + "_expiring", l.table, "expires_at", " WHERE " + expiringCond, false},
		{t + "_finished", l.table, "finished_at", " WHERE " + finishedCond, false},
		{t + "_reusable", l.table, "fingerprint, finished_at", " WHERE " + reusableCond, false},
		{t + "_flight", l.table, "flight", " WHERE " + leadingCond, true},
		{t + "_joined", l.table, "flight", " WHERE " + joinedCond, false},
		created, owned, gone,
	}, []string{t + "_ready", t + "_group", t + "_expiry"}
}

// The conditions of the partial indexes, which the queries that should use
// them repeat.
const (
	pendingCond  = "state IN ('PENDING', 'RETRY')"
	runningCond  = "state = 'STARTED'"
	groupedCond  = "group_id <> ''"
	expiringCond = "expires_at IS NOT NULL"
	finishedCond = "finished_at IS NOT NULL"
	reusableCond = "state = 'SUCCESS'"
	leadingCond  = "flight <> '' AND joined = '' AND state IN ('PENDING', 'STARTED', 'RETRY')"
	joinedCond   = "joined <> '' AND state = 'PENDING'"
)
