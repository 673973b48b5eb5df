package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/record"
)

// Sender settings shared by every scenario: the driver's defaults except
// MaxAttempts, raised from 10 to 12 so that the give-up window (below) is longer
// than the longest fault that stops ingest (the 45 s blackhole).
const (
	SendAttempts   = 12
	SendBackoff    = 500 * time.Millisecond
	SendMaxBackoff = 15 * time.Second
	SendTimeout    = 30 * time.Second
)

// giveUpWindow is the shortest time in which the driver gives a record up: the
// sum of the shortest backoffs ("equal jitter": half the nominal delay at least)
// before the last attempt, every attempt failing at once. A fault shorter than
// this must leave nothing unsent.
func giveUpWindow() time.Duration {
	var sum time.Duration
	for a := 1; a < SendAttempts; a++ {
		d := SendBackoff << (a - 1)
		if d > SendMaxBackoff {
			d = SendMaxBackoff
		}
		sum += d / 2
	}
	return sum
}

var idSource record.IDSource // unique ids across every scenario of a run

// NewRecord returns a valid record (record.Validate) with a fresh unique id.
func NewRecord(vm string, rng *rand.Rand, procs int) record.Record {
	total := int64(4096)
	used := int64(512 + rng.IntN(3000))
	cpu := float64(rng.IntN(10000)) / 100
	r := record.Record{
		ID: idSource.New(time.Now()), VM: vm,
		TotalRAM: total, UsoRAM: used, RAMLibre: total - used,
		PorcentajeRAM:    float64(int(10000*float64(used)/float64(total))) / 100,
		PorcentajeCPUUso: cpu, PorcentajeCPULibre: float64(int(10000-cpu*100)) / 100,
		ProcesosCorriendo: 2, TotalProcesos: 180, ProcesosDurmiendo: 176, ProcesosZombie: 1, ProcesosParados: 1,
		Hora: record.NewHora(time.Now()), Source: record.SourceProcfs,
	}
	for i := 0; i < procs; i++ {
		r.TopProcesos = append(r.TopProcesos, record.Process{
			PID: int64(100 + i), Name: fmt.Sprintf("proc-%02d-%s", i, strings.Repeat("x", 52)), State: "S", RSSMiB: int64(rng.IntN(900)),
		})
	}
	return r
}

// Items makes n records, one per request, as driver items.
func Items(vm string, n int) ([]driver.Item, error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	items := make([]driver.Item, n)
	for i := range items {
		r := NewRecord(vm, rng, 3)
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("generated record is invalid: %w", err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		items[i] = driver.Item{Index: i, Raw: b, Key: r.ID}
	}
	return items, nil
}

// BigItems makes n requests of the largest size the routes accept: a JSON array
// of at most ingest.DefaultMaxBody bytes (and at most record.MaxBatch records),
// of the largest records the contract allows (record.MaxTop processes with names
// of 60 bytes, about 2.7 KB each: some 1 500 records a request). Large records rather than
// record.MaxBatch small ones: the body is as large, and the shared Pub/Sub
// emulator gets a third of the messages. Each item's Key is its index; ids maps
// it to the ids it carries.
func BigItems(vm string, n int) (items []driver.Item, ids map[string][]string, err error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	ids = map[string][]string{}
	for k := 0; k < n; k++ {
		var b strings.Builder
		b.WriteByte('[')
		var these []string
		for len(these) < record.MaxBatch {
			r := NewRecord(vm, rng, record.MaxTop)
			raw, err := json.Marshal(r)
			if err != nil {
				return nil, nil, err
			}
			if b.Len()+len(raw)+2 > ingest.DefaultMaxBody-1024 {
				break
			}
			if len(these) > 0 {
				b.WriteByte(',')
			}
			b.Write(raw)
			these = append(these, r.ID)
		}
		b.WriteByte(']')
		key := fmt.Sprintf("big-%d", k)
		ids[key] = these
		items = append(items, driver.Item{Index: k, Raw: json.RawMessage(b.String()), Key: key})
	}
	return items, ids, nil
}

// Load is one run of the driver's phase 2 in the background.
type Load struct {
	Items  []driver.Item
	Result *driver.SendResult
	Err    error

	mu       sync.Mutex
	failures map[string]int // failed attempts by reason
	done     chan struct{}
	cancel   context.CancelFunc
}

// LoadConfig shapes a load.
type LoadConfig struct {
	Users int
	Wait  driver.Wait
	// SpawnRate: users started per second (0: all at once).
	SpawnRate float64
	// Duration stops the run with records left (0: until every record is done).
	Duration time.Duration
}

// StartLoad sends items through the stack's split with the driver's Send.
func (s *Stack) StartLoad(items []driver.Item, lc LoadConfig) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{Items: items, failures: map[string]int{}, done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(l.done)
		l.Result, l.Err = driver.Send(ctx, driver.SendConfig{
			IngressURL: s.SplitURL,
			Load:       driver.Load{Users: lc.Users, SpawnRate: lc.SpawnRate, Wait: lc.Wait},
			Records:    items, MaxAttempts: SendAttempts, Backoff: SendBackoff, MaxBackoff: SendMaxBackoff,
			Timeout: SendTimeout, Duration: lc.Duration,
			Client: s.HTTPClient(lc.Users, SendTimeout), Token: s.Token,
			Event: func(e driver.Event) {
				reason := failureReason(e)
				l.mu.Lock()
				l.failures[e.Kind+": "+reason]++
				l.mu.Unlock()
			},
		})
	}()
	return l
}

// failureReason groups a failed attempt by what happened.
func failureReason(e driver.Event) string {
	m := strings.ToLower(e.Message)
	switch {
	case e.Status != 0:
		return fmt.Sprintf("HTTP %d", e.Status)
	case strings.Contains(m, "timeout") || strings.Contains(m, "deadline"):
		return "client timeout"
	case strings.Contains(m, "refused"):
		return "connection refused"
	case strings.Contains(m, "reset") || strings.Contains(m, "eof"):
		return "connection reset"
	case len(m) > 40:
		return e.Message[:40]
	}
	return e.Message
}

// Wait waits for the run to end, at most d; then it is canceled (its records in
// flight count as unsent).
func (l *Load) Wait(d time.Duration) {
	select {
	case <-l.done:
	case <-time.After(d):
		l.cancel()
		<-l.done
	}
}

// Acked returns the keys of the items answered 2xx: neither rejected nor unsent.
func (l *Load) Acked() []string {
	if l.Result == nil {
		return nil
	}
	not := map[int]bool{}
	for _, r := range l.Result.Rejected {
		not[r.Item.Index] = true
	}
	for _, it := range l.Result.Unsent {
		not[it.Index] = true
	}
	var out []string
	for _, it := range l.Items {
		if !not[it.Index] {
			out = append(out, it.Key)
		}
	}
	return out
}

// Failures summarises the failed attempts by kind and reason.
func (l *Load) Failures() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for k, v := range l.failures {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	return strings.Join(parts, "; ")
}
