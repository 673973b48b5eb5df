package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// TestFlowControl: a streaming pull gets at most max_outstanding_messages
// unacknowledged messages; each ack lets one more through.
func TestFlowControl(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		topic := mkTopic(t, e, 0)
		sub := mkSub(t, e, topic, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := e.c.SubscriptionAdminClient.StreamingPull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.StreamingPullRequest{
			Subscription: sub, StreamAckDeadlineSeconds: 60, MaxOutstandingMessages: 5, ClientId: "flow-test",
		}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var ids []string
		go func() {
			for {
				res, err := stream.Recv()
				if err != nil {
					return
				}
				mu.Lock()
				for _, m := range res.ReceivedMessages {
					ids = append(ids, m.AckId)
				}
				mu.Unlock()
			}
		}()
		count := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
		publish(t, e, topic, "m", 20)
		eventually(t, 10*time.Second, "first 5 messages", func() bool { return count() >= 5 })
		time.Sleep(time.Second)
		if n := count(); n != 5 && e.broker == nil {
			t.Skipf("the emulator lacks server-side flow control: %d messages outstanding on a stream limited to 5", n)
		} else if n != 5 {
			t.Fatalf("%d messages outstanding on a stream limited to 5", n)
		}
		mu.Lock()
		acks := append([]string(nil), ids[:3]...)
		mu.Unlock()
		if err := stream.Send(&pb.StreamingPullRequest{AckIds: acks}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "3 more after 3 acks", func() bool { return count() >= 8 })
		time.Sleep(time.Second)
		if n := count(); n != 8 {
			t.Fatalf("%d messages delivered after acking 3 of 5, want 8", n)
		}
	})
}

// TestByteCapEvictsRetainedFirst: under a flood, the cap holds by evicting
// messages kept only for Seek, never those a subscriber still needs.
func TestByteCapEvictsRetainedFirst(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	var logs syncBuffer
	e := brokerEnv(t, Options{MaxBytes: limit, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	topic := mkTopic(t, e, time.Hour)
	sub := mkSub(t, e, topic, nil)
	const n = 4000
	r := newReceived()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *gps.Message) {
		r.add(m)
		m.Ack()
	})
	// Publish in steps a subscriber keeps up with: nothing it needs is
	// evicted, but the topic's retention must give way.
	p := e.c.Publisher(topic)
	pad := strings.Repeat("x", 1000)
	for step := 0; step < n; step += 100 {
		var res []*gps.PublishResult
		for i := step; i < step+100; i++ {
			res = append(res, p.Publish(ctx, &gps.Message{Data: []byte(fmt.Sprintf("%05d%s", i, pad))}))
		}
		for _, pr := range res {
			if _, err := pr.Get(ctx); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 10*time.Second, "the subscriber keeps up", func() bool { return r.distinct() >= step+100 })
	}
	p.Stop()
	st := e.broker.Stats()
	if st.Bytes > limit || st.EvictedRetained == 0 || st.EvictedUnacked != 0 {
		t.Fatalf("stats: bytes %d (cap %d), evicted retained %d, unacked %d", st.Bytes, limit, st.EvictedRetained, st.EvictedUnacked)
	}
	eventually(t, 15*time.Second, "the eviction logged", func() bool {
		return strings.Contains(logs.String(), "oldest retained messages evicted")
	})
}

// TestByteCapDropsUnackedWhenUnavoidable: a subscription nobody reads cannot
// grow memory past the cap; what is dropped is counted and logged as an error.
func TestByteCapDropsUnackedWhenUnavoidable(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	var logs syncBuffer
	e := brokerEnv(t, Options{MaxBytes: limit, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	topic := mkTopic(t, e, 0)
	sub := mkSub(t, e, topic, nil)
	const n = 5000
	p := e.c.Publisher(topic)
	pad := strings.Repeat("x", 1000)
	var res []*gps.PublishResult
	for i := range n {
		res = append(res, p.Publish(context.Background(), &gps.Message{Data: []byte(fmt.Sprintf("%05d%s", i, pad))}))
	}
	for _, r := range res {
		if _, err := r.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	p.Stop()
	st := e.broker.Stats()
	s, _ := st.Subscription(sub)
	if st.Bytes > limit || st.EvictedUnacked == 0 || s.Evicted != st.EvictedUnacked {
		t.Fatalf("stats: bytes %d (cap %d), evicted unacked %d, subscription %+v", st.Bytes, limit, st.EvictedUnacked, s)
	}
	if int(st.EvictedUnacked)+s.Backlog != n {
		t.Fatalf("evicted %d + backlog %d != published %d", st.EvictedUnacked, s.Backlog, n)
	}
	eventually(t, 3*time.Second, "the loss logged as an error", func() bool {
		l := logs.String()
		return strings.Contains(l, "level=ERROR") && strings.Contains(l, "unacknowledged messages dropped")
	})
	// What is left arrives intact.
	r := receive(t, e, sub, s.Backlog, 20*time.Second, recvOpts{})
	if r.distinct() != s.Backlog {
		t.Fatalf("received %d of the %d kept", r.distinct(), s.Backlog)
	}
	for d := range r.count {
		if len(d) != 5+len(pad) {
			t.Fatalf("message of %d bytes received", len(d))
		}
	}
}

// TestUnavailableResumesWithoutLoss: during an outage every RPC fails and the
// streams are cut; the client retries, and once the outage ends every
// message published before, during and after arrives.
func TestUnavailableResumesWithoutLoss(t *testing.T) {
	t.Parallel()
	e := brokerEnv(t, Options{})
	topic := mkTopic(t, e, 0)
	sub := mkSub(t, e, topic, nil)
	const n = 400
	var restored time.Time
	done := make(chan *received)
	go func() { done <- receive(t, e, sub, n, 4*time.Minute, recvOpts{}) }()
	p := e.c.Publisher(topic)
	var res []*gps.PublishResult
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		switch i {
		case 100:
			e.broker.SetUnavailable(true)
			eventually(t, 2*time.Second, "the stream cut", func() bool {
				st, _ := e.broker.Stats().Subscription(sub)
				return st.Streams == 0
			})
			if err := rawCall(e.addr, "/google.pubsub.v1.Publisher/GetTopic", &pb.GetTopicRequest{Topic: topic}, &pb.Topic{}); status.Code(err) != codes.Unavailable {
				t.Errorf("GetTopic during the outage: %v, want Unavailable", err)
			}
		case 250:
			e.broker.SetUnavailable(false)
			restored = time.Now()
		}
		res = append(res, p.Publish(context.Background(), &gps.Message{Data: []byte(fmt.Sprint(i))}))
	}
	// The client gives up on a message after its retries (up to 60 s with
	// back-off and jitter); like the routes' outbox, publish it again.
	for i, r := range res {
		for try := 0; ; try++ {
			_, err := r.Get(context.Background())
			if err == nil {
				break
			}
			if try == 3 {
				t.Fatalf("publish %d: %v", i, err)
			}
			t.Logf("publish %d failed (%v); again", i, err)
			r = p.Publish(context.Background(), &gps.Message{Data: []byte(fmt.Sprint(i))})
		}
	}
	p.Stop()
	r := <-done
	// The publisher's retry back-off (up to 60 s) sets how long the
	// messages published during the outage take.
	t.Logf("every message received %v after the outage ended", time.Since(restored).Round(time.Millisecond))
	if r.distinct() != n {
		var missing []int
		for i := range n {
			if r.count[fmt.Sprint(i)] == 0 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("received %d of %d after the outage; missing %v", r.distinct(), n, missing)
	}
}

// TestConcurrentPublishersAndSubscribers: several publishers and subscribers
// at once (run with -race); every subscription gets every message.
func TestConcurrentPublishersAndSubscribers(t *testing.T) {
	t.Parallel()
	e := brokerEnv(t, Options{})
	topic := mkTopic(t, e, 20*time.Minute)
	subs := []string{mkSub(t, e, topic, nil), mkSub(t, e, topic, nil), mkSub(t, e, topic, nil)}
	const pubs, per = 4, 300
	var wg sync.WaitGroup
	results := make([]*received, len(subs))
	for i, s := range subs {
		wg.Go(func() { results[i] = receive(t, e, s, pubs*per, 60*time.Second, recvOpts{}) })
	}
	var pw sync.WaitGroup
	for p := range pubs {
		pw.Go(func() { publish(t, e, topic, fmt.Sprintf("p%d", p), per) })
	}
	// Admin and stats calls race with the traffic.
	pw.Go(func() {
		for range 20 {
			e.broker.Stats()
			extra := mkSub(t, e, topic, nil)
			if err := seek(e, extra, time.Now().Add(-time.Minute)); err != nil {
				t.Error(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	pw.Wait()
	wg.Wait()
	for i, r := range results {
		if r.distinct() != pubs*per {
			t.Errorf("subscription %d received %d of %d", i, r.distinct(), pubs*per)
		}
	}
}

// TestUnimplemented: what the broker does not implement says so.
func TestUnimplemented(t *testing.T) {
	t.Parallel()
	e := brokerEnv(t, Options{})
	ctx := context.Background()
	topic := mkTopic(t, e, 0)
	sub := mkSub(t, e, topic, nil)
	sc := e.c.SubscriptionAdminClient
	checks := map[string]error{}
	_, checks["CreateSnapshot"] = sc.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{Name: "projects/p/snapshots/snap", Subscription: sub})
	_, checks["Seek to a snapshot"] = sc.Seek(ctx, &pb.SeekRequest{Subscription: sub, Target: &pb.SeekRequest_Snapshot{Snapshot: "projects/p/snapshots/snap"}})
	for name, edit := range map[string]func(*pb.Subscription){
		"filter":        func(s *pb.Subscription) { s.Filter = `attributes.kind = "record"` },
		"ordering":      func(s *pb.Subscription) { s.EnableMessageOrdering = true },
		"dead letters":  func(s *pb.Subscription) { s.DeadLetterPolicy = &pb.DeadLetterPolicy{DeadLetterTopic: topic} },
		"push":          func(s *pb.Subscription) { s.PushConfig = &pb.PushConfig{PushEndpoint: "https://example.com/push"} },
		"exactly once":  func(s *pb.Subscription) { s.EnableExactlyOnceDelivery = true },
		"retry backoff": func(s *pb.Subscription) { s.RetryPolicy = &pb.RetryPolicy{} },
	} {
		s := &pb.Subscription{Name: e.sub(testenv.Unique("u")), Topic: topic}
		edit(s)
		_, checks["subscription with "+name] = sc.CreateSubscription(ctx, s)
	}
	_, checks["DetachSubscription"] = e.c.TopicAdminClient.DetachSubscription(ctx, &pb.DetachSubscriptionRequest{Subscription: sub})
	checks["SchemaService"] = rawCall(e.addr, "/google.pubsub.v1.SchemaService/ListSchemas", &pb.ListSchemasRequest{Parent: "projects/p"}, &pb.ListSchemasResponse{})
	for what, err := range checks {
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "vmpulse broker") {
			t.Errorf("%s: %v, want Unimplemented from the broker", what, err)
		}
	}
}

// TestValidation: bounds of the service are enforced, naming the field.
func TestValidation(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		ctx := context.Background()
		tc, sc := e.c.TopicAdminClient, e.c.SubscriptionAdminClient
		topic := mkTopic(t, e, 0)
		t.Cleanup(func() { // what a lenient server accepted
			it := tc.ListTopicSubscriptions(ctx, &pb.ListTopicSubscriptionsRequest{Topic: topic})
			for {
				name, err := it.Next()
				if err != nil {
					return
				}
				_ = sc.DeleteSubscription(ctx, &pb.DeleteSubscriptionRequest{Subscription: name})
			}
		})
		cases := map[string]func() error{
			"topic retention 5 min": func() error {
				_, err := tc.CreateTopic(ctx, &pb.Topic{Name: e.topic(testenv.Unique("v")), MessageRetentionDuration: durationpb.New(5 * time.Minute)})
				return err
			},
			"topic retention 32 days": func() error {
				_, err := tc.CreateTopic(ctx, &pb.Topic{Name: e.topic(testenv.Unique("v")), MessageRetentionDuration: durationpb.New(32 * 24 * time.Hour)})
				return err
			},
			"ack deadline 5 s": func() error {
				_, err := sc.CreateSubscription(ctx, &pb.Subscription{Name: e.sub(testenv.Unique("v")), Topic: topic, AckDeadlineSeconds: 5})
				return err
			},
			"ack deadline 601 s": func() error {
				_, err := sc.CreateSubscription(ctx, &pb.Subscription{Name: e.sub(testenv.Unique("v")), Topic: topic, AckDeadlineSeconds: 601})
				return err
			},
			"subscription retention 1 min": func() error {
				_, err := sc.CreateSubscription(ctx, &pb.Subscription{Name: e.sub(testenv.Unique("v")), Topic: topic, MessageRetentionDuration: durationpb.New(time.Minute)})
				return err
			},
			"bad topic name": func() error {
				_, err := tc.CreateTopic(ctx, &pb.Topic{Name: "projects/" + project + "/topics/1x"})
				return err
			},
			"update retention to 1 min": func() error {
				_, err := tc.UpdateTopic(ctx, &pb.UpdateTopicRequest{
					Topic:      &pb.Topic{Name: topic, MessageRetentionDuration: durationpb.New(time.Minute)},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_retention_duration"}},
				})
				return err
			},
		}
		for what, f := range cases {
			err := f()
			if status.Code(err) != codes.InvalidArgument {
				if e.broker == nil {
					t.Logf("the emulator accepts %s (%v)", what, err)
					continue
				}
				t.Errorf("%s: %v, want InvalidArgument", what, err)
			}
		}
	})
}

// TestAdmin: topics and subscriptions are created, listed (with pages),
// updated and deleted as with the service.
func TestAdmin(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, e env) {
		ctx := context.Background()
		proj := testenv.Unique("admin")
		tc, sc := e.c.TopicAdminClient, e.c.SubscriptionAdminClient
		var topics []string
		for i := range 5 {
			name := fmt.Sprintf("projects/%s/topics/topic-%d", proj, i)
			if _, err := tc.CreateTopic(ctx, &pb.Topic{Name: name, Labels: map[string]string{"n": fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
			topics = append(topics, name)
			defer tc.DeleteTopic(ctx, &pb.DeleteTopicRequest{Topic: name})
		}
		if _, err := tc.CreateTopic(ctx, &pb.Topic{Name: topics[0]}); status.Code(err) != codes.AlreadyExists {
			t.Fatalf("creating a topic twice: %v", err)
		}
		var listed []string
		it := tc.ListTopics(ctx, &pb.ListTopicsRequest{Project: "projects/" + proj, PageSize: 2})
		for {
			tp, err := it.Next()
			if err != nil {
				break
			}
			listed = append(listed, tp.Name)
		}
		if strings.Join(listed, ",") != strings.Join(topics, ",") {
			t.Fatalf("ListTopics in pages of 2: %v", listed)
		}
		subName := fmt.Sprintf("projects/%s/subscriptions/sub-0", proj)
		s, err := sc.CreateSubscription(ctx, &pb.Subscription{
			Name: subName, Topic: topics[0], AckDeadlineSeconds: 30,
			MessageRetentionDuration: durationpb.New(10 * time.Minute),
			ExpirationPolicy:         &pb.ExpirationPolicy{Ttl: durationpb.New(24 * time.Hour)},
			Labels:                   map[string]string{"app": "vmpulse"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sc.DeleteSubscription(ctx, &pb.DeleteSubscriptionRequest{Subscription: subName})
		if s.AckDeadlineSeconds != 30 || s.Labels["app"] != "vmpulse" || s.MessageRetentionDuration.AsDuration() != 10*time.Minute {
			t.Fatalf("created subscription: %v", s)
		}
		names := sc.ListSubscriptions(ctx, &pb.ListSubscriptionsRequest{Project: "projects/" + proj})
		if got, err := names.Next(); err != nil || got.Name != subName {
			t.Fatalf("ListSubscriptions: %v %v", got, err)
		}
		tsubs := tc.ListTopicSubscriptions(ctx, &pb.ListTopicSubscriptionsRequest{Topic: topics[0]})
		if got, err := tsubs.Next(); err != nil || got != subName {
			t.Fatalf("ListTopicSubscriptions: %v %v", got, err)
		}
		up, err := tc.UpdateTopic(ctx, &pb.UpdateTopicRequest{
			Topic:      &pb.Topic{Name: topics[1], MessageRetentionDuration: durationpb.New(time.Hour)},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_retention_duration"}},
		})
		if err != nil {
			if e.broker == nil && status.Code(err) == codes.Unimplemented {
				t.Logf("the emulator lacks UpdateTopic: %v", err)
			} else {
				t.Fatal(err)
			}
		} else if up.MessageRetentionDuration.AsDuration() != time.Hour {
			t.Fatalf("updated topic: %v", up)
		}
		us, err := sc.UpdateSubscription(ctx, &pb.UpdateSubscriptionRequest{
			Subscription: &pb.Subscription{Name: subName, AckDeadlineSeconds: 60},
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"ack_deadline_seconds"}},
		})
		if err != nil || us.AckDeadlineSeconds != 60 {
			t.Fatalf("UpdateSubscription: %v %v", us, err)
		}
		if err := tc.DeleteTopic(ctx, &pb.DeleteTopicRequest{Topic: topics[0]}); err != nil {
			t.Fatal(err)
		}
		got, err := sc.GetSubscription(ctx, &pb.GetSubscriptionRequest{Subscription: subName})
		if err != nil || got.Topic != "_deleted-topic_" {
			t.Fatalf("subscription of a deleted topic: %v %v", got, err)
		}
		if _, err := tc.GetTopic(ctx, &pb.GetTopicRequest{Topic: topics[0]}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetTopic after delete: %v", err)
		}
	})
}

// rawCall makes one gRPC call without the client library's retries.
func rawCall(addr, method string, req, res any) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return conn.Invoke(ctx, method, req, res)
}
