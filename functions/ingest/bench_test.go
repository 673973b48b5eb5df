package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

// BenchmarkIngest measures records/s through the real HTTP handler into MariaDB
// for each strategy with 1, 16 and 256 concurrent clients sending one record per
// request (Pub/Sub off, so that only the write strategies differ). `make bench`
// runs it; compare route2 with route1 and with BenchmarkRawMultiInsert from the
// same run.
func BenchmarkIngest(b *testing.B) {
	for _, route := range []string{ingest.Route1, ingest.Route2, "http-only"} {
		for _, clients := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/clients=%d", route, clients), func(b *testing.B) {
				var store ingest.Store
				strategy := route
				if route == "http-only" {
					// The service's own ceiling on this machine: HTTP, decoding and
					// validation, with a store that commits nothing.
					store, strategy = discard{}, ingest.Route1
				} else {
					store = benchStore(b)
				}
				s, err := ingest.NewServer(ingest.Config{Route: strategy, Store: store, Log: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				srv := httptest.NewServer(s.Handler())
				defer func() { srv.Close(); s.Close() }()
				tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
				hc := &http.Client{Transport: tr}
				bodies := make([]string, b.N)
				for i := range bodies {
					bodies[i] = jsonOf(sample(fmt.Sprintf("b-%s-%d-%d", route, clients, i), i))
				}
				var next atomic.Int64
				var failed atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for c := 0; c < clients; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								return
							}
							resp, err := hc.Post(srv.URL+"/ingest", "application/json", strings.NewReader(bodies[i]))
							if err != nil || resp.StatusCode != http.StatusCreated {
								failed.Add(1)
							}
							if resp != nil {
								io.Copy(io.Discard, resp.Body) // so the connection is reused
								resp.Body.Close()
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				if failed.Load() > 0 {
					b.Fatalf("%d requests failed", failed.Load())
				}
				b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
				if route != "http-only" {
					b.ReportMetric(recordsPerCommit(b, srv.URL, route), "records/commit")
				}
				tr.CloseIdleConnections()
			})
		}
	}
}

// BenchmarkRawMultiInsert is the ceiling: one client committing 1000-row
// multi-row INSERTs straight through the store, no HTTP.
func BenchmarkRawMultiInsert(b *testing.B) {
	store := benchStore(b)
	const per = 1000
	recs := make([]record.Record, per)
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += per {
		n := min(per, b.N-done)
		for i := 0; i < n; i++ {
			recs[i] = sample(fmt.Sprintf("raw-%d", done+i), i)
		}
		if err := store.InsertMulti(context.Background(), "raw", time.Now(), recs[:n]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func benchStore(b *testing.B) *mysql.Store {
	b.Helper()
	st, err := mysql.Open(context.Background(), mysql.Config{DSN: testenv.MySQL(b), Wait: 5 * time.Second, MaxOpenConns: 64}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// discard is a Store that stores nothing, to measure the service without MySQL.
type discard struct{}

func (discard) InsertEach(context.Context, string, time.Time, []record.Record) error  { return nil }
func (discard) InsertMulti(context.Context, string, time.Time, []record.Record) error { return nil }

// recordsPerCommit reads the route's batch-size histogram from /metrics: how many
// records each transaction carried on average.
func recordsPerCommit(b *testing.B, url, route string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, `vmpulse_ingest_batch_records_sum{route="`+route+`"} `); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, `vmpulse_ingest_batch_records_count{route="`+route+`"} `); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		b.Fatal("no batch metrics")
	}
	return sum / count
}
