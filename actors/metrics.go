package actors

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sqljobber "github.com/sql-jobber/sql-jobber"
	"github.com/sql-jobber/sql-jobber/ledger"
	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// metrics are the engine's Prometheus metrics. Labels are bounded: tasks
// come from configuration, queues too (any other queue a request names is
// counted as OtherQueue), states are fixed; job IDs never appear.
type metrics struct {
	// known are the queues that label series: those this node works and
	// those its tasks name. Set once, by zero.
	known map[string]bool

	submitted   *prometheus.CounterVec   // queue, task
	finished    *prometheus.CounterVec   // queue, task, state
	retries     *prometheus.CounterVec   // queue, task
	cancelled   *prometheus.CounterVec   // queue, task
	rows        *prometheus.CounterVec   // queue, task
	running     *prometheus.GaugeVec     // queue
	slots       *prometheus.GaugeVec     // queue
	wait        *prometheus.HistogramVec // queue
	runTime     *prometheus.HistogramVec // queue, task
	duration    *prometheus.HistogramVec // queue, task, state
	resultRows  *prometheus.HistogramVec // queue, task
	queryErrors *prometheus.CounterVec   // db
	waiters     prometheus.Gauge
}

// Buckets for job times: a report takes from milliseconds to hours.
var jobBuckets = []float64{0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900, 3600, 4 * 3600}

// Buckets for the rows of a job's results: from one row to a billion, by
// powers of ten.
var rowBuckets = prometheus.ExponentialBuckets(1, 10, 10)

// finalStates are the states a job finishes in.
var finalStates = []sqljobber.State{sqljobber.StateSuccess, sqljobber.StateFailure, sqljobber.StateCancelled}

func newMetrics(reg prometheus.Registerer, e *Engine) *metrics {
	m := &metrics{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_jobs_submitted_total",
			Help: "Jobs accepted by this node's grains."}, []string{"queue", "task"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_jobs_finished_total",
			Help: "Jobs that reached a final state on this node (SUCCESS, FAILURE, CANCELLED)."}, []string{"queue", "task", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_job_retries_total",
			Help: "Failed runs on this node that will be retried."}, []string{"queue", "task"}),
		cancelled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_jobs_cancelled_total",
			Help: "Jobs cancelled through this node."}, []string{"queue", "task"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_result_rows_total",
			Help: "Rows written to results tables by this node."}, []string{"queue", "task"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sqljobber_jobs_running",
			Help: "Jobs running on this node now."}, []string{"queue"}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sqljobber_queue_slots",
			Help: "Jobs of the queue that may run at once on this node."}, []string{"queue"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sqljobber_job_queue_wait_seconds",
			Help: "Time from a job being ready (admitted, ETA reached, retry due) to its start on this node.", Buckets: jobBuckets},
			[]string{"queue"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sqljobber_job_run_seconds",
			Help: "Time a run took on this node, query and results together.", Buckets: jobBuckets}, []string{"queue", "task"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sqljobber_job_duration_seconds",
			Help:    "Time from a job's admission to its final state, waits and retries included, for each job counted in sqljobber_jobs_finished_total.",
			Buckets: jobBuckets}, []string{"queue", "task", "state"}),
		resultRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sqljobber_job_result_rows",
			Help: "Rows in the results table of each job that succeeded by running on this node.", Buckets: rowBuckets},
			[]string{"queue", "task"}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_db_query_errors_total",
			Help: "Job runs on this node that failed at a database (source or results), by configured name."}, []string{"db"}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sqljobber_waiters",
			Help: "Requests waiting (?wait=) for a job or group whose grain this node hosts."}),
	}
	reg.MustRegister(m.submitted, m.finished, m.retries, m.cancelled, m.rows, m.running, m.slots, m.wait, m.runTime,
		m.duration, m.resultRows, m.queryErrors, m.waiters, &engineCollector{e: e})
	return m
}

// zero creates, at 0, the series a dashboard or an alert will look for: a
// series that appears only at its first event is missed by rate() and
// increase() over that event, and absent() cannot tell it from a node that
// does not report. The labels are those known at start: each task with its
// queue (a request may name another queue, whose series start when used),
// the queues this node works, and the databases the tasks use.
func (m *metrics) zero(tasks []*sqlexec.Task, defaultQueue string, queues map[string]int) {
	m.known = knownQueues(tasks, defaultQueue, queues)
	dbs := map[string]bool{}
	for _, t := range tasks {
		q := cmp.Or(t.Queue, defaultQueue)
		m.submitted.WithLabelValues(q, t.Name)
		for _, state := range finalStates {
			m.finished.WithLabelValues(q, t.Name, string(state))
			m.duration.WithLabelValues(q, t.Name, string(state))
		}
		m.resultRows.WithLabelValues(q, t.Name)
		m.retries.WithLabelValues(q, t.Name)
		m.cancelled.WithLabelValues(q, t.Name)
		m.rows.WithLabelValues(q, t.Name)
		for _, db := range append(slices.Clone(t.DBs), t.Results...) {
			dbs[db] = true
		}
	}
	for q := range queues {
		m.running.WithLabelValues(q)
	}
	for db := range dbs {
		m.queryErrors.WithLabelValues(db)
	}
}

// OtherQueue is the queue label of the jobs of every queue that neither
// this node works nor its tasks name: a client that names a new queue for
// each job must not add series without end.
const OtherQueue = "_other"

// knownQueues are the queues that label series of their own.
func knownQueues(tasks []*sqlexec.Task, defaultQueue string, queues map[string]int) map[string]bool {
	known := map[string]bool{defaultQueue: true}
	for q := range queues {
		known[q] = true
	}
	for _, t := range tasks {
		known[cmp.Or(t.Queue, defaultQueue)] = true
	}
	return known
}

// queue is the label of queue q.
func (m *metrics) queue(q string) string {
	if m.known[q] {
		return q
	}
	return OtherQueue
}

// Descriptions of the metrics gathered at scrape time.
var (
	pendingDesc = prometheus.NewDesc("sqljobber_jobs_pending",
		"Jobs waiting to start, from the ledger, so the same on every node: ready, waiting for an ETA or retry, or held by their group.",
		[]string{"queue"}, nil)
	grainsDesc = prometheus.NewDesc("sqljobber_grains_active",
		"Job and group grains in this node's memory.", nil, nil)
	membersDesc = prometheus.NewDesc("sqljobber_cluster_members",
		"Cluster members as this node sees them, by state.", []string{"state"}, nil)
	dbRunningDesc = prometheus.NewDesc("sqljobber_db_running",
		"Jobs running against the source database, on every node (from the ledger).", []string{"db"}, nil)
	dbMaxRunningDesc = prometheus.NewDesc("sqljobber_db_max_running",
		"The cap on the jobs running against the source database across the cluster ([db.<name>] max_running); only capped databases.", []string{"db"}, nil)
	dbHeldBackDesc = prometheus.NewDesc("sqljobber_db_held_back",
		"Jobs ready to run that wait because their source database runs as many jobs as its cap allows (from the ledger).", []string{"db"}, nil)
	workersDesc = prometheus.NewDesc("sqljobber_queue_workers",
		"Cluster members that work the queue, leaving ones aside: 0 means its jobs wait for a node that does.", []string{"queue"}, nil)
	oldestDesc = prometheus.NewDesc("sqljobber_queue_oldest_ready_age_seconds",
		"How long the queue's oldest job that could start now has waited since it could, from the ledger (the same on every node); 0 when none waits.",
		[]string{"queue"}, nil)
)

// engineCollector gathers, when scraped, what is cheaper to ask for than
// to track: the ledger's pending jobs and the node's grains.
type engineCollector struct{ e *Engine }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- grainsDesc
	ch <- membersDesc
	ch <- workersDesc
	ch <- oldestDesc
	ch <- dbRunningDesc
	ch <- dbMaxRunningDesc
	ch <- dbHeldBackDesc
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	if !e.running.Load() || e.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	if waiting, err := e.ledger.PendingByQueue(ctx); err == nil {
		// An empty queue says 0 rather than nothing: the queues this
		// node works, and those its tasks go to. The queues folded into
		// OtherQueue add their counts, and the oldest of them counts.
		now := time.Now()
		pending, oldest := map[string]int64{}, map[string]float64{}
		for q := range e.metrics.known {
			pending[q], oldest[q] = 0, 0
		}
		for q, w := range waiting {
			label := e.metrics.queue(q)
			pending[label] += w.Pending
			if !w.OldestReady.IsZero() {
				oldest[label] = max(oldest[label], now.Sub(w.OldestReady).Seconds())
			}
		}
		for q, n := range pending {
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n), q)
			ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest[q], q)
		}
	}
	ch <- prometheus.MustNewConstMetric(grainsDesc, prometheus.GaugeValue, float64(e.node.ActiveGrains()))
	states := map[sqljobber.MemberState]int{sqljobber.MemberAlive: 0, sqljobber.MemberSuspect: 0, sqljobber.MemberLeaving: 0}
	for _, m := range e.node.Members() {
		states[m.State]++
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), string(state))
	}
	for q := range e.metrics.known {
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(e.Workers(q)), q)
	}
	// Unrestricted: the context carries no caller.
	if dbs, err := e.Databases(ctx); err == nil {
		for _, d := range dbs {
			ch <- prometheus.MustNewConstMetric(dbRunningDesc, prometheus.GaugeValue, float64(d.Running), d.DB)
			ch <- prometheus.MustNewConstMetric(dbHeldBackDesc, prometheus.GaugeValue, float64(d.HeldBack), d.DB)
			if d.MaxRunning > 0 {
				ch <- prometheus.MustNewConstMetric(dbMaxRunningDesc, prometheus.GaugeValue, float64(d.MaxRunning), d.DB)
			}
		}
	}
}

// observeFinish records a run's end.
func (m *metrics) observeFinish(j *ledger.Job, o ledger.Outcome, took time.Duration) {
	q := m.queue(j.Queue)
	m.runTime.WithLabelValues(q, j.Task).Observe(took.Seconds())
	if o.State == sqljobber.StateRetry {
		m.retries.WithLabelValues(q, j.Task).Inc()
		return
	}
	m.finishedJob(j, o.State, sinceAdmission(j))
	m.rows.WithLabelValues(q, j.Task).Add(float64(o.Count))
	if o.State == sqljobber.StateSuccess {
		m.resultRows.WithLabelValues(q, j.Task).Observe(float64(o.Count))
	}
}

// finishedJob counts a job that reached final state, took after its
// admission.
func (m *metrics) finishedJob(j *ledger.Job, state sqljobber.State, took time.Duration) {
	q := m.queue(j.Queue)
	m.finished.WithLabelValues(q, j.Task, string(state)).Inc()
	m.duration.WithLabelValues(q, j.Task, string(state)).Observe(took.Seconds())
}

// sinceAdmission is how long ago j was admitted: 0 if that is unknown, or
// in the future by this node's clock (which another node's admission time
// can be, by a little).
func sinceAdmission(j *ledger.Job) time.Duration {
	if j.CreatedAt.IsZero() {
		return 0
	}
	return max(0, time.Since(j.CreatedAt))
}
