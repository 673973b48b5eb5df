package relay

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// handle takes one delivery from the subscription. Only records go to the hub
// (and on to clients); heartbeats tell the relay that the subscription delivers.
// The format is pubsub.Decode's, its one home.
//
// The subscription counts as alive when something new arrives: a record not
// seen before, or a heartbeat later than the last of its instance. Redeliveries
// do not count: after a connection reset the Java emulator redelivers old
// messages to the live stream while it hands the new ones to a dead one.
func (s *Service) handle(d pubsub.Delivery) {
	now := time.Now()
	if !d.PublishTime.IsZero() {
		storeMax(&s.lastPublish, d.PublishTime.UnixNano())
	}
	m, err := pubsub.Decode(d.Data, d.Attributes)
	if err != nil {
		if n := s.undecodable.Add(1); n == 1 || n%1000 == 0 {
			s.cfg.Log.Warn("dropping a message that cannot be decoded", "err", err, "count", n)
		}
		return
	}
	fresh := false
	switch m.Kind {
	case pubsub.KindHeartbeat:
		s.m.heartbeats.Inc()
		fresh = s.heartbeat(m, now)
	case pubsub.KindRecord:
		fresh = s.hub.AddMessage(m)
	}
	if fresh {
		storeMax(&s.lastMsg, now.UnixNano())
	}
}

// storeMax sets v to n when n is larger.
func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// heartbeat tracks each route instance's heartbeats. The age of the last
// message misses a partial stall: after a connection reset the Java emulator
// keeps handing part of the subscription's messages to a stream nobody reads,
// so some heartbeats still arrive while records vanish. Each heartbeat carries
// its number in the instance's sequence and the instance's pace, so a relay
// notices from the first heartbeat it sees: a number skipped, or a gap of more
// than two and a half intervals between two that arrived, means messages went
// missing (or the route could not publish, as in a Pub/Sub outage). Either way
// the receive loop restarts on a fresh subscription sought back to before the
// gap, which replays what was missed; a needless restart costs a replay the hub
// de-duplicates. Heartbeats of earlier releases carry neither: their pace is
// learnt as the shortest interval seen.
//
// It reports whether the heartbeat is new (not a redelivery).
func (s *Service) heartbeat(m pubsub.Message, now time.Time) bool {
	if m.Instance == "" || m.StoredAt.IsZero() {
		return true
	}
	sent := m.StoredAt
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	st := s.hb[m.Instance]
	if st == nil {
		if len(s.hb) >= maxInstances {
			s.forgetInstancesLocked(now)
		}
		st = &hbState{}
		s.hb[m.Instance] = st
	} else if !sent.After(st.last) { // a redelivery, or out of order
		return false
	} else if reason := st.missing(m); reason != "" {
		s.m.heartbeatGaps.Inc()
		s.requestRestart(reason, st.last.Add(-restartOverlap))
	}
	st.pace(m, s.cfg.heartbeatFloor)
	st.last, st.seen, st.seq = sent, now, m.Seq
	return true
}

// missing says which heartbeats of the instance went missing before m, the next
// one that arrived ("" when none did).
func (st *hbState) missing(m pubsub.Message) string {
	gap := m.StoredAt.Sub(st.last)
	switch {
	case m.Seq > 0 && st.seq > 0 && m.Seq > st.seq+1:
		return fmt.Sprintf("heartbeats %d to %d of %s missing", st.seq+1, m.Seq-1, m.Instance)
	case st.every > 0 && gap > st.every*5/2:
		return fmt.Sprintf("heartbeats of %s missing for %v", m.Instance, gap.Round(time.Second))
	}
	return ""
}

// pace sets the instance's pace from m: the one it announces, or, for
// heartbeats of earlier releases, the shortest interval seen (never below
// floor).
func (st *hbState) pace(m pubsub.Message, floor time.Duration) {
	switch gap := m.StoredAt.Sub(st.last); {
	case m.Every > 0:
		st.every = max(m.Every, floor)
	case !st.last.IsZero() && (st.every == 0 || gap < st.every):
		st.every = max(gap, floor)
	}
}

// hbState is what the relay knows of one route instance's heartbeats.
type hbState struct {
	last  time.Time     // sent_at of the latest heartbeat
	seq   uint64        // its number in the instance's sequence (0: not numbered)
	every time.Duration // the instance's pace: as announced, or the shortest interval seen
	seen  time.Time     // when the latest arrived
}

// maxInstances bounds the heartbeat table; instances come and go with deploys.
const maxInstances = 1024

// forgetInstancesLocked drops instances silent for ten minutes (gone).
func (s *Service) forgetInstancesLocked(now time.Time) {
	for id, st := range s.hb {
		if now.Sub(st.seen) > 10*time.Minute {
			delete(s.hb, id)
		}
	}
}

// requestRestart asks the watch loop to restart receiving, seeking back to from
// at least; requests made before it acts are merged.
func (s *Service) requestRestart(reason string, from time.Time) {
	s.reqMu.Lock()
	if s.req == nil || from.Before(s.req.from) {
		s.req = &restartRequest{reason: reason, from: from}
	}
	s.reqMu.Unlock()
	select {
	case s.reqc <- struct{}{}:
	default:
	}
}

type restartRequest struct {
	reason string
	from   time.Time
}
