// Package cluster owns membership and placement: it starts a protoactor-go
// actor system as a cluster member, publishes the members it knows to
// protoactor, decides which member owns each virtual grain (our own
// IdentityLookup, which activates a grain only on its owner), and wraps
// grain requests so that callers pass a context and get errors they can act
// on.
//
// It knows nothing of SQL or jobs: grain kinds are handed to it.
package cluster
