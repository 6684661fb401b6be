package http

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: a database answers, the node has joined
// its cluster, the tasks are loaded.
type Check struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ReadyFunc runs the readiness checks.
type ReadyFunc func(ctx context.Context) []Check

// Ops serves the endpoints every node has, API or not: /metrics, /healthz
// and /readyz.
type Ops struct {
	gatherer prometheus.Gatherer
	ready    ReadyFunc
}

// NewOps returns the operations endpoints over a metrics registry and the
// readiness checks.
func NewOps(gatherer prometheus.Gatherer, ready ReadyFunc) *Ops {
	return &Ops{gatherer: gatherer, ready: ready}
}

// Register adds the endpoints to r.
func (o *Ops) Register(r *mux.Router, s *Server) {
	r.HandleFunc("/metrics", s.authorize(ScopeAdmin, promhttp.HandlerFor(o.gatherer, promhttp.HandlerOpts{}).ServeHTTP)).Methods(http.MethodGet)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		s.writeData(w, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.authorize(ScopeAdmin, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		checks := o.ready(ctx)
		var failing []string
		for _, c := range checks {
			if !c.OK {
				failing = append(failing, c.Name)
			}
		}
		ready := len(failing) == 0
		status, env := http.StatusOK, envelope{Status: "success"}
		if !ready {
			// The names alone (a database's is its configuration key):
			// the checks' errors are in the data.
			status, env = http.StatusServiceUnavailable, envelope{Status: "error", Message: "not ready: " + strings.Join(failing, ", ")}
		}
		env.Data = map[string]any{"ready": ready, "checks": checks}
		s.writeJSON(w, status, env)
	})).Methods(http.MethodGet)
}

// Handler serves only the operations endpoints, for a node that serves no
// API (--worker-only) or a separate metrics address.
func (o *Ops) Handler(cfg Config) http.Handler {
	s := newServer(nil, cfg)
	o.Register(s.router, s)
	s.notFound()
	return s.instrument(s.router)
}

// httpMetrics count requests by route template (never by raw path, which
// holds job IDs) and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sqljobber_http_requests_total",
			Help: "HTTP requests served, by route and status code."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sqljobber_http_request_duration_seconds",
			Help: "Time to serve an HTTP request, by route.", Buckets: prometheus.DefBuckets}, []string{"route", "method"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts every request served by next (a router).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No answer is to be read as another type than it says: an
		// error quoting a request must not become HTML.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		begin := time.Now()
		next.ServeHTTP(rec, r)
		var match mux.RouteMatch
		route := "unmatched"
		if s.router.Match(r, &match) && match.Route != nil {
			if tpl, err := match.Route.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
		s.metrics.duration.WithLabelValues(route, r.Method).Observe(time.Since(begin).Seconds())
	})
}
