package resultsink

// WithoutSmallPath makes b write every result through a staging table, so
// that tests cover that path with few rows too.
func WithoutSmallPath(b *Backend) { b.smallMax = 0 }
