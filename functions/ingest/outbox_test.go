package ingest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmpulse/vmpulse/functions/mysql"
)

// failingOutboxStore fails every lookup and records where each one started.
type failingOutboxStore struct {
	OutboxStore // nil: anything but Unpublished panics
	from        []int64
}

func (s *failingOutboxStore) Unpublished(_ context.Context, from, _ int64, _ int) ([]mysql.BatchCount, error) {
	s.from = append(s.from, from)
	return nil, errors.New("MySQL is away")
}

// TestFailedScansKeepTheCursor: while MySQL fails, every scan looks at the same
// window; a failure must not move the cursor back (it once slid MaxWrite further
// back on each failure, until pruned markers made old batches look unpublished).
func TestFailedScansKeepTheCursor(t *testing.T) {
	st := &failingOutboxStore{}
	o := NewOutbox(st, nil, nil, OutboxConfig{}, prometheus.NewRegistry(), Route2, slog.New(slog.DiscardHandler))
	start := BatchAt(time.Now().Add(-time.Minute))
	cursor := start
	for range 3 {
		cursor = o.scan(context.Background(), cursor)
	}
	if cursor != start {
		t.Fatalf("after 3 failed scans the cursor moved by %d, want 0", cursor-start)
	}
	if len(st.from) != 3 || st.from[0] != st.from[1] || st.from[1] != st.from[2] || st.from[0] >= start {
		t.Fatalf("lookups started at %v, want three times the same point before %d", st.from, start)
	}
}
