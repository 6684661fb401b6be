package sqlexec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTasksGood(t *testing.T) {
	b, err := os.ReadFile("testdata/good.sql")
	if err != nil {
		t.Fatal(err)
	}
	tasks, warnings, err := ParseTasks("good.sql", b)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Task{
		{Name: "summary", File: "good.sql", Line: 3, NumArgs: -1,
			SQL: "SELECT SUM(amount) AS total, entry_date FROM entries WHERE user_id = ? GROUP BY entry_date;"},
		{Name: "entries", File: "good.sql", Line: 9, NumArgs: -1, DBs: []string{"db0", "other_db"}, Queue: "myqueue",
			Results: []string{"my_res_db"}, Timeout: 90 * time.Second, TTL: time.Hour, Conc: 3, Cache: 10 * time.Minute,
			SQL: "SELECT * FROM entries WHERE user_id = ?;"},
		{Name: "by_date", File: "good.sql", Line: 19, NumArgs: -1, Raw: true,
			SQL: "SELECT * FROM entries WHERE user_id = ? AND timestamp > ? and timestamp < ?;"},
	}
	if !reflect.DeepEqual(tasks, want) {
		for i := range tasks {
			t.Logf("got %+v", *tasks[i])
		}
		t.Fatalf("tasks differ")
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
}

func TestParseTasksErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          string // the error, as a user reads it
	}{
		{"query without name", "SELECT 1;\n", "bad.sql: Query is missing the 'name' tag: SELECT 1;"},
		{"tag before name", "-- db: x\n-- name: a\nSELECT 1;\n", "bad.sql: 'name' should be the first tag"},
		{"duplicate name", "-- name: a\nSELECT 1;\n\n-- name: a\nSELECT 2;\n", `bad.sql:4: task "a": duplicate task name`},
		{"no query", "-- name: a\n-- name: b\nSELECT 1;\n", "bad.sql: 'a' is missing query"},
		{"bad raw", "-- name: a\n-- raw: maybe\nSELECT 1;\n", `bad.sql:1: task "a": tag "raw": must be 1 or 0`},
		{"bad timeout", "-- name: a\n-- timeout: soon\nSELECT 1;\n", `bad.sql:1: task "a": tag "timeout": time: invalid duration "soon"`},
		{"zero timeout", "-- name: a\n-- timeout: 0s\nSELECT 1;\n", `bad.sql:1: task "a": tag "timeout": must be positive`},
		{"bad ttl", "-- name: a\n-- ttl: -1h\nSELECT 1;\n", `bad.sql:1: task "a": tag "ttl": must be positive`},
		{"bad cache", "-- name: a\n-- cache: a while\nSELECT 1;\n", `bad.sql:1: task "a": tag "cache": time: invalid duration "a while"`},
		{"zero cache", "-- name: a\n-- cache: 0s\nSELECT 1;\n", `bad.sql:1: task "a": tag "cache": must be positive`},
		{"negative cache", "-- name: a\n-- cache: -10m\nSELECT 1;\n", `bad.sql:1: task "a": tag "cache": must be positive`},
		{"bad conc", "-- name: a\n-- conc: many\nSELECT 1;\n", `bad.sql:1: task "a": tag "conc": must be a whole number from 1 to 100000`},
		{"zero conc", "-- name: a\n-- conc: 0\nSELECT 1;\n", `bad.sql:1: task "a": tag "conc": must be a whole number from 1 to 100000`},
		{"huge conc", "-- name: a\n-- conc: 99999999999999999999\nSELECT 1;\n", `bad.sql:1: task "a": tag "conc": must be a whole number`},
		{"bad db list", "-- name: a\n-- db: x,,y\nSELECT 1;\n", `bad.sql:1: task "a": tag "db": invalid name "" in list`},
		{"db twice", "-- name: a\n-- db: x, x\nSELECT 1;\n", `bad.sql:1: task "a": tag "db": "x" listed twice`},
		{"bad queue", "-- name: a\n-- queue: a b\nSELECT 1;\n", `bad.sql:1: task "a": tag "queue": invalid name`},
		{"bad name", "-- name: a/b\nSELECT 1;\n", `bad.sql:1: task "a/b": invalid task name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseTasks("bad.sql", []byte(tc.content))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TaskError", err)
			}
		})
	}
}

func TestParseTasksUnknownTagWarns(t *testing.T) {
	tasks, warnings, err := ParseTasks("w.sql", []byte("-- name: a\n-- TODO: tidy up\nSELECT 1;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], `unknown tag "TODO"`) {
		t.Fatalf("tasks %v, warnings %q", tasks, warnings)
	}
}

func TestLoadTasksAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.sql", "-- name: one\nSELECT 1;\n")
	write("b.sql", "-- name: two\nSELECT 2;\n\n-- name: one\nSELECT 3;\n")
	write("ignored.txt", "-- name: three\nSELECT 3;\n")
	_, _, err := LoadTasks([]string{dir})
	want := filepath.Join(dir, "b.sql") + `:4: task "one": duplicate task name, first defined at ` + filepath.Join(dir, "a.sql") + ":1"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}

	os.Remove(filepath.Join(dir, "b.sql"))
	tasks, _, err := LoadTasks([]string{dir})
	if err != nil || len(tasks) != 1 || tasks[0].Name != "one" {
		t.Fatalf("tasks %v, err %v", tasks, err)
	}

	if _, _, err := LoadTasks([]string{filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing directory: %v", err)
	}
}

func FuzzParseTasks(f *testing.F) {
	if b, err := os.ReadFile("testdata/good.sql"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("-- name: a\n-- db: x\nSELECT 1;"))
	f.Add([]byte("-- name: a\n-- timeout: 1s\n-- raw: 1\nSELECT ?"))
	f.Add([]byte("-- name: a\n-- cache: 10m\nSELECT ?"))
	f.Fuzz(func(t *testing.T, content []byte) {
		tasks, _, err := ParseTasks("fuzz.sql", content)
		if err != nil {
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TaskError: %v", err, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, task := range tasks {
			if !ValidName(task.Name) || task.SQL == "" || seen[task.Name] {
				t.Fatalf("accepted an invalid task %+v", task)
			}
			seen[task.Name] = true
			if task.Timeout < 0 || task.TTL < 0 || task.Cache < 0 {
				t.Fatalf("negative duration in %+v", task)
			}
		}
	})
}
