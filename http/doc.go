// Package http serves sql-jobber's job API: routes (gorilla/mux), the JSON
// envelope, request decoding and validation of its shape, and the one place
// where errors become HTTP status codes.
//
// It talks to the job engine through the small Service interface and knows
// nothing of databases or actors beyond the types that interface carries.
package http
