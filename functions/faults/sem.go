package faults

import (
	"sync"
	"time"
)

// Slots runs at most n scenarios at once, the waiting one with the lowest rank
// first (so the longest faults start first and the suite's wall time is short).
type Slots struct {
	mu      sync.Mutex
	cond    *sync.Cond
	free    int
	waiting map[int]int // rank → waiters
	start   time.Time   // first Acquire
}

// NewSlots returns n slots.
func NewSlots(n int) *Slots {
	s := &Slots{free: max(n, 1), waiting: map[int]int{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Acquire waits for a slot. Waiters register for a moment first, so that the
// subtests released together are ordered by rank, not by who woke first.
func (s *Slots) Acquire(rank int) {
	s.mu.Lock()
	s.waiting[rank]++
	if s.start.IsZero() {
		s.start = time.Now()
	}
	grace := 200*time.Millisecond - time.Since(s.start)
	s.mu.Unlock()
	time.Sleep(max(0, grace))
	s.mu.Lock()
	for s.free == 0 || !s.lowest(rank) {
		s.cond.Wait()
	}
	s.free--
	if s.waiting[rank]--; s.waiting[rank] == 0 {
		delete(s.waiting, rank)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *Slots) lowest(rank int) bool {
	for r := range s.waiting {
		if r < rank {
			return false
		}
	}
	return true
}

// Release frees a slot.
func (s *Slots) Release() {
	s.mu.Lock()
	s.free++
	s.mu.Unlock()
	s.cond.Broadcast()
}
