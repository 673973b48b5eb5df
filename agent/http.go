package agent

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Handler serves GET /sample (the latest record), GET /healthz and GET /metrics.
func (s *Sampler) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sample", s.serveSample)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", s.reg.Handler())
	return s.count(mux)
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

// serveHealth is 200 while samples are fresh (younger than three intervals).
func (s *Sampler) serveHealth(w http.ResponseWriter, _ *http.Request) {
	sn := s.latest.Load()
	body := map[string]any{"source": s.src.Name(), "vm": s.vm, "interval": s.interval.String()}
	code := http.StatusOK
	switch {
	case sn == nil:
		body["status"] = "starting"
		code = http.StatusServiceUnavailable
	case time.Since(sn.at) > 3*s.interval+time.Second:
		body["status"] = "stale"
		body["last_sample_age_seconds"] = time.Since(sn.at).Seconds()
		code = http.StatusServiceUnavailable
	default:
		body["status"] = "ok"
		body["last_sample_age_seconds"] = time.Since(sn.at).Seconds()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Sampler) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		path := r.URL.Path
		switch path {
		case "/sample", "/healthz", "/metrics":
		default:
			path = "other" // keep label cardinality bounded
		}
		s.requests.With(path, strconv.Itoa(sw.code)).Inc()
	})
}
