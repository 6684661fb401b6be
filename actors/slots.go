package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// slotGate is one queue's slots on this node. The queue's actor fills free
// slots with jobs it claims from the ledger. A job grain may instead take a
// free slot for the job it is admitting and start that job at once, with no
// claim (Ledger.Start), but only while the queue is idle: its last claim
// found no ready job and nothing has woken it since, so no job waits that
// the slot would serve first. That saves a one-row job a third of its
// ledger writes and a round trip, and keeps the queue first in, first out.
//
// The actor claims only while the queue is not idle and grains start jobs
// only while it is, and either takes its slots here before using them, so
// the two never hold more than size slots between them.
type slotGate struct {
	mu   sync.Mutex
	size int
	used int // running, or taken for a claim or a start under way
	idle bool
	pid  *actor.PID // the queue's actor, once started
}

func newSlotGate(size int) *slotGate { return &slotGate{size: size} }

// setActor records the queue's actor, which slots handed back are
// reported to.
func (s *slotGate) setActor(pid *actor.PID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid = pid
}

func (s *slotGate) actor() *actor.PID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// takeAll takes every free slot, for a claim, and returns how many.
func (s *slotGate) takeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.size - s.used
	s.used = s.size
	return n
}

// takeIfIdle takes one slot for a job about to be admitted and started at
// once, if the queue is idle and a slot is free; it returns the queue's
// actor, to report the slot to when it frees, or nil.
func (s *slotGate) takeIfIdle() *actor.PID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.idle || s.used >= s.size || s.pid == nil {
		return nil
	}
	s.used++
	return s.pid
}

// free hands back n slots. Only the actor calls it; others send it
// slotFreed, so that it claims for the slot if jobs wait.
func (s *slotGate) free(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
}

func (s *slotGate) setIdle(idle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = idle
}

func (s *slotGate) isIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle
}
