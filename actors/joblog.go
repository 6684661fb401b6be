package actors

import (
	"context"
	"log/slog"
)

// lazyAttrs is a handler that adds attributes to a record only when one is
// written. slog's text and JSON handlers format With's attributes at once:
// a logger per job run cost every job that, though most nodes write no line
// per job (log_level above info).
type lazyAttrs struct {
	h     slog.Handler
	attrs []slog.Attr
}

func (l lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	return l.h.WithAttrs(l.attrs).Handle(ctx, r)
}

func (l lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return lazyAttrs{h: l.h, attrs: append(l.attrs[:len(l.attrs):len(l.attrs)], attrs...)}
}

func (l lazyAttrs) WithGroup(name string) slog.Handler {
	return l.h.WithAttrs(l.attrs).WithGroup(name)
}

// jobLogger is logger with a job's attributes, formatted only if a line is
// written.
func jobLogger(logger *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(lazyAttrs{h: logger.Handler(), attrs: attrs})
}
