package pubsub

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

func TestNames(t *testing.T) {
	if got := TopicName("p", "t"); got != "projects/p/topics/t" {
		t.Fatal(got)
	}
	if got := TopicName("p", "projects/q/topics/t"); got != "projects/q/topics/t" {
		t.Fatal(got)
	}
	if got := SubscriptionName("p", "s"); got != "projects/p/subscriptions/s" {
		t.Fatal(got)
	}
}

func TestConnectNeedsProject(t *testing.T) {
	if _, err := Connect(context.Background(), "", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "-project") {
		t.Fatalf("err = %v", err)
	}
}

// TestTopicAndSubscriptionLifecycle runs against the Pub/Sub emulator: a missing
// topic is an error unless creation is asked for; an instance subscription is
// created with an expiration policy and deleted (twice is fine).
func TestTopicAndSubscriptionLifecycle(t *testing.T) {
	ctx := context.Background()
	c, err := Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := testenv.Unique("lifecycle")
	if err := EnsureTopic(ctx, c, topic, false); err == nil {
		t.Fatal("a missing topic was accepted without create")
	}
	if err := EnsureTopic(ctx, c, topic, true); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopic(ctx, c, topic, false); err != nil {
		t.Fatalf("existing topic: %v", err)
	}
	name, err := CreateInstanceSubscription(ctx, c, topic, testenv.Unique("inst"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscriptionAdminClient.GetSubscription(ctx, getSubReq(name))
	if err != nil {
		t.Fatal(err)
	}
	if sub.GetExpirationPolicy().GetTtl().AsDuration().Hours() != 24 || sub.GetTopic() != TopicName("vmpulse-test", topic) {
		t.Fatalf("subscription %+v", sub)
	}
	for i := 0; i < 2; i++ {
		if err := DeleteSubscription(ctx, c, name); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
	}
}

// TestPublishAfterStopIsReported: a record handed over after Stop is not silently
// lost: each gets an error result (and a log line).
func TestPublishAfterStopIsReported(t *testing.T) {
	ctx := context.Background()
	c, err := Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := testenv.Unique("stopped")
	if err := EnsureTopic(ctx, c, topic, true); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(c, topic, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	var ok, failed int
	done := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
		} else {
			ok++
		}
	}
	recs := []record.Record{{ID: "a", VM: "v"}, {ID: "b", VM: "v"}}
	p.Publish(ctx, "route1", time.Now(), time.Millisecond, recs, done)
	p.Stop()
	p.Publish(ctx, "route1", time.Now(), time.Millisecond, recs, done)
	if ok != 2 || failed != 2 {
		t.Fatalf("ok %d failed %d, want 2 and 2", ok, failed)
	}
}
