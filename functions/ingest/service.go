package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// ServiceConfig is everything one route instance needs. vmpulse-route builds it
// from flags; the local stack builds two.
type ServiceConfig struct {
	Route string
	// Store is the open database. The service closes it when Close is called only
	// if OwnStore is set.
	Store    *mysql.Store
	OwnStore bool
	// Pubsub publishes committed records on Topic; nil publishes nothing (the
	// records are stored only).
	Pubsub *gps.Client
	Topic  string
	// Heartbeat is how often this instance tells relays it is alive (default 5 s).
	Heartbeat time.Duration
	Outbox    OutboxConfig
	// Tokens are the accepted ingest tokens; nil accepts any request.
	Tokens *Tokens

	Group            GroupConfig
	MaxBody          int64
	MaxInflightBytes int64
	DBTimeout        time.Duration
	Log              *slog.Logger
}

// Service is one running route instance: its server, publishers and outbox, and
// the order they stop in.
type Service struct {
	srv    *Server
	store  *mysql.Store
	own    bool
	pub    *pubsub.Publisher
	others sync.Map // route → *pubsub.Publisher, for republishing
	outbox *Outbox
	cancel context.CancelFunc
	bg     sync.WaitGroup
	once   sync.Once
}

// StartService wires and starts a route instance. Its background work (heartbeats,
// the outbox, token reloads) runs until Close.
func StartService(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.DBTimeout <= 0 {
		cfg.DBTimeout = DefaultDBTimeout
	}
	cfg.Outbox.MaxWrite = cfg.DBTimeout
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{store: cfg.Store, own: cfg.OwnStore, cancel: cancel}
	reg := NewRegistry()
	scfg := Config{Route: cfg.Route, Store: cfg.Store.Writer(cfg.Route), Group: cfg.Group, Tokens: cfg.Tokens,
		MaxBody: cfg.MaxBody, MaxInflightBytes: cfg.MaxInflightBytes, DBTimeout: cfg.DBTimeout,
		Ready: cfg.Store.Ping, Log: cfg.Log, Registry: reg}
	if cfg.Pubsub != nil {
		s.pub = pubsub.NewPublisher(cfg.Pubsub, cfg.Topic, cfg.Route, cfg.Log)
		s.others.Store(cfg.Route, s.pub)
		pubFor := func(route string) Publisher {
			if p, ok := s.others.Load(route); ok {
				return p.(*pubsub.Publisher)
			}
			p, _ := s.others.LoadOrStore(route, pubsub.NewPublisher(cfg.Pubsub, cfg.Topic, route, cfg.Log))
			return p.(*pubsub.Publisher)
		}
		s.outbox = NewOutbox(cfg.Store, s.pub, pubFor, cfg.Outbox, reg, cfg.Route, cfg.Log)
		scfg.Committed = s.outbox.Publish
		scfg.Status = func() map[string]any {
			st := map[string]any{"pubsub": "ok"}
			if err := s.pub.Err(); err != nil {
				st["pubsub"] = "failing: " + err.Error()
			}
			return st
		}
		s.goBG(func() { s.outbox.Run(bctx) })
		s.goBG(func() { s.pub.Heartbeats(bctx, cfg.Heartbeat) })
	}
	if cfg.Tokens != nil {
		s.goBG(func() { cfg.Tokens.Watch(bctx, 10*time.Second, cfg.Log) })
	}
	srv, err := NewServer(scfg)
	if err != nil {
		cancel()
		return nil, err
	}
	s.srv = srv
	return s, nil
}

func (s *Service) goBG(f func()) {
	s.bg.Add(1)
	go func() { defer s.bg.Done(); f() }()
}

// Handler serves POST /ingest, GET /healthz and GET /metrics.
func (s *Service) Handler() http.Handler { return s.srv.Handler() }

// Close stops the instance in order, after its HTTP server has shut down: the
// queued writes commit, the handlers answer, the publishers flush, the outbox
// writes the markers it knows and stops, and the store closes if the service owns
// it. What is not done when ctx ends is abandoned: commits not started are
// answered 503 (the senders retry them), and batches not yet acknowledged by
// Pub/Sub stay unmarked, so another instance's outbox publishes them.
func (s *Service) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		s.srv.Close(ctx)
		flushed := make(chan struct{})
		go func() {
			s.others.Range(func(_, p any) bool { p.(*pubsub.Publisher).Stop(); return true })
			close(flushed)
		}()
		select {
		case <-flushed:
		case <-ctx.Done():
			s.srv.log.Warn("shutdown: Pub/Sub did not acknowledge everything in time; the outbox publishes the rest later")
		}
		s.cancel()
		s.bg.Wait()
		if s.own {
			err = s.store.Close()
		}
	})
	return err
}

// ensure the outbox's view of a publisher matches pubsub's.
var _ Publisher = (*pubsub.Publisher)(nil)

// ensure the writer's view of the store matches mysql's.
var _ Store = (*mysql.Writer)(nil)

var _ OutboxStore = (*mysql.Store)(nil)
