package ledger

import (
	"context"
	"testing"

	sqljobber "github.com/sql-jobber/sql-jobber"
)

// TestAdmissionBatchesLockInIDOrder: batches take each ID once and list
// their jobs in ID order, whatever the order they arrived in, so that two
// batches in flight that share IDs lock them in the same order (arrivals A,
// B, B, A would otherwise give batches {A, B} and {B, A}, which deadlock).
func TestAdmissionBatchesLockInIDOrder(t *testing.T) {
	var a admissions
	for _, id := range []string{"b", "a", "c", "a", "b"} {
		a.waiting = append(a.waiting, &pendingAdmission{ctx: context.Background(), job: Job{Job: sqljobber.Job{ID: id}}})
	}
	a.writers = 1
	var got [][]string
	for {
		batch := a.next()
		if batch == nil {
			break
		}
		var ids []string
		for _, p := range batch {
			ids = append(ids, p.job.ID)
		}
		got = append(got, ids)
	}
	want := [][]string{{"a", "b", "c"}, {"a", "b"}}
	if len(got) != len(want) || len(got[0]) != 3 || len(got[1]) != 2 {
		t.Fatalf("batches %v, want %v", got, want)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("batches %v, want %v", got, want)
			}
		}
	}
	if a.writers != 0 {
		t.Fatalf("%d writers left, want the last retired", a.writers)
	}
}
