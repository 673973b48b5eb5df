package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/record"
)

// Publisher publishes committed records, batching messages (the client groups
// messages published within a few milliseconds into one RPC) and bounding what is
// buffered: when the topic is slower than the routes, Publish blocks instead of
// growing memory.
type Publisher struct {
	p   *gps.Publisher
	log *slog.Logger
	wg  sync.WaitGroup

	mu      sync.Mutex // guards stopped and wg.Add against Stop
	stopped bool
}

// NewPublisher returns a publisher on topic.
func NewPublisher(c *gps.Client, topic string, log *slog.Logger) *Publisher {
	p := c.Publisher(topic)
	p.PublishSettings.DelayThreshold = 5 * time.Millisecond
	p.PublishSettings.CountThreshold = 200
	p.PublishSettings.ByteThreshold = 1 << 20
	p.PublishSettings.FlowControlSettings = gps.FlowControlSettings{
		MaxOutstandingMessages: 20000,
		MaxOutstandingBytes:    64 << 20,
		LimitExceededBehavior:  gps.FlowControlBlock,
	}
	return &Publisher{p: p, log: log}
}

// Publish sends one message per record with the route, vm, commit time and commit
// duration as attributes. It returns once the messages are handed to the client's
// batcher; results are collected in the background (the client retries transient
// errors until its timeout), failures are logged, and done (when not nil) is
// called once per record with its outcome.
func (p *Publisher) Publish(ctx context.Context, route string, storedAt time.Time, commit time.Duration, recs []record.Record, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		for i := range recs {
			p.log.Error("publish after shutdown: record stored but not streamed", "id", recs[i].ID)
			done(errStopped)
		}
		return
	}
	at := storedAt.UTC().Format(time.RFC3339Nano)
	ms := strconv.FormatFloat(float64(commit.Microseconds())/1000, 'f', 3, 64)
	results := make([]*gps.PublishResult, 0, len(recs))
	for i := range recs {
		data, _ := json.Marshal(&recs[i]) // a Record always marshals
		results = append(results, p.p.Publish(ctx, &gps.Message{
			Data: data,
			Attributes: map[string]string{
				AttrRoute: route, AttrVM: recs[i].VM, AttrCommitMS: ms, AttrStoredAt: at,
			},
		}))
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i, r := range results {
			_, err := r.Get(context.Background())
			if err != nil {
				p.log.Error("publish failed: record stored but not streamed", "id", recs[i].ID, "err", err)
			}
			done(err)
		}
	}()
}

var errStopped = errors.New("pubsub: publisher stopped")

// Stop flushes what is buffered and waits for every result. Later Publish calls
// publish nothing and report an error for each record.
func (p *Publisher) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.p.Stop()
	p.wg.Wait()
}
