package resultsink

// WithoutSmallPath makes b write every result through a staging table, so
// that tests cover that path with few rows too.
func WithoutSmallPath(b *Backend) { b.smallMax = 0 }

// PublishedTogether is how many of b's small publications were made in
// batches of more than one (PostgreSQL).
func PublishedTogether(b *Backend) int64 {
	if pg, ok := b.d.(postgresDialect); ok && pg.group != nil {
		return pg.group.together.Load()
	}
	return 0
}
