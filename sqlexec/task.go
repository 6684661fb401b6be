package sqlexec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/goyesql/v2"
)

// Task is a named SQL query loaded from a .sql file.
type Task struct {
	Name string
	File string // the file it came from, as given to the loader
	Line int    // the line of its "-- name:" tag

	SQL     string
	DBs     []string // -- db: databases it may run on; empty means every configured one
	Queue   string   // -- queue: "" means the default queue
	Results []string // -- results: results backends; empty means every configured one
	Raw     bool     // -- raw: not prepared (nor validated) at start-up

	// Timeout (-- timeout:) bounds the query at the source database; 0 means
	// no bound beyond the job's own context.
	Timeout time.Duration
	// TTL (-- ttl:) is how long the job's results table is kept; 0 means
	// the configured default.
	TTL time.Duration
	// Cache (-- cache:) is how old a job of the same request (task,
	// arguments, database, results backend, owner) that succeeded may be
	// for a new job to be answered from its results instead of running;
	// 0 means jobs run unless the request says max_age.
	Cache time.Duration
	// Conc (-- conc:) is how many jobs of the task may run at once on a
	// node, whatever its queue's slots; 0 means no bound but the queue's.
	Conc int

	// NumArgs is the number of positional arguments the query takes, as the
	// database reported when it was prepared, or -1 when unknown (raw).
	NumArgs int
}

// TaskError is a problem with one task (or one .sql file), located by file
// and line.
type TaskError struct {
	File string
	Line int    // 0 when the problem is with the file as a whole
	Task string // "" when the problem is not with one task
	Err  error
}

func (e *TaskError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Task != "" {
		fmt.Fprintf(&b, ": task %q", e.Task)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *TaskError) Unwrap() error { return e.Err }

// Tags that sql-jobber understands. goyesql treats any "-- word: value"
// comment as a tag, so others are reported as warnings, not errors.
const (
	tagName    = "name"
	tagDB      = "db"
	tagQueue   = "queue"
	tagResults = "results"
	tagRaw     = "raw"
	tagTimeout = "timeout"
	tagTTL     = "ttl"
	tagConc    = "conc"
	tagCache   = "cache"
)

var knownTags = []string{tagName, tagDB, tagQueue, tagResults, tagRaw, tagTimeout, tagTTL, tagConc, tagCache}

// concMax bounds -- conc: far above any queue's slots.
const concMax = 100000

// nameRe limits task names, queue names and database names to what is safe in
// a URL path segment and a log line.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// ValidName reports whether s is usable as a task, queue or database name.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// LoadTasks reads every *.sql file directly inside each directory, in lexical
// order, and returns the tasks in the order they were found. A task name used
// twice (in one file or across files) is an error. Tags that are not
// sql-jobber's are returned as warnings.
func LoadTasks(dirs []string) ([]*Task, []string, error) {
	var files []string
	for _, dir := range dirs {
		matches, err := filepath.Glob(filepath.Join(dir, "*.sql"))
		if err != nil {
			return nil, nil, fmt.Errorf("sql directory %s: %w", dir, err)
		}
		if len(matches) == 0 {
			if _, err := os.Stat(dir); err != nil {
				return nil, nil, fmt.Errorf("sql directory: %w", err)
			}
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}

	var (
		tasks    []*Task
		warnings []string
		seen     = map[string]*Task{}
	)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("read task file: %w", err)
		}
		ts, ws, err := ParseTasks(file, b)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range ts {
			if prev, ok := seen[t.Name]; ok {
				return nil, nil, &TaskError{File: t.File, Line: t.Line, Task: t.Name,
					Err: fmt.Errorf("duplicate task name, first defined at %s:%d", prev.File, prev.Line)}
			}
			seen[t.Name] = t
		}
		tasks = append(tasks, ts...)
		warnings = append(warnings, ws...)
	}
	return tasks, warnings, nil
}

// ParseTasks parses one goyesql file. file names the source in errors. Tasks
// are returned in the order they appear.
func ParseTasks(file string, content []byte) ([]*Task, []string, error) {
	lines := nameLines(content)

	queries, err := goyesql.ParseBytes(content)
	if err != nil {
		te := &TaskError{File: file, Err: errors.New(strings.TrimSpace(err.Error()))}
		// goyesql does not say where; the only error that names a task
		// twice is a duplicate, whose second definition we can find.
		for name, ls := range lines {
			if len(ls) > 1 {
				te.Line, te.Task, te.Err = ls[1], name, errors.New("duplicate task name")
				break
			}
		}
		return nil, nil, te
	}

	var (
		tasks    []*Task
		warnings []string
	)
	for name, q := range queries {
		line := 0
		if ls := lines[name]; len(ls) > 0 {
			line = ls[0]
		}
		t, ws, err := newTask(file, line, name, q)
		if err != nil {
			return nil, nil, err
		}
		tasks = append(tasks, t)
		warnings = append(warnings, ws...)
	}
	slices.SortFunc(tasks, func(a, b *Task) int { return a.Line - b.Line })
	sort.Strings(warnings)
	return tasks, warnings, nil
}

func newTask(file string, line int, name string, q *goyesql.Query) (*Task, []string, error) {
	fail := func(format string, args ...any) (*Task, []string, error) {
		return nil, nil, &TaskError{File: file, Line: line, Task: name, Err: fmt.Errorf(format, args...)}
	}
	name = strings.TrimSpace(name)
	if !ValidName(name) {
		return fail("invalid task name: use 1-128 letters, digits, '_', '-' or '.'")
	}
	t := &Task{Name: name, File: file, Line: line, SQL: strings.TrimSpace(q.Query), NumArgs: -1}
	if t.SQL == "" {
		return fail("no query")
	}

	var warnings []string
	for rawTag, value := range q.Tags {
		tag, value := strings.ToLower(strings.TrimSpace(rawTag)), strings.TrimSpace(value)
		var err error
		switch tag {
		case tagDB:
			t.DBs, err = parseNameList(value)
		case tagResults:
			t.Results, err = parseNameList(value)
		case tagQueue:
			if !ValidName(value) {
				err = errors.New("invalid name: use 1-128 letters, digits, '_', '-' or '.'")
			}
			t.Queue = value
		case tagRaw:
			switch strings.ToLower(value) {
			case "1", "true", "yes":
				t.Raw = true
			case "0", "false", "no":
			default:
				err = errors.New("must be 1 or 0")
			}
		case tagConc:
			t.Conc, err = strconv.Atoi(value)
			if err != nil || t.Conc < 1 || t.Conc > concMax {
				err = fmt.Errorf("must be a whole number from 1 to %d", concMax)
			}
		case tagTimeout, tagTTL, tagCache:
			var d time.Duration
			d, err = time.ParseDuration(value)
			if err == nil && d <= 0 {
				err = errors.New("must be positive")
			}
			switch tag {
			case tagTimeout:
				t.Timeout = d
			case tagTTL:
				t.TTL = d
			default:
				t.Cache = d
			}
		default:
			warnings = append(warnings, fmt.Sprintf("%s:%d: task %q: ignoring unknown tag %q (known: %s)",
				file, line, name, rawTag, strings.Join(knownTags, ", ")))
		}
		if err != nil {
			return fail("tag %q: %v", tag, err)
		}
	}
	return t, warnings, nil
}

func parseNameList(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if !ValidName(part) {
			return nil, fmt.Errorf("invalid name %q in list", part)
		}
		if slices.Contains(out, part) {
			return nil, fmt.Errorf("%q listed twice", part)
		}
		out = append(out, part)
	}
	return out, nil
}

// Mirrors of goyesql's own line classification, used only to find the line
// of each "-- name:" tag for error messages.
var (
	tagLineRe = regexp.MustCompile(`^\s*--\s*(.+)\s*:\s*(.+)`)
)

func nameLines(content []byte) map[string][]int {
	out := map[string][]int{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		m := tagLineRe.FindStringSubmatch(strings.Trim(sc.Text(), " "))
		if len(m) > 2 && m[1] == tagName {
			out[m[2]] = append(out[m[2]], n)
		}
	}
	return out
}
