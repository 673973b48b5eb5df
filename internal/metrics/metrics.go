// Package metrics is a small Prometheus text-format (version 0.0.4) registry:
// counters, gauges and histograms with labels, enough for vmpulse's /metrics
// endpoints without pulling in a client library.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
}

type family interface {
	write(w io.Writer)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(f family) {
	r.mu.Lock()
	r.families = append(r.families, f)
	r.mu.Unlock()
}

// Write writes every family in the text exposition format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	fs := append([]family(nil), r.families...)
	r.mu.Unlock()
	for _, f := range fs {
		f.write(w)
	}
}

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w)
	})
}

type meta struct {
	name, help, kind string
	labels           []string
}

func (m meta) header(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, escHelp(m.help), m.name, m.kind)
}

// vec keeps one child per label-value combination, in first-use order.
type vec[T any] struct {
	meta
	mu       sync.Mutex
	children map[string]*T
	keys     []string
	values   map[string][]string
	make     func() *T
}

func newVec[T any](m meta, mk func() *T) *vec[T] {
	return &vec[T]{meta: m, children: map[string]*T{}, values: map[string][]string{}, make: mk}
}

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.children[key]
	if !ok {
		c = v.make()
		v.children[key] = c
		v.keys = append(v.keys, key)
		v.values[key] = append([]string(nil), values...)
	}
	return c
}

func (v *vec[T]) each(fn func(labels string, c *T)) {
	v.mu.Lock()
	keys := append([]string(nil), v.keys...)
	v.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		v.mu.Lock()
		c, vals := v.children[k], v.values[k]
		v.mu.Unlock()
		fn(labelString(v.labels, vals, "", ""), c)
	}
}

// Counter is a monotonically increasing value.
type Counter struct{ bits atomic.Uint64 }

// Add adds d (which must be ≥ 0).
func (c *Counter) Add(d float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds 1.
func (c *Counter) Inc() { c.Add(1) }

// Value returns the current value.
func (c *Counter) Value() float64 { return math.Float64frombits(c.bits.Load()) }

// Gauge is a value that goes up and down.
type Gauge struct{ Counter }

// Set sets the value.
func (g *Gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }

// CounterVec is a family of counters.
type CounterVec struct{ v *vec[Counter] }

// With returns the counter for the label values, in declaration order.
func (c *CounterVec) With(values ...string) *Counter { return c.v.with(values) }

func (c *CounterVec) write(w io.Writer) {
	c.v.header(w)
	c.v.each(func(l string, x *Counter) { fmt.Fprintf(w, "%s%s %s\n", c.v.name, l, num(x.Value())) })
}

// NewCounter registers a counter family.
func (r *Registry) NewCounter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{newVec(meta{name, help, "counter", labels}, func() *Counter { return new(Counter) })}
	r.add(c)
	return c
}

// GaugeVec is a family of gauges.
type GaugeVec struct{ v *vec[Gauge] }

// With returns the gauge for the label values.
func (g *GaugeVec) With(values ...string) *Gauge { return g.v.with(values) }

func (g *GaugeVec) write(w io.Writer) {
	g.v.header(w)
	g.v.each(func(l string, x *Gauge) { fmt.Fprintf(w, "%s%s %s\n", g.v.name, l, num(x.Value())) })
}

// NewGauge registers a gauge family.
func (r *Registry) NewGauge(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{newVec(meta{name, help, "gauge", labels}, func() *Gauge { return new(Gauge) })}
	r.add(g)
	return g
}

type gaugeFunc struct {
	meta
	fn func() float64
}

func (g *gaugeFunc) write(w io.Writer) {
	g.header(w)
	fmt.Fprintf(w, "%s %s\n", g.name, num(g.fn()))
}

// NewGaugeFunc registers a gauge whose value is read from fn at scrape time.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.add(&gaugeFunc{meta{name, help, "gauge", nil}, fn})
}

// Histogram counts observations in cumulative buckets.
type Histogram struct {
	mu      sync.Mutex
	upper   []float64
	counts  []uint64
	sum     float64
	samples uint64
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v)
	h.mu.Lock()
	if i < len(h.counts) {
		h.counts[i]++
	}
	h.sum += v
	h.samples++
	h.mu.Unlock()
}

// HistogramVec is a family of histograms sharing buckets.
type HistogramVec struct{ v *vec[Histogram] }

// With returns the histogram for the label values.
func (h *HistogramVec) With(values ...string) *Histogram { return h.v.with(values) }

func (h *HistogramVec) write(w io.Writer) {
	h.v.header(w)
	h.v.mu.Lock()
	keys := append([]string(nil), h.v.keys...)
	h.v.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		h.v.mu.Lock()
		x, vals := h.v.children[k], h.v.values[k]
		h.v.mu.Unlock()
		x.mu.Lock()
		var cum uint64
		for i, ub := range x.upper {
			cum += x.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.name, labelString(h.v.labels, vals, "le", num(ub)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.v.name, labelString(h.v.labels, vals, "le", "+Inf"), x.samples)
		l := labelString(h.v.labels, vals, "", "")
		fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", h.v.name, l, num(x.sum), h.v.name, l, x.samples)
		x.mu.Unlock()
	}
}

// NewHistogram registers a histogram family with the given bucket upper bounds.
func (r *Registry) NewHistogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	h := &HistogramVec{newVec(meta{name, help, "histogram", labels}, func() *Histogram {
		return &Histogram{upper: b, counts: make([]uint64, len(b))}
	})}
	r.add(h)
	return h
}

// ExpBuckets returns n bucket bounds start, start×factor, ….
func ExpBuckets(start, factor float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = start
		start *= factor
	}
	return out
}

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName + `="` + extraValue + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escLabel(s string) string { return labelEscaper.Replace(s) }
func escHelp(s string) string  { return helpEscaper.Replace(s) }

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
