package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// verify checks the bookkeeping of b: every held message counted once, byte
// accounting exact, references equal to entries, queues and heaps consistent.
func (b *Server) verify() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n, bytes int64
	held := map[*message]bool{}
	for m := b.allHead; m != nil; m = m.allNext {
		if m.allNext != nil && m.allNext.allPrev != m {
			return fmt.Errorf("message %d: broken list", m.seq)
		}
		n++
		bytes += m.size
		held[m] = true
		if !m.inLog && m.refs == 0 {
			return fmt.Errorf("message %d held by nothing", m.seq)
		}
		if (m.roIdx >= 0) != (m.inLog && m.refs == 0) {
			return fmt.Errorf("message %d: retained-heap index %d with inLog %v refs %d", m.seq, m.roIdx, m.inLog, m.refs)
		}
		if m.pm != nil && (m.data != nil || m.attrs != nil) {
			return fmt.Errorf("message %d: decoded and encoded at once", m.seq)
		}
		if m.refs > 0 && m.size != m.full {
			return fmt.Errorf("message %d: held by %d subscriptions but counted %d of %d bytes", m.seq, m.refs, m.size, m.full)
		}
		if m.refs == 0 && (m.pm != nil || m.size != int64(len(m.data)+len(m.attrs))+compactOverhead) {
			return fmt.Errorf("message %d: kept only for Seek but not compacted", m.seq)
		}
		refs := int32(0)
		for _, s := range m.topic.subs {
			if e := s.entries[m.seq]; e != nil && e.m == m {
				refs++
			}
		}
		if refs != m.refs {
			return fmt.Errorf("message %d: refs %d, entries %d", m.seq, m.refs, refs)
		}
	}
	if n != b.messages {
		return fmt.Errorf("%d messages listed, %d counted", n, b.messages)
	}
	for i, m := range b.retained {
		if m.roIdx != i || !held[m] {
			return fmt.Errorf("retained heap slot %d: message %d (index %d, held %v)", i, m.seq, m.roIdx, held[m])
		}
	}
	for _, t := range b.topics {
		var ln int
		var lb int64
		for m := t.logHead; m != nil; m = m.logNext {
			if !m.inLog || m.topic != t || !held[m] {
				return fmt.Errorf("topic %s: log message %d inLog %v held %v", t.name, m.seq, m.inLog, held[m])
			}
			ln++
			lb += m.size
		}
		if ln != t.logN || lb != t.logBytes {
			return fmt.Errorf("topic %s: log %d/%d bytes, counted %d/%d", t.name, ln, lb, t.logN, t.logBytes)
		}
	}
	for _, s := range b.subs {
		var out, ready int
		var bb int64
		flowN := map[*flow]int64{}
		for seq, e := range s.entries {
			if e.m == nil || e.m.seq != seq || !held[e.m] {
				return fmt.Errorf("subscription %s: entry %d points to a freed message", s.name, seq)
			}
			bytes += entryCost
			bb += e.m.size
			switch e.state {
			case stateOutstanding:
				out++
				if e.hidx < 0 || s.deadlines[e.hidx] != e {
					return fmt.Errorf("subscription %s: outstanding entry %d not in the deadline heap", s.name, seq)
				}
				if e.fl != nil {
					flowN[e.fl]++
				}
			case stateReady:
				ready++
			default:
				return fmt.Errorf("subscription %s: entry %d is gone but mapped", s.name, seq)
			}
		}
		if out != s.outstanding || out != len(s.deadlines) || bb != s.backlogBytes {
			return fmt.Errorf("subscription %s: %d outstanding (counted %d, heap %d), %d bytes (counted %d)", s.name, out, s.outstanding, len(s.deadlines), bb, s.backlogBytes)
		}
		queued := 0
		seen := map[*entry]bool{}
		for i := 0; i < s.ready.n; i++ {
			e := s.ready.buf[(s.ready.head+i)%len(s.ready.buf)]
			if e.state == stateReady {
				if seen[e] {
					return fmt.Errorf("subscription %s: entry queued twice", s.name)
				}
				seen[e] = true
				queued++
			}
		}
		if queued != ready {
			return fmt.Errorf("subscription %s: %d ready entries, %d queued", s.name, ready, queued)
		}
		for f, c := range flowN {
			if f.outN != c {
				return fmt.Errorf("subscription %s: flow %q counts %d outstanding, holds %d", s.name, f.id, f.outN, c)
			}
		}
	}
	if bytes != b.bytes {
		return fmt.Errorf("%d bytes held, %d counted", bytes, b.bytes)
	}
	return nil
}

// TestInvariantsUnderChurn: the bookkeeping stays exact through publishes,
// acks, nacks, seeks, evictions, retention changes and deletions.
func TestInvariantsUnderChurn(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	e := brokerEnv(t, Options{MaxBytes: 300 << 10, Now: clock.Now})
	topic := mkTopic(t, e, 0)
	a := mkSub(t, e, topic, nil)
	b := mkSub(t, e, topic, nil)
	check := func(when string) {
		t.Helper()
		if err := e.broker.verify(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	publish(t, e, topic, "x", 100)
	check("after publishing without retention")
	got := pullRaw(t, e, a, 40, time.Second)
	check("after pulling")
	nack(t, e, a, got[:10])
	ackAll(t, e, a, got[10:20])
	check("after acks and nacks")
	setRetention(t, e, topic, 20*time.Minute)
	publish(t, e, topic, "y", 1500) // over the cap: evictions
	check("after evictions")
	if st := e.broker.Stats(); st.Bytes > 300<<10 || st.EvictedUnacked == 0 {
		t.Fatalf("stats after the flood: %+v", st)
	}
	if err := seek(e, b, clock.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("after seek")
	receive(t, e, b, 1<<30, 2*time.Second, recvOpts{})
	check("after draining a subscription")
	deleteSub(t, e, a)
	check("after deleting a subscription")
	// Everything is now kept only for Seek: a new subscription's seek evicts
	// the oldest of it to make room for its entries, and replays the rest.
	c := mkSub(t, e, topic, nil)
	if err := seek(e, c, clock.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("after a new subscription's seek")
	r := receive(t, e, c, 1<<30, 2*time.Second, recvOpts{})
	if r.distinct() == 0 {
		t.Fatal("nothing replayed")
	}
	check("after receiving")
	clock.Advance(21 * time.Minute)
	eventually(t, 3*time.Second, "retention trimmed", func() bool { return e.broker.Stats().Topics[0].Retained == 0 })
	check("after retention trimming")
	deleteTopic(t, e, topic)
	check("after deleting the topic")
	publishErr := e.c.Publisher(topic).Publish(context.Background(), &gps.Message{Data: []byte("z")})
	if _, err := publishErr.Get(context.Background()); status.Code(err) != codes.NotFound {
		t.Fatalf("publish to a deleted topic: %v", err)
	}
	receive(t, e, c, 1<<30, 2*time.Second, recvOpts{})
	check("after draining a detached subscription")
}

// TestCompactRoundTrip: a message kept only for Seek decodes to what was
// published.
func TestCompactRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	for _, pm := range []*pb.PubsubMessage{
		{Data: []byte("record"), Attributes: map[string]string{"kind": "record", "route": "route2", "": "empty key", "v": ""}},
		{Attributes: map[string]string{"kind": "heartbeat"}},
		{Data: []byte("d"), OrderingKey: "key"},
	} {
		m := &message{seq: 42, pm: proto.Clone(pm).(*pb.PubsubMessage), pubTime: at}
		m.data, m.attrs, m.pm = m.pm.Data, encodeAttrs(m.pm), nil
		got := m.decoded()
		want := proto.Clone(pm).(*pb.PubsubMessage)
		want.MessageId = "42"
		want.PublishTime = timestamppb.New(at)
		if !proto.Equal(got, want) {
			t.Errorf("round trip of %v gave %v", want, got)
		}
	}
}
