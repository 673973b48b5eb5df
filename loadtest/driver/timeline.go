package driver

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"
)

// Second is one second of a phase's timeline: what the report joins with the VM's
// samples to say at which load a resource ran out.
type Second struct {
	T        int     `json:"t"`        // seconds since the phase started
	Users    int     `json:"users"`    // users running at the end of the second
	Requests int64   `json:"requests"` // requests finished in the second
	Failures int64   `json:"failures"` // of which failed
	P50MS    float64 `json:"p50_ms"`   // latency percentiles of those requests (0: none)
	P95MS    float64 `json:"p95_ms"`
}

// Latency summarizes request latencies.
type Latency struct {
	Count  int64   `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// hist is a latency histogram with buckets 2 % wide from 10 µs up: memory is
// bounded whatever the request rate, and percentiles are within 2 %.
type hist struct {
	counts map[int32]uint32
	n      int64
	sum    float64 // ms
	max    float64
}

const histBase = 0.01 // ms, lower edge of bucket 0

var histLog = math.Log(1.02)

func (h *hist) add(ms float64) {
	if h.counts == nil {
		h.counts = map[int32]uint32{}
	}
	b := int32(0)
	if ms > histBase {
		b = int32(math.Log(ms/histBase) / histLog)
	}
	h.counts[b]++
	h.n++
	h.sum += ms
	h.max = max(h.max, ms)
}

// quantile is the upper edge of the bucket holding the q-quantile (nearest rank),
// capped at the largest value seen.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	keys := make([]int32, 0, len(h.counts))
	for k := range h.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var c int64
	for _, k := range keys {
		c += int64(h.counts[k])
		if c >= rank {
			return min(histBase*math.Pow(1.02, float64(k+1)), h.max)
		}
	}
	return h.max
}

func (h *hist) summary() Latency {
	if h.n == 0 {
		return Latency{}
	}
	return Latency{Count: h.n, MeanMS: round3(h.sum / float64(h.n)), P50MS: round3(h.quantile(0.5)),
		P95MS: round3(h.quantile(0.95)), P99MS: round3(h.quantile(0.99)), MaxMS: round3(h.max)}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// recorder keeps a phase's per-second timeline and its latency histogram.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	secs  []secAcc
	total hist
	users func() int
}

type secAcc struct {
	users     int
	usersSet  bool
	requests  int64
	failures  int64
	latencies hist
}

func newRecorder(start time.Time, users func() int) *recorder {
	return &recorder{start: start, users: users}
}

func (r *recorder) sec(now time.Time) *secAcc {
	i := max(int(now.Sub(r.start)/time.Second), 0)
	for len(r.secs) <= i {
		r.secs = append(r.secs, secAcc{})
	}
	return &r.secs[i]
}

// observe records one finished request.
func (r *recorder) observe(took time.Duration, failed bool) {
	now := time.Now()
	ms := float64(took) / float64(time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sec(now)
	s.requests++
	if failed {
		s.failures++
	}
	s.latencies.add(ms)
	s.users, s.usersSet = r.users(), true
	r.total.add(ms)
}

// tick notes the number of users (called every second, so that seconds without
// requests have it too).
func (r *recorder) tick(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sec(now)
	s.users, s.usersSet = r.users(), true
}

// run ticks every second until stop is closed.
func (r *recorder) run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			r.tick(now)
		case <-stop:
			r.tick(time.Now())
			return
		}
	}
}

func (r *recorder) timeline() []Second {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Second, len(r.secs))
	users := 0
	for i, s := range r.secs {
		if s.usersSet {
			users = s.users
		}
		out[i] = Second{T: i, Users: users, Requests: s.requests, Failures: s.failures,
			P50MS: round3(s.latencies.quantile(0.5)), P95MS: round3(s.latencies.quantile(0.95))}
	}
	return out
}

func (r *recorder) latency() Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total.summary()
}

// Percentile is the nearest-rank q-quantile (0 < q ≤ 1) of xs (the zero value for
// none); xs is sorted in place.
func Percentile[T cmp.Ordered](xs []T, q float64) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}
