package local

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// embeddedPubSub is the official in-process Pub/Sub fake (pstest) serving gRPC on
// loopback, standing in for Google Cloud Pub/Sub when PUBSUB_EMULATOR_HOST is not
// set. pstest keeps every message ever published until ClearMessages, so a
// janitor clears them once every subscriber has acknowledged them all. To make
// that safe, Publish calls are turned away with Unavailable (which the publisher
// client retries) while the janitor checks and clears: pstest runs this check
// under the same lock as Publish, so no message can slip in between.
type embeddedPubSub struct {
	srv    *pstest.Server
	closed atomic.Bool
	gate   *publishGate
	dels   *deleteWatch
}

type publishGate struct{ closed atomic.Bool }

// deleteWatch remembers when a subscription was last deleted: pstest counts the
// acknowledgements of a deleted subscription in Message.Acks, so messages
// published before a deletion cannot be judged by their ack count.
type deleteWatch struct{ last atomic.Int64 } // unix nanoseconds

// React implements pstest.Reactor for DeleteSubscription.
func (d *deleteWatch) React(any) (bool, any, error) {
	d.last.Store(time.Now().UnixNano())
	return false, nil, nil
}

// React implements pstest.Reactor for Publish.
func (g *publishGate) React(any) (bool, any, error) {
	if g.closed.Load() {
		return true, nil, status.Error(codes.Unavailable, "local pubsub: compacting, retry")
	}
	return false, nil, nil
}

func startPubSub(addr string) *embeddedPubSub {
	g, d := &publishGate{}, &deleteWatch{}
	srv := pstest.NewServerWithAddress(addr,
		pstest.ServerReactorOption{FuncName: "Publish", Reactor: g},
		pstest.ServerReactorOption{FuncName: "DeleteSubscription", Reactor: d})
	return &embeddedPubSub{srv: srv, gate: g, dels: d}
}

// Addr is the host:port to use as an emulator host.
func (e *embeddedPubSub) Addr() string { return e.srv.Addr }

func (e *embeddedPubSub) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	return e.srv.Close()
}

// retention mirrors pstest's own: it drops undelivered messages from a
// subscription after 10 minutes, so older messages need no acknowledgement.
const retention = 10 * time.Minute

// compact clears the fake's messages when there are more than keep and each of
// them is either older than pstest's retention or acknowledged by every
// subscription of the topic (subscribers() counts them) and published after the
// last subscription deletion. It reports whether it cleared. Publishes are
// refused while it checks, and the subscriptions are counted once they are, so
// the count covers every subscription that can hold a message being judged.
func (e *embeddedPubSub) compact(keep int, subscribers func() (int, error)) (bool, error) {
	if len(e.srv.Messages()) <= keep {
		return false, nil
	}
	e.gate.closed.Store(true)
	defer e.gate.closed.Store(false)
	subs, err := subscribers()
	if err != nil {
		return false, err
	}
	now := time.Now()
	lastDelete := time.Unix(0, e.dels.last.Load())
	for _, m := range e.srv.Messages() {
		if now.Sub(m.PublishTime) >= retention {
			continue
		}
		if m.Acks < subs || !m.PublishTime.After(lastDelete) {
			return false, nil
		}
	}
	e.srv.ClearMessages()
	return true, nil
}

// janitor runs compact every interval until ctx ends.
func (e *embeddedPubSub) janitor(ctx context.Context, every time.Duration, keep int, subscribers func() (int, error), log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.compact(keep, subscribers); err != nil && ctx.Err() == nil {
				log.Warn("local pubsub: compaction skipped", "err", err)
			}
		}
	}
}
