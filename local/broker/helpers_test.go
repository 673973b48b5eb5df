package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/testenv"
)

const project = "vmpulse-test"

// env is one server under test with a client of the production code.
type env struct {
	name   string
	addr   string
	broker *Server // nil for the emulator
	c      *gps.Client
}

func (e env) topic(id string) string { return pubsub.TopicName(project, id) }
func (e env) sub(id string) string   { return pubsub.SubscriptionName(project, id) }

// startBroker starts a broker for one test.
func startBroker(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	b, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// syncBuffer collects log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func connect(t testing.TB, addr string) *gps.Client {
	t.Helper()
	c, err := pubsub.Connect(context.Background(), project, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func brokerEnv(t testing.TB, opts Options) env {
	b := startBroker(t, opts)
	e := env{name: "broker", addr: b.Addr(), broker: b, c: connect(t, b.Addr())}
	t.Cleanup(func() {
		if err := b.verify(); err != nil {
			t.Errorf("broker bookkeeping at the end of the test: %v", err)
		}
	})
	return e
}

func emulatorEnv(t testing.TB) env {
	addr := testenv.PubsubEmulator(t)
	return env{name: "emulator", addr: addr, c: connect(t, addr)}
}

// both runs f against a fresh broker and against the Java emulator, so that
// the two are shown to behave alike.
func both(t *testing.T, f func(t *testing.T, e env)) {
	t.Run("broker", func(t *testing.T) {
		t.Parallel()
		f(t, brokerEnv(t, Options{}))
	})
	t.Run("emulator", func(t *testing.T) {
		t.Parallel()
		f(t, emulatorEnv(t))
	})
}

// mkTopic creates a uniquely named topic (deleted at the end) and returns its
// full name.
func mkTopic(t testing.TB, e env, retention time.Duration) string {
	t.Helper()
	name := e.topic(testenv.Unique("t"))
	tp := &pb.Topic{Name: name}
	if retention > 0 {
		tp.MessageRetentionDuration = durationpb.New(retention)
	}
	if _, err := e.c.TopicAdminClient.CreateTopic(context.Background(), tp); err != nil {
		t.Fatalf("%s: create topic: %v", e.name, err)
	}
	t.Cleanup(func() {
		_ = e.c.TopicAdminClient.DeleteTopic(context.Background(), &pb.DeleteTopicRequest{Topic: name})
	})
	return name
}

// mkSub creates a uniquely named subscription of topic (deleted at the end).
func mkSub(t testing.TB, e env, topic string, edit func(*pb.Subscription)) string {
	t.Helper()
	name := e.sub(testenv.Unique("s"))
	s := &pb.Subscription{Name: name, Topic: topic, AckDeadlineSeconds: 10}
	if edit != nil {
		edit(s)
	}
	if _, err := e.c.SubscriptionAdminClient.CreateSubscription(context.Background(), s); err != nil {
		t.Fatalf("%s: create subscription: %v", e.name, err)
	}
	t.Cleanup(func() {
		_ = e.c.SubscriptionAdminClient.DeleteSubscription(context.Background(), &pb.DeleteSubscriptionRequest{Subscription: name})
	})
	return name
}

// publish publishes n messages "<prefix>-<i>" with attribute i and waits for
// every result.
func publish(t testing.TB, e env, topic, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	p := e.c.Publisher(topic)
	defer p.Stop()
	res := make([]*gps.PublishResult, n)
	data := make([]string, n)
	for i := range n {
		data[i] = fmt.Sprintf("%s-%d", prefix, i)
		res[i] = p.Publish(ctx, &gps.Message{Data: []byte(data[i]), Attributes: map[string]string{"i": fmt.Sprint(i), "prefix": prefix}})
	}
	for i, r := range res {
		if _, err := r.Get(ctx); err != nil {
			t.Fatalf("%s: publish %d: %v", e.name, i, err)
		}
	}
	return data
}

// received is what a receiver saw.
type received struct {
	mu       sync.Mutex
	count    map[string]int // deliveries per data
	attrs    map[string]map[string]string
	attempts map[string][]int
	pubTime  map[string]time.Time
	firstAt  map[string]time.Time
}

func newReceived() *received {
	return &received{count: map[string]int{}, attrs: map[string]map[string]string{}, attempts: map[string][]int{}, pubTime: map[string]time.Time{}, firstAt: map[string]time.Time{}}
}

func (r *received) add(m *gps.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := string(m.Data)
	if r.count[d] == 0 {
		r.firstAt[d] = time.Now()
	}
	r.count[d]++
	r.attrs[d] = m.Attributes
	r.pubTime[d] = m.PublishTime
	a := 0
	if m.DeliveryAttempt != nil {
		a = *m.DeliveryAttempt
	}
	r.attempts[d] = append(r.attempts[d], a)
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.count)
}

func (r *received) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.count {
		n += c
	}
	return n
}

// recvOpts change how receive handles messages.
type recvOpts struct {
	nackFirst bool // nack the first delivery of each message, ack the next
}

// receive runs a subscriber with the production receive settings
// (functions/pubsub.Receive) on sub until want distinct messages arrived or
// timeout passed, and returns what it saw.
func receive(t testing.TB, e env, sub string, want int, timeout time.Duration, o recvOpts) *received {
	t.Helper()
	r := newReceived()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s := e.c.Subscriber(sub)
	s.ReceiveSettings.MaxOutstandingMessages = 10000
	s.ReceiveSettings.MaxOutstandingBytes = 64 << 20
	err := s.Receive(ctx, func(_ context.Context, m *gps.Message) {
		r.mu.Lock()
		first := r.count[string(m.Data)] == 0
		r.mu.Unlock()
		r.add(m)
		if o.nackFirst && first {
			m.Nack()
			return
		}
		m.Ack()
		if r.distinct() >= want && (!o.nackFirst || r.total() >= 2*want) {
			cancel()
		}
	})
	if err != nil && ctx.Err() == nil {
		t.Fatalf("%s: receive: %v", e.name, err)
	}
	return r
}

// pullRaw pulls once with the raw API (no lease management by the client).
func pullRaw(t testing.TB, e env, sub string, max int32, wait time.Duration) []*pb.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []*pb.ReceivedMessage
	for ctx.Err() == nil && len(out) < int(max) {
		res, err := e.c.SubscriptionAdminClient.Pull(ctx, &pb.PullRequest{Subscription: sub, MaxMessages: max - int32(len(out))})
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
				break
			}
			t.Fatalf("%s: pull: %v", e.name, err)
		}
		if len(res.ReceivedMessages) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		out = append(out, res.ReceivedMessages...)
	}
	return out
}

// eventually polls cond until it holds or d passed.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ackAll(t testing.TB, e env, sub string, msgs []*pb.ReceivedMessage) {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.AckId)
	}
	if err := e.c.SubscriptionAdminClient.Acknowledge(context.Background(), &pb.AcknowledgeRequest{Subscription: sub, AckIds: ids}); err != nil {
		t.Fatal(err)
	}
}

func nack(t testing.TB, e env, sub string, msgs []*pb.ReceivedMessage) {
	t.Helper()
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.AckId)
	}
	if err := e.c.SubscriptionAdminClient.ModifyAckDeadline(context.Background(), &pb.ModifyAckDeadlineRequest{Subscription: sub, AckIds: ids}); err != nil {
		t.Fatal(err)
	}
}

func setRetention(t testing.TB, e env, topic string, d time.Duration) {
	t.Helper()
	_, err := e.c.TopicAdminClient.UpdateTopic(context.Background(), &pb.UpdateTopicRequest{
		Topic:      &pb.Topic{Name: topic, MessageRetentionDuration: durationpb.New(d)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"message_retention_duration"}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deleteSub(t testing.TB, e env, sub string) {
	t.Helper()
	if err := e.c.SubscriptionAdminClient.DeleteSubscription(context.Background(), &pb.DeleteSubscriptionRequest{Subscription: sub}); err != nil {
		t.Fatal(err)
	}
}

func deleteTopic(t testing.TB, e env, topic string) {
	t.Helper()
	if err := e.c.TopicAdminClient.DeleteTopic(context.Background(), &pb.DeleteTopicRequest{Topic: topic}); err != nil {
		t.Fatal(err)
	}
}
