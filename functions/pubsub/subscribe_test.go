package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// TestRetentionAndSeekReplay runs against the emulator: a topic created with
// retention keeps what was published before a subscription existed, and a seek
// of a new subscription to a time before replays it, data and publish times
// included.
func TestRetentionAndSeekReplay(t *testing.T) {
	ctx := context.Background()
	c, err := Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := testenv.Unique("retain")
	if _, _, err := EnsureRetainingTopic(ctx, c, topic, false, 20*time.Minute); err == nil {
		t.Fatal("a missing topic was accepted without create")
	}
	if d, up, err := EnsureRetainingTopic(ctx, c, topic, true, 20*time.Minute); err != nil || d != 20*time.Minute || up {
		t.Fatalf("create: %v %v", d, err)
	}
	if d, up, err := EnsureRetainingTopic(ctx, c, topic, false, time.Hour); err != nil || d != 20*time.Minute || up {
		t.Fatalf("existing topic without create: %v %v, want its 20m", d, err)
	}
	bare := testenv.Unique("bare")
	// A topic made before retention was set (EnsureTopic now creates with it).
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: TopicName(c.Project(), bare)}); err != nil {
		t.Fatal(err)
	}
	if d, up, err := EnsureRetainingTopic(ctx, c, bare, false, 20*time.Minute); err != nil || d != 0 || up {
		t.Fatalf("bare topic: %v %v, want 0", d, err)
	}
	if d, up, err := EnsureRetainingTopic(ctx, c, bare, true, 20*time.Minute); err != nil || d != 20*time.Minute || !up {
		t.Fatalf("bare topic with create: %v %v %v, want it updated", d, up, err)
	}

	routes := testenv.Unique("routes")
	if err := EnsureTopic(ctx, c, routes, true); err != nil {
		t.Fatal(err)
	}
	if d, _, err := EnsureRetainingTopic(ctx, c, routes, false, 0); err != nil || d != TopicRetention {
		t.Fatalf("a topic the routes create: retention %v %v, want %v", d, err, TopicRetention)
	}

	pub := c.Publisher(topic)
	before := time.Now().Add(-time.Second)
	for i := 0; i < 5; i++ {
		if _, err := pub.Publish(ctx, &gps.Message{Data: []byte(fmt.Sprint("m", i))}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pub.Stop()
	sub, err := CreateInstanceSubscription(ctx, c, topic, testenv.Unique("late"))
	if err != nil {
		t.Fatal(err)
	}
	defer DeleteSubscription(ctx, c, sub)
	if err := SeekToTime(ctx, c, sub, before); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]time.Time{}
	err = ReceiveDeliveries(rctx, c, sub, func(d Delivery) {
		mu.Lock()
		defer mu.Unlock()
		got[string(d.Data)] = d.PublishTime
		if len(got) == 5 {
			cancel()
		}
	})
	if err != nil || len(got) != 5 {
		t.Fatalf("replayed %d of 5: %v", len(got), err)
	}
	for m, at := range got {
		if at.Before(before) || at.After(time.Now()) {
			t.Errorf("%s: publish time %v", m, at)
		}
	}
	if err := SeekToTime(ctx, c, SubscriptionName(c.Project(), "missing-sub"), before); err == nil {
		t.Error("seek of a missing subscription succeeded")
	}
}

func TestRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		status.Error(codes.Unavailable, "down"):           true,
		status.Error(codes.PermissionDenied, "not yet"):   true, // IAM propagation after a deploy
		status.Error(codes.NotFound, "topic"):             true,
		status.Error(codes.InvalidArgument, "bad name"):   false,
		status.Error(codes.AlreadyExists, "subscription"): false,
		context.Canceled: false,
		fmt.Errorf("wrapped: %w", status.Error(codes.DeadlineExceeded, "slow")): true,
		errors.New("plain"): true, // unknown: try again
	} {
		if got := Retryable(err); got != want {
			t.Errorf("Retryable(%v) = %v, want %v", err, got, want)
		}
	}
	if Retryable(nil) {
		t.Error("nil is retryable")
	}
}
