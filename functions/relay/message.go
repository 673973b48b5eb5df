package relay

import (
	"sync/atomic"
	"time"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// handle takes one delivery from the subscription. Any message, heartbeat or
// record, proves the subscription alive; only records go to the hub (and on to
// clients). The format is pubsub.Decode's, its one home.
func (s *Service) handle(d pubsub.Delivery) {
	s.lastMsg.Store(time.Now().UnixNano())
	if !d.PublishTime.IsZero() {
		storeMax(&s.lastPublish, d.PublishTime.UnixNano())
	}
	m, err := pubsub.Decode(d.Data, d.Attributes)
	if err != nil {
		if n := s.undecodable.Add(1); n == 1 || n%1000 == 0 {
			s.cfg.Log.Warn("dropping a message that cannot be decoded", "err", err, "count", n)
		}
		s.m.undecodable.Inc()
		return
	}
	switch m.Kind {
	case pubsub.KindHeartbeat:
		s.m.heartbeats.Inc()
	case pubsub.KindRecord:
		s.hub.AddMessage(m)
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
