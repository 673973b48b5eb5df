package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

// Defaults of Config (and of the relay command's flags).
const (
	// DefaultReplay is how far back a new instance's subscription is sought, so
	// that its first client gets the last 15 minutes.
	DefaultReplay = 15 * time.Minute
	// DefaultStallAfter: the routes publish a heartbeat every 5 s, so 30 s
	// without any message means the subscription is stuck (or no route can
	// publish).
	DefaultStallAfter = 30 * time.Second
	// DefaultUnhealthyAfter is how long a stall may outlast the restarts that
	// try to heal it before /health fails and Cloud Run replaces the instance.
	DefaultUnhealthyAfter = 2 * time.Minute
	// DefaultSetupTimeout bounds the retries of the subscription setup at start
	// (IAM grants and the topic can take minutes to propagate after a first
	// deploy). It stays within Cloud Run's startup probe window for the relay
	// (terraform/run.tf: 10 s + 48 × 5 s), so a slow grant delays the first
	// revision instead of failing it.
	DefaultSetupTimeout = 4 * time.Minute
	// restartOverlap: a restarted subscription is sought this far before the
	// last message received, to close the gap; the overlap is de-duplicated.
	restartOverlap = 30 * time.Second
	// minRestartGap separates restarts after a receive loop ended with an error.
	minRestartGap = 5 * time.Second
	// restartRetry bounds a restart attempt, and separates failed ones.
	restartRetry  = 5 * time.Second
	adminTimeout  = 10 * time.Second
	deleteTimeout = 3 * time.Second
)

// Config wires a relay Service. Zero Replay and StallAfter turn those features
// off; pass DefaultReplay and DefaultStallAfter for the production behaviour.
type Config struct {
	Client         *gps.Client
	Topic          string
	SubscriptionID string // this instance's own subscription; restarts add -r1, -r2, …
	// CreateTopic creates a missing topic, with retention (emulators; in Google
	// Cloud Terraform owns the topic and its retention).
	CreateTopic bool
	// Replay seeks the new subscription this far back before receiving, so that
	// history survives a restart or a scale-out (bounded by the topic's retention).
	// It also bounds the age of the history kept (unless Hub.HistoryAge is set).
	Replay time.Duration
	// StallAfter restarts the receive loop on a fresh subscription when no new
	// message (record or heartbeat, redeliveries aside) arrived for this long.
	StallAfter time.Duration
	// UnhealthyAfter (0: DefaultUnhealthyAfter): /health answers 503 when a stall
	// lasted StallAfter + UnhealthyAfter despite restarts.
	UnhealthyAfter time.Duration
	// SetupTimeout (0: DefaultSetupTimeout) bounds the retries of the start.
	SetupTimeout time.Duration
	Hub          HubConfig
	WS           Options
	Log          *slog.Logger

	// heartbeatFloor bounds the heartbeat pace learnt from an instance from
	// below (0: a second), so that two heartbeats sent close together cannot
	// make every ordinary interval look like a gap. Tests lower it.
	heartbeatFloor time.Duration
}

// Service is one relay instance: its subscription and the loop that receives
// from it, its hub, its health, its metrics.
type Service struct {
	cfg     Config
	hub     *Hub
	reg     *prometheus.Registry
	m       *serviceMetrics
	ws      http.Handler // GET /ws, built once: its client caps are the service's
	handler http.Handler
	seekTo  time.Time // where the first subscription was sought (zero: not)

	lastMsg     atomic.Int64 // arrival of the last new message, record or heartbeat (unix ns)
	lastPublish atomic.Int64 // the latest publish time seen (server clock, unix ns)
	lastRestart atomic.Int64 // the last start or restart attempt of the receive loop
	retryAt     atomic.Int64 // no restart before this (unix ns): the last attempt failed
	undecodable atomic.Int64
	restarts    atomic.Int64

	ctx       context.Context // the service's life; Close cancels it
	cancel    context.CancelFunc
	watchDone chan struct{}

	hbMu sync.Mutex
	hb   map[string]*hbState // route instance → its heartbeats

	reqMu sync.Mutex
	req   *restartRequest // a restart asked for by handle, for watch to do
	reqc  chan struct{}

	mu      sync.Mutex
	gen     int
	cur     *receiver
	retired map[string]bool // earlier subscriptions not deleted yet
	closed  bool
	once    sync.Once
}

type receiver struct {
	sub    string
	cancel context.CancelFunc
	done   chan struct{}
}

// Start creates this instance's subscription, seeks it back by Replay, and
// starts receiving. Transient failures of the setup (the service unavailable,
// IAM or the topic not yet propagated) are retried for SetupTimeout.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.WS.Log == nil {
		cfg.WS.Log = cfg.Log
	}
	if cfg.UnhealthyAfter <= 0 {
		cfg.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = DefaultSetupTimeout
	}
	if cfg.heartbeatFloor <= 0 {
		cfg.heartbeatFloor = time.Second
	}
	if cfg.Hub.HistoryAge == 0 {
		cfg.Hub.HistoryAge = cfg.Replay
	}
	s := &Service{cfg: cfg, reg: prometheus.NewRegistry(), retired: map[string]bool{}, watchDone: make(chan struct{}),
		hb: map[string]*hbState{}, reqc: make(chan struct{}, 1)}

	setup, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancel()
	var retains time.Duration
	var updated bool
	err := s.retry(setup, "check the topic", func(ctx context.Context) (err error) {
		retains, updated, err = pubsub.EnsureRetainingTopic(ctx, cfg.Client, cfg.Topic, cfg.CreateTopic, max(cfg.Replay+5*time.Minute, pubsub.TopicRetention))
		return err
	})
	if err != nil {
		return nil, err
	}
	if updated {
		cfg.Log.Warn("the topic had no message retention; the relay set it, but the Pub/Sub emulator does not replay a topic whose retention was set after its creation: create the topic with retention",
			"topic", cfg.Topic, "retention", retains.String())
	}
	if cfg.Replay > 0 && retains < cfg.Replay {
		cfg.Log.Warn("the topic retains messages for less than the replay window: a new instance starts with less history",
			"topic", cfg.Topic, "retention", retains.String(), "replay", cfg.Replay.String())
	}
	if cfg.Replay > 0 {
		s.seekTo = time.Now().Add(-cfg.Replay)
	}
	sub, err := s.subscribe(setup, cfg.SubscriptionID, s.seekTo)
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("relay subscribed", "subscription", sub, "topic", cfg.Topic, "replay_from", s.seekTo)

	s.hub = NewHub(cfg.Hub, s.reg)
	s.m = newServiceMetrics(s, s.reg)
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.ws = s.hub.Handler(cfg.WS)
	mux := http.NewServeMux()
	s.Mount(mux)
	s.handler = mux

	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	now := time.Now().UnixNano()
	s.lastMsg.Store(now)
	s.lastRestart.Store(now)
	s.mu.Lock()
	s.startLocked(sub)
	s.mu.Unlock()
	go s.watch()
	return s, nil
}

// subscribe creates subscription id and seeks it to from (unless zero). A seek
// that fails is logged, not fatal: the live stream works without history.
func (s *Service) subscribe(ctx context.Context, id string, from time.Time) (string, error) {
	var sub string
	err := s.retry(ctx, "create the subscription", func(ctx context.Context) (err error) {
		sub, err = pubsub.CreateInstanceSubscription(ctx, s.cfg.Client, s.cfg.Topic, id)
		return err
	})
	if err != nil {
		return "", err
	}
	if from.IsZero() {
		return sub, nil
	}
	err = s.retry(ctx, "seek the subscription", func(ctx context.Context) error {
		return pubsub.SeekToTime(ctx, s.cfg.Client, sub, from)
	})
	if err != nil {
		s.cfg.Log.Error("could not replay history: clients get only what arrives from now on", "err", err)
	}
	return sub, nil
}

// retry runs f until it succeeds, fails for good, or ctx ends.
func (s *Service) retry(ctx context.Context, what string, f func(context.Context) error) error {
	wait := 250 * time.Millisecond
	for {
		cctx, cancel := context.WithTimeout(ctx, adminTimeout)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if !pubsub.Retryable(err) {
			return fmt.Errorf("relay: %s: %w", what, err)
		}
		s.cfg.Log.Warn("relay setup failed; retrying", "step", what, "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("relay: %s: gave up: %w", what, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// startLocked starts a receive loop on sub; s.mu is held.
func (s *Service) startLocked(sub string) {
	rctx, cancel := context.WithCancel(s.ctx)
	r := &receiver{sub: sub, cancel: cancel, done: make(chan struct{})}
	s.cur = r
	go func() {
		defer close(r.done)
		if err := pubsub.ReceiveDeliveries(rctx, s.cfg.Client, sub, s.handle); err != nil {
			s.cfg.Log.Warn("receive loop ended", "subscription", sub, "err", err)
		}
	}()
}

// watch restarts the receive loop when it ended by itself or stalled.
func (s *Service) watch() {
	defer close(s.watchDone)
	period := time.Second
	if s.cfg.StallAfter > 0 {
		period = min(period, s.cfg.StallAfter/4)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.reqc:
		}
		now := time.Now()
		if now.UnixNano() < s.retryAt.Load() { // a restart just failed
			continue
		}
		sinceRestart := now.Sub(time.Unix(0, s.lastRestart.Load()))
		s.mu.Lock()
		cur := s.cur
		s.mu.Unlock()
		select {
		case <-cur.done:
			if sinceRestart >= minRestartGap {
				s.restart("the receive loop ended", time.Time{})
			}
			continue
		default:
		}
		if sinceRestart >= minRestartGap {
			s.reqMu.Lock()
			req := s.req
			s.req = nil
			s.reqMu.Unlock()
			if req != nil {
				if !s.restart(req.reason, req.from) {
					s.requestRestart(req.reason, req.from) // again after the retry delay
				}
				continue
			}
		}
		if s.cfg.StallAfter <= 0 {
			continue
		}
		quiet := now.Sub(time.Unix(0, max(s.lastMsg.Load(), s.lastRestart.Load())))
		if quiet > s.cfg.StallAfter {
			s.restart(fmt.Sprintf("no message for %v", quiet.Round(time.Second)), time.Time{})
		}
	}
}

// restart moves receiving to a fresh subscription, sought back, and drops the
// old one. A new receive on the old subscription
// is not enough: after a connection reset the Java emulator keeps delivering
// part of that subscription's messages to a stream nobody reads (measured: a
// third of new messages and none of the backlog arrived a minute later), while a
// fresh subscription sought back gets everything within a second.
//
// The new subscription is sought back to from, or when from is zero to just
// before the latest message received.
func (s *Service) restart(reason string, from time.Time) bool {
	now := time.Now()
	s.lastRestart.Store(now.UnixNano())
	s.mu.Lock()
	s.gen++
	id := fmt.Sprintf("%s-r%d", s.cfg.SubscriptionID, s.gen)
	old := s.cur
	s.mu.Unlock()

	if from.IsZero() {
		from = s.seekTo
		if p := s.lastPublish.Load(); p != 0 {
			from = time.Unix(0, p).Add(-restartOverlap)
		}
	}
	if s.cfg.Replay > 0 && from.Before(now.Add(-s.cfg.Replay)) {
		from = now.Add(-s.cfg.Replay)
	}
	ctx, cancel := context.WithTimeout(s.ctx, restartRetry)
	sub, err := pubsub.CreateInstanceSubscription(ctx, s.cfg.Client, s.cfg.Topic, id)
	cancel()
	if err != nil {
		s.m.restartFailures.Inc()
		// Pub/Sub is likely unreachable: try again soon, so that receiving resumes
		// within seconds of its return rather than a whole -stall-after later.
		s.lastRestart.Store(now.Add(restartRetry - s.cfg.StallAfter).UnixNano())
		s.retryAt.Store(now.Add(restartRetry).UnixNano())
		s.cfg.Log.Error("could not restart the receive loop; will try again", "reason", reason, "err", err, "retry_in", restartRetry.String())
		return false
	}
	if !from.IsZero() {
		ctx, cancel := context.WithTimeout(s.ctx, adminTimeout)
		defer cancel()
		if err := pubsub.SeekToTime(ctx, s.cfg.Client, sub, from); err != nil {
			s.cfg.Log.Warn("restarted subscription not sought back: messages of the stall may be missing", "err", err)
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.deleteSubs([]string{sub})
		return true
	}
	s.startLocked(sub)
	s.retired[old.sub] = true
	s.mu.Unlock()
	old.cancel() // not waited for: a stuck stream can take a minute to end
	s.restarts.Add(1)
	s.cfg.Log.Warn("receive loop restarted on a fresh subscription", "reason", reason,
		"old", old.sub, "new", sub, "replay_from", from)
	go s.deleteSubs([]string{old.sub})
	return true
}

// deleteSubs deletes subscriptions in parallel with a short deadline.
func (s *Service) deleteSubs(subs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	errs := make(chan error, len(subs))
	for _, sub := range subs {
		go func() {
			err := pubsub.DeleteSubscription(ctx, s.cfg.Client, sub)
			if err == nil {
				s.mu.Lock()
				delete(s.retired, sub)
				s.mu.Unlock()
			}
			errs <- err
		}()
	}
	var first error
	for range subs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Mount registers the relay's own paths on mux: GET /ws and GET /health.
// Whoever hosts the dashboard mounts it on the same mux. Every mux shares one
// websocket handler, so -max-clients and -max-per-ip hold across all of them.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.Handle("GET /ws", s.ws)
	mux.HandleFunc("GET /health", s.health)
}

// Handler serves GET /ws and GET /health, and nothing else.
func (s *Service) Handler() http.Handler { return s.handler }

// MetricsHandler serves the relay's metrics (Prometheus text format). Serve it
// on a private address, never on the public port.
func (s *Service) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

// Registry is the relay's metric registry.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Hub exposes the hub.
func (s *Service) Hub() *Hub { return s.hub }

// Subscription is the full name of the subscription currently received from.
func (s *Service) Subscription() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.sub
}

// state is what /health reports.
type state struct {
	Status   string  `json:"status"` // ok, stalled (healing), unhealthy (503)
	AgeS     float64 `json:"last_message_age_seconds"`
	Restarts int64   `json:"receive_restarts"`
	Clients  int     `json:"clients"`
}

func (s *Service) state(now time.Time) state {
	last := s.lastMsg.Load()
	age := now.Sub(time.Unix(0, last))
	st := state{Status: "ok", AgeS: age.Seconds(), Restarts: s.restarts.Load(), Clients: s.hub.Clients()}
	if s.cfg.StallAfter > 0 && age > s.cfg.StallAfter {
		st.Status = "stalled"
		if s.lastRestart.Load() > last && age > s.cfg.StallAfter+s.cfg.UnhealthyAfter {
			st.Status = "unhealthy"
		}
	}
	return st
}

// health answers 200 while the subscription delivers or heals, and 503 when a
// stall outlasted its restarts: Cloud Run's liveness probe then replaces the
// instance. (Paths ending in z are Cloud Run's own, hence /health.)
func (s *Service) health(w http.ResponseWriter, _ *http.Request) {
	st := s.state(time.Now())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if st.Status == "unhealthy" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

// Close tells clients to reconnect (1001, to another instance when this one is
// going away), stops receiving and deletes the subscriptions, within about 3 s:
// Cloud Run allows 10 s after SIGTERM.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		subs := []string{s.cur.sub}
		for sub := range s.retired {
			subs = append(subs, sub)
		}
		s.mu.Unlock()
		s.cancel() // the watch and the receive loop; the latter is not waited for
		<-s.watchDone
		hubDone := make(chan struct{})
		go func() { s.hub.Close(); close(hubDone) }()
		if err = s.deleteSubs(subs); err != nil {
			s.cfg.Log.Warn("could not delete this instance's subscription; it expires by itself after a day", "err", err)
		} else {
			s.cfg.Log.Info("relay deleted its subscription", "subscriptions", subs)
		}
		<-hubDone
	})
	return err
}

type serviceMetrics struct {
	restartFailures prometheus.Counter
	heartbeats      prometheus.Counter
	heartbeatGaps   prometheus.Counter
}

// newServiceMetrics declares the service's series and registers them on reg.
func newServiceMetrics(s *Service, reg prometheus.Registerer) *serviceMetrics {
	f := promauto.With(reg)
	m := &serviceMetrics{
		restartFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_receive_restart_failures_total", Help: "Restarts that failed (the fresh subscription could not be created); retried."}),
		heartbeats: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_heartbeats_total", Help: "Route heartbeats received."}),
		heartbeatGaps: f.NewCounter(prometheus.CounterOpts{
			Name: "vmpulse_relay_heartbeat_gaps_total", Help: "Heartbeats of a route instance found missing (each restarts receiving, sought back to before the gap)."}),
	}
	// Counted once, in the atomics that /health and the log lines read.
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmpulse_relay_receive_restarts_total", Help: "Receive loops restarted on a fresh subscription (stalled, or ended by an error)."},
		func() float64 { return float64(s.restarts.Load()) })
	f.NewCounterFunc(prometheus.CounterOpts{
		Name: "vmpulse_relay_undecodable_messages_total", Help: "Messages dropped because they could not be decoded."},
		func() float64 { return float64(s.undecodable.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_last_message_age_seconds", Help: "Seconds since the last new message (a record not seen before, or a route heartbeat) arrived; redeliveries do not count."},
		func() float64 { return time.Since(time.Unix(0, s.lastMsg.Load())).Seconds() })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_stalled", Help: "1 while no message arrived for -stall-after (the receive loop is being restarted), else 0."},
		func() float64 {
			if st := s.state(time.Now()).Status; st != "ok" {
				return 1
			}
			return 0
		})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vmpulse_relay_unhealthy", Help: "1 when a stall outlasted its restarts and /health answers 503, else 0."},
		func() float64 {
			if s.state(time.Now()).Status == "unhealthy" {
				return 1
			}
			return 0
		})
	return m
}
