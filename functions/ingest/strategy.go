// Package ingest is the vmpulse ingest service: POST /ingest takes one record or an
// array, checks the sender's token, validates, commits to MySQL with one of two
// strategies, and hands what was committed to the outbox, which publishes it to
// Pub/Sub and publishes it again later if that failed. The strategies are the
// point of the comparison the assignment asks for:
//
//   - route1 (PerRequest): every request gets its own transaction with one
//     single-row INSERT per record (BEGIN, n INSERTs, COMMIT).
//   - route2 (GroupCommit): concurrent requests are gathered and committed together
//     in one multi-row INSERT in autocommit (one round trip, atomic in InnoDB);
//     each request is answered only after the group holding its records committed.
package ingest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/record"
)

// Strategy names.
const (
	Route1 = "route1"
	Route2 = "route2"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("ingest: writer is shutting down")

// Store is what the strategies need from the database: the writer of one route's
// rows (mysql.Writer).
type Store interface {
	InsertEach(ctx context.Context, b mysql.Batch, recs []record.Record) (mysql.Result, error)
	InsertMulti(ctx context.Context, b mysql.Batch, recs []record.Record) (mysql.Result, error)
}

// Commit describes a successful write of one request's records.
type Commit struct {
	// Batch is the id written into every row of the transaction or group (see
	// BatchIDs); the outbox follows publication by it.
	Batch int64
	// StoredAt is when the write began; it is every row's stored_at. (The commit
	// itself ends Duration later.)
	StoredAt time.Time
	Duration time.Duration // from the start of the write to its commit
	Size     int           // records in the transaction or group that carried this request
	// Retried lists the request's ids already stored with the same values, and
	// Conflicts those already stored with other values. Neither was written again.
	Retried, Conflicts []string
}

// Committed is told about every commit: its batch and the records it inserted
// (the outbox publishes them).
type Committed func(c Commit, inserted []record.Record)

// Writer commits records.
type Writer interface {
	// Write returns once recs are committed (or failed: nothing is committed then).
	Write(ctx context.Context, recs []record.Record) (Commit, error)
	// Close stops accepting writes and finishes the ones already accepted; those
	// still waiting when ctx ends fail with ErrClosed.
	Close(ctx context.Context)
}

// BatchIDs makes batch ids: microseconds since 2020 shifted left 11 bits, with a
// random 11-bit tag of this process in the low bits, strictly increasing within a
// process. Ids of different processes differ unless they share a tag and a
// microsecond. A batch id range is a time range (see BatchAt), which is how the
// outbox scans recent commits.
type BatchIDs struct {
	mu   sync.Mutex
	last int64
	tag  int64
}

var batchEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// NewBatchIDs returns a source with a random tag.
func NewBatchIDs() *BatchIDs {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return &BatchIDs{tag: int64(binary.BigEndian.Uint16(b[:]) & 0x7ff)}
}

// BatchAt is the smallest batch id of time t.
func BatchAt(t time.Time) int64 { return t.Sub(batchEpoch).Microseconds() << 11 }

// Next returns a fresh id for a write beginning at t.
func (g *BatchIDs) Next(t time.Time) int64 {
	id := BatchAt(t) | g.tag
	g.mu.Lock()
	if id <= g.last {
		id = g.last + 1<<11
	}
	g.last = id
	g.mu.Unlock()
	return id
}

// outcome sorts the records of one request after its commit: what it inserted,
// and which ids were there already (retried or conflicting).
func outcome(recs []record.Record, notInserted []int, stored map[string]record.Record) (inserted []record.Record, retried, conflicts []string) {
	if len(notInserted) == 0 {
		return recs, nil, nil
	}
	skip := make(map[int]bool, len(notInserted))
	for _, i := range notInserted {
		skip[i] = true
	}
	inserted = make([]record.Record, 0, len(recs)-len(notInserted))
	for i := range recs {
		if !skip[i] {
			inserted = append(inserted, recs[i])
			continue
		}
		if record.Equal(stored[recs[i].ID], recs[i]) {
			retried = append(retried, recs[i].ID)
		} else {
			conflicts = append(conflicts, recs[i].ID)
		}
	}
	return inserted, retried, conflicts
}

// PerRequest is the route1 strategy.
type PerRequest struct {
	store     Store
	ids       *BatchIDs
	timeout   time.Duration
	committed Committed
}

// NewPerRequest returns the route1 strategy; timeout bounds each transaction.
func NewPerRequest(store Store, ids *BatchIDs, timeout time.Duration, committed Committed) *PerRequest {
	return &PerRequest{store: store, ids: ids, timeout: timeout, committed: committed}
}

// Write implements Writer.
func (p *PerRequest) Write(ctx context.Context, recs []record.Record) (Commit, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	b := mysql.Batch{ID: p.ids.Next(start), StoredAt: start.UTC()}
	res, err := p.store.InsertEach(ctx, b, recs)
	if err != nil {
		return Commit{}, err
	}
	c := Commit{Batch: b.ID, StoredAt: b.StoredAt, Duration: time.Since(start), Size: len(recs)}
	var inserted []record.Record
	inserted, c.Retried, c.Conflicts = outcome(recs, res.NotInserted, res.Stored)
	if len(inserted) > 0 {
		p.committed(c, inserted)
	}
	return c, nil
}

// Close implements Writer.
func (p *PerRequest) Close(context.Context) {}

// GroupCommit is the route2 strategy. Writer goroutines each take every request
// waiting in the queue (up to MaxRecords records), optionally wait up to MaxDelay
// for more when the group is not full, and commit the group in one multi-row
// INSERT. While one group commits, the next one fills: the busier the route, the
// larger the groups. The queue only ever holds admitted requests, whose bodies
// the server bounds together in bytes (Config.MaxInflightBytes), so it is bounded
// in bytes too.
type GroupCommit struct {
	store      Store
	ids        *BatchIDs
	timeout    time.Duration
	committed  Committed
	onBatch    func(records int)
	maxRecords int
	maxDelay   time.Duration

	mu     sync.RWMutex
	closed bool
	queue  chan *pending
	wg     sync.WaitGroup
	stop   chan struct{} // closed when Close gives up on what is still queued
}

type pending struct {
	ctx  context.Context
	recs []record.Record
	done chan result
}

type result struct {
	c   Commit
	err error
}

// GroupConfig tunes GroupCommit.
type GroupConfig struct {
	MaxRecords int           // records per group (default 1000; at most mysql.MaxRowsPerStatement)
	MaxDelay   time.Duration // how long a group that is not full waits for more (default 0: no wait)
	Writers    int           // groups committing at once (default 4)
	Queue      int           // requests waiting at most (default 8192); Write blocks beyond
	Timeout    time.Duration // bounds each group's INSERT (default 5 s)
}

// NewGroupCommit starts the writers. onBatch (may be nil) observes each committed
// group's size.
func NewGroupCommit(store Store, ids *BatchIDs, cfg GroupConfig, committed Committed, onBatch func(int)) *GroupCommit {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 1000
	}
	cfg.MaxRecords = min(cfg.MaxRecords, mysql.MaxRowsPerStatement)
	cfg.MaxDelay = max(cfg.MaxDelay, 0)
	if cfg.Writers <= 0 {
		cfg.Writers = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if onBatch == nil {
		onBatch = func(int) {}
	}
	g := &GroupCommit{store: store, ids: ids, timeout: cfg.Timeout, committed: committed, onBatch: onBatch,
		maxRecords: cfg.MaxRecords, maxDelay: cfg.MaxDelay,
		queue: make(chan *pending, cfg.Queue), stop: make(chan struct{})}
	for i := 0; i < cfg.Writers; i++ {
		g.wg.Add(1)
		go g.writer()
	}
	return g
}

// Write implements Writer.
func (g *GroupCommit) Write(ctx context.Context, recs []record.Record) (Commit, error) {
	p := &pending{ctx: ctx, recs: recs, done: make(chan result, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return Commit{}, ErrClosed
	}
	select {
	case g.queue <- p:
	case <-ctx.Done():
		g.mu.RUnlock()
		return Commit{}, ctx.Err()
	}
	g.mu.RUnlock()
	// Once queued, wait for the outcome even if the client goes away: the records
	// may be committing right now, and the answer must say so.
	r := <-p.done
	return r.c, r.err
}

// Close implements Writer: queued requests are still committed until ctx ends;
// those not started by then fail with ErrClosed (never acknowledged, so the
// client retries them elsewhere).
func (g *GroupCommit) Close(ctx context.Context) {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		close(g.stop)
		<-done
	}
}

func (g *GroupCommit) writer() {
	defer g.wg.Done()
	for first := range g.queue {
		select {
		case <-g.stop:
			first.done <- result{err: ErrClosed}
			continue
		default:
		}
		group, n := g.gather(first)
		g.commit(group, n)
	}
}

// gather returns first with every request already waiting, up to maxRecords
// records; with a linger set, it then keeps taking arrivals until maxDelay passes.
func (g *GroupCommit) gather(first *pending) ([]*pending, int) {
	group, n := []*pending{first}, len(first.recs)
	var linger <-chan time.Time // nil until the queue ran dry
	for n < g.maxRecords {
		var p *pending
		var ok bool
		if linger == nil {
			select {
			case p, ok = <-g.queue:
			default:
				if g.maxDelay <= 0 {
					return group, n
				}
				linger = time.After(g.maxDelay)
				continue
			}
		} else {
			select {
			case p, ok = <-g.queue:
			case <-linger:
				return group, n
			}
		}
		if !ok { // closed: Close is draining
			return group, n
		}
		if n+len(p.recs) > mysql.MaxRowsPerStatement { // does not fit one statement: next group
			g.commit(group, n)
			group, n = []*pending{p}, len(p.recs)
			continue
		}
		group = append(group, p)
		n += len(p.recs)
	}
	return group, n
}

func (g *GroupCommit) commit(group []*pending, n int) {
	// Requests whose clients gave up before their group started are not written:
	// they were never acknowledged, and the client will retry.
	live := group[:0]
	recs := make([]record.Record, 0, n)
	for _, p := range group {
		if err := p.ctx.Err(); err != nil {
			p.done <- result{err: err}
			continue
		}
		live = append(live, p)
		recs = append(recs, p.recs...)
	}
	if len(live) == 0 {
		return
	}
	err := g.insert(live, recs)
	if err == nil || len(live) == 1 || !mysql.Permanent(err) {
		if err != nil {
			for _, p := range live {
				p.done <- result{err: err}
			}
		}
		return
	}
	// MySQL refused a row: commit each request on its own, so one bad request
	// does not fail the others.
	for _, p := range live {
		if perr := g.insert([]*pending{p}, p.recs); perr != nil {
			p.done <- result{err: fmt.Errorf("%w (the group of %d requests failed first: %v)", perr, len(live), err)}
		}
	}
}

// insert writes the records of group (recs, in order) as one batch and answers
// every request of the group; on error it answers none.
func (g *GroupCommit) insert(group []*pending, recs []record.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	start := time.Now()
	b := mysql.Batch{ID: g.ids.Next(start), StoredAt: start.UTC()}
	res, err := g.store.InsertMulti(ctx, b, recs)
	if err != nil {
		return err
	}
	c := Commit{Batch: b.ID, StoredAt: b.StoredAt, Duration: time.Since(start), Size: len(recs)}
	g.onBatch(len(recs))
	inserted := recs
	if len(res.NotInserted) > 0 {
		inserted = nil
	}
	// Split the group's outcome back into its requests; hand the inserted records
	// to the outbox before anyone is answered.
	answers := make([]Commit, len(group))
	off, k := 0, 0 // k walks res.NotInserted
	for i, p := range group {
		var mine []int
		for ; k < len(res.NotInserted) && res.NotInserted[k] < off+len(p.recs); k++ {
			mine = append(mine, res.NotInserted[k]-off)
		}
		answers[i] = c
		var ins []record.Record
		ins, answers[i].Retried, answers[i].Conflicts = outcome(p.recs, mine, res.Stored)
		if len(res.NotInserted) > 0 {
			inserted = append(inserted, ins...)
		}
		off += len(p.recs)
	}
	if len(inserted) > 0 {
		g.committed(c, inserted)
	}
	for i, p := range group {
		p.done <- result{c: answers[i]}
	}
	return nil
}
