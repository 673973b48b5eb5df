package driver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Wait is the range a user waits after each request, chosen uniformly at random
// (Locust's between(min, max)).
type Wait struct{ Min, Max time.Duration }

// ParseWait parses "1s-2s", "1-2" (seconds), "500ms-1.5s", or a single value such as
// "0" or "1s" for a constant wait.
func ParseWait(s string) (Wait, error) {
	s = strings.TrimSpace(s)
	lo, hi, ok := strings.Cut(s, "-")
	if !ok {
		hi = lo
	}
	min, err1 := parseSeconds(lo)
	max, err2 := parseSeconds(hi)
	if err := errors.Join(err1, err2); err != nil {
		return Wait{}, fmt.Errorf("wait %q: %v (want e.g. 1s-2s or 1-2)", s, err)
	}
	if max < min {
		return Wait{}, fmt.Errorf("wait %q: the maximum is below the minimum", s)
	}
	return Wait{min, max}, nil
}

// parseSeconds accepts a Go duration or a plain number of seconds.
func parseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, errors.New("negative")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}

// String formats w the way ParseWait reads it.
func (w Wait) String() string { return w.Min.String() + "-" + w.Max.String() }

func (w Wait) pick(rng *rand.Rand) time.Duration {
	if w.Max <= w.Min {
		return w.Min
	}
	return w.Min + time.Duration(rng.Int64N(int64(w.Max-w.Min)+1))
}

// Load is the shape of the simulated load, shared by both phases.
type Load struct {
	Users     int     // simulated users
	SpawnRate float64 // users started per second; 0 or less starts them all at once
	Wait      Wait    // wait after each request
}

func (l Load) check() error {
	if l.Users < 1 {
		return fmt.Errorf("users: %d, want at least 1", l.Users)
	}
	return nil
}

// runUsers starts l.Users users at l.SpawnRate, each running task, then waiting, until
// ctx is done. It returns once every user has stopped. running counts the users
// started so far.
func runUsers(ctx context.Context, l Load, running *atomic.Int64, task func(ctx context.Context)) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < l.Users; i++ {
		if i > 0 && l.SpawnRate > 0 {
			at := start.Add(time.Duration(float64(i) / l.SpawnRate * float64(time.Second)))
			if !sleepUntil(ctx, at) {
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		running.Add(1)
		seed := uint64(time.Now().UnixNano()) + uint64(i)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for ctx.Err() == nil {
				task(ctx)
				if !sleepFor(ctx, l.Wait.pick(rng)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

func sleepUntil(ctx context.Context, t time.Time) bool { return sleepFor(ctx, time.Until(t)) }

// sleepFor waits d or until ctx is done; it reports whether ctx is still live.
func sleepFor(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// NewClient returns the HTTP client the phases share among all users: keep-alive
// connections, as many idle ones per host as there are users (so that no user opens a
// fresh connection per request), and a timeout per request.
func NewClient(users int, timeout time.Duration) *http.Client {
	if users < 2 {
		users = 2
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          users + 16,
		MaxIdleConnsPerHost:   users + 16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Progress is a snapshot of a running phase, given to the progress callback.
type Progress struct {
	Phase     string // "collect" or "send"
	Label     string // the agent (collect) or VM (send) when a phase runs for several
	Elapsed   time.Duration
	Users     int     // users started so far
	Requests  int64   // requests finished (any outcome)
	ReqPerSec float64 // over the interval since the previous snapshot
	Failures  int64   // failed requests (send: the retryable ones)
	Records   int     // collect: unique records; send: records committed
	Target    int     // collect: records wanted; send: records in the file
	// Collect only.
	Duplicates int64 // responses whose record had been seen already
	// Send only.
	Retries  int64 // requests that were resends of a record after a failure
	Rejected int   // records the ingress refused (4xx)
	GaveUp   int   // records given up after the maximum number of attempts
	InFlight int
	Final    bool // the last snapshot, after the phase ended
}

func (p Progress) String() string {
	phase := p.Phase
	if p.Label != "" {
		phase += " " + p.Label
	}
	s := fmt.Sprintf("%s %6.1fs users=%d records=%d/%d requests=%d req/s=%.1f failures=%d",
		phase, p.Elapsed.Seconds(), p.Users, p.Records, p.Target, p.Requests, p.ReqPerSec, p.Failures)
	if p.Phase == "collect" {
		s += fmt.Sprintf(" duplicates=%d", p.Duplicates)
	} else {
		s += fmt.Sprintf(" retries=%d rejected=%d gave-up=%d in-flight=%d", p.Retries, p.Rejected, p.GaveUp, p.InFlight)
	}
	return s
}

// reporter calls fn every interval with snapshot(), filling in the request rate.
type reporter struct {
	last     time.Time
	lastReqs int64
}

func (r *reporter) fill(p *Progress, now time.Time) {
	if dt := now.Sub(r.last).Seconds(); dt > 0 {
		p.ReqPerSec = float64(p.Requests-r.lastReqs) / dt
	}
	r.last, r.lastReqs = now, p.Requests
}

// startReports starts a phase's progress reports (see report) and rec's per-second
// timeline; the function it returns stops both and waits for the final report, so
// that the phase's result is built after the last Progress.
func startReports(start time.Time, every time.Duration, fn func(Progress), snapshot func() Progress, rec *recorder) (stop func()) {
	done := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		report(done, start, every, fn, snapshot)
		close(reported)
	}()
	go rec.run(done)
	return func() {
		close(done)
		<-reported
	}
}

// eachTarget runs one(i) for each of n targets (agents or VMs): all at once, or one
// after another when sequential, stopping before the next one once ctx is canceled
// or one(i) returns false (then the targets left are not run).
func eachTarget(ctx context.Context, n int, sequential bool, one func(i int) (next bool)) {
	if !sequential {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { one(i) })
		}
		wg.Wait()
		return
	}
	for i := range n {
		if ctx.Err() != nil || !one(i) {
			return
		}
	}
}

// report runs until stop is closed, calling fn with snapshot() every interval, and
// once more (Final) at the end with the rate over the whole phase.
func report(stop <-chan struct{}, start time.Time, every time.Duration, fn func(Progress), snapshot func() Progress) {
	if fn == nil {
		<-stop
		return
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	r := reporter{last: start}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			p := snapshot()
			p.Elapsed = now.Sub(start)
			r.fill(&p, now)
			fn(p)
		case <-stop:
			now := time.Now()
			p := snapshot()
			p.Elapsed = now.Sub(start)
			r.last, r.lastReqs = start, 0
			r.fill(&p, now)
			p.Final = true
			fn(p)
			return
		}
	}
}
