// Package wire owns the encoding of result rows into what each results
// database's bulk path reads: PostgreSQL's binary COPY stream and SQL
// literals, and MySQL's LOAD DATA text stream. It encodes rows typed as
// sqlexec.Rows types them and, when the source is the same kind of database
// as the results, passes the source's raw wire values through (see Source).
// It owns the value checks those encodings need: ranges, precision, and what
// each database's text may hold.
//
// It knows nothing of connections, tables or jobs: it turns rows into
// bytes, and its caller decides where the bytes go and what a failure
// means.
package wire
