package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sql-jobber/sql-jobber/internal/testwait"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// scrape reads /metrics from base and parses it with Prometheus's own text
// parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := nethttp.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value finds the sample of family whose labels include labels (a
// histogram's sample count), or -1.
func value(families map[string]*dto.MetricFamily, family string, labels ...string) float64 {
	m := series(families, family, labels...)
	switch {
	case m == nil:
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

// series finds the first series of family whose labels include labels, or
// nil.
func series(families map[string]*dto.MetricFamily, family string, labels ...string) *dto.Metric {
	f, ok := families[family]
	if !ok {
		return nil
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return m
	}
	return nil
}

// bucket is the cumulative count of a histogram series's bucket le, or -1.
func bucket(m *dto.Metric, le float64) float64 {
	if m == nil || m.Histogram == nil {
		return -1
	}
	for _, b := range m.Histogram.Bucket {
		if b.GetUpperBound() == le {
			return float64(b.GetCumulativeCount())
		}
	}
	return -1
}

// TestMetricsStartAtZero: before any job, the series of every task, queue
// and database are there at 0, so that a rate over a job's first event, or
// an alert on a queue that is empty, sees them.
func TestMetricsStartAtZero(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	s := newEnv(t, dbs.toml, tasks(t, sqlexec.Postgres)).start()
	m := scrape(t, s.base)
	for _, tc := range []struct {
		family string
		labels []string
	}{
		{"sqljobber_jobs_submitted_total", []string{"queue", "default", "task", "entries_of"}},
		{"sqljobber_jobs_finished_total", []string{"queue", "default", "task", "entries_of", "state", "SUCCESS"}},
		{"sqljobber_jobs_finished_total", []string{"queue", "default", "task", "gated", "state", "FAILURE"}},
		{"sqljobber_jobs_finished_total", []string{"queue", "default", "task", "gated", "state", "CANCELLED"}},
		{"sqljobber_jobs_cancelled_total", []string{"queue", "default", "task", "gated"}},
		{"sqljobber_job_retries_total", []string{"queue", "default", "task", "entries_of"}},
		{"sqljobber_result_rows_total", []string{"queue", "default", "task", "entries_of"}},
		{"sqljobber_jobs_running", []string{"queue", "default"}},
		{"sqljobber_jobs_pending", []string{"queue", "default"}},
		{"sqljobber_queue_oldest_ready_age_seconds", []string{"queue", "default"}},
		{"sqljobber_job_duration_seconds", []string{"queue", "default", "task", "entries_of", "state", "SUCCESS"}},
		{"sqljobber_job_duration_seconds", []string{"queue", "default", "task", "gated", "state", "CANCELLED"}},
		{"sqljobber_job_result_rows", []string{"queue", "default", "task", "entries_of"}},
		{"sqljobber_db_query_errors_total", []string{"db", "src"}},
		{"sqljobber_db_query_errors_total", []string{"db", "res"}},
	} {
		if got := value(m, tc.family, tc.labels...); got != 0 {
			t.Errorf("%s%v = %v before any job, want 0", tc.family, tc.labels, got)
		}
	}
}

// TestMetricsCountWhatJobsDid runs jobs of each outcome and reads every
// series they move (one long test: the series add up across the jobs).
func TestMetricsCountWhatJobsDid(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	files := tasks(t, sqlexec.Postgres)
	files["broken.sql"] = "-- name: broken\n-- raw: 1\nSELECT * FROM no_such_table;\n"
	s := newEnv(t, dbs.toml+"\n[app]\nretry_backoff = \"10ms\"\n", files).start()
	began := time.Now()

	s.post("entries_of", `{"job_id": "ok1", "args": ["U1"]}`)
	s.post("entries_of", `{"job_id": "ok2", "args": ["U1"]}`)
	s.post("broken", `{"job_id": "bad", "retries": 1}`)
	release := holdGate(t, dbs.src)
	s.post("gated", `{"job_id": "gone", "args": ["U1"]}`)
	s.waitState("gone", "STARTED")
	if r := s.do("DELETE", "/jobs/gone", ""); r.code != 200 {
		t.Fatalf("cancel: %d %s", r.code, r.Message)
	}
	release()
	// Queues that no node here works and no task names share one label,
	// however many a client makes up.
	s.post("entries_of", `{"job_id": "elsewhere", "args": ["U1"], "queue": "nobody"}`)
	s.post("entries_of", `{"job_id": "elsewhere2", "args": ["U1"], "queue": "nobody2"}`)
	s.waitState("ok1", "SUCCESS")
	s.waitState("ok2", "SUCCESS")
	s.waitState("bad", "FAILURE")
	s.job("unknown")

	want := []struct {
		family string
		labels []string
		want   float64
	}{
		{"sqljobber_jobs_submitted_total", []string{"queue", "default", "task", "entries_of"}, 2},
		{"sqljobber_jobs_submitted_total", []string{"queue", "_other", "task", "entries_of"}, 2},
		{"sqljobber_jobs_finished_total", []string{"task", "entries_of", "state", "SUCCESS"}, 2},
		{"sqljobber_jobs_finished_total", []string{"task", "broken", "state", "FAILURE"}, 1},
		{"sqljobber_jobs_finished_total", []string{"task", "gated", "state", "CANCELLED"}, 1},
		{"sqljobber_jobs_cancelled_total", []string{"queue", "default", "task", "gated"}, 1},
		{"sqljobber_job_retries_total", []string{"task", "broken"}, 1},
		{"sqljobber_result_rows_total", []string{"task", "entries_of"}, 200},
		{"sqljobber_job_run_seconds", []string{"queue", "default", "task", "entries_of"}, 2},
		{"sqljobber_job_run_seconds", []string{"task", "broken"}, 2},
		{"sqljobber_job_queue_wait_seconds", []string{"queue", "default"}, 5},
		{"sqljobber_jobs_running", []string{"queue", "default"}, 0},
		{"sqljobber_queue_slots", []string{"queue", "default"}, 10},
		{"sqljobber_jobs_pending", []string{"queue", "_other"}, 2},
		{"sqljobber_job_duration_seconds", []string{"queue", "default", "task", "entries_of", "state", "SUCCESS"}, 2},
		{"sqljobber_job_duration_seconds", []string{"task", "broken", "state", "FAILURE"}, 1},
		{"sqljobber_job_duration_seconds", []string{"task", "gated", "state", "CANCELLED"}, 1},
		{"sqljobber_job_result_rows", []string{"queue", "default", "task", "entries_of"}, 2},
		{"sqljobber_job_result_rows", []string{"task", "broken"}, 0},
		{"sqljobber_db_query_errors_total", []string{"db", "src"}, 2},
		{"sqljobber_cluster_members", []string{"state", "alive"}, 1},
		{"sqljobber_http_requests_total", []string{"route", "/tasks/{taskName}/jobs", "method", "POST", "code", "200"}, 6},
		{"sqljobber_http_requests_total", []string{"route", "/jobs/{jobID}", "method", "DELETE", "code", "200"}, 1},
		{"sqljobber_http_requests_total", []string{"route", "/jobs/{jobID}", "method", "GET", "code", "404"}, 1},
	}
	// A run is counted once its outcome is in the ledger, and its slot
	// freed after that: a status can show a job finished a moment before
	// the metrics count it, so they are read until they add up.
	var m map[string]*dto.MetricFamily
	testwait.For(t, 30*time.Second, "the metrics to count what the jobs did", func() (bool, string) {
		m = scrape(t, s.base)
		var off []string
		for _, tc := range want {
			if got := value(m, tc.family, tc.labels...); got != tc.want {
				off = append(off, fmt.Sprintf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want))
			}
		}
		return len(off) == 0, strings.Join(off, "; ")
	})
	// Each job of entries_of wrote U1's 100 rows: the bucket of 100
	// holds both, that of 10 neither.
	rows := series(m, "sqljobber_job_result_rows", "task", "entries_of")
	if got, gotSum := [2]float64{bucket(rows, 10), bucket(rows, 100)}, rows.GetHistogram().GetSampleSum(); got != [2]float64{0, 2} || gotSum != 200 {
		t.Errorf("rows per job of entries_of: buckets 10, 100 = %v, sum %v; want [0 2], 200", got, gotSum)
	}
	// The jobs of queues nobody works wait, ready since they were
	// admitted: the oldest of them has waited as long as the test, at
	// most. The default queue has none waiting.
	if age := value(m, "sqljobber_queue_oldest_ready_age_seconds", "queue", "_other"); age <= 0 || age > time.Since(began).Seconds() {
		t.Errorf("oldest ready job of the other queues waited %vs; the test began %v ago", age, time.Since(began))
	}
	if age := value(m, "sqljobber_queue_oldest_ready_age_seconds", "queue", "default"); age != 0 {
		t.Errorf("oldest ready job of the default queue, where none waits: %vs", age)
	}
	for _, f := range []string{"sqljobber_db_connections", "sqljobber_grains_active", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := m[f]; !ok {
			t.Errorf("no %s", f)
		}
	}
	if got := value(m, "sqljobber_db_connections", "db", "src", "role", "source", "state", "open"); got < 1 {
		t.Errorf("source pool open connections = %v", got)
	}
	// No label carries a job ID.
	for name, f := range m {
		for _, metric := range f.Metric {
			for _, lp := range metric.Label {
				if v := lp.GetValue(); v == "ok1" || v == "gone" || strings.HasPrefix(v, "/jobs/ok") {
					t.Errorf("%s has a job ID in label %s=%s", name, lp.GetName(), v)
				}
				if v := lp.GetValue(); lp.GetName() == "queue" && strings.HasPrefix(v, "nobody") {
					t.Errorf("%s has a series of its own for made-up queue %s", name, v)
				}
			}
		}
	}
}

// proxy forwards TCP connections to target until it is cut.
type proxy struct {
	l      net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				c.Close()
				up.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

// cut closes the listener and every connection: the database behind it is
// unreachable.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.l.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

type readyz struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Data    struct {
		Ready  bool `json:"ready"`
		Checks []struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	} `json:"data"`
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	res, err := nethttp.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func getReadyz(t *testing.T, base string) (int, readyz) {
	t.Helper()
	res, err := nethttp.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r readyz
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, r
}

func TestReadyzNamesAnUnreachableDatabase(t *testing.T) {
	dbs := newDatabases(t, sqlexec.Postgres, sqlexec.Postgres)
	seedEntries(t, dbs.src)
	p := startProxy(t, "127.0.0.1:5432")
	config := strings.Replace(dbs.toml, "@127.0.0.1:5432/", "@"+p.addr()+"/", 1)
	if config == dbs.toml {
		t.Fatal("the source DSN does not go through the proxy")
	}
	s := newEnv(t, config, tasks(t, sqlexec.Postgres)).start()

	code, r := getReadyz(t, s.base)
	if code != 200 || !r.Data.Ready || len(r.Data.Checks) != 4 {
		t.Fatalf("readyz: %d %+v", code, r)
	}
	if code := getStatus(t, s.base+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}

	p.cut()
	code, r = getReadyz(t, s.base)
	if code != 503 || r.Status != "error" || r.Data.Ready {
		t.Fatalf("readyz with the source down: %d %+v", code, r)
	}
	for _, c := range r.Data.Checks {
		if want := c.Name != "db.src"; c.OK != want {
			t.Errorf("check %s: ok %v (%s)", c.Name, c.OK, c.Error)
		}
		if c.Name == "db.src" && c.Error == "" {
			t.Error("the failing check says nothing")
		}
		if strings.Contains(c.Error, "postgres://") {
			t.Errorf("check %s shows a DSN: %s", c.Name, c.Error)
		}
	}
	if code := getStatus(t, s.base+"/healthz"); code != 200 {
		t.Fatalf("healthz with the source down: %d", code)
	}
}
