package agent

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves GET /sample (the latest record), GET /healthz and GET /metrics.
// vmpulse_agent_http_requests_total counts every response by path (/sample,
// /healthz, /metrics, or "other", to bound the label's values) and status code.
func (s *Sampler) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sample", s.serveSample)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	byPath := map[string]http.Handler{}
	for _, p := range []string{"/sample", "/healthz", "/metrics", "other"} {
		byPath[p] = promhttp.InstrumentHandlerCounter(s.requests.MustCurryWith(prometheus.Labels{"path": p}), mux)
	}
	other := byPath["other"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := byPath[r.URL.Path]
		if !ok {
			h = other
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Sampler) serveSample(w http.ResponseWriter, _ *http.Request) {
	sn := s.latest.Load()
	w.Header().Set("Cache-Control", "no-store")
	if sn == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no sample yet: the agent is starting", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(sn.json)))
	_, _ = w.Write(sn.json)
}

// serveHealth is 200 while samples are fresh (younger than three intervals), and
// 503 "degraded" when they come from /proc although the kernel modules are
// expected. The body says where samples come from and, for /proc in auto mode,
// why the modules were not read.
func (s *Sampler) serveHealth(w http.ResponseWriter, _ *http.Request) {
	sn := s.latest.Load()
	body := map[string]any{"source": s.src.Name(), "vm": s.vm, "interval": s.interval.String(), "expect_kmod": s.expectKmod}
	code := http.StatusOK
	if sn != nil {
		body["source"] = sn.from.source
		body["last_sample_age_seconds"] = time.Since(sn.at).Seconds()
		if sn.from.fallback != "" {
			body["reason"] = sn.from.fallback
		}
	}
	switch {
	case sn == nil:
		body["status"] = "starting"
		code = http.StatusServiceUnavailable
	case time.Since(sn.at) > 3*s.interval+time.Second:
		body["status"] = "stale"
		code = http.StatusServiceUnavailable
	case s.expectKmod && sn.from.source != SourceKmod:
		body["status"] = "degraded"
		code = http.StatusServiceUnavailable
	default:
		body["status"] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
