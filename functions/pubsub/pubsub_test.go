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

// TestPublishAfterStopIsReported: a batch handed over after Stop is not silently
// lost: its done callback gets an error (and a log line).
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
	p := NewPublisher(c, topic, "route1", slog.New(slog.DiscardHandler))
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
	p.Publish(ctx, Batch{ID: 1, StoredAt: time.Now()}, recs, done)
	p.Stop()
	p.Publish(ctx, Batch{ID: 2, StoredAt: time.Now()}, recs, done)
	if ok != 1 || failed != 1 || p.Err() != nil {
		t.Fatalf("ok %d failed %d (err %v), want one batch published and one refused", ok, failed, p.Err())
	}
}

// TestMessageRoundTrip: what the routes encode, the relay decodes, for both kinds,
// and messages of the earlier format (no kind, no id attribute) still decode.
func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	b := Batch{ID: 1<<40 + 7, StoredAt: at, Commit: 2500 * time.Microsecond}
	m := RecordMessage("route2", b, "r-1", "vm-1", []byte(`{"id":"r-1","vm":"vm-1"}`))
	got, err := Decode(m.Data, m.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	want := Message{Kind: KindRecord, Route: "route2", ID: "r-1", VM: "vm-1", StoredAt: at, CommitMS: 2.5, Batch: b.ID, Record: m.Data}
	if got.Kind != want.Kind || got.Route != want.Route || got.ID != want.ID || got.VM != want.VM ||
		!got.StoredAt.Equal(at) || got.CommitMS != want.CommitMS || got.Batch != want.Batch || string(got.Record) != string(want.Record) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	h := HeartbeatMessage("route1", "route1@pod-a", at, 42, 5*time.Second)
	got, err = Decode(h.Data, h.Attributes)
	if err != nil || got.Kind != KindHeartbeat || got.Instance != "route1@pod-a" || got.Route != "route1" || !got.StoredAt.Equal(at) ||
		got.Seq != 42 || got.Every != 5*time.Second {
		t.Fatalf("heartbeat %+v %v", got, err)
	}
	delete(h.Attributes, AttrSeq)
	delete(h.Attributes, AttrEveryMS)
	if got, err = Decode(nil, h.Attributes); err != nil || got.Seq != 0 || got.Every != 0 {
		t.Fatalf("heartbeat of the earlier format (no seq, no every_ms): %+v %v", got, err)
	}
	old, err := Decode([]byte(`{"id":"x-9"}`), map[string]string{AttrRoute: "route1", AttrCommitMS: "1.250"})
	if err != nil || old.Kind != KindRecord || old.ID != "x-9" || old.CommitMS != 1.25 {
		t.Fatalf("earlier format: %+v %v", old, err)
	}
	for _, bad := range []struct {
		data  string
		attrs map[string]string
	}{
		{"not json", nil},
		{`[1]`, nil},
		{`{"id":"a"}`, map[string]string{AttrKind: "gossip"}},
		{"", map[string]string{AttrKind: KindHeartbeat, AttrSentAt: "2026-12-01T10:00:00Z", AttrSeq: "-1"}},
		{"", map[string]string{AttrKind: KindHeartbeat, AttrSentAt: "2026-12-01T10:00:00Z", AttrEveryMS: "5s"}},
		{`{"id":"a"}`, map[string]string{AttrStoredAt: "yesterday"}},
		{`{"id":"a"}`, map[string]string{AttrBatch: "x"}},
		{"", map[string]string{AttrKind: KindHeartbeat}},
	} {
		if _, err := Decode([]byte(bad.data), bad.attrs); err == nil {
			t.Errorf("Decode(%q, %v) accepted", bad.data, bad.attrs)
		}
	}
}
