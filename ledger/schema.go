package ledger

import (
	"context"
	"fmt"
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
	t := l.d.types()
	r := strings.NewReplacer("{text}", t.text, "{short}", t.short, "{ts}", t.ts, "{key}", t.key, "{bigint}", t.bigint, "{suffix}", t.suffix)
	for _, s := range []string{
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
	updated_at {ts} NOT NULL
){suffix}`), l.table),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	group_id {key} NOT NULL PRIMARY KEY,
	concurrency INTEGER NOT NULL,
	job_ids {text} NOT NULL,
	cancelled INTEGER NOT NULL,
	created_at {ts} NOT NULL,
	updated_at {ts} NOT NULL
){suffix}`), l.groups),
		fmt.Sprintf(r.Replace(`CREATE TABLE IF NOT EXISTS %s (
	job_id {key} NOT NULL PRIMARY KEY,
	reason {short} NOT NULL,
	gone_at {ts} NOT NULL
){suffix}`), l.gone),
	} {
		if _, err := l.q.Exec(ctx, s); err != nil {
			if cerr := l.checkLayout(ctx); cerr != nil {
				return cerr
			}
			return fmt.Errorf("create ledger table %s: %w", l.cfg.Table, err)
		}
	}
	if err := l.checkLayout(ctx); err != nil {
		return err
	}
	want, replaced := l.indexes()
	if err := l.d.createIndexes(ctx, l, want, replaced); err != nil {
		return fmt.Errorf("index ledger table %s: %w", l.cfg.Table, err)
	}
	return nil
}

// checkLayout refuses tables of the ledger's names from another layout (an
// older sql-jobber's, or someone else's), which must not be written to
// blindly.
func (l *Ledger) checkLayout(ctx context.Context) error {
	for _, t := range []struct{ table, cols string }{
		{l.table, jobColumns},
		{l.groups, groupColumns},
		{l.gone, goneColumns},
	} {
		if _, err := l.q.Exec(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE 1 = 0", t.cols, t.table)); err != nil {
			return fmt.Errorf("ledger table %s exists without the columns this version needs (%w); rename or drop it", t.table, err)
		}
	}
	return nil
}

// The columns of the groups table and of the table of removed jobs' IDs.
const (
	groupColumns = "group_id, concurrency, job_ids, cancelled, created_at, updated_at"
	goneColumns  = "job_id, reason, gone_at"
)

// index is an index of the ledger's tables.
type index struct{ name, table, cols, where string }

// indexes are the ledger's indexes, and the names of those they replace.
//
// Where the database has partial indexes, each holds only the rows that its
// queries look for, and repeats their condition word for word so that the
// planners see it applies:
//   - _pending: waiting jobs, in the order they start. A claim reads as many
//     entries as it takes jobs, however many finished jobs the ledger keeps.
//   - _grouped: jobs of a group (most jobs have none).
//   - _expiring: finished jobs with an expiry.
//
// A job's record is written three times (admitted, claimed, finished), and
// each write of a row adds an entry to every index it belongs in; the
// indexes these replace (_ready, _group, _expiry; sql-jobber before
// 2026-11-26) held every row, and claims scanned _ready whole. Without
// partial indexes (MySQL) those are still the indexes: a claim reads the
// queue's waiting jobs (two ranges of state), then sorts them.
func (l *Ledger) indexes() (want []index, replaced []string) {
	t := l.cfg.Table
	gone := index{t + "_gone_at", l.gone, "gone_at", ""}
	if !l.d.partialIndexes() {
		return []index{
			{t + "_ready", l.table, "queue, state, held, ready_at", ""},
			{t + "_group", l.table, "group_id", ""},
			{t + "_expiry", l.table, "expires_at", ""},
			gone,
		}, nil
	}
	return []index{
		{t + "_pending", l.table, "queue, held, ready_at, enqueued_at, job_id", " WHERE " + pendingCond},
		{t + "_grouped", l.table, "group_id", " WHERE " + groupedCond},
		{t + "_expiring", l.table, "expires_at", " WHERE " + expiringCond},
		gone,
	}, []string{t + "_ready", t + "_group", t + "_expiry"}
}

// The conditions of the partial indexes, which the queries that should use
// them repeat.
const (
	pendingCond  = "state IN ('PENDING', 'RETRY')"
	groupedCond  = "group_id <> ''"
	expiringCond = "expires_at IS NOT NULL"
)
