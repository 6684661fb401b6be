package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/sql-jobber/sql-jobber/sqlexec"
)

// demoRows is the size of the demo entries table.
const demoRows = 20_000

// seedDemo creates the demo entries table in a SQLite database that has
// none: the same rows on every machine, so that examples give the same
// answers.
func seedDemo(ctx context.Context, db *sqlexec.DB, logger *slog.Logger) error {
	var n int
	if err := db.SQL().QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'entries'`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE entries (
	id INTEGER PRIMARY KEY,
	user_id TEXT NOT NULL,
	amount DECIMAL(12,2) NOT NULL,
	entry_date DATE NOT NULL,
	created_at TIMESTAMP NOT NULL,
	note TEXT
)`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE INDEX entries_user_date ON entries (user_id, entry_date)`); err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO entries (id, user_id, amount, entry_date, created_at, note) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	rng := rand.New(rand.NewPCG(2017, 12))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	notes := []string{"invoice", "refund", "subscription", "adjustment", ""}
	for i := 1; i <= demoRows; i++ {
		created := start.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
		cents, sign := rng.Int64N(2_000_000)-200_000, ""
		if cents < 0 {
			cents, sign = -cents, "-"
		}
		var note any = notes[rng.IntN(len(notes))]
		if note == "" {
			note = nil
		}
		if _, err := stmt.ExecContext(ctx, i, fmt.Sprintf("USER%d", 1+rng.IntN(50)),
			fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100), created.Format(time.DateOnly),
			created.Format("2006-01-02 15:04:05"), note); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	logger.Info("created demo table entries", slog.String("db", db.Name), slog.Int("rows", demoRows))
	return nil
}
