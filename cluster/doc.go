// Package cluster owns membership and placement: it starts a protoactor-go
// actor system as a cluster member, publishes the members it knows to
// protoactor, decides which member owns each virtual grain (our own
// IdentityLookup, which activates a grain only on its owner), and wraps
// grain requests so that callers pass a context and get errors they can act
// on.
//
// It decides who is a member, too: gossip is encrypted and authenticated
// with the cluster's secret, the actor port can speak (mutual) TLS, and a
// node that keeps another ledger, or takes the worker name of a live
// member elsewhere, is refused (see gossipGate). It tells its user when a
// member is gone (Config.MemberDown), as soon as it can tell.
//
// It knows nothing of SQL or jobs: grain kinds are handed to it.
package cluster
