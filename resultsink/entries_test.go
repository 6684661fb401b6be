package resultsink

import (
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// EntryRows yields n rows like cmd/sqljobber-bench's entries table, made in
// advance, so that the source allocates nothing per row.
func EntryRows(n int) sqlexec.Rows { return sqlexectest.EntryRows(n) }
