// Package http serves sql-jobber's job API: routes (gorilla/mux), the JSON
// envelope, request decoding and validation of its shape, the encoding of
// results pages as JSON, NDJSON and CSV, the one place where errors become
// HTTP status codes, and the web dashboard (ui/, embedded: static files
// whose scripts read this API from the browser).
//
// It talks to the job engine through the small Service interface, and reads
// results through the Results interface; it knows nothing of databases or
// actors beyond the types those interfaces carry.
package http
