package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// CollectConfig parameterizes phase 1.
type CollectConfig struct {
	AgentURL string // base URL of the agent; the phase polls AgentURL + "/sample"
	Load
	Records  int           // stop at this many unique records (0: no limit)
	Duration time.Duration // stop after this long (0: no limit; then Records must be set)
	Timeout  time.Duration // per request; default 10s

	Client        *http.Client // default NewClient(Users, Timeout)
	Progress      func(Progress)
	ProgressEvery time.Duration // default 2s
	// Failure, when set, is called for every failed request with a short reason.
	Failure func(reason string)
}

// CollectResult is what phase 1 gathered.
type CollectResult struct {
	Records    []json.RawMessage // unique records in the order first seen
	Requests   int64             // requests finished
	Failures   int64             // requests that failed (transport error, non-200, not a valid record)
	Duplicates int64             // records received again
	Users      int               // users started
	Started    time.Time
	Elapsed    time.Duration
	Stop       string // why it stopped: "records", "duration" or "canceled"
	// VM is the vm of the first record (the agent's machine).
	VM       string
	Timeline []Second // per second: users, requests, failures, latency
	Latency  Latency  // over all requests
}

// UniqueRatio is the share of received records that were new.
func (r *CollectResult) UniqueRatio() float64 {
	got := int64(len(r.Records)) + r.Duplicates
	if got == 0 {
		return 0
	}
	return float64(len(r.Records)) / float64(got)
}

// Collect runs phase 1 until cfg.Records unique records are in, cfg.Duration has
// passed or ctx is canceled, and returns what it gathered (also when canceled).
func Collect(ctx context.Context, cfg CollectConfig) (*CollectResult, error) {
	if err := cfg.Load.check(); err != nil {
		return nil, err
	}
	if cfg.Records <= 0 && cfg.Duration <= 0 {
		return nil, errors.New("collect: set a number of records, a duration or both")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Users, cfg.Timeout)
	}
	sampleURL := endpoint(cfg.AgentURL, "/sample")
	req0, err := http.NewRequest(http.MethodGet, sampleURL, nil)
	if err != nil {
		return nil, fmt.Errorf("collect: agent URL: %w", err)
	}
	req0.Header.Set("Accept", "application/json")

	var (
		mu         sync.Mutex
		seen       = make(map[string]struct{}, min(max(cfg.Records, 1024), 1<<16))
		recs       = make([]json.RawMessage, 0, min(max(cfg.Records, 1024), 1<<16))
		requests   atomic.Int64
		failures   atomic.Int64
		duplicates atomic.Int64
		running    atomic.Int64
		stopWhy    atomic.Value
	)
	stopWhy.Store("canceled")
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Duration > 0 {
		var stopTimer context.CancelFunc
		runCtx, stopTimer = context.WithTimeoutCause(runCtx, cfg.Duration, errDuration)
		defer stopTimer()
	}
	start := time.Now()
	rec := newRecorder(start, func() int { return int(running.Load()) })
	fail := func(reason string, took time.Duration) {
		if runCtx.Err() != nil {
			return // aborted by the end of the phase, not a failure of the agent
		}
		rec.observe(took, true)
		requests.Add(1)
		failures.Add(1)
		if cfg.Failure != nil {
			cfg.Failure(reason)
		}
	}
	// add keeps the new records of one response; it reports false when the target is
	// reached.
	add := func(body []byte) error {
		items, err := ParseRecords(body)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.Err != nil {
				return fmt.Errorf("invalid record: %v", it.Err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, it := range items {
			if cfg.Records > 0 && len(recs) >= cfg.Records {
				break
			}
			if _, dup := seen[it.Key]; dup {
				duplicates.Add(1)
				continue
			}
			seen[it.Key] = struct{}{}
			recs = append(recs, it.Raw)
			if cfg.Records > 0 && len(recs) >= cfg.Records {
				stopWhy.Store("records")
				cancel()
			}
		}
		return nil
	}
	task := func(ctx context.Context) {
		req := req0.Clone(ctx)
		t0 := time.Now()
		resp, err := cfg.Client.Do(req)
		if err != nil {
			fail(shortErr(err), time.Since(t0))
			return
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		took := time.Since(t0)
		if err != nil {
			fail(shortErr(err), took)
			return
		}
		if resp.StatusCode != http.StatusOK {
			fail(fmt.Sprintf("HTTP %d: %s", resp.StatusCode, firstLine(body)), took)
			return
		}
		if err := add(body); err != nil {
			fail(err.Error(), took)
			return
		}
		rec.observe(took, false)
		requests.Add(1)
	}

	snapshot := func() Progress {
		mu.Lock()
		n := len(recs)
		mu.Unlock()
		return Progress{
			Phase: "collect", Users: int(running.Load()), Requests: requests.Load(),
			Failures: failures.Load(), Records: n, Target: cfg.Records, Duplicates: duplicates.Load(),
		}
	}
	stopReports := startReports(start, cfg.ProgressEvery, cfg.Progress, snapshot, rec)
	runUsers(runCtx, cfg.Load, &running, task)
	if errors.Is(context.Cause(runCtx), errDuration) {
		stopWhy.Store("duration")
	}
	stopReports()

	mu.Lock()
	defer mu.Unlock()
	res := &CollectResult{
		Records: recs, Requests: requests.Load(), Failures: failures.Load(),
		Duplicates: duplicates.Load(), Users: int(running.Load()),
		Started: start, Elapsed: time.Since(start), Stop: stopWhy.Load().(string),
		Timeline: rec.timeline(), Latency: rec.latency(),
	}
	if len(recs) > 0 {
		res.VM = VMOf(recs[0])
	}
	return res, nil
}

// VMOf is the vm a record names, or record.DefaultVMName (what the ingress stores)
// when it names none.
func VMOf(raw []byte) string {
	var probe struct {
		VM string `json:"vm"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.VM == "" {
		return record.DefaultVMName
	}
	return probe.VM
}

var errDuration = errors.New("time limit reached")

func firstLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = append(b[:200:200], "…"...)
	}
	return string(b)
}

// shortErr drops the "Get \"http://…\": " prefix of client errors.
func shortErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// CollectAgents runs phase 1 against each agent of cfgs: all at once (each with its
// own users) or one after another when sequential. cfgs[i].Progress gets Label set
// to the agent's URL. Results are in cfgs order; an agent not polled (canceled
// before its turn) has nil.
func CollectAgents(ctx context.Context, cfgs []CollectConfig, sequential bool) ([]*CollectResult, error) {
	out := make([]*CollectResult, len(cfgs))
	errs := make([]error, len(cfgs))
	eachTarget(ctx, len(cfgs), sequential, func(i int) bool {
		c := cfgs[i]
		if p := c.Progress; p != nil {
			label := c.AgentURL
			c.Progress = func(pr Progress) { pr.Label = label; p(pr) }
		}
		out[i], errs[i] = Collect(ctx, c)
		return true
	})
	return out, errors.Join(errs...)
}
