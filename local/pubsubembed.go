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
}

type publishGate struct{ closed atomic.Bool }

// React implements pstest.Reactor for Publish.
func (g *publishGate) React(any) (bool, any, error) {
	if g.closed.Load() {
		return true, nil, status.Error(codes.Unavailable, "local pubsub: compacting, retry")
	}
	return false, nil, nil
}

func startPubSub(addr string) *embeddedPubSub {
	g := &publishGate{}
	srv := pstest.NewServerWithAddress(addr, pstest.ServerReactorOption{FuncName: "Publish", Reactor: g})
	return &embeddedPubSub{srv: srv, gate: g}
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

// compact clears the fake's messages when there are more than keep and all of them
// were acknowledged by every subscriber (subscribers() counts the subscriptions of
// the topic), or are older than pstest's retention. It reports whether it cleared.
func (e *embeddedPubSub) compact(keep int, subscribers func() (int, error)) (bool, error) {
	if len(e.srv.Messages()) <= keep {
		return false, nil
	}
	subs, err := subscribers()
	if err != nil {
		return false, err
	}
	e.gate.closed.Store(true)
	defer e.gate.closed.Store(false)
	now := time.Now()
	for _, m := range e.srv.Messages() {
		if m.Acks < subs && now.Sub(m.PublishTime) < retention {
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
