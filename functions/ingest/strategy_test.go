package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/record"
)

// memStore is an in-memory Store with MySQL's semantics for what the strategies
// rely on (one row per id, the first copy kept, duplicates reported with their
// stored copy). It records the groups handed to it and can hold a commit, refuse
// a record for good (as MySQL refuses a too-long value), or fail like an
// unreachable database. The real database is exercised by the integration tests
// (ingest_test.go); this one makes the strategies and the handler observable
// without one.
type memStore struct {
	mu      sync.Mutex
	rows    map[string]record.Record
	batches map[string]int64
	groups  [][]string
	hold    chan struct{} // when non-nil, the first insert waits on it
	started chan struct{}
	poison  string // an id whose presence makes the insert fail for good
	down    error  // when set, every insert fails with it
}

func newMemStore() *memStore {
	return &memStore{rows: map[string]record.Record{}, batches: map[string]int64{}}
}

func (s *memStore) InsertEach(ctx context.Context, b mysql.Batch, recs []record.Record) (mysql.Result, error) {
	return s.InsertMulti(ctx, b, recs)
}

func (s *memStore) InsertMulti(ctx context.Context, b mysql.Batch, recs []record.Record) (mysql.Result, error) {
	s.mu.Lock()
	hold := s.hold
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		close(s.started)
		select {
		case <-hold:
		case <-ctx.Done():
			return mysql.Result{}, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return mysql.Result{}, s.down
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		if r.ID == s.poison && s.poison != "" {
			return mysql.Result{}, &driver.MySQLError{Number: 1406, Message: "Data too long"}
		}
		ids[i] = r.ID
	}
	var res mysql.Result
	for i, r := range recs {
		if old, ok := s.rows[r.ID]; ok {
			res.NotInserted = append(res.NotInserted, i)
			if res.Stored == nil {
				res.Stored = map[string]record.Record{}
			}
			res.Stored[r.ID] = old
			continue
		}
		s.rows[r.ID], s.batches[r.ID] = r, b.ID
	}
	s.groups = append(s.groups, ids)
	return res, nil
}

func rec(id string) []record.Record { return []record.Record{{ID: id, VM: "v"}} }

type committedLog struct {
	mu      sync.Mutex
	batches map[int64][]string
}

func (l *committedLog) add(c Commit, recs []record.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.batches == nil {
		l.batches = map[int64][]string{}
	}
	for _, r := range recs {
		l.batches[c.Batch] = append(l.batches[c.Batch], r.ID)
	}
}

func newGroup(st *memStore, cfg GroupConfig, l *committedLog, onBatch func(int)) *GroupCommit {
	if l == nil {
		l = &committedLog{}
	}
	return NewGroupCommit(st, NewBatchIDs(), cfg, l.add, onBatch)
}

// TestGroupCommitGathersWaitingRequests: while one group commits, every request
// that arrives waits and goes into the next group, all answered after commit.
func TestGroupCommitGathersWaitingRequests(t *testing.T) {
	hold := make(chan struct{})
	st := newMemStore()
	st.hold, st.started = hold, make(chan struct{})
	var batches []int
	var bmu sync.Mutex
	log := &committedLog{}
	g := newGroup(st, GroupConfig{Writers: 1, MaxRecords: 1000, MaxDelay: time.Millisecond}, log,
		func(n int) { bmu.Lock(); batches = append(batches, n); bmu.Unlock() })
	defer g.Close(context.Background())

	first := make(chan error, 1)
	go func() { _, err := g.Write(context.Background(), rec("first")); first <- err }()
	<-st.started // the first group is committing and held

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var bmu2 sync.Mutex
	seen := map[int64]bool{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := g.Write(context.Background(), rec(fmt.Sprintf("r%03d", i)))
			if err == nil && c.Size != n {
				err = fmt.Errorf("request %d: group of %d, want %d", i, c.Size, n)
			}
			bmu2.Lock()
			seen[c.Batch] = true
			bmu2.Unlock()
			errs <- err
		}(i)
	}
	// Wait until all n are queued, then let the first commit finish.
	deadline := time.Now().Add(5 * time.Second)
	for len(g.queue) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(st.groups) != 2 || len(st.groups[0]) != 1 || len(st.groups[1]) != n {
		sizes := []int{}
		for _, g := range st.groups {
			sizes = append(sizes, len(g))
		}
		t.Fatalf("groups of %v, want [1 %d]", sizes, n)
	}
	if len(batches) != 2 || batches[1] != n {
		t.Fatalf("onBatch saw %v", batches)
	}
	// The whole group is one batch, handed over once, with every record.
	if len(seen) != 1 || len(log.batches) != 2 {
		t.Fatalf("%d batch ids answered, %d batches handed over; want 1 and 2", len(seen), len(log.batches))
	}
	for b := range seen {
		if len(log.batches[b]) != n {
			t.Fatalf("batch %d handed over %d records, want %d", b, len(log.batches[b]), n)
		}
	}
}

func TestGroupCommitRespectsMaxRecords(t *testing.T) {
	hold := make(chan struct{})
	st := newMemStore()
	st.hold, st.started = hold, make(chan struct{})
	g := newGroup(st, GroupConfig{Writers: 1, MaxRecords: 10}, nil, nil)
	go g.Write(context.Background(), rec("first"))
	<-st.started
	var wg sync.WaitGroup
	for i := 0; i < 35; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); g.Write(context.Background(), rec(fmt.Sprint(i))) }(i)
	}
	for len(g.queue) < 35 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	g.Close(context.Background())
	total := 0
	for _, grp := range st.groups {
		if len(grp) > 10 {
			t.Fatalf("group of %d records, max 10", len(grp))
		}
		total += len(grp)
	}
	if total != 36 {
		t.Fatalf("%d records committed, want 36", total)
	}
}

// TestGroupCommitIsolatesARefusedRequest: a request whose record MySQL refuses for
// good makes its group fail; it is retried alone and fails alone, and the others
// in the group are committed.
func TestGroupCommitIsolatesARefusedRequest(t *testing.T) {
	hold := make(chan struct{})
	st := newMemStore()
	st.hold, st.started, st.poison = hold, make(chan struct{}), "bad"
	g := newGroup(st, GroupConfig{Writers: 1}, nil, nil)
	defer g.Close(context.Background())
	go g.Write(context.Background(), rec("first"))
	<-st.started
	type res struct {
		id  string
		err error
	}
	out := make(chan res, 3)
	for _, id := range []string{"ok1", "bad", "ok2"} {
		go func(id string) { _, err := g.Write(context.Background(), rec(id)); out <- res{id, err} }(id)
	}
	for len(g.queue) < 3 {
		time.Sleep(time.Millisecond)
	}
	close(hold)
	for i := 0; i < 3; i++ {
		r := <-out
		if (r.err != nil) != (r.id == "bad") {
			t.Fatalf("%s: err = %v", r.id, r.err)
		}
		if r.err != nil && !mysql.Permanent(r.err) {
			t.Fatalf("the refusal is no longer recognizable: %v", r.err)
		}
	}
}

// TestGroupCommitFailsTheGroupWhenTheDatabaseIsDown: an unreachable database fails
// every request of the group at once (503 for each), without hammering it with
// one retry per request.
func TestGroupCommitFailsTheGroupWhenTheDatabaseIsDown(t *testing.T) {
	st := newMemStore()
	st.down = errors.New("connection refused")
	g := newGroup(st, GroupConfig{Writers: 1}, nil, nil)
	defer g.Close(context.Background())
	if _, err := g.Write(context.Background(), rec("x")); err == nil || mysql.Permanent(err) {
		t.Fatalf("err = %v", err)
	}
}

// TestGroupCommitTimesOut: a commit that hangs (a blackholed database) ends at the
// configured deadline with an error.
func TestGroupCommitTimesOut(t *testing.T) {
	st := newMemStore()
	st.hold, st.started = make(chan struct{}), make(chan struct{}) // never released
	g := newGroup(st, GroupConfig{Writers: 1, Timeout: 50 * time.Millisecond}, nil, nil)
	defer g.Close(context.Background())
	start := time.Now()
	_, err := g.Write(context.Background(), rec("x"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestGroupCommitSkipsAbandonedAndDrainsOnClose(t *testing.T) {
	hold := make(chan struct{})
	st := newMemStore()
	st.hold, st.started = hold, make(chan struct{})
	g := newGroup(st, GroupConfig{Writers: 1}, nil, nil)
	go g.Write(context.Background(), rec("first"))
	<-st.started
	gone, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() { _, err := g.Write(gone, rec("abandoned")); abandoned <- err }()
	kept := make(chan error, 1)
	go func() { _, err := g.Write(context.Background(), rec("kept")); kept <- err }()
	for len(g.queue) < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	close(hold)
	go g.Close(context.Background()) // Close must still commit what was queued
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned: err = %v", err)
	}
	g.Close(context.Background())
	for _, grp := range st.groups {
		for _, id := range grp {
			if id == "abandoned" {
				t.Fatal("a request whose client gave up was written")
			}
		}
	}
	if _, err := g.Write(context.Background(), rec("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestGroupCommitCloseGivesUpAtItsDeadline: when the database hangs during a
// shutdown, what is still queued at the deadline is answered ErrClosed (never
// acknowledged: the senders retry it elsewhere) and Close returns.
func TestGroupCommitCloseGivesUpAtItsDeadline(t *testing.T) {
	hold := make(chan struct{})
	st := newMemStore()
	st.hold, st.started = hold, make(chan struct{})
	g := newGroup(st, GroupConfig{Writers: 1, Timeout: time.Hour}, nil, nil)
	go g.Write(context.Background(), rec("first"))
	<-st.started
	queued := make(chan error, 1)
	go func() { _, err := g.Write(context.Background(), rec("queued")); queued <- err }()
	for len(g.queue) < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() { g.Close(ctx); close(closed) }()
	<-g.stop    // Close gave up
	close(hold) // the hung commit ends (as the DB timeout would end it)
	<-closed
	if err := <-queued; !errors.Is(err, ErrClosed) {
		t.Fatalf("queued request: %v, want ErrClosed", err)
	}
}

// TestRetriesAndConflicts: an id already stored with the same values is a retry
// (acknowledged, not written, not handed over again); with other values it is a
// conflict. Records of the same request that are new are stored and handed over.
func TestRetriesAndConflicts(t *testing.T) {
	for _, route := range []string{Route1, Route2} {
		t.Run(route, func(t *testing.T) {
			st := newMemStore()
			log := &committedLog{}
			var w Writer = NewPerRequest(st, NewBatchIDs(), time.Second, log.add)
			if route == Route2 {
				w = newGroup(st, GroupConfig{Writers: 1}, log, nil)
			}
			defer w.Close(context.Background())
			a, b := rec("a")[0], rec("b")[0]
			if _, err := w.Write(context.Background(), []record.Record{a, b}); err != nil {
				t.Fatal(err)
			}
			changed := b
			changed.ProcesosZombie = 9
			c, err := w.Write(context.Background(), []record.Record{a, changed, rec("new")[0]})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(c.Retried, c.Conflicts) != "[a] [b]" {
				t.Fatalf("retried %v conflicts %v, want [a] [b]", c.Retried, c.Conflicts)
			}
			if got := log.batches[c.Batch]; fmt.Sprint(got) != "[new]" {
				t.Fatalf("handed over %v, want only the new record", got)
			}
			if st.rows["b"].ProcesosZombie != 0 {
				t.Fatal("a conflicting copy overwrote the stored one")
			}
		})
	}
}

func TestPerRequestOneTransactionPerRequest(t *testing.T) {
	st := newMemStore()
	p := NewPerRequest(st, NewBatchIDs(), time.Second, func(Commit, []record.Record) {})
	for i := 0; i < 3; i++ {
		if _, err := p.Write(context.Background(), []record.Record{{ID: fmt.Sprint(i, "a")}, {ID: fmt.Sprint(i, "b")}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.groups) != 3 || len(st.groups[0]) != 2 {
		t.Fatalf("groups %v", st.groups)
	}
}

// TestBatchIDs: ids grow strictly within a process, follow time, and differ
// between processes (their tags) at the same instant.
func TestBatchIDs(t *testing.T) {
	g := NewBatchIDs()
	now := time.Now()
	prev := int64(0)
	for i := 0; i < 10000; i++ {
		id := g.Next(now)
		if id <= prev {
			t.Fatalf("id %d after %d", id, prev)
		}
		prev = id
	}
	if later := g.Next(now.Add(time.Hour)); later < BatchAt(now.Add(time.Hour)) {
		t.Fatal("an id below the start of its time")
	}
	if BatchAt(now) > g.Next(now.Add(-time.Hour))+int64(time.Hour/time.Microsecond)<<11 {
		t.Fatal("ids do not follow time")
	}
	if BatchAt(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) <= 0 {
		t.Fatal("batch ids overflow before 2100")
	}
	tags := map[int64]bool{}
	for i := 0; i < 64; i++ {
		tags[NewBatchIDs().Next(now)&0x7ff] = true
	}
	if len(tags) < 32 {
		t.Fatalf("only %d distinct tags in 64 processes", len(tags))
	}
}
