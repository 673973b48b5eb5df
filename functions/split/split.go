// Package split is the local stand-in for the GKE Gateway's weighted HTTPRoute: a
// reverse proxy that sends each request to one of several backends with probability
// proportional to its weight, independently per request, as the Gateway does. It
// also holds the chi-square test used to check that a split is consistent with its
// weights.
package split

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Backend is one weighted target.
type Backend struct {
	Name   string
	URL    *url.URL
	Weight int

	proxy *httputil.ReverseProxy
	sent  atomic.Int64
}

// Proxy splits requests between backends by weight.
type Proxy struct {
	backends []*Backend
	total    int
}

// ParseBackends parses "name=url=weight,name=url=weight", e.g.
// "route1=http://127.0.0.1:8001=50,route2=http://127.0.0.1:8002=50".
func ParseBackends(s string) ([]*Backend, error) {
	var out []*Backend
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), "=")
		if len(f) != 3 {
			return nil, fmt.Errorf("backend %q: want name=url=weight", part)
		}
		u, err := url.Parse(f[1])
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("backend %q: url %q is not absolute", f[0], f[1])
		}
		w, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("backend %q: weight %q is not an integer", f[0], f[2])
		}
		out = append(out, &Backend{Name: f[0], URL: u, Weight: w})
	}
	return out, nil
}

// New builds a Proxy. Weights must be ≥ 0 with a positive sum, as in HTTPRoute.
func New(backends []*Backend, log *slog.Logger) (*Proxy, error) {
	p := &Proxy{backends: backends}
	if len(backends) == 0 {
		return nil, errors.New("split: no backends")
	}
	transport := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	for _, b := range backends {
		if b.Weight < 0 {
			return nil, fmt.Errorf("split: backend %s: negative weight %d", b.Name, b.Weight)
		}
		p.total += b.Weight
		b.proxy = httputil.NewSingleHostReverseProxy(b.URL)
		b.proxy.Transport = transport
		name := b.Name
		b.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("split: backend unreachable", "backend", name, "err", err)
			http.Error(w, "backend "+name+" unreachable", http.StatusBadGateway)
		}
	}
	if p.total <= 0 {
		return nil, errors.New("split: the weights sum to zero")
	}
	return p, nil
}

// ServeHTTP forwards r to a backend picked by weight.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := p.pick()
	b.sent.Add(1)
	w.Header().Set("X-Vmpulse-Backend", b.Name)
	b.proxy.ServeHTTP(w, r)
}

func (p *Proxy) pick() *Backend {
	n := rand.IntN(p.total)
	for _, b := range p.backends {
		if n < b.Weight {
			return b
		}
		n -= b.Weight
	}
	return p.backends[len(p.backends)-1]
}

// Sent reports how many requests went to each backend, by name.
func (p *Proxy) Sent() map[string]int64 {
	m := make(map[string]int64, len(p.backends))
	for _, b := range p.backends {
		m[b.Name] = b.sent.Load()
	}
	return m
}
