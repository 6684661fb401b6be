package sqljobber

// MemberState is how a node sees a member of its cluster.
type MemberState string

// Member states.
const (
	// MemberAlive answers gossip.
	MemberAlive MemberState = "alive"
	// MemberSuspect stopped answering; it owns no grains while the other
	// members wait, for a grace, to see whether it answers again.
	MemberSuspect MemberState = "suspect"
	// MemberLeaving is stopping: it takes no new jobs.
	MemberLeaving MemberState = "leaving"
)

// Member is a node of the cluster, as this node sees it.
type Member struct {
	// Name is the node's worker name (--worker-name), unique in the
	// cluster.
	Name string
	// ID is its actor system's ID, new at every start.
	ID string
	// Address is where its actors are reached, host:port.
	Address string
	// API is its HTTP API address; "" if it serves none.
	API string
	// Queues are the queues it works, with their slots.
	Queues map[string]int
	// Self is this node.
	Self  bool
	State MemberState
}
