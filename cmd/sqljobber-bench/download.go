package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// countingWriter counts the bytes and lines written to it and drops them.
type countingWriter struct{ n, lines int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// download reads a job's whole results table as CSV through the API, in one
// page, sampling the server's memory. It returns the time, the bytes, the
// server's RSS before and at its peak during the download.
func (s *server) download(ctx context.Context, id string, rows int64) (took time.Duration, size, before, peak int64, err error) {
	before = s.rss()
	stop := s.sampleRSS()
	defer stop()
	url := fmt.Sprintf("%s/jobs/%s/results?format=csv&limit=%d", s.base, id, rows)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	begin := time.Now()
	// No client timeout: a slow download is a result, not an error.
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return 0, 0, 0, 0, fmt.Errorf("GET %s: %d %s", url, res.StatusCode, b)
	}
	var w countingWriter
	if _, err := io.Copy(&w, res.Body); err != nil {
		return 0, 0, 0, 0, err
	}
	// The bench's data has no line breaks inside values.
	if w.lines != rows+1 {
		return 0, 0, 0, 0, fmt.Errorf("GET %s: %d lines, want a header and %d rows", url, w.lines, rows)
	}
	return time.Since(begin), w.n, before, stop(), nil
}

// pgCSVFloor reads the same table as CSV with PostgreSQL's own COPY TO, in
// the same order: the floor of a download.
func pgCSVFloor(ctx context.Context, d *dbs, table string) (time.Duration, int64, error) {
	conn, err := d.pgRes.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	var w countingWriter
	begin := time.Now()
	q := fmt.Sprintf("COPY (SELECT * FROM %s ORDER BY _row) TO STDOUT WITH (FORMAT csv, HEADER)", pgx.Identifier{table}.Sanitize())
	if _, err := conn.Conn().PgConn().CopyTo(ctx, &w, q); err != nil {
		return 0, 0, err
	}
	return time.Since(begin), w.n, nil
}
