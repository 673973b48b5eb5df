package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/frontend/web"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/metrics"
)

// Config wires a relay Service.
type Config struct {
	Client         *gps.Client
	Topic          string
	SubscriptionID string // this instance's own subscription
	CreateTopic    bool   // create a missing topic (emulators)
	History        int
	ClientQueue    int
	WS             Options
	// WebDir, when set, serves the built dashboard at / (local mode).
	WebDir string
	Log    *slog.Logger
}

// Service is one relay instance: its subscription, its hub and its HTTP handler.
type Service struct {
	cfg     Config
	sub     string
	hub     *Hub
	reg     *metrics.Registry
	handler http.Handler

	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start creates this instance's subscription and starts receiving.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if err := pubsub.EnsureTopic(ctx, cfg.Client, cfg.Topic, cfg.CreateTopic); err != nil {
		return nil, err
	}
	sub, err := pubsub.CreateInstanceSubscription(ctx, cfg.Client, cfg.Topic, cfg.SubscriptionID)
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("relay subscribed", "subscription", sub, "topic", cfg.Topic)
	s := &Service{cfg: cfg, sub: sub, reg: metrics.NewRegistry(), done: make(chan error, 1)}
	s.hub = NewHub(cfg.History, cfg.ClientQueue, s.reg)

	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.hub.Handler(cfg.WS))
	mux.Handle("GET /metrics", s.reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `{"status":"ok","subscription":%q,"clients":%d}`+"\n", sub, s.hub.Clients())
	})
	if cfg.WebDir != "" {
		mux.Handle("/", web.Handler(os.DirFS(cfg.WebDir), web.Config{}))
	}
	s.handler = mux

	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() {
		s.done <- pubsub.Receive(rctx, cfg.Client, sub, func(data []byte, attrs map[string]string) {
			id, item, err := FromMessage(data, attrs)
			if errors.Is(err, errHeartbeat) {
				return
			}
			if err != nil {
				cfg.Log.Warn("dropping a message that is not a record", "err", err)
				return
			}
			s.hub.Add(id, item)
		})
	}()
	return s, nil
}

// Handler serves /ws, /healthz, /metrics (and the dashboard with WebDir).
func (s *Service) Handler() http.Handler { return s.handler }

// Hub exposes the hub (tests).
func (s *Service) Hub() *Hub { return s.hub }

// Subscription is the full name of this instance's subscription.
func (s *Service) Subscription() string { return s.sub }

// Done reports a receive loop that ended by itself (an unrecoverable Pub/Sub error).
func (s *Service) Done() <-chan error { return s.done }

// Close stops receiving, tells clients to reconnect (to another instance), and
// deletes the subscription.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.hub.CloseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = pubsub.DeleteSubscription(ctx, s.cfg.Client, s.sub); err != nil {
			s.cfg.Log.Warn("could not delete this instance's subscription; it expires by itself", "err", err)
		} else {
			s.cfg.Log.Info("relay deleted its subscription", "subscription", s.sub)
		}
	})
	return err
}
