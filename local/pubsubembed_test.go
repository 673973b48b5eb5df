package local

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// receiveN receives until n messages arrived on sub (acking them) or 10 s passed.
func receiveN(t *testing.T, c *gps.Client, sub string, n int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	got := map[string]bool{}
	pubsub.Receive(ctx, c, sub, func(data []byte, _ map[string]string) {
		mu.Lock()
		got[string(data)] = true
		if len(got) >= n {
			cancel()
		}
		mu.Unlock()
	})
	return len(got)
}

// TestCompactionNeverDropsUnackedMessages: the janitor clears pstest only when
// every subscription acknowledged every message, and a deleted subscription's
// acknowledgements do not count for the others.
func TestCompactionNeverDropsUnackedMessages(t *testing.T) {
	ctx := context.Background()
	fake := startPubSub("127.0.0.1:0")
	defer fake.Close()
	c, err := pubsub.Connect(ctx, "p", fake.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := pubsub.EnsureTopic(ctx, c, "t", true); err != nil {
		t.Fatal(err)
	}
	topic := pubsub.TopicName("p", "t")
	subs := func() (int, error) { return countSubs(ctx, c, topic) }
	a, _ := pubsub.CreateInstanceSubscription(ctx, c, "t", "a")
	b, _ := pubsub.CreateInstanceSubscription(ctx, c, "t", "b")
	pub := c.Publisher("t")
	for i := 0; i < 5; i++ {
		if _, err := pub.Publish(ctx, &gps.Message{Data: []byte(fmt.Sprint(i))}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := receiveN(t, c, a, 5); n != 5 {
		t.Fatalf("a received %d", n)
	}
	if cleared, _ := fake.compact(0, subs); cleared {
		t.Fatal("cleared while b had acknowledged nothing")
	}
	if err := pubsub.DeleteSubscription(ctx, c, a); err != nil {
		t.Fatal(err)
	}
	if cleared, _ := fake.compact(0, subs); cleared {
		t.Fatal("cleared after a's deletion although b had acknowledged nothing")
	}
	if n := receiveN(t, c, b, 5); n != 5 {
		t.Fatalf("b received %d of 5", n)
	}
	// Messages published after the deletion and acknowledged by the only
	// subscription are cleared; the older ones wait for pstest's retention.
	for i := 5; i < 8; i++ {
		pub.Publish(ctx, &gps.Message{Data: []byte(fmt.Sprint(i))}).Get(ctx)
	}
	pub.Stop()
	if n := receiveN(t, c, b, 3); n != 3 {
		t.Fatalf("b received %d of 3", n)
	}
	if cleared, _ := fake.compact(0, subs); cleared {
		t.Fatal("cleared messages published before a deletion, within retention")
	}
	fake.dels.last.Store(0) // as if the deletion were older than every message
	if cleared, err := fake.compact(0, subs); !cleared || err != nil {
		t.Fatalf("not cleared with everything acknowledged: %v", err)
	}
	if n := len(fake.srv.Messages()); n != 0 {
		t.Fatalf("%d messages kept", n)
	}
}
