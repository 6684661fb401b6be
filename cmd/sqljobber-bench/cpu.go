package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux this runs on (reading it needs sysconf, so cgo).
const clockTicks = 100

// cpuMeter adds up the CPU time processes use while it runs, by kind: the
// databases' server processes, the sql-jobber server and the harness. CPU
// time is steadier from run to run on this machine than throughput, and
// says who pays. It samples /proc every 50 ms, so that a process that ends
// in between (a connection's backend) still counts up to its last sample.
type cpuMeter struct {
	serverPID int
	self      int
	stop      chan struct{}
	done      chan struct{}
	mu        sync.Mutex
	first     map[int]int64 // ticks at the start, of the processes then
	last      map[int]procCPU
}

type procCPU struct {
	comm  string
	ticks int64
}

// cpuUse is CPU time by kind.
type cpuUse struct{ db, server, harness time.Duration }

func startCPUMeter(serverPID int) *cpuMeter {
	m := &cpuMeter{serverPID: serverPID, self: os.Getpid(), stop: make(chan struct{}), done: make(chan struct{}),
		first: map[int]int64{}, last: map[int]procCPU{}}
	for pid, p := range readProcs() {
		m.first[pid] = p.ticks
		m.last[pid] = p
	}
	go func() {
		defer close(m.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				m.sample()
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *cpuMeter) sample() {
	procs := readProcs()
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid, p := range procs {
		m.last[pid] = p
	}
}

// Stop ends the measurement and returns the CPU time used since the start.
func (m *cpuMeter) Stop() cpuUse {
	close(m.stop)
	<-m.done
	var u cpuUse
	for pid, p := range m.last {
		d := time.Duration(p.ticks-m.first[pid]) * time.Second / clockTicks
		switch {
		case pid == m.serverPID:
			u.server += d
		case pid == m.self:
			u.harness += d
		case p.comm == "postgres" || p.comm == "mariadbd" || p.comm == "mysqld":
			u.db += d
		}
	}
	return u
}

// readProcs reads every process's command name and CPU time (user and
// system) from /proc.
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
		// After the name: state, then 10 fields before utime and stime.
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = procCPU{comm: s[open+1 : closing], ticks: utime + stime}
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
