// Package ingest is the vmpulse ingest service: POST /ingest takes one record or an
// array, validates it, commits it to MySQL with one of two strategies and publishes
// what was committed. The strategies are the point of the comparison the
// assignment asks for:
//
//   - route1 (PerRequest): every request gets its own transaction with one
//     single-row INSERT per record.
//   - route2 (GroupCommit): concurrent requests are gathered and committed together
//     in multi-row INSERTs, one transaction per group; each request is answered
//     only after the group holding its records committed.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// Strategy names.
const (
	Route1 = "route1"
	Route2 = "route2"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("ingest: writer is shutting down")

// Store is what the strategies need from the database.
type Store interface {
	InsertEach(ctx context.Context, route string, storedAt time.Time, recs []record.Record) error
	InsertMulti(ctx context.Context, route string, storedAt time.Time, recs []record.Record) error
}

// Commit describes a successful write.
type Commit struct {
	At       time.Time     // commit time, stored in the rows' stored_at
	Duration time.Duration // from the start of the transaction to its commit
	Batch    int           // records in the transaction that carried this request
}

// Writer commits records.
type Writer interface {
	// Write returns once recs are committed (or failed: nothing is committed then).
	Write(ctx context.Context, recs []record.Record) (Commit, error)
	// Close stops accepting writes and finishes the ones already accepted.
	Close()
}

// PerRequest is the route1 strategy.
type PerRequest struct {
	Store Store
	Route string
	// OnBatch, when set, observes each committed transaction's size.
	OnBatch func(records int)
}

// Write implements Writer.
func (p *PerRequest) Write(ctx context.Context, recs []record.Record) (Commit, error) {
	start := time.Now()
	at := start.UTC()
	if err := p.Store.InsertEach(ctx, p.Route, at, recs); err != nil {
		return Commit{}, err
	}
	if p.OnBatch != nil {
		p.OnBatch(len(recs))
	}
	return Commit{At: at, Duration: time.Since(start), Batch: len(recs)}, nil
}

// Close implements Writer.
func (p *PerRequest) Close() {}

// GroupCommit is the route2 strategy. Writer goroutines each take every request
// waiting in the queue (up to MaxRecords records), optionally wait up to MaxDelay
// for more when the group is not full, and commit the group in one transaction.
// While one group commits, the next one fills: the busier the route, the larger
// the groups. No wait is the default: measured here, a 2 ms linger cost a lone
// client 80 % of its throughput (2 000 → 360 records/s) and gained nothing at 256
// clients, where groups form by themselves.
type GroupCommit struct {
	store      Store
	route      string
	maxRecords int
	maxDelay   time.Duration

	mu     sync.RWMutex
	closed bool
	queue  chan *pending
	wg     sync.WaitGroup
	// onBatch, when set, observes each committed group's size.
	onBatch func(records int)
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
	MaxRecords int           // records per group (default 1000)
	MaxDelay   time.Duration // how long a group that is not full waits for more (default 0: no wait)
	Writers    int           // groups committing at once (default 4)
	Queue      int           // requests waiting at most (default 8192); Write blocks beyond
	OnBatch    func(records int)
}

// NewGroupCommit starts the writers.
func NewGroupCommit(store Store, route string, cfg GroupConfig) *GroupCommit {
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 1000
	}
	if cfg.MaxDelay < 0 {
		cfg.MaxDelay = 0
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	g := &GroupCommit{store: store, route: route, maxRecords: cfg.MaxRecords, maxDelay: cfg.MaxDelay,
		queue: make(chan *pending, cfg.Queue), onBatch: cfg.OnBatch}
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

// Close implements Writer: queued requests are still committed.
func (g *GroupCommit) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *GroupCommit) writer() {
	defer g.wg.Done()
	for first := range g.queue {
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
	start := time.Now()
	at := start.UTC()
	err := g.store.InsertMulti(context.Background(), g.route, at, recs)
	if err == nil {
		c := Commit{At: at, Duration: time.Since(start), Batch: len(recs)}
		if g.onBatch != nil {
			g.onBatch(len(recs))
		}
		for _, p := range live {
			p.done <- result{c: c}
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- result{err: err}
		return
	}
	// One request must not fail the others: commit each on its own.
	for _, p := range live {
		s := time.Now()
		if perr := g.store.InsertMulti(context.Background(), g.route, s.UTC(), p.recs); perr != nil {
			p.done <- result{err: fmt.Errorf("%w (group of %d failed first: %v)", perr, len(live), err)}
			continue
		}
		if g.onBatch != nil {
			g.onBatch(len(p.recs))
		}
		p.done <- result{c: Commit{At: s.UTC(), Duration: time.Since(s), Batch: len(p.recs)}}
	}
}
