package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/record"
)

// Publisher publishes committed records (pubsub.Publisher). Publish must not block;
// done is called once, when every record of the batch was acknowledged (nil) or
// one failed.
type Publisher interface {
	Publish(ctx context.Context, b pubsub.Batch, recs []record.Record, done func(error))
}

// OutboxStore is what the outbox needs from MySQL (mysql.Store).
type OutboxStore interface {
	MarkPublished(ctx context.Context, batches []int64) error
	Unpublished(ctx context.Context, from, to int64, limit int) ([]mysql.BatchCount, error)
	ReadBatches(ctx context.Context, batches []int64) (map[int64]*mysql.StoredBatch, error)
	PrunePublished(ctx context.Context, before int64) (int64, error)
	Lead(ctx context.Context, name string) (*mysql.Lease, error)
}

// OutboxConfig tunes the outbox; zero values take the defaults.
type OutboxConfig struct {
	// Grace is how old an unmarked batch must be before it is published again:
	// longer than a publication's retries (10 s), so that a batch still being
	// published is rarely published twice.
	Grace time.Duration // default 15 s
	// MaxWrite is the longest a write may take (the DB timeout): a batch becomes
	// visible only when it commits, up to this long after the time its id says,
	// so each scan looks this far behind where the previous one ended.
	MaxWrite time.Duration // default 25 s
	// Lookback is how far back a new republisher looks for unmarked batches. A
	// Pub/Sub outage longer than this leaves older records unpublished (they stay
	// in MySQL).
	Lookback time.Duration // default 30 min
	// Every is how often the republisher looks.
	Every time.Duration // default 5 s
	// LockName names the MySQL lock that lets one process at a time republish.
	LockName string // default "vmpulse-outbox"
}

// Outbox makes every committed row reach the topic at least once. Each commit is
// published at once (Publish); when every record of a batch was acknowledged, a
// marker row says so (written in bulk off the request path). One process at a
// time (whoever holds a MySQL named lock) looks for batches older than Grace
// without a marker and publishes their rows again, as MySQL holds them: after a
// route was killed between its commit and its publication, after Pub/Sub was
// down, or after a marker was lost. Duplicates are possible, loss is not; the
// relay and the dashboard drop repeated ids.
type Outbox struct {
	store OutboxStore
	pub   Publisher
	// pubFor returns a publisher of route's records, for republishing batches
	// another route committed.
	pubFor func(route string) Publisher
	cfg    OutboxConfig
	log    *slog.Logger

	marks chan int64 // batches fully acknowledged, to mark
	wg    sync.WaitGroup

	m outboxMetrics
}

type outboxMetrics struct {
	published, pubErrs, republished, marksDropped prometheus.Counter
	backlog, pending                              prometheus.Gauge
	leader                                        prometheus.Gauge
}

// maxPendingMarks bounds the markers waiting to be written; beyond it a marker is
// dropped and its batch is simply republished later.
const maxPendingMarks = 100000

// NewOutbox returns an outbox publishing through pub; pubFor gives publishers for
// the other routes' batches when republishing.
func NewOutbox(store OutboxStore, pub Publisher, pubFor func(route string) Publisher, cfg OutboxConfig, reg prometheus.Registerer, route string, log *slog.Logger) *Outbox {
	if cfg.Grace <= 0 {
		cfg.Grace = 15 * time.Second
	}
	if cfg.MaxWrite <= 0 {
		cfg.MaxWrite = DefaultDBTimeout
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 30 * time.Minute
	}
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.LockName == "" {
		cfg.LockName = "vmpulse-outbox"
	}
	labels := prometheus.Labels{"route": route}
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
		reg.MustRegister(c)
		return c
	}
	g := func(name, help string) prometheus.Gauge {
		c := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
		reg.MustRegister(c)
		return c
	}
	o := &Outbox{store: store, pub: pub, pubFor: pubFor, cfg: cfg, log: log, marks: make(chan int64, maxPendingMarks)}
	o.m = outboxMetrics{
		published:    f("vmpulse_ingest_published_total", "Records acknowledged by Pub/Sub right after their commit."),
		pubErrs:      f("vmpulse_ingest_publish_errors_total", "Records committed whose first publication failed (the outbox publishes them again)."),
		republished:  f("vmpulse_outbox_republished_records_total", "Records published again from MySQL by this process."),
		marksDropped: f("vmpulse_outbox_marks_dropped_total", "Published batches whose marker was dropped (they are published again later)."),
		backlog:      g("vmpulse_outbox_backlog_records", "Committed records older than the grace period not known to have reached Pub/Sub (seen by the process that republishes)."),
		pending:      g("vmpulse_outbox_pending_batches", "Batches handed to Pub/Sub and not yet acknowledged."),
		leader:       g("vmpulse_outbox_leader", "1 while this process is the one that republishes."),
	}
	return o
}

// Publish hands a commit's inserted records to Pub/Sub; it never blocks.
func (o *Outbox) Publish(c Commit, recs []record.Record) {
	o.m.pending.Inc()
	n := float64(len(recs))
	o.pub.Publish(context.Background(), pubsub.Batch{ID: c.Batch, StoredAt: c.StoredAt, Commit: c.Duration}, recs, func(err error) {
		o.m.pending.Dec()
		if err != nil {
			o.m.pubErrs.Add(n)
			return // no marker: republished after the grace period
		}
		o.m.published.Add(n)
		o.mark(c.Batch)
	})
}

func (o *Outbox) mark(batch int64) {
	select {
	case o.marks <- batch:
	default:
		o.m.marksDropped.Inc()
	}
}

// Run writes markers and, while this process holds the lock, republishes, until
// ctx ends; it then writes the markers already known, for a short while.
func (o *Outbox) Run(ctx context.Context) {
	o.wg.Add(2)
	go func() { defer o.wg.Done(); o.writeMarks(ctx) }()
	go func() { defer o.wg.Done(); o.republish(ctx) }()
	o.wg.Wait()
}

func (o *Outbox) writeMarks(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var buf []int64
	flush := func(ctx context.Context) {
		for {
			select {
			case b := <-o.marks:
				buf = append(buf, b)
				if len(buf) < 5000 {
					continue
				}
			default:
			}
			break
		}
		if len(buf) == 0 {
			return
		}
		if err := o.store.MarkPublished(ctx, buf); err != nil {
			if ctx.Err() == nil {
				o.log.Warn("outbox: writing publication markers failed; retrying (the batches may be published twice)", "batches", len(buf), "err", err)
			}
			if len(buf) > maxPendingMarks {
				o.m.marksDropped.Add(float64(len(buf) - maxPendingMarks))
				buf = buf[len(buf)-maxPendingMarks:]
			}
			return
		}
		buf = buf[:0]
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			flush(fctx)
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			flush(fctx)
			cancel()
		}
	}
}

// republish takes the lock when it is free and, while it holds it, looks every
// cfg.Every for unmarked batches older than the grace period and publishes them.
func (o *Outbox) republish(ctx context.Context) {
	t := time.NewTicker(o.cfg.Every)
	defer t.Stop()
	var lease *mysql.Lease
	defer func() {
		if lease != nil {
			lease.Release()
		}
		o.m.leader.Set(0)
	}()
	var cursor int64
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if lease != nil && !lease.Held(ctx) {
			lease.Release()
			lease = nil
			o.m.leader.Set(0)
			o.log.Info("outbox: lost the republisher lock")
		}
		if lease == nil {
			l, err := o.store.Lead(ctx, o.cfg.LockName)
			if err != nil || l == nil {
				continue // another process republishes, or MySQL is away
			}
			lease = l
			o.m.leader.Set(1)
			cursor = BatchAt(time.Now().Add(-o.cfg.Lookback))
			o.log.Info("outbox: this process republishes unpublished batches", "lookback", o.cfg.Lookback.String())
		}
		cursor = o.scan(ctx, cursor)
		if time.Since(lastPrune) > time.Minute {
			lastPrune = time.Now()
			if _, err := o.store.PrunePublished(ctx, BatchAt(time.Now().Add(-2*o.cfg.Lookback))); err != nil && ctx.Err() == nil {
				o.log.Warn("outbox: pruning old markers failed", "err", err)
			}
		}
	}
}

// scan republishes unmarked batches between cursor − MaxWrite and now − Grace,
// oldest first, and returns the new cursor: below it every batch that had
// committed by then is marked or was republished. (A batch committing later than
// its id's time is found by the next scans, which look MaxWrite further back.)
// Each page of batches costs three round trips to MySQL and one to Pub/Sub
// whatever its size, so a backlog left by an outage drains in seconds.
//
// A failed scan returns cursor, or how far it got beyond it: never less, or
// every failure during an outage would slide the window MaxWrite further back.
func (o *Outbox) scan(ctx context.Context, cursor int64) int64 {
	upper := BatchAt(time.Now().Add(-o.cfg.Grace))
	from := cursor - BatchAt(batchEpoch.Add(o.cfg.MaxWrite))
	const page = 500
	var backlog int64
	defer func() { o.m.backlog.Set(float64(backlog)) }()
	for {
		list, err := o.store.Unpublished(ctx, from, upper, page)
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("outbox: looking for unpublished batches failed", "err", err)
			}
			return cursor
		}
		for _, bc := range list {
			backlog += bc.Records
		}
		done, err := o.republishPage(ctx, list)
		for _, bc := range list[:done] {
			backlog -= bc.Records
		}
		if done > 0 {
			from = list[done-1].Batch
			cursor = max(cursor, from)
		}
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("outbox: republishing failed; will retry", "batches", len(list)-done, "err", err)
			}
			return cursor
		}
		if len(list) < page {
			return upper - 1
		}
	}
}

// republishPage publishes the rows of a page of batches as stored, all at once,
// and marks those Pub/Sub acknowledged. It returns how many of the page, from its
// start, are now published: a failure stops the cursor at the first batch that
// failed.
func (o *Outbox) republishPage(ctx context.Context, list []mysql.BatchCount) (int, error) {
	if len(list) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(list))
	for i, bc := range list {
		ids[i] = bc.Batch
	}
	stored, err := o.store.ReadBatches(ctx, ids)
	if err != nil {
		return 0, err
	}
	errs := make([]chan error, len(list))
	for i, id := range ids {
		errs[i] = make(chan error, 1)
		sb := stored[id]
		if sb == nil || len(sb.Records) == 0 {
			errs[i] <- nil // nothing left to publish (cannot happen: the batch had rows)
			continue
		}
		ch := errs[i]
		o.pubFor(sb.Route).Publish(ctx, pubsub.Batch{ID: id, StoredAt: sb.StoredAt}, sb.Records, func(err error) { ch <- err })
	}
	var published []int64
	done := -1 // the first failure, or len(list)
	var first error
	for i := range list {
		var err error
		select {
		case err = <-errs[i]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			if done < 0 {
				done, first = i, err
			}
			continue
		}
		published = append(published, ids[i])
		if sb := stored[ids[i]]; sb != nil {
			o.m.republished.Add(float64(len(sb.Records)))
		}
	}
	if done < 0 {
		done = len(list)
	}
	if err := o.store.MarkPublished(ctx, published); err != nil {
		return 0, err
	}
	return done, first
}
