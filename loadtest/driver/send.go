package driver

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SendConfig parameterizes phase 2.
type SendConfig struct {
	IngressURL string // base URL of the ingress; records go to IngressURL + "/ingest"
	Load
	Records []Item
	// Token is sent as "Authorization: Bearer <Token>" (none when empty: an open
	// ingress). A 401 or 403 stops the phase at once: every other record would get
	// the same answer.
	Token string

	MaxAttempts int           // attempts per record before giving up; default 10
	Backoff     time.Duration // delay before the first retry, doubled each time; default 500ms
	MaxBackoff  time.Duration // default 15s
	Duration    time.Duration // stop after this long even if records are left (0: no limit)
	Timeout     time.Duration // per request; default 30s

	Client        *http.Client // default NewClient(Users, Timeout)
	Progress      func(Progress)
	ProgressEvery time.Duration // default 2s
	// Event, when set, is called for every failed attempt, rejection and give-up.
	Event func(Event)
}

// Event describes something that went wrong with one record.
type Event struct {
	Kind    string // "failure" (will be retried), "rejected" (4xx) or "gave-up"
	Item    Item
	Attempt int
	Status  int // HTTP status; 0 for a transport error
	Message string
}

func (e Event) String() string {
	who := fmt.Sprintf("record %d", e.Item.Index)
	if e.Item.Key != "" {
		who += " (" + e.Item.Key + ")"
	}
	st := "transport error"
	if e.Status != 0 {
		st = "HTTP " + strconv.Itoa(e.Status)
	}
	return fmt.Sprintf("%s: %s attempt %d: %s: %s", e.Kind, who, e.Attempt, st, e.Message)
}

// Rejection is a record the ingress refused.
type Rejection struct {
	Item    Item
	Status  int
	Message string
}

// SendResult is the outcome of phase 2.
type SendResult struct {
	Committed int         // records the ingress acknowledged (2xx)
	Rejected  []Rejection // records the ingress refused (4xx), with its message
	GaveUp    []Item      // records that failed MaxAttempts times
	Unsent    []Item      // GaveUp plus records never acknowledged because the phase was stopped
	Requests  int64
	Failures  int64 // retryable failed requests (each was retried or led to a give-up)
	Retries   int64 // requests that resent a record
	Users     int
	Started   time.Time
	Elapsed   time.Duration
	Stop      string // "done", "duration", "canceled" or "unauthorized"
	// Unauthorized is the ingress's answer when it refused the token (Stop is then
	// "unauthorized").
	Unauthorized string
	// Routes are the committed records per route, as the 201 bodies name it
	// ("unknown" when a body names none), with the commit latency they report.
	Routes   map[string]*RouteStats
	Timeline []Second
	Latency  Latency
}

// RouteStats is what the 201 bodies of one route said.
type RouteStats struct {
	Records  int       // records acknowledged by this route
	CommitMS []float64 // the body's commit_ms, one per acknowledged request
}

// ack is the part of a 201 body the sender aggregates.
type ack struct {
	Route    string   `json:"route"`
	CommitMS *float64 `json:"commit_ms"`
	Stored   int      `json:"stored"`
}

// Complete reports whether every record was committed.
func (r *SendResult) Complete() bool { return len(r.Rejected) == 0 && len(r.Unsent) == 0 }

type job struct {
	item    Item
	attempt int // attempts made so far
	due     time.Time
	seq     int
}

// jobHeap orders retries by due time (then by first failure).
type jobHeap []*job

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h jobHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *jobHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}

// queue hands every record to one user at a time: a record is pending, waiting for a
// retry, in flight with exactly one user, or finished.
type queue struct {
	mu        sync.Mutex
	pending   []*job
	retries   jobHeap
	inFlight  map[*job]struct{}
	seq       int
	committed int
	rejected  []Rejection
	gaveUp    []Item
	done      chan struct{}
	closed    bool
}

func newQueue(items []Item) *queue {
	q := &queue{inFlight: make(map[*job]struct{}), done: make(chan struct{})}
	q.pending = make([]*job, len(items))
	for i, it := range items {
		q.pending[i] = &job{item: it}
	}
	q.checkDone()
	return q
}

// take returns the next record to send, due retries first, or nil when none is ready.
func (q *queue) take(now time.Time) *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	var j *job
	switch {
	case len(q.retries) > 0 && !q.retries[0].due.After(now):
		j = heap.Pop(&q.retries).(*job)
	case len(q.pending) > 0:
		j = q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
	default:
		return nil
	}
	j.attempt++
	q.inFlight[j] = struct{}{}
	return j
}

func (q *queue) commit(j *job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, j)
	q.committed++
	q.checkDone()
}

func (q *queue) reject(j *job, status int, msg string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, j)
	q.rejected = append(q.rejected, Rejection{j.item, status, msg})
	q.checkDone()
}

func (q *queue) giveUp(j *job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, j)
	q.gaveUp = append(q.gaveUp, j.item)
	q.checkDone()
}

// retry puts j back to be sent again at due.
func (q *queue) retry(j *job, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, j)
	j.due = due
	q.seq++
	j.seq = q.seq
	heap.Push(&q.retries, j)
}

// abort returns j, whose attempt was cut short by the end of the phase, to the queue
// without counting the attempt.
func (q *queue) abort(j *job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, j)
	j.attempt--
	q.pending = append(q.pending, j)
}

func (q *queue) checkDone() {
	if !q.closed && len(q.pending) == 0 && len(q.retries) == 0 && len(q.inFlight) == 0 {
		q.closed = true
		close(q.done)
	}
}

// unsent lists the records never acknowledged, in file order.
func (q *queue) unsent() []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Item
	out = append(out, q.gaveUp...)
	for _, j := range q.pending {
		out = append(out, j.item)
	}
	for _, j := range q.retries {
		out = append(out, j.item)
	}
	for j := range q.inFlight {
		out = append(out, j.item)
	}
	sortItems(out)
	return out
}

func sortItems(items []Item) {
	slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.Index, b.Index) })
}

// Send runs phase 2 until every record is committed, rejected or given up, cfg.Duration
// has passed or ctx is canceled.
func Send(ctx context.Context, cfg SendConfig) (*SendResult, error) {
	if err := cfg.Load.check(); err != nil {
		return nil, err
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Users, cfg.Timeout)
	}
	ingestURL := endpoint(cfg.IngressURL, "/ingest")
	if _, err := http.NewRequest(http.MethodPost, ingestURL, nil); err != nil {
		return nil, fmt.Errorf("send: ingress URL: %w", err)
	}

	q := newQueue(cfg.Records)
	var requests, failures, retries, running atomic.Int64
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	rec := newRecorder(start, func() int { return int(running.Load()) })
	var routesMu sync.Mutex
	routes := map[string]*RouteStats{}
	var unauthorized atomic.Value
	if cfg.Duration > 0 {
		var stopTimer context.CancelFunc
		runCtx, stopTimer = context.WithTimeoutCause(runCtx, cfg.Duration, errDuration)
		defer stopTimer()
	}
	go func() {
		select {
		case <-q.done:
			cancel(nil)
		case <-runCtx.Done():
		}
	}()
	event := func(e Event) {
		if cfg.Event != nil {
			cfg.Event(e)
		}
	}
	jitter := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var jitterMu sync.Mutex
	backoff := func(attempt int, retryAfter time.Duration) time.Duration {
		d := cfg.Backoff << min(attempt-1, 30)
		if d <= 0 || d > cfg.MaxBackoff {
			d = cfg.MaxBackoff
		}
		jitterMu.Lock()
		d = d/2 + time.Duration(jitter.Int64N(int64(d/2)+1)) // "equal jitter"
		jitterMu.Unlock()
		return max(d, retryAfter)
	}

	task := func(ctx context.Context) {
		j := q.take(time.Now())
		if j == nil {
			return // nothing ready: wait like a user would, then look again
		}
		if j.attempt > 1 {
			retries.Add(1)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ingestURL, bytes.NewReader(j.item.Raw))
		req.Header.Set("Content-Type", "application/json")
		if cfg.Token != "" {
			req.Header.Set("Authorization", "Bearer "+cfg.Token)
		}
		// No Idempotency-Key header, although the ingress is idempotent on the id:
		// with one, net/http would silently resend on a reused connection that broke,
		// and the failure would not be counted.
		t0 := time.Now()
		resp, err := cfg.Client.Do(req)
		var status int
		var msg string
		var body []byte
		var retryAfter time.Duration
		if err == nil {
			var rerr error
			body, rerr = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			status, msg = resp.StatusCode, firstLine(body)
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
			if rerr != nil && status < 300 {
				err = rerr // acknowledged but cut off: resend to be sure (idempotent)
			}
		}
		took := time.Since(t0)
		if ctx.Err() != nil {
			q.abort(j) // the phase ended under this request: not the server's failure
			return
		}
		if err == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
			q.abort(j)
			if msg == "" {
				msg = http.StatusText(status)
			}
			unauthorized.CompareAndSwap(nil, fmt.Sprintf("HTTP %d: %s", status, msg))
			cancel(errUnauthorized)
			return
		}
		requests.Add(1)
		rec.observe(took, !(err == nil && status >= 200 && status < 300))
		switch {
		case err == nil && status >= 200 && status < 300:
			q.commit(j)
			var a ack
			_ = json.Unmarshal(body, &a)
			if a.Route == "" {
				a.Route = "unknown"
			}
			routesMu.Lock()
			rs := routes[a.Route]
			if rs == nil {
				rs = &RouteStats{}
				routes[a.Route] = rs
			}
			rs.Records += max(a.Stored, 1)
			if a.CommitMS != nil {
				rs.CommitMS = append(rs.CommitMS, *a.CommitMS)
			}
			routesMu.Unlock()
		case err == nil && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			if msg == "" {
				msg = http.StatusText(status)
			}
			q.reject(j, status, msg)
			event(Event{Kind: "rejected", Item: j.item, Attempt: j.attempt, Status: status, Message: msg})
		default:
			failures.Add(1)
			if err != nil {
				status, msg = 0, shortErr(err)
			} else if msg == "" {
				msg = http.StatusText(status)
			}
			if j.attempt >= cfg.MaxAttempts {
				q.giveUp(j)
				event(Event{Kind: "gave-up", Item: j.item, Attempt: j.attempt, Status: status, Message: msg})
				return
			}
			event(Event{Kind: "failure", Item: j.item, Attempt: j.attempt, Status: status, Message: msg})
			q.retry(j, time.Now().Add(backoff(j.attempt, retryAfter)))
		}
	}

	snapshot := func() Progress {
		q.mu.Lock()
		defer q.mu.Unlock()
		return Progress{
			Phase: "send", Users: int(running.Load()), Requests: requests.Load(),
			Failures: failures.Load(), Records: q.committed, Target: len(cfg.Records),
			Retries: retries.Load(), Rejected: len(q.rejected), GaveUp: len(q.gaveUp), InFlight: len(q.inFlight),
		}
	}
	stopReports := startReports(start, cfg.ProgressEvery, cfg.Progress, snapshot, rec)
	select {
	case <-q.done: // nothing to send
	default:
		runUsers(runCtx, cfg.Load, &running, task)
	}
	stopReports()

	res := &SendResult{
		Requests: requests.Load(), Failures: failures.Load(), Retries: retries.Load(),
		Users: int(running.Load()), Started: start, Elapsed: time.Since(start),
		Routes: routes, Timeline: rec.timeline(), Latency: rec.latency(),
	}
	select {
	case <-q.done:
		res.Stop = "done"
	default:
		res.Stop = "canceled"
		switch cause := context.Cause(runCtx); {
		case errors.Is(cause, errDuration):
			res.Stop = "duration"
		case errors.Is(cause, errUnauthorized):
			res.Stop = "unauthorized"
			res.Unauthorized, _ = unauthorized.Load().(string)
		}
	}
	q.mu.Lock()
	res.Committed = q.committed
	res.Rejected = append([]Rejection(nil), q.rejected...)
	res.GaveUp = append([]Item(nil), q.gaveUp...)
	q.mu.Unlock()
	slices.SortFunc(res.Rejected, func(a, b Rejection) int { return cmp.Compare(a.Item.Index, b.Item.Index) })
	sortItems(res.GaveUp)
	res.Unsent = q.unsent()
	return res, nil
}

var errUnauthorized = errors.New("the ingress refused the token")

// endpoint appends path to base unless base already ends with it.
func endpoint(base, path string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, path) {
		return base
	}
	return base + path
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, time.Minute)
	}
	return 0
}

// VMGroup is the records of one VM.
type VMGroup struct {
	VM    string
	Items []Item
}

// GroupByVM splits items by the vm they name (VMOf), VMs in order of first
// appearance, records in file order.
func GroupByVM(items []Item) []VMGroup {
	idx := map[string]int{}
	var groups []VMGroup
	for _, it := range items {
		vm := VMOf(it.Raw)
		i, ok := idx[vm]
		if !ok {
			i = len(groups)
			idx[vm] = i
			groups = append(groups, VMGroup{VM: vm})
		}
		groups[i].Items = append(groups[i].Items, it)
	}
	return groups
}

// SendGroups runs phase 2 for each group with cfg (its Records replaced by the
// group's): all at once, each with cfg.Users users, or one after another when
// sequential. cfg.Progress gets each group's snapshots with Label set to its VM.
// Results are in group order; a group not run (canceled before its turn) has nil.
func SendGroups(ctx context.Context, cfg SendConfig, groups []VMGroup, sequential bool) ([]*SendResult, error) {
	out := make([]*SendResult, len(groups))
	errs := make([]error, len(groups))
	eachTarget(ctx, len(groups), sequential, func(i int) bool {
		c := cfg
		c.Records = groups[i].Items
		if cfg.Progress != nil {
			label := groups[i].VM
			c.Progress = func(p Progress) { p.Label = label; cfg.Progress(p) }
		}
		out[i], errs[i] = Send(ctx, c)
		// A refused token would be refused for the next VM too.
		return out[i] == nil || out[i].Stop != "unauthorized"
	})
	return out, errors.Join(errs...)
}
