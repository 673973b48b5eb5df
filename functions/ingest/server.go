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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/record"
)

// Defaults of the admission limits.
const (
	// DefaultMaxBody bounds a request body: record.MaxBatch records of ~800 bytes.
	DefaultMaxBody = 4 << 20
	// DefaultMaxInflight bounds the bytes of the request bodies a route holds at
	// once (read, decoded, queued or committing); beyond it, 429. Measured by the
	// fault suite's max-size-16x4MiB (16 concurrent 4 MiB requests per route):
	// peak RSS 249–266 MiB for route1 and 313–362 MiB for route2, under the pods'
	// 512 MiB.
	DefaultMaxInflight = 64 << 20
	// DefaultDBTimeout bounds a request's whole write (waiting for a connection,
	// then the transaction or the group INSERT); each round trip of it is bounded
	// more tightly by the store's statement timeout (mysql.DefaultStatementTimeout,
	// -db-statement-timeout; a multi-row INSERT gets 1 ms a row more), so a
	// database that stops answering costs a request about one or two of those
	// (waiting for a connection, then the statement that hangs), then 503. Both
	// are shorter than the senders' own timeouts (30 s for the send phase).
	DefaultDBTimeout = 25 * time.Second
)

// Server is the ingest HTTP service of one route.
type Server struct {
	route     string
	writer    Writer
	tokens    *Tokens
	maxBody   int64
	maxFlight int64
	inflight  atomic.Int64 // bytes of admitted request bodies
	log       *slog.Logger
	ready     func(context.Context) error
	status    func() map[string]any
	handler   http.Handler

	m serverMetrics

	handlers sync.WaitGroup // ingest requests between admission and their answer
	// base ends when Close begins: the writes of requests still running then
	// (stragglers past the HTTP server's shutdown grace) are abandoned and
	// answered 503, never acknowledged, so a shutdown never waits on a database
	// that stopped answering.
	base     context.Context
	stopBase context.CancelFunc

	healthMu  sync.Mutex
	healthAt  time.Time
	healthErr error
}

type serverMetrics struct {
	requests  *prometheus.CounterVec
	records   prometheus.Counter
	rejected  *prometheus.CounterVec
	batch     prometheus.Observer
	commitSec prometheus.Observer
	conflicts prometheus.Counter
	inflight  prometheus.GaugeFunc
}

// Config wires a Server.
type Config struct {
	// Route is the strategy, "route1" or "route2"; it is also stored in each row and
	// published as an attribute.
	Route string
	Store Store
	// Group tunes route2 (ignored by route1).
	Group GroupConfig
	// Committed is told about every commit (the outbox's Publish); nil: nothing.
	Committed Committed
	// Tokens are the accepted bearer tokens; nil accepts requests without one.
	Tokens           *Tokens
	MaxBody          int64         // 0: DefaultMaxBody
	MaxInflightBytes int64         // 0: DefaultMaxInflight
	DBTimeout        time.Duration // 0: DefaultDBTimeout
	// Ready is the readiness check of GET /healthz: what ingest needs (MySQL).
	Ready func(context.Context) error
	// Status adds fields to the /healthz body (Pub/Sub state, outbox backlog).
	Status func() map[string]any
	Log    *slog.Logger
	// Registry receives the metrics and is served on /metrics; nil makes one.
	Registry *prometheus.Registry
}

// NewServer builds the service and starts its writer.
func NewServer(cfg Config) (*Server, error) {
	s := &Server{route: cfg.Route, tokens: cfg.Tokens, maxBody: cfg.MaxBody, maxFlight: cfg.MaxInflightBytes,
		log: cfg.Log, ready: cfg.Ready, status: cfg.Status}
	s.base, s.stopBase = context.WithCancel(context.Background())
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.maxFlight <= 0 {
		s.maxFlight = DefaultMaxInflight
	}
	s.maxFlight = max(s.maxFlight, s.maxBody) // one largest request always fits
	timeout := cfg.DBTimeout
	if timeout <= 0 {
		timeout = DefaultDBTimeout
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	if s.status == nil {
		s.status = func() map[string]any { return nil }
	}
	committed := cfg.Committed
	if committed == nil {
		committed = func(Commit, []record.Record) {}
	}
	reg := cfg.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	s.registerMetrics(reg)
	ids := NewBatchIDs()
	switch cfg.Route {
	case Route1:
		s.writer = NewPerRequest(cfg.Store, ids, timeout, func(c Commit, recs []record.Record) {
			s.m.batch.Observe(float64(c.Size))
			committed(c, recs)
		})
	case Route2:
		g := cfg.Group
		g.Timeout = timeout
		s.writer = NewGroupCommit(cfg.Store, ids, g, committed, func(n int) { s.m.batch.Observe(float64(n)) })
	default:
		return nil, fmt.Errorf("ingest: strategy %q: want route1 or route2", cfg.Route)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /ingest", promhttp.InstrumentHandlerCounter(s.m.requests, http.HandlerFunc(s.serveIngest)))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.handler = mux
	return s, nil
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func (s *Server) registerMetrics(reg prometheus.Registerer) {
	labels := prometheus.Labels{"route": s.route}
	s.m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmpulse_ingest_requests_total",
		Help: "Ingest requests by route and status code.", ConstLabels: labels}, []string{"code"})
	s.m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmpulse_ingest_rejected_total",
		Help: "Requests refused before reaching MySQL, by route and reason.", ConstLabels: labels}, []string{"reason"})
	records := prometheus.NewCounter(prometheus.CounterOpts{Name: "vmpulse_ingest_records_total",
		Help: "Records committed by route.", ConstLabels: labels})
	conflicts := prometheus.NewCounter(prometheus.CounterOpts{Name: "vmpulse_ingest_conflicts_total",
		Help: "Records refused because their id was stored with other values.", ConstLabels: labels})
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vmpulse_ingest_batch_records",
		Help: "Records per committed transaction or group.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1, 2, 13)})
	commit := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vmpulse_ingest_commit_seconds",
		Help: "Time from the start of a request's write to its commit.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15)})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmpulse_ingest_inflight_bytes",
		Help: "Bytes of request bodies admitted and not yet answered.", ConstLabels: labels},
		func() float64 { return float64(s.inflight.Load()) })
	reg.MustRegister(s.m.requests, s.m.rejected, records, conflicts, batch, commit, inflight)
	s.m.records, s.m.conflicts, s.m.batch, s.m.commitSec, s.m.inflight = records, conflicts, batch, commit, inflight
}

// Close stops accepting writes, lets the accepted ones commit until ctx ends (those
// not started by then are answered 503), and waits for their handlers. Call it
// after the HTTP server has shut down, and before stopping the publisher.
func (s *Server) Close(ctx context.Context) {
	// Writes still running when ctx ends are canceled (a partitioned database
	// must not hold the shutdown), not before: until then they may commit.
	stop := context.AfterFunc(ctx, s.stopBase)
	defer stop()
	s.writer.Close(ctx)
	s.handlers.Wait()
	s.stopBase()
}

// Handler routes POST /ingest, GET /healthz and GET /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

type errorBody struct {
	Error     string   `json:"error"`
	Field     string   `json:"field,omitempty"`
	Index     *int     `json:"index,omitempty"`
	Conflicts []string `json:"conflicts,omitempty"`
	Route     string   `json:"route"`
}

// fail answers an error; the body stays under maxErrorBody whatever the input.
func (s *Server) fail(w http.ResponseWriter, code int, reason string, body errorBody) {
	body.Route = s.route
	if len(body.Error) > 700 {
		body.Error = body.Error[:700] + "…"
	}
	if len(body.Field) > 100 {
		body.Field = body.Field[:100]
	}
	if n := len(body.Conflicts); n > 5 {
		body.Error += fmt.Sprintf(" (%d ids in all; the first 5 are listed)", n)
		body.Conflicts = body.Conflicts[:5]
	}
	if reason != "" {
		s.m.rejected.WithLabelValues(reason).Inc()
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request) {
	if s.tokens != nil && !s.tokens.Allow(r.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vmpulse-ingest"`)
		s.fail(w, http.StatusUnauthorized, "unauthorized", errorBody{Error: "missing or invalid bearer token"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/json" && mt != "text/json") {
		s.fail(w, http.StatusUnsupportedMediaType, "content_type", errorBody{
			Error: "Content-Type must be application/json, got " + record.Quote(r.Header.Get("Content-Type"))})
		return
	}
	if r.ContentLength > s.maxBody {
		s.tooLarge(w)
		return
	}
	// Admission: hold at most maxFlight bytes of bodies at once.
	size := r.ContentLength
	if size < 0 {
		size = s.maxBody // chunked: assume the largest
	}
	if s.inflight.Add(size) > s.maxFlight {
		s.inflight.Add(-size)
		w.Header().Set("Retry-After", "1")
		s.fail(w, http.StatusTooManyRequests, "busy", errorBody{Error: "this route is at its in-flight limit; retry"})
		return
	}
	s.handlers.Add(1)
	defer func() { s.inflight.Add(-size); s.handlers.Done() }()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.tooLarge(w)
			return
		}
		s.fail(w, http.StatusBadRequest, "read", errorBody{Error: "reading the body: " + err.Error()})
		return
	}
	recs, err := record.DecodeBatch(body)
	if err != nil {
		var tm *record.TooManyError
		if errors.As(err, &tm) {
			s.fail(w, http.StatusRequestEntityTooLarge, "too_many", errorBody{Error: err.Error(), Field: "body"})
			return
		}
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
	body = nil // the records are decoded; let the bytes go
	for i := range recs {
		if recs[i].ID == "" {
			recs[i].ID = record.ContentID(recs[i])
		}
	}
	wctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()
	c, err := s.writer.Write(wctx, recs)
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			w.WriteHeader(499) // the client went away before its records were written
		case mysql.Permanent(err):
			s.log.Error("MySQL refused a record", "records", len(recs), "err", err)
			s.fail(w, http.StatusBadRequest, "refused", errorBody{Error: "MySQL refused a record: " + err.Error()})
		default:
			s.log.Error("commit failed", "records", len(recs), "err", err)
			w.Header().Set("Retry-After", "1")
			s.fail(w, http.StatusServiceUnavailable, "", errorBody{Error: "records not stored, retry: " + err.Error()})
		}
		return
	}
	stored := len(recs) - len(c.Conflicts)
	s.m.records.Add(float64(stored - len(c.Retried)))
	s.m.commitSec.Observe(c.Duration.Seconds())
	if len(c.Conflicts) > 0 {
		s.m.conflicts.Add(float64(len(c.Conflicts)))
		s.fail(w, http.StatusConflict, "conflict", errorBody{Conflicts: c.Conflicts,
			Error: fmt.Sprintf("id %s is already stored with other values; %d other records of this request are stored",
				record.Quote(c.Conflicts[0]), stored)})
		return
	}
	ids := make([]string, len(recs))
	for i := range recs {
		ids[i] = recs[i].ID
	}
	writeJSON(w, http.StatusCreated, created{Route: s.route, Stored: stored, IDs: ids,
		CommitMS: float64(c.Duration.Microseconds()) / 1000, Batch: c.Size})
}

// created is the answer to a stored request (docs/record.md): a struct, not a
// map, so that encoding it needs no reflection over keys on the hot path.
type created struct {
	Batch    int      `json:"batch"`     // records in the commit that carried these
	CommitMS float64  `json:"commit_ms"` // how long that commit took
	IDs      []string `json:"ids"`       // the request's ids, in order
	Route    string   `json:"route"`
	Stored   int      `json:"stored"` // records stored (retries of stored ones included)
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.fail(w, http.StatusRequestEntityTooLarge, "too_large", errorBody{Field: "body",
		Error: "body larger than " + strconv.FormatInt(s.maxBody, 10) + " bytes: send fewer records per request"})
}

// serveHealth is readiness: it checks what ingest needs (MySQL) at most once a
// second. Pub/Sub trouble is reported in the body but never fails it: records are
// stored and the outbox publishes them later.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	s.healthMu.Lock()
	if time.Since(s.healthAt) > time.Second {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		s.healthErr, s.healthAt = s.ready(ctx), time.Now()
		cancel()
	}
	err := s.healthErr
	s.healthMu.Unlock()
	body := map[string]any{"status": "ok", "route": s.route}
	for k, v := range s.status() {
		body[k] = v
	}
	code := http.StatusOK
	if err != nil {
		body["status"], body["mysql"] = "unhealthy", err.Error()
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, body)
}
