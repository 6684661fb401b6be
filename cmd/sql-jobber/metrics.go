package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// poolCollector reports the connection pools of the configured databases,
// labelled by their configured names.
type poolCollector struct {
	pools []pool
}

type pool struct {
	role string // "source" or "results"
	db   *sqlexec.DB
}

var poolDesc = prometheus.NewDesc("sqljobber_db_connections",
	"Connections of a configured database's pool, by state (open, in_use, idle).", []string{"db", "role", "state"}, nil)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolDesc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools {
		st := p.db.Stats()
		for state, n := range map[string]int{"open": st.Open, "in_use": st.InUse, "idle": st.Idle} {
			ch <- prometheus.MustNewConstMetric(poolDesc, prometheus.GaugeValue, float64(n), p.db.Name, p.role, state)
		}
	}
}
