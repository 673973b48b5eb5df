package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// TestPublishReceive: messages published with the client arrive through the
// production receive loop with their data and attributes.
func TestPublishReceive(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		data := publish(t, e, topic, "m", 200)
		got := map[string]map[string]string{}
		var mu sync.Mutex
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := pubsub.Receive(ctx, e.c, sub, func(d []byte, attrs map[string]string) {
			mu.Lock()
			defer mu.Unlock()
			got[string(d)] = attrs
			if len(got) == len(data) {
				cancel()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range data {
			a, ok := got[d]
			if !ok {
				t.Fatalf("%s never received", d)
			}
			if a["i"] != fmt.Sprint(i) || a["prefix"] != "m" {
				t.Fatalf("%s: attributes %v", d, a)
			}
		}
	})
}

// TestEverySubscriptionGetsEveryMessage: each subscription of a topic gets
// every message published after it was created, and none from before.
func TestEverySubscriptionGetsEveryMessage(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		subs := []string{mkSub(t, e, topic, nil), mkSub(t, e, topic, nil), mkSub(t, e, topic, nil)}
		data := publish(t, e, topic, "m", 300)
		late := mkSub(t, e, topic, nil)
		lateData := publish(t, e, topic, "late", 10)
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Go(func() {
				r := receive(t, e, s, len(data)+len(lateData), 30*time.Second, recvOpts{})
				for _, d := range append(data, lateData...) {
					if r.count[d] == 0 {
						t.Errorf("%s: %s never received", s, d)
					}
				}
			})
		}
		wg.Wait()
		r := receive(t, e, late, len(lateData)+1, 3*time.Second, recvOpts{})
		if r.distinct() != len(lateData) {
			t.Errorf("late subscription received %d distinct messages, want the %d published after it: %v", r.distinct(), len(lateData), r.count)
		}
	})
}

// TestAckStopsRedelivery: acknowledged messages never come back, even after
// their ack deadline.
func TestAckStopsRedelivery(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		data := publish(t, e, topic, "m", 20)
		if r := receive(t, e, sub, len(data), 20*time.Second, recvOpts{}); r.distinct() != len(data) {
			t.Fatalf("received %d of %d", r.distinct(), len(data))
		}
		if got := pullRaw(t, e, sub, 10, 13*time.Second); len(got) != 0 {
			t.Fatalf("%d acknowledged messages redelivered after the ack deadline, first %s", len(got), got[0].Message.Data)
		}
		if e.broker != nil {
			st, _ := e.broker.Stats().Subscription(sub)
			if st.Backlog != 0 || st.Acked != uint64(len(data)) {
				t.Fatalf("stats after acking everything: %+v", st)
			}
		}
	})
}

// TestNackRedelivers: a nacked message comes back at once; the broker counts
// the attempts in delivery_attempt (the service does so only with a
// dead-letter policy, and the emulator not at all).
func TestNackRedelivers(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		data := publish(t, e, topic, "m", 20)
		start := time.Now()
		r := receive(t, e, sub, len(data), 20*time.Second, recvOpts{nackFirst: true})
		t.Logf("%s: delivery attempts of %s: %v", e.name, data[0], r.attempts[data[0]])
		for _, d := range data {
			if r.count[d] < 2 {
				t.Fatalf("%s delivered %d times, want a redelivery after the nack", d, r.count[d])
			}
			if e.broker != nil {
				if a := r.attempts[d]; a[0] != 1 || a[1] != 2 {
					t.Fatalf("%s: delivery attempts %v, want 1 then 2", d, a)
				}
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("nacked messages took %v to come back", d)
		}
	})
}

// TestExpiredDeadlineRedelivers: a message not acknowledged within its ack
// deadline is delivered again with a new ack id; the old one no longer acks.
func TestExpiredDeadlineRedelivers(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		ctx := context.Background()
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		publish(t, e, topic, "m", 1)
		first := pullRaw(t, e, sub, 1, 5*time.Second)
		if len(first) != 1 {
			t.Fatalf("pulled %d messages", len(first))
		}
		start := time.Now()
		if again := pullRaw(t, e, sub, 1, 5*time.Second); len(again) != 0 {
			t.Fatalf("redelivered before its deadline")
		}
		second := pullRaw(t, e, sub, 1, 15*time.Second)
		if len(second) != 1 {
			t.Fatalf("not redelivered within %v", time.Since(start))
		}
		if since := time.Since(start); since < 4*time.Second {
			t.Fatalf("redelivered after %v, before the 10 s deadline", since)
		}
		if string(second[0].Message.Data) != "m-0" || second[0].AckId == first[0].AckId {
			t.Fatalf("redelivery %q with ack id %q (first %q)", second[0].Message.Data, second[0].AckId, first[0].AckId)
		}
		if e.broker != nil && (first[0].DeliveryAttempt != 1 || second[0].DeliveryAttempt != 2) {
			t.Fatalf("delivery attempts %d then %d", first[0].DeliveryAttempt, second[0].DeliveryAttempt)
		}
		if err := e.c.SubscriptionAdminClient.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: sub, AckIds: []string{second[0].AckId}}); err != nil {
			t.Fatal(err)
		}
		if e.broker != nil {
			if st, _ := e.broker.Stats().Subscription(sub); st.Backlog != 0 || st.Expired != 1 || st.Redelivered != 1 {
				t.Fatalf("stats: %+v", st)
			}
		}
	})
}

// seekSupported skips the test on a server without Seek to a time.
func seekSupported(t *testing.T, e env, err error) {
	t.Helper()
	if err != nil && e.broker == nil && status.Code(err) == codes.Unimplemented {
		t.Skipf("the emulator lacks Seek: %v", err)
	}
	if err != nil {
		t.Fatalf("%s: seek: %v", e.name, err)
	}
}

func seek(e env, sub string, at time.Time) error {
	_, err := e.c.SubscriptionAdminClient.Seek(context.Background(), &pb.SeekRequest{
		Subscription: sub, Target: &pb.SeekRequest_Time{Time: timestamppb.New(at)},
	})
	return err
}

// TestSeekReplaysWithData: Seek to a time brings back, with data and
// attributes, every message published from then on, acknowledged or not, and
// on a topic with retention even those published before the subscription
// existed (how a new relay rebuilds its history). Older ones stay acknowledged.
func TestSeekReplaysWithData(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 20*time.Minute)
		a := mkSub(t, e, topic, nil)
		old := publish(t, e, topic, "old", 50)
		time.Sleep(100 * time.Millisecond)
		recent := publish(t, e, topic, "recent", 50)
		r := receive(t, e, a, 100, 20*time.Second, recvOpts{})
		if r.distinct() != 100 {
			t.Fatalf("received %d of 100", r.distinct())
		}
		cut := r.pubTime[recent[0]]
		for _, d := range old {
			if !r.pubTime[d].Before(cut) {
				t.Fatalf("publish times out of order: %s at %v, %s at %v", d, r.pubTime[d], recent[0], cut)
			}
		}

		// A subscription created now, seeked back: the whole history.
		b := mkSub(t, e, topic, nil)
		seekSupported(t, e, seek(e, b, time.Now().Add(-15*time.Minute)))
		rb := receive(t, e, b, 100, 20*time.Second, recvOpts{})
		for i, d := range append(old, recent...) {
			if rb.count[d] == 0 {
				t.Fatalf("new subscription seeked back: %s not replayed", d)
			}
			if at := rb.attrs[d]; at["prefix"] == "" || at["i"] != fmt.Sprint(i%50) {
				t.Fatalf("%s replayed without its attributes: %v", d, at)
			}
		}

		// The first subscription, seeked to the first recent message: exactly
		// the recent ones again.
		seekSupported(t, e, seek(e, a, cut))
		ra := receive(t, e, a, len(recent)+1, 4*time.Second, recvOpts{})
		for _, d := range recent {
			if ra.count[d] == 0 {
				t.Fatalf("seek to %v: %s (acknowledged) not replayed", cut, d)
			}
		}
		if ra.distinct() != len(recent) {
			t.Fatalf("seek to %v replayed %d distinct messages, want the %d published from then on", cut, ra.distinct(), len(recent))
		}
	})
}

// TestSeekAcknowledgesOlderMessages: Seek to a time drops the unacknowledged
// messages published before it; a Seek to a future time also drops what is
// published until then.
func TestSeekAcknowledgesOlderMessages(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		publish(t, e, topic, "old", 30)
		time.Sleep(100 * time.Millisecond)
		cut := time.Now()
		time.Sleep(100 * time.Millisecond)
		recent := publish(t, e, topic, "recent", 30)
		seekSupported(t, e, seek(e, sub, cut))
		r := receive(t, e, sub, len(recent)+1, 4*time.Second, recvOpts{})
		if r.distinct() != len(recent) {
			t.Fatalf("after seek to %v received %d distinct messages, want the %d recent ones: %v", cut, r.distinct(), len(recent), r.count)
		}
		if e.broker == nil {
			// The service's guide: "Seeking to a time marks every message
			// received by Pub/Sub before the time as acknowledged [...]
			// You can seek to a time in the future to purge messages." The
			// emulator purges only what the subscription holds at the seek
			// and delivers what is published after it.
			return
		}
		seekSupported(t, e, seek(e, sub, time.Now().Add(time.Hour)))
		publish(t, e, topic, "purged", 10)
		if r := receive(t, e, sub, 1, 2*time.Second, recvOpts{}); r.distinct() != 0 {
			t.Fatalf("after a seek to a future time, messages published before it were delivered: %v", r.count)
		}
	})
}

// fakeClock is a wall clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestTopicRetentionTrims: a topic keeps its messages for its retention and
// nothing longer; a subscription's backlog is bounded by its own retention.
func TestTopicRetentionTrims(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	e := brokerEnv(t, Options{Now: clock.Now})
	topic := mkTopic(t, e, 10*time.Minute)
	idle := mkSub(t, e, topic, func(s *pb.Subscription) { s.MessageRetentionDuration = durationpb.New(30 * time.Minute) })
	publish(t, e, topic, "m", 100)
	st := e.broker.Stats()
	if st.Topics[0].Retained != 100 || st.Messages != 100 {
		t.Fatalf("after publishing 100: %+v", st)
	}
	clock.Advance(11 * time.Minute)
	publish(t, e, topic, "n", 10)
	eventually(t, 3*time.Second, "topic retention trimmed", func() bool { return e.broker.Stats().Topics[0].Retained == 10 })
	// The idle subscription still holds all 110 (its retention is 30 min).
	if s, _ := e.broker.Stats().Subscription(idle); s.Backlog != 110 {
		t.Fatalf("idle subscription backlog %d, want 110", s.Backlog)
	}
	// A new subscription seeked back gets only what the topic still keeps.
	late := mkSub(t, e, topic, nil)
	if err := seek(e, late, clock.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, e, late, 11, 2*time.Second, recvOpts{}); r.distinct() != 10 {
		t.Fatalf("seek after trimming replayed %d messages, want 10", r.distinct())
	}
	clock.Advance(31 * time.Minute)
	eventually(t, 3*time.Second, "subscription retention trimmed", func() bool {
		s, _ := e.broker.Stats().Subscription(idle)
		return s.Backlog == 0
	})
	eventually(t, 3*time.Second, "all memory released", func() bool {
		st := e.broker.Stats()
		return st.Messages == 0 && st.Bytes == 0
	})
}

// TestDeleteSubscriptionEndsStreams: deleting a subscription ends the open
// streaming pulls; Receive returns NotFound.
func TestDeleteSubscriptionEndsStreams(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		done := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		go func() {
			done <- e.c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *gps.Message) { m.Ack() })
		}()
		publish(t, e, topic, "m", 1)
		time.Sleep(time.Second)
		if _, err := e.c.SubscriptionAdminClient.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: sub}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := e.c.SubscriptionAdminClient.DeleteSubscription(ctx, &pb.DeleteSubscriptionRequest{Subscription: sub}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if status.Code(err) != codes.NotFound {
				t.Fatalf("Receive ended with %v, want NotFound", err)
			}
			t.Logf("%s: Receive ended %v after the deletion: %v", e.name, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(20 * time.Second):
			if e.broker == nil {
				t.Skip("the emulator does not end open streams when their subscription is deleted")
			}
			t.Fatal("Receive still running 20 s after its subscription was deleted")
		}
	})
}
