package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// leaseColumns are the columns of the leases table.
const leaseColumns = "name, holder, detail, held_until"

var leaseColumnList = strings.Fields(strings.ReplaceAll(leaseColumns, ",", " "))

// Lease is a name that one node holds at a time, until the lease runs out
// unless its holder renews it: a worker name (which two live nodes must not
// share) or a role (the node that does the cluster's housekeeping).
type Lease struct {
	Name string
	// Holder is the node that holds it: its incarnation's ID.
	Holder string
	// Detail is what the holder says of itself (e.g. its address).
	Detail string
	Until  time.Time
}

// HeldError says that a live holder has a lease that was asked for.
type HeldError struct{ Lease *Lease }

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is held by %s until %s", e.Lease.Name, e.Lease.Holder, e.Lease.Until.Format(time.RFC3339Nano))
}

// ErrLeaseLost means a holder's lease was taken by another, or let go.
var ErrLeaseLost = errors.New("the lease is no longer this holder's")

// Lease reads lease name; nil when nobody has held it or it was let go.
func (l *Ledger) Lease(ctx context.Context, name string) (*Lease, error) {
	var found *Lease
	err := l.q.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE name = ?", leaseColumns, l.leases), func(scan func(...any) error) error {
		var ls Lease
		var until ledgerTime
		err := scan(&ls.Name, &ls.Holder, &ls.Detail, &until)
		ls.Until, found = until.t, &ls
		return err
	}, name)
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", name, err)
	}
	return found, nil
}

// TakeLease takes lease name for holder, for ttl from now, if nobody holds
// it, it ran out, holder holds it already, or replace says the current
// holder is gone (say, an earlier run of the same node); else it returns
// *HeldError with the lease as it is. Two nodes taking one lease at once
// cannot both have it: every write is conditional on what was read.
func (l *Ledger) TakeLease(ctx context.Context, name, holder, detail string, ttl time.Duration, replace func(cur *Lease) bool) (*Lease, error) {
	for {
		cur, err := l.Lease(ctx, name)
		if err != nil {
			return nil, err
		}
		t := l.now()
		next := &Lease{Name: name, Holder: holder, Detail: detail, Until: t.Add(ttl)}
		var n int64
		switch {
		case cur == nil:
			n, err = l.dq.Exec(ctx, l.d.insertIfAbsentSQL(l.leases, leaseColumnList), name, holder, detail, l.timeArg(next.Until))
		case cur.Holder == holder || !cur.Until.After(t) || replace != nil && replace(cur):
			n, err = l.dq.Exec(ctx, fmt.Sprintf("UPDATE %s SET holder = ?, detail = ?, held_until = ? WHERE name = ? AND holder = ? AND held_until = ?", l.leases),
				holder, detail, l.timeArg(next.Until), name, cur.Holder, l.timeArg(cur.Until))
		default:
			return nil, &HeldError{Lease: cur}
		}
		if err != nil {
			return nil, fmt.Errorf("take lease %s: %w", name, err)
		}
		if n > 0 {
			return next, nil
		}
		// Another node wrote it in between: look again.
	}
}

// RenewLease extends holder's lease name to ttl from now. It returns
// ErrLeaseLost if holder no longer holds it.
func (l *Ledger) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) error {
	n, err := l.q.Exec(ctx, fmt.Sprintf("UPDATE %s SET held_until = ? WHERE name = ? AND holder = ?", l.leases),
		l.timeArg(l.now().Add(ttl)), name, holder)
	switch {
	case err != nil:
		return fmt.Errorf("renew lease %s: %w", name, err)
	case n == 0:
		return fmt.Errorf("%s: %w", name, ErrLeaseLost)
	}
	return nil
}

// DropLease lets go of holder's lease name, if holder holds it: the name is
// free at once.
func (l *Ledger) DropLease(ctx context.Context, name, holder string) error {
	if _, err := l.dq.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE name = ? AND holder = ?", l.leases), name, holder); err != nil {
		return fmt.Errorf("drop lease %s: %w", name, err)
	}
	return nil
}
