package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

// BenchmarkEndToEnd (`make bench-e2e`) measures what a person watching the
// dashboard sees: from the moment a sender POSTs a record to the split until a
// websocket client of the relay receives it, for the whole local stack, at the
// assignment's phase-2 rate (150 users waiting 1–4 s: ~60 records/s) and at full
// speed (150 senders, no wait), with what make up runs by default (a private
// MariaDB and the embedded broker), with the in-memory MySQL stand-in make up
// falls back to without MariaDB, and with the shared MariaDB and the Pub/Sub
// emulator. Each case runs VMPULSE_BENCH_SECONDS (default 20) and reports p50/p99 POST→websocket, the rate reached, and how many
// acknowledged records were still unseen 10 s after the load stopped. Run it
// with -benchtime 1x: a case is one timed run, not b.N repetitions.
func BenchmarkEndToEnd(b *testing.B) {
	secs, _ := strconv.Atoi(os.Getenv("VMPULSE_BENCH_SECONDS"))
	if secs <= 0 {
		secs = 20
	}
	for _, backend := range []string{"make-up", "go-mysql-server", "mariadb+emulator"} {
		for _, load := range []struct {
			name     string
			senders  int
			minWait  time.Duration
			maxWaitD time.Duration
		}{
			{"phase2", 150, time.Second, 4 * time.Second},
			{"full-speed", 150, 0, 0},
		} {
			b.Run(backend+"/"+load.name, func(b *testing.B) {
				cfg := Config{
					SplitAddr: "127.0.0.1:0", Route1Addr: "127.0.0.1:0", Route2Addr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
					RelayAddr: "127.0.0.1:0", PubsubAddr: "127.0.0.1:0", MySQLAddr: "127.0.0.1:0",
					Project: "vmpulse-bench", Topic: testenv.Unique("e2e-bench"), DBName: "vmpulse",
					VM: "bench", AgentInterval: time.Second, AgentSource: "procfs", ProcRoot: "/proc",
					Relay: true, Log: testLog(), IngestToken: testToken,
				}
				switch backend {
				case "make-up":
					cfg.Database = DatabaseMariaDB
				case "go-mysql-server":
					cfg.Database = DatabaseEmbedded
				case "mariadb+emulator":
					cfg.MySQLDSN = testenv.MySQL(b)
					cfg.PubsubEmulator = testenv.PubsubEmulator(b)
				}
				r := runEndToEnd(b, cfg, load.senders, load.minWait, load.maxWaitD, time.Duration(secs)*time.Second)
				b.ReportMetric(r.p50.Seconds()*1000, "p50_ms")
				b.ReportMetric(r.p99.Seconds()*1000, "p99_ms")
				b.ReportMetric(r.rate, "records/s")
				b.ReportMetric(float64(r.unseen), "unseen_after_10s")
			})
		}
	}
}

type e2eResult struct {
	p50, p99 time.Duration
	rate     float64
	unseen   int
}

func runEndToEnd(b *testing.B, cfg Config, senders int, minWait, maxWait, dur time.Duration) e2eResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Start(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+st.Addrs.Relay+"/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()

	var mu sync.Mutex
	sentAt := map[string]time.Time{} // id → when its POST began
	seenAt := map[string]time.Time{} // id → when the websocket delivered it
	acked := map[string]bool{}
	go func() {
		for {
			var f struct {
				Items []struct {
					Record struct {
						ID string `json:"id"`
					} `json:"record"`
				} `json:"items"`
			}
			if err := ws.ReadJSON(&f); err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			for _, it := range f.Items {
				if _, ok := seenAt[it.Record.ID]; !ok {
					seenAt[it.Record.ID] = now
				}
			}
			mu.Unlock()
		}
	}()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	var ids record.IDSource
	var n atomic.Int64
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				if maxWait > 0 {
					w := minWait + time.Duration((s*7919+i*104729)%1000)*(maxWait-minWait)/1000
					time.Sleep(w)
				}
				now := time.Now()
				r := record.Record{ID: ids.New(now), VM: "bench", TotalRAM: 4096, RAMLibre: 2048, UsoRAM: 2048, PorcentajeRAM: 50,
					PorcentajeCPUUso: 10, PorcentajeCPULibre: 90, ProcesosCorriendo: 1, TotalProcesos: 10,
					ProcesosDurmiendo: 9, Hora: record.NewHora(now)}
				body, _ := json.Marshal(r)
				mu.Lock()
				sentAt[r.ID] = now
				mu.Unlock()
				for attempt := 0; attempt < 5; attempt++ {
					req, _ := http.NewRequest(http.MethodPost, "http://"+st.Addrs.Split+"/ingest", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+testToken)
					resp, err := client.Do(req)
					if err != nil {
						break
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusCreated {
						mu.Lock()
						acked[r.ID] = true
						mu.Unlock()
						n.Add(1)
						break
					}
					time.Sleep(time.Second)
				}
			}
		}(s)
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(10 * time.Second)
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	unseen := 0
	for id := range acked {
		seen, ok := seenAt[id]
		if !ok {
			unseen++
			continue
		}
		lat = append(lat, seen.Sub(sentAt[id]))
	}
	if len(lat) == 0 {
		b.Fatalf("no record reached the websocket (%d acknowledged)", len(acked))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	res := e2eResult{p50: q(0.50), p99: q(0.99), rate: float64(n.Load()) / elapsed.Seconds(), unseen: unseen}
	fmt.Printf("    %d acknowledged in %v (%.0f/s); POST→websocket p50 %v p99 %v max %v; unseen 10 s after the load: %d\n",
		len(acked), elapsed.Round(time.Millisecond), res.rate, res.p50.Round(time.Millisecond), res.p99.Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond), unseen)
	return res
}
