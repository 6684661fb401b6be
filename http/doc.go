// Package http serves sql-jobber's job API: routes (gorilla/mux), the JSON
// envelope, request decoding and validation of its shape, the encoding of
// results pages as JSON, NDJSON and CSV, and the one place where errors
// become HTTP status codes.
//
// It talks to the job engine through the small Service interface, and reads
// results through the Results interface; it knows nothing of databases or
// actors beyond the types those interfaces carry.
package http
