package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vmpulse/vmpulse/internal/metrics"
	"github.com/vmpulse/vmpulse/record"
)

// DefaultMaxBody bounds a request body: 2 000 records of about 600 bytes, with room.
const DefaultMaxBody = 4 << 20

// Publisher publishes committed records.
type Publisher interface {
	// Publish hands recs over and calls done once per record when its
	// publication succeeded or failed.
	Publish(ctx context.Context, route string, storedAt time.Time, commit time.Duration, recs []record.Record, done func(error))
}

// Server is the ingest HTTP service of one route.
type Server struct {
	route   string
	writer  Writer
	pub     Publisher
	maxBody int64
	log     *slog.Logger
	checks  map[string]func(context.Context) error

	reg       *metrics.Registry
	requests  *metrics.CounterVec
	records   *metrics.CounterVec
	rejected  *metrics.CounterVec
	batch     *metrics.HistogramVec
	commitSec *metrics.HistogramVec
	pubErrs   *metrics.CounterVec
	published *metrics.CounterVec

	inflight sync.WaitGroup // ingest requests between decoding and publishing

	healthMu   sync.Mutex
	healthAt   time.Time
	healthErrs map[string]string
}

// Config wires a Server.
type Config struct {
	// Route is the strategy, "route1" or "route2"; it is also stored in each row and
	// published as an attribute.
	Route string
	Store Store
	// Group tunes route2 (ignored by route1).
	Group   GroupConfig
	Pub     Publisher // may be nil (no streaming)
	MaxBody int64     // 0: DefaultMaxBody
	Log     *slog.Logger
	// Checks are run by GET /healthz (e.g. "mysql": ping, "pubsub": topic exists).
	Checks map[string]func(context.Context) error
	// Registry receives the metrics; nil makes a new one.
	Registry *metrics.Registry
}

// NewServer builds the service and starts its writer.
func NewServer(cfg Config) (*Server, error) {
	s := &Server{route: cfg.Route, pub: cfg.Pub, maxBody: cfg.MaxBody, log: cfg.Log,
		checks: cfg.Checks, reg: cfg.Registry}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.reg == nil {
		s.reg = metrics.NewRegistry()
	}
	s.requests = s.reg.NewCounter("vmpulse_ingest_requests_total", "Ingest requests by route and status code.", "route", "code")
	s.records = s.reg.NewCounter("vmpulse_ingest_records_total", "Records committed by route.", "route")
	s.rejected = s.reg.NewCounter("vmpulse_ingest_rejected_total", "Requests rejected before reaching MySQL, by route and reason.", "route", "reason")
	s.batch = s.reg.NewHistogram("vmpulse_ingest_batch_records", "Records per committed transaction.",
		metrics.ExpBuckets(1, 2, 13), "route")
	s.commitSec = s.reg.NewHistogram("vmpulse_ingest_commit_seconds", "Time from the start of a transaction to its commit, per request.",
		metrics.ExpBuckets(0.0005, 2, 15), "route")
	s.published = s.reg.NewCounter("vmpulse_ingest_published_total", "Records acknowledged by Pub/Sub.", "route")
	s.pubErrs = s.reg.NewCounter("vmpulse_ingest_publish_errors_total", "Records committed whose publication failed.", "route")
	switch cfg.Route {
	case Route1:
		s.writer = &PerRequest{Store: cfg.Store, Route: Route1, OnBatch: s.ObserveBatch}
	case Route2:
		g := cfg.Group
		g.OnBatch = s.ObserveBatch
		s.writer = NewGroupCommit(cfg.Store, Route2, g)
	default:
		return nil, fmt.Errorf("ingest: strategy %q: want route1 or route2", cfg.Route)
	}
	return s, nil
}

// Close stops accepting writes, waits for the accepted ones to commit and for
// their handlers to hand them to the publisher. Call it after the HTTP server has
// shut down (handlers still running after the shutdown grace finish here), and
// before stopping the publisher.
func (s *Server) Close() {
	s.writer.Close()
	s.inflight.Wait()
}

// ObserveBatch records a committed group's size (GroupCommit's OnBatch).
func (s *Server) ObserveBatch(n int) { s.batch.With(s.route).Observe(float64(n)) }

// publishDone counts a Pub/Sub answer.
func (s *Server) publishDone(err error) {
	if err != nil {
		s.pubErrs.With(s.route).Inc()
		return
	}
	s.published.With(s.route).Inc()
}

// Handler routes POST /ingest, GET /healthz and GET /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ingest", s.serveIngest)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", s.reg.Handler())
	return mux
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Index *int   `json:"index,omitempty"`
	Route string `json:"route"`
}

func (s *Server) fail(w http.ResponseWriter, code int, reason string, body errorBody) {
	body.Route = s.route
	s.requests.With(s.route, strconv.Itoa(code)).Inc()
	if reason != "" {
		s.rejected.With(s.route, reason).Inc()
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && mt != "text/json") {
		s.fail(w, http.StatusUnsupportedMediaType, "content_type", errorBody{
			Error: "Content-Type must be application/json, got " + strconv.Quote(r.Header.Get("Content-Type"))})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_large", errorBody{
				Error: "body larger than " + strconv.FormatInt(s.maxBody, 10) + " bytes: send fewer records per request"})
			return
		}
		s.fail(w, http.StatusBadRequest, "read", errorBody{Error: "reading the body: " + err.Error()})
		return
	}
	recs, err := record.DecodeBatch(body)
	if err != nil {
		eb := errorBody{Error: err.Error()}
		var fe *record.FieldError
		if errors.As(err, &fe) {
			eb.Field = fe.Field
			if fe.Index >= 0 {
				i := fe.Index
				eb.Index = &i
			}
		}
		s.fail(w, http.StatusBadRequest, "invalid", eb)
		return
	}
	for i := range recs {
		if recs[i].ID == "" {
			recs[i].ID = record.ContentID(recs[i])
		}
	}
	c, err := s.writer.Write(r.Context(), recs)
	if err != nil {
		if r.Context().Err() != nil {
			s.requests.With(s.route, "499").Inc() // client went away before its records were written
			return
		}
		s.log.Error("commit failed", "route", s.route, "records", len(recs), "err", err)
		w.Header().Set("Retry-After", "1")
		s.fail(w, http.StatusServiceUnavailable, "", errorBody{Error: "records not stored, retry: " + err.Error()})
		return
	}
	s.records.With(s.route).Add(float64(len(recs)))
	s.commitSec.With(s.route).Observe(c.Duration.Seconds())
	if s.pub != nil {
		s.pub.Publish(context.WithoutCancel(r.Context()), s.route, c.At, c.Duration, recs, s.publishDone)
	}
	ids := make([]string, len(recs))
	for i := range recs {
		ids[i] = recs[i].ID
	}
	s.requests.With(s.route, "201").Inc()
	writeJSON(w, http.StatusCreated, map[string]any{
		"route": s.route, "stored": len(recs), "ids": ids,
		"commit_ms": float64(c.Duration.Microseconds()) / 1000, "batch": c.Batch,
	})
}

// serveHealth runs the checks at most once a second and answers 200 when all pass.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.healthMu.Lock()
	if time.Since(s.healthAt) > time.Second {
		errs := map[string]string{}
		for name, check := range s.checks {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			if err := check(ctx); err != nil {
				errs[name] = err.Error()
			}
			cancel()
		}
		s.healthErrs, s.healthAt = errs, time.Now()
	}
	errs := s.healthErrs
	s.healthMu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	if len(errs) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy", "route": s.route, "failing": errs})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "route": s.route})
}
