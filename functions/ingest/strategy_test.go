package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

// recordingStore records the groups the strategies hand to the database and can
// hold a commit or fail one. The real database is exercised by the integration
// tests (ingest_test.go); this one makes the grouping itself observable.
type recordingStore struct {
	mu      sync.Mutex
	groups  [][]string
	hold    chan struct{} // when non-nil, the first InsertMulti waits on it
	started chan struct{}
	poison  string // an id whose presence makes the insert fail
}

func (s *recordingStore) InsertEach(ctx context.Context, route string, at time.Time, recs []record.Record) error {
	return s.InsertMulti(ctx, route, at, recs)
}

func (s *recordingStore) InsertMulti(_ context.Context, _ string, _ time.Time, recs []record.Record) error {
	s.mu.Lock()
	hold := s.hold
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		close(s.started)
		<-hold
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		if r.ID == s.poison && s.poison != "" {
			return errors.New("poisoned")
		}
		ids[i] = r.ID
	}
	s.mu.Lock()
	s.groups = append(s.groups, ids)
	s.mu.Unlock()
	return nil
}

func rec(id string) []record.Record { return []record.Record{{ID: id}} }

// TestGroupCommitGathersWaitingRequests: while one group commits, every request
// that arrives waits and goes into the next group, all answered after commit.
func TestGroupCommitGathersWaitingRequests(t *testing.T) {
	hold := make(chan struct{})
	st := &recordingStore{hold: hold, started: make(chan struct{})}
	var batches []int
	var bmu sync.Mutex
	g := NewGroupCommit(st, Route2, GroupConfig{Writers: 1, MaxRecords: 1000, MaxDelay: time.Millisecond,
		OnBatch: func(n int) { bmu.Lock(); batches = append(batches, n); bmu.Unlock() }})
	defer g.Close()

	first := make(chan error, 1)
	go func() { _, err := g.Write(context.Background(), rec("first")); first <- err }()
	<-st.started // the first group is committing and held

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := g.Write(context.Background(), rec(fmt.Sprintf("r%03d", i)))
			if err == nil && c.Batch != n {
				err = fmt.Errorf("request %d: batch %d, want %d", i, c.Batch, n)
			}
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
		t.Fatalf("OnBatch saw %v", batches)
	}
}

func TestGroupCommitRespectsMaxRecords(t *testing.T) {
	hold := make(chan struct{})
	st := &recordingStore{hold: hold, started: make(chan struct{})}
	g := NewGroupCommit(st, Route2, GroupConfig{Writers: 1, MaxRecords: 10})
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
	g.Close()
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

// TestGroupCommitIsolatesAFailingRequest: a request that makes its group fail is
// retried alone and fails alone; the others in the group are committed.
func TestGroupCommitIsolatesAFailingRequest(t *testing.T) {
	hold := make(chan struct{})
	st := &recordingStore{hold: hold, started: make(chan struct{}), poison: "bad"}
	g := NewGroupCommit(st, Route2, GroupConfig{Writers: 1})
	defer g.Close()
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
	}
}

func TestGroupCommitSkipsAbandonedAndDrainsOnClose(t *testing.T) {
	hold := make(chan struct{})
	st := &recordingStore{hold: hold, started: make(chan struct{})}
	g := NewGroupCommit(st, Route2, GroupConfig{Writers: 1})
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
	go g.Close() // Close must still commit what was queued
	if err := <-kept; err != nil {
		t.Fatal(err)
	}
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned: err = %v", err)
	}
	g.Close()
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

func TestPerRequestOneTransactionPerRequest(t *testing.T) {
	st := &recordingStore{}
	p := &PerRequest{Store: st, Route: Route1}
	for i := 0; i < 3; i++ {
		if _, err := p.Write(context.Background(), []record.Record{{ID: fmt.Sprint(i, "a")}, {ID: fmt.Sprint(i, "b")}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.groups) != 3 || len(st.groups[0]) != 2 {
		t.Fatalf("groups %v", st.groups)
	}
}
