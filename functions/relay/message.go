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
		fresh = s.heartbeat(m.Instance, m.StoredAt, now)
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
// so some heartbeats still arrive while records vanish. Heartbeats come at a
// steady pace, so a gap of more than two and a half intervals between two that
// arrived means messages went missing (or the route could not publish, as in a
// Pub/Sub outage): either way the receive loop restarts on a fresh subscription
// sought back to before the gap, which replays what was missed.
//
// It reports whether the heartbeat is new (not a redelivery).
func (s *Service) heartbeat(instance string, sent, now time.Time) bool {
	if instance == "" || sent.IsZero() {
		return true
	}
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	st := s.hb[instance]
	if st == nil {
		if len(s.hb) >= maxInstances {
			s.forgetInstancesLocked(now)
		}
		s.hb[instance] = &hbState{last: sent, seen: now}
		return true
	}
	if !sent.After(st.last) { // a redelivery, or out of order
		return false
	}
	gap := sent.Sub(st.last)
	if st.every > 0 && gap > st.every*5/2 {
		s.m.heartbeatGaps.Inc()
		s.requestRestart(fmt.Sprintf("heartbeats of %s missing for %v", instance, gap.Round(time.Second)), st.last.Add(-restartOverlap))
	}
	if st.every == 0 || gap < st.every {
		st.every = max(gap, s.cfg.heartbeatFloor)
	}
	st.last, st.seen = sent, now
	return true
}

// hbState is what the relay knows of one route instance's heartbeats.
type hbState struct {
	last  time.Time     // sent_at of the latest heartbeat
	every time.Duration // the shortest interval seen: the instance's pace
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
