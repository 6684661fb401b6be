package sqlexec

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Registry holds the loaded tasks and the source databases they run on.
type Registry struct {
	tasks map[string]*Task
	order []*Task
	dbs   map[string]*DB
}

// NewRegistry binds tasks to databases. A task without a -- db: tag runs on
// any of dbNames; one without -- results: writes to any of resultsNames. A
// task naming a database or results backend that is not configured is an
// error located at the task.
func NewRegistry(tasks []*Task, dbs []*DB, resultsNames []string) (*Registry, error) {
	r := &Registry{tasks: map[string]*Task{}, dbs: map[string]*DB{}}
	var dbNames []string
	for _, db := range dbs {
		r.dbs[db.Name] = db
		dbNames = append(dbNames, db.Name)
	}
	for _, t := range tasks {
		if _, dup := r.tasks[t.Name]; dup {
			return nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name, Err: fmt.Errorf("duplicate task name")}
		}
		if len(t.DBs) == 0 {
			t.DBs = slices.Clone(dbNames)
		}
		if len(t.Results) == 0 {
			t.Results = slices.Clone(resultsNames)
		}
		for _, name := range t.DBs {
			if _, ok := r.dbs[name]; !ok {
				return nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name,
					Err: fmt.Errorf("tag \"db\": no database %q is configured (configured: %v)", name, dbNames)}
			}
		}
		for _, name := range t.Results {
			if !slices.Contains(resultsNames, name) {
				return nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name,
					Err: fmt.Errorf("tag \"results\": no results backend %q is configured (configured: %v)", name, resultsNames)}
			}
		}
		if len(t.DBs) == 0 {
			return nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name, Err: fmt.Errorf("no database is configured")}
		}
		if len(t.Results) == 0 {
			return nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name, Err: fmt.Errorf("no results backend is configured")}
		}
		r.tasks[t.Name] = t
		r.order = append(r.order, t)
	}
	return r, nil
}

// prepareTimeout bounds the preparation of one task on one database.
const prepareTimeout = time.Minute

// Prepare prepares every task that is not raw on each of its databases, to
// find broken queries at start-up, and records how many arguments each
// takes.
func (r *Registry) Prepare(ctx context.Context) error {
	for _, t := range r.order {
		if t.Raw {
			continue
		}
		for _, name := range t.DBs {
			// A query that waits on a lock (a migration holding the
			// table, say) must not hang start-up.
			pctx, cancel := context.WithTimeout(ctx, prepareTimeout)
			n, err := r.dbs[name].Prepare(pctx, t.SQL)
			cancel()
			if err != nil {
				return &TaskError{File: t.File, Line: t.Line, Task: t.Name,
					Err: fmt.Errorf("prepare on database %q: %w%s", name, err, placeholderHint(r.dbs[name].Dialect, t.SQL, err))}
			}
			if t.NumArgs >= 0 && n >= 0 && n != t.NumArgs {
				return &TaskError{File: t.File, Line: t.Line, Task: t.Name,
					Err: fmt.Errorf("takes %d arguments on database %q but %d on another", n, name, t.NumArgs)}
			}
			if n >= 0 {
				t.NumArgs = n
			}
		}
	}
	return nil
}

// Task returns the task called name.
func (r *Registry) Task(name string) (*Task, bool) {
	t, ok := r.tasks[name]
	return t, ok
}

// Tasks returns every task in the order they were loaded.
func (r *Registry) Tasks() []*Task { return r.order }

// PickDB returns the database a job of t runs on: requested if it is one of
// t's databases, else a uniformly random one of them.
func (r *Registry) PickDB(t *Task, requested string) (string, error) {
	if requested != "" {
		if !slices.Contains(t.DBs, requested) {
			return "", fmt.Errorf("task %q does not run on database %q (it runs on %v)", t.Name, requested, t.DBs)
		}
		return requested, nil
	}
	return t.DBs[rand.IntN(len(t.DBs))], nil
}

// Query runs t on database db with args and returns its rows. The query is
// cancelled at the database when ctx ends.
func (r *Registry) Query(ctx context.Context, t *Task, db string, args []any) (Rows, error) {
	d, ok := r.dbs[db]
	if !ok {
		return nil, fmt.Errorf("no database %q is configured", db)
	}
	if t.NumArgs >= 0 && len(args) != t.NumArgs {
		return nil, fmt.Errorf("%w: task %q takes %d, got %d", ErrArgs, t.Name, t.NumArgs, len(args))
	}
	return d.src.query(ctx, t, args)
}
