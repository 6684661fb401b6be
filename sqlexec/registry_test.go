package sqlexec

import (
	"strings"
	"testing"
)

func TestPickDBIsRandomAmongTheTasksDatabases(t *testing.T) {
	dbs := []*DB{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	reg, err := NewRegistry([]*Task{{Name: "t", SQL: "SELECT 1", DBs: []string{"a", "c"}}}, dbs, []string{"r"})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := reg.Task("t")
	seen := map[string]int{}
	for range 400 {
		db, err := reg.PickDB(task, "")
		if err != nil {
			t.Fatal(err)
		}
		seen[db]++
	}
	// Both appear (the chance that one does not is 2^-399), and nothing
	// else does.
	if len(seen) != 2 || seen["a"] == 0 || seen["c"] == 0 {
		t.Fatalf("picks: %v", seen)
	}
	if db, err := reg.PickDB(task, "c"); err != nil || db != "c" {
		t.Fatalf("requested c: %q, %v", db, err)
	}
	if _, err := reg.PickDB(task, "b"); err == nil || !strings.Contains(err.Error(), `does not run on database "b"`) {
		t.Fatalf("requested b: %v", err)
	}
}

func TestRegistryRejectsUnknownNames(t *testing.T) {
	dbs := []*DB{{Name: "a"}}
	for _, tc := range []struct {
		task Task
		want string
	}{
		{Task{Name: "t", File: "f.sql", Line: 3, DBs: []string{"x"}}, `f.sql:3: task "t": tag "db": no database "x" is configured (configured: [a])`},
		{Task{Name: "t", File: "f.sql", Line: 3, Results: []string{"y"}}, `f.sql:3: task "t": tag "results": no results backend "y" is configured (configured: [r])`},
	} {
		_, err := NewRegistry([]*Task{&tc.task}, dbs, []string{"r"})
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %s", err, tc.want)
		}
	}
	reg, err := NewRegistry([]*Task{{Name: "t", SQL: "SELECT 1"}}, dbs, []string{"r", "s"})
	if err != nil {
		t.Fatal(err)
	}
	task, _ := reg.Task("t")
	if strings.Join(task.DBs, ",") != "a" || strings.Join(task.Results, ",") != "r,s" {
		t.Fatalf("defaults: dbs %v, results %v", task.DBs, task.Results)
	}
}
