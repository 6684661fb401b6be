package resultsink_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sql-jobber/sql-jobber/resultsink"
	"github.com/sql-jobber/sql-jobber/resultsink/resultsinktest"
	"github.com/sql-jobber/sql-jobber/sqlexec"
	"github.com/sql-jobber/sql-jobber/sqlexec/sqlexectest"
)

// BenchmarkOneRowResults publishes one-row results tables of the entries
// shape, each the first of its name and of its job ID (fence token 1), as
// most report jobs are: through the
// one-step small path and through a staging table. An op is one table.
func BenchmarkOneRowResults(b *testing.B) {
	for _, d := range []sqlexec.Dialect{sqlexec.Postgres, sqlexec.MySQL} {
		for _, staged := range []bool{false, true} {
			name := string(d) + "/small"
			if staged {
				name = string(d) + "/staged"
			}
			b.Run(name, func(b *testing.B) {
				backend := openBackend(b, d)
				if staged {
					resultsink.WithoutSmallPath(backend)
				}
				ctx := context.Background()
				b.ResetTimer()
				for i := range b.N {
					if _, _, err := backend.Write(ctx, fmt.Sprintf("results_one_%d", i), resultsinktest.NewVersion(), sqlexectest.EntryRows(1), resultsink.Fence{Token: 1}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tables/s")
			})
		}
	}
}
