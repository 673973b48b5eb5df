package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/record"
)

// Publisher publishes the records one route committed, and that route instance's
// heartbeats. It never blocks the caller: messages are batched by the client
// (those published within a few milliseconds go in one RPC) and buffered up to a
// bound; beyond it, or while Pub/Sub is unreachable for longer than the client's
// retry window, publication fails and the caller's done callback says so. The
// records are in MySQL by then, and the ingest outbox publishes them again later.
type Publisher struct {
	p        *gps.Publisher
	route    string
	instance string
	beats    atomic.Uint64 // heartbeats attempted: the next one's seq - 1
	log      *slog.Logger
	wg       sync.WaitGroup

	mu      sync.Mutex // guards stopped and wg.Add against Stop
	stopped bool

	failing atomic.Bool // the last publication failed (logged once per change)
	lastErr atomic.Pointer[string]
}

// Buffer bounds of a Publisher: what waits for Pub/Sub at most. At ~1 KiB a record
// this is tens of seconds of the assignment's load; more fails fast.
const (
	maxOutstandingMessages = 20000
	maxOutstandingBytes    = 64 << 20
)

// PublishTimeout is how long a publication retries before it fails (the
// client's default is 60 s): the outbox republishes what failed, and a shutdown
// never waits longer than this. An outbox's grace must not be shorter, or it
// republishes batches whose first publication is still retrying.
const PublishTimeout = 10 * time.Second

// NewPublisher returns a publisher of route's records on topic.
func NewPublisher(c *gps.Client, topic, route string, log *slog.Logger) *Publisher {
	p := c.Publisher(topic)
	p.PublishSettings.DelayThreshold = 5 * time.Millisecond
	p.PublishSettings.CountThreshold = 200
	p.PublishSettings.ByteThreshold = 1 << 20
	p.PublishSettings.Timeout = PublishTimeout
	p.PublishSettings.FlowControlSettings = gps.FlowControlSettings{
		MaxOutstandingMessages: maxOutstandingMessages,
		MaxOutstandingBytes:    maxOutstandingBytes,
		// Never block ingest on Pub/Sub: a full buffer fails the publication and
		// the outbox republishes from MySQL.
		LimitExceededBehavior: gps.FlowControlSignalError,
	}
	return &Publisher{p: p, route: route, instance: instanceName(route), log: log}
}

// instanceName names this process among the route's instances: the host name
// (the pod's name on GKE) and a random suffix.
func instanceName(route string) string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return route + "@" + host + "-" + hex.EncodeToString(b[:])
}

// Instance is this publisher's instance name, as heartbeats carry it.
func (p *Publisher) Instance() string { return p.instance }

// Publish hands recs, committed together as batch b, to the client and returns at
// once. done (when not nil) is called once, from another goroutine, when every
// message was acknowledged (nil) or one of them failed (its error).
func (p *Publisher) Publish(ctx context.Context, b Batch, recs []record.Record, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		p.log.Error("publish after shutdown: records stored but not published now (the outbox publishes them later)", "batch", b.ID, "records", len(recs))
		done(errStopped)
		return
	}
	results := make([]*gps.PublishResult, len(recs))
	for i := range recs {
		data, _ := json.Marshal(&recs[i]) // a Record always marshals
		results[i] = p.p.Publish(ctx, RecordMessage(p.route, b, recs[i].ID, recs[i].VM, data))
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var first error
		for _, r := range results {
			if _, err := r.Get(context.Background()); err != nil && first == nil {
				first = err
			}
		}
		p.observe(first, "batch", b.ID)
		done(first)
	}()
}

// observe logs when publication starts or stops failing, once per change.
func (p *Publisher) observe(err error, attrs ...any) {
	if err == nil {
		if p.failing.Swap(false) {
			p.log.Info("Pub/Sub publication works again", attrs...)
		}
		p.lastErr.Store(nil)
		return
	}
	msg := err.Error()
	p.lastErr.Store(&msg)
	if !p.failing.Swap(true) {
		p.log.Error("Pub/Sub publication failing: records are stored and will be published when it returns",
			append(attrs, "err", err)...)
	}
}

// Err is the error of the last publication or heartbeat, nil when it succeeded.
func (p *Publisher) Err() error {
	if s := p.lastErr.Load(); s != nil {
		return errors.New(*s)
	}
	return nil
}

// Heartbeats publishes a heartbeat every interval until ctx ends, so relays can
// tell a quiet topic from a stalled subscription.
func (p *Publisher) Heartbeats(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p.mu.Lock()
		stopped := p.stopped
		p.mu.Unlock()
		if stopped {
			return
		}
		r := p.p.Publish(ctx, HeartbeatMessage(p.route, p.instance, time.Now(), p.beats.Add(1), every))
		gctx, cancel := context.WithTimeout(ctx, every)
		_, err := r.Get(gctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.observe(err, "heartbeat", p.instance)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var errStopped = errors.New("pubsub: publisher stopped")

// Stop flushes what is buffered and waits for every result. Later Publish calls
// publish nothing and report an error.
func (p *Publisher) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.p.Stop()
	p.wg.Wait()
}
