package clustertest

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// FastGossip tunes memberlist for members on one machine, which must see
// each other join within a fraction of a second and notice a dead member
// within a second or two.
func FastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 3
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
	c.GossipToTheDeadTime = 2 * time.Second
}
