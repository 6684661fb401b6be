package actors

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestJobLoggerWritesItsAttributesFirst: a job's logger writes lines as
// logger.With would, its attributes before the line's, and only lines its
// level lets through.
func TestJobLoggerWritesItsAttributesFirst(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	log := jobLogger(base, slog.String("job_id", "j1"), slog.String("queue", "q"))
	log.Info("hidden", slog.Int("n", 1))
	log.With(slog.String("extra", "e")).Warn("shown", slog.Int("n", 2))
	log.WithGroup("g").Error("grouped", slog.Int("n", 3))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q, want the warning and the error", lines)
	}
	for i, want := range []string{`msg=shown job_id=j1 queue=q extra=e n=2`, `msg=grouped job_id=j1 queue=q g.n=3`} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %q, want it to end %q", lines[i], want)
		}
	}
}
