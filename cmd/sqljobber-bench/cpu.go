package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux this runs on (reading it needs sysconf, so cgo).
const clockTicks = 100

// cpuMeter adds up the CPU time processes use while it runs, by kind: the
// databases' server processes, the sql-jobber server and the harness. CPU
// time is steadier from run to run on this machine than throughput, and
// says who pays.
//
// It reads /proc twice, at the start and at Stop, and nothing in between:
// sampling every process on a VM with hundreds of kernel threads took a
// quarter of the two cores it measures. A database backend that ends in
// between (a connection closed) is not lost: once its parent, the
// postmaster, has reaped it, its CPU time is in the parent's children's
// times, which count with the database's own.
type cpuMeter struct {
	serverPID int
	self      int
	first     cpuUse
}

// cpuUse is CPU time by kind.
type cpuUse struct{ db, server, harness time.Duration }

func startCPUMeter(serverPID int) *cpuMeter {
	m := &cpuMeter{serverPID: serverPID, self: os.Getpid()}
	m.first = m.read()
	return m
}

// Stop ends the measurement and returns the CPU time used since the start.
func (m *cpuMeter) Stop() cpuUse {
	u := m.read()
	return cpuUse{db: u.db - m.first.db, server: u.server - m.first.server, harness: u.harness - m.first.harness}
}

// read returns the CPU time each kind has used so far. The server's and
// the harness's children (the harness starts the server) are not theirs.
func (m *cpuMeter) read() cpuUse {
	var u cpuUse
	ticks := func(t int64) time.Duration { return time.Duration(t) * time.Second / clockTicks }
	for pid, p := range readProcs() {
		switch {
		case pid == m.serverPID:
			u.server += ticks(p.own)
		case pid == m.self:
			u.harness += ticks(p.own)
		case p.comm == "postgres" || p.comm == "mariadbd" || p.comm == "mysqld":
			u.db += ticks(p.own + p.children)
		}
	}
	return u
}

type procCPU struct {
	comm string
	// own is the process's CPU time (user and system), children that of
	// its children that have ended and been waited for, in clock ticks.
	own, children int64
}

// readProcs reads every process's command name and CPU times from /proc.
func readProcs() map[int]procCPU {
	out := map[int]procCPU{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		// After the name: state, then 10 fields before utime, stime,
		// cutime and cstime.
		f := strings.Fields(s[closing+1:])
		if len(f) < 15 {
			continue
		}
		var t [4]int64
		for i := range t {
			t[i], _ = strconv.ParseInt(f[11+i], 10, 64)
		}
		out[pid] = procCPU{comm: s[open+1 : closing], own: t[0] + t[1], children: t[2] + t[3]}
	}
	return out
}

// perJob says the CPU time per job, for a result's notes.
func (u cpuUse) perJob(jobs int) string {
	return u.say("CPU ms/job", func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(jobs) })
}

// total says the CPU time of a run, for a result's notes.
func (u cpuUse) total() string {
	return u.say("CPU s", time.Duration.Seconds)
}

// say lists the CPU time by kind, in the unit that unit names, as in
// gives it; the server's only if there is one.
func (u cpuUse) say(unit string, in func(time.Duration) float64) string {
	f := func(d time.Duration) string { return strconv.FormatFloat(in(d), 'f', 2, 64) }
	parts := []string{unit + ": database " + f(u.db)}
	if u.server > 0 {
		parts = append(parts, "server "+f(u.server))
	}
	return strings.Join(append(parts, "harness "+f(u.harness)), ", ")
}
