package sqlexec

// ConnectionID is connectionID, for the tests.
var ConnectionID = connectionID
