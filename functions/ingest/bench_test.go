package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/mariadbd"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

// The ingest benchmark (`make bench`, or `make bench DB_RTT=2ms` to put a
// latency-injecting proxy in front of MariaDB, standing in for Cloud SQL's
// network). Every figure is records/s through the real HTTP handler, one record
// per request, authenticated, measured in one run:
//
//   - route1, route2: the two strategies, each with the same connection budget
//     (DB_CONNS, default the manifests' k8s/config.env); route2 with its outbox on
//     (markers written to MySQL for every batch; the publisher acknowledges at
//     once, so Pub/Sub's own cost is not in the figure);
//   - route2-bare: route2 on the schema before the outbox (no batch index, no
//     markers), to price the outbox;
//   - http-only: the service's own ceiling, with a store that writes nothing;
//   - http-waiting: route2 with a store that only waits (1 ms, no CPU) before it
//     answers: the ceiling of the group-commit protocol itself, every request
//     parked until its group commits, with a database that costs nothing;
//   - raw: MySQL's ceiling through the same link, 4 writers committing 1000-row
//     multi-row INSERTs with no HTTP.
//
// TestMain prints the ratios: route2 against the physical limit (the smaller of
// http-only and raw), route2 against route1, and the outbox's cost.
//
// BENCH_SPLIT=1 gives the database a core of its own, as Cloud SQL has a machine
// of its own: the benchmark (service and clients) runs on CPU 0 with
// GOMAXPROCS=1, and a private mariadbd pinned to CPU 1 syncs its redo log at
// every commit, as Cloud SQL does. Without it everything shares every core, so
// MariaDB's work per record competes with the service's.
//
// BENCH_ROUNDS=N runs every variant N times, taking turns, and prints medians:
// each ratio is taken within a round, so a slow spell of the machine (they come
// and go here, halving a ceiling for a minute) falls on both sides of it. raw
// runs once, after the rounds: it is a limit only where it is the smaller one,
// which at 3–4 times http-only here it never is.

var (
	resultsMu sync.Mutex
	results   = map[string][]float64{} // "route2/clients=256" → records/s, one per round
	linkRTT   time.Duration
)

func TestMain(m *testing.M) {
	if up := os.Getenv(proxyChildEnv); up != "" {
		serveLatencyProxy(up)
		return
	}
	stop := func() {}
	if os.Getenv("BENCH_SPLIT") == "1" {
		var err error
		if stop, err = splitCores(); err != nil {
			fmt.Fprintln(os.Stderr, "BENCH_SPLIT:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	printRatios()
	stop()
	os.Exit(code)
}

// pin moves every thread of process pid to cpu.
func pin(cpu, pid int) error {
	if out, err := exec.Command("taskset", "-a", "-c", "-p", strconv.Itoa(cpu), strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset %d to CPU %d: %v: %s", pid, cpu, err, out)
	}
	return nil
}

var (
	splitNote  string
	splitProxy string // with DB_RTT: the latency proxy to the split server, on its CPU
)

// proxyChildEnv makes the test binary a latency proxy to the address it holds,
// with DB_RTT, printing its own address: with BENCH_SPLIT the proxy stands in
// for the network, so it runs on the database's CPU, not the service's.
const proxyChildEnv = "VMPULSE_BENCH_PROXY_TO"

func serveLatencyProxy(upstream string) {
	rtt, _ := time.ParseDuration(os.Getenv("DB_RTT"))
	addr, _, err := testenv.StartLatencyProxy(upstream, rtt)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(addr)
	io.Copy(io.Discard, os.Stdin) // until the parent goes
}

// startSplitProxy starts the latency proxy to upstream as a child process on
// CPU 1 and returns its address and how to stop it: one for the whole run,
// since every variant's database is on the same server.
func startSplitProxy(upstream string, rtt time.Duration) (addr string, stop func(), err error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), proxyChildEnv+"="+upstream, "DB_RTT="+rtt.String())
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { stdin.Close(); cmd.Wait() }
	if err := pin(1, cmd.Process.Pid); err != nil {
		stop()
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("latency proxy process: %w", err)
	}
	return strings.TrimSpace(line), stop, nil
}

// benchDirPrefix names the split server's temporary directories.
const benchDirPrefix = "vmpulse-bench-db-"

// splitCores starts a private MariaDB on CPU 1, moves this process to CPU 0 and
// points the benchmark's databases at the server.
func splitCores() (stop func(), err error) {
	if runtime.NumCPU() < 2 {
		return nil, errors.New("needs two CPUs")
	}
	tpl, err := mariadbd.CachedTemplate(mariadbd.CacheRoot())
	if err != nil {
		return nil, err
	}
	// A run killed by -timeout leaves its server's directory behind.
	mariadbd.RemoveStale(filepath.Join(os.TempDir(), benchDirPrefix+"*"), time.Minute)
	dir, err := os.MkdirTemp("", benchDirPrefix)
	if err != nil {
		return nil, err
	}
	srv, err := mariadbd.New(context.Background(), tpl, dir, "bench", 0, "--innodb-flush-log-at-trx-commit=1")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop = func() { srv.Stop(10 * time.Second); os.RemoveAll(dir) }
	if err := errors.Join(pin(1, srv.PID()), pin(0, os.Getpid())); err != nil {
		stop()
		return nil, err
	}
	runtime.GOMAXPROCS(1)
	os.Setenv("VMPULSE_TEST_MYSQL", srv.DSN(""))
	if rtt, err := time.ParseDuration(os.Getenv("DB_RTT")); err == nil && rtt > 0 {
		addr, stopProxy, err := startSplitProxy(srv.Addr(), rtt)
		if err != nil {
			stop()
			return nil, err
		}
		splitProxy = addr
		stopDB := stop
		stop = func() { stopProxy(); stopDB() }
	}
	splitNote = fmt.Sprintf("; split cores: service and clients on CPU 0, mariadbd %s and the latency proxy on CPU 1, mariadbd syncing at every commit", srv.Addr())
	return stop, nil
}

// record_ keeps one round's records/s of a variant.
func record_(name string, v float64) {
	resultsMu.Lock()
	results[name] = append(results[name], v)
	resultsMu.Unlock()
}

// rounds is BENCH_ROUNDS (default 1): how many times every variant runs, the
// variants taking turns, so that a slow spell of a shared machine falls on all
// of them alike and each ratio is taken within one round.
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 1 {
		return n
	}
	return 1
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// printRatios prints, per client count, each variant's median records/s over the
// rounds, and each ratio as its median over the rounds that measured both sides,
// with the lowest and highest when there was more than one round.
func printRatios() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	link := "loopback"
	if linkRTT > 0 {
		link = fmt.Sprintf("proxy, measured round trip %v", linkRTT.Round(10*time.Microsecond))
	}
	raw := median(results["raw"])
	n := 0
	for _, v := range results {
		n = max(n, len(v))
	}
	fmt.Printf("\ningest benchmark (%s, %d DB connections per route%s), records/s", link, benchConns(), splitNote)
	if n > 1 {
		fmt.Printf(", medians of %d rounds (ratios: median of the rounds' ratios, lowest–highest; raw is one run, after the rounds)", n)
	}
	fmt.Println(":")
	fmt.Printf("%8s %9s %9s %12s %10s %13s %9s %14s %15s %17s %12s\n", "clients", "route1", "route2", "route2-bare", "http-only", "http-waiting", "raw", "route2/limit", "route2/route1", "route2/http-wait", "outbox cost")
	var cs []int
	for k := range results {
		if _, c, ok := strings.Cut(k, "/clients="); ok {
			n, _ := strconv.Atoi(c)
			if !slices.Contains(cs, n) {
				cs = append(cs, n)
			}
		}
	}
	sort.Ints(cs)
	for _, c := range cs {
		get := func(r string) []float64 { return results[fmt.Sprintf("%s/clients=%d", r, c)] }
		// ratio of a to b round by round; limit: b is the smaller of it and raw.
		ratio := func(a, b []float64, limit bool, f func(x, y float64) float64, format string) string {
			var rs []float64
			for i := 0; i < min(len(a), len(b)); i++ {
				den := b[i]
				if limit && raw > 0 && (raw < den || den == 0) {
					den = raw
				}
				if a[i] > 0 && den > 0 {
					rs = append(rs, f(a[i], den))
				}
			}
			if len(rs) == 0 {
				return "-"
			}
			out := fmt.Sprintf(format, median(rs))
			if len(rs) > 1 {
				out += fmt.Sprintf(" (%s–%s)", fmt.Sprintf(format, slices.Min(rs)), fmt.Sprintf(format, slices.Max(rs)))
			}
			return out
		}
		div := func(x, y float64) float64 { return x / y }
		cost := func(x, y float64) float64 { return 100 * (1 - x/y) }
		r1, r2, bare, http, wait := get("route1"), get("route2"), get("route2-bare"), get("http-only"), get("http-waiting")
		fmt.Printf("%8d %9.0f %9.0f %12.0f %10.0f %13.0f %9.0f %14s %15s %17s %12s\n", c,
			median(r1), median(r2), median(bare), median(http), median(wait), raw,
			ratio(r2, http, true, div, "%.2f"), ratio(r2, r1, false, div, "%.2f"), ratio(r2, wait, false, div, "%.2f"), ratio(r2, bare, false, cost, "%.1f %%"))
	}
}

// benchConns is the connection budget of each route: DB_CONNS, or else the one
// the Kubernetes manifests give every route pod (k8s/config.env), so that the
// strategies race with what they get in the cloud.
func benchConns() int {
	if n, err := strconv.Atoi(os.Getenv("DB_CONNS")); err == nil && n > 0 {
		return n
	}
	if b, err := os.ReadFile("../../k8s/config.env"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "DB_CONNS="); ok {
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	return 32 // the route's -db-conns default
}

// benchDSN returns a fresh database, reached through a latency proxy when DB_RTT
// is set.
func benchDSN(b *testing.B) string {
	dsn := testenv.MySQL(b)
	rtt, err := time.ParseDuration(os.Getenv("DB_RTT"))
	if os.Getenv("DB_RTT") == "" || err != nil || rtt <= 0 {
		return dsn
	}
	cfg, _ := driver.ParseDSN(dsn)
	if splitProxy != "" {
		cfg.Addr = splitProxy
	} else {
		cfg.Addr = testenv.LatencyProxy(b, cfg.Addr, rtt)
	}
	proxied := cfg.FormatDSN()
	linkRTT = measureRTT(b, proxied)
	return proxied
}

// measureRTT is the median time of a trivial query: what the proxy really adds
// (timers are coarse below a millisecond).
func measureRTT(b *testing.B, dsn string) time.Duration {
	c, _ := driver.ParseDSN(dsn)
	conn, _ := driver.NewConnector(c)
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	var ds []time.Duration
	for i := 0; i < 41; i++ {
		start := time.Now()
		if _, err := db.Exec("DO 1"); err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			ds = append(ds, time.Since(start))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func benchStore(b *testing.B) *mysql.Store {
	b.Helper()
	st, err := mysql.Open(context.Background(), mysql.Config{DSN: benchDSN(b), Wait: 5 * time.Second, MaxOpenConns: benchConns()}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkIngest measures records/s through the real HTTP handler for each
// variant with 1, 16 and 256 concurrent clients sending one record per request.
func BenchmarkIngest(b *testing.B) {
	tokens, err := ingest.StaticTokens(token)
	if err != nil {
		b.Fatal(err)
	}
	for round := 1; round <= rounds(); round++ {
		for _, variant := range []string{ingest.Route1, ingest.Route2, "route2-bare", "http-only", "http-waiting"} {
			for _, clients := range []int{1, 16, 256} {
				name := fmt.Sprintf("%s/clients=%d", variant, clients)
				run := name
				if rounds() > 1 {
					run = fmt.Sprintf("round=%d/%s", round, name)
				}
				benchIngest(b, tokens, run, name, variant, clients)
			}
		}
	}
}

// benchIngest runs one variant with clients concurrent clients as the
// sub-benchmark run, recording its records/s under name.
func benchIngest(b *testing.B, tokens *ingest.Tokens, run, name, variant string, clients int) {
	var rate float64 // of the last call, the one with the final b.N
	b.Run(run, func(b *testing.B) {
		reg := ingest.NewRegistry()
		cfg := ingest.Config{Route: variant, Tokens: tokens, Log: slog.New(slog.DiscardHandler), Registry: reg}
		cfg.Group.Writers, _ = strconv.Atoi(os.Getenv("BATCH_WRITERS")) // 0: the route's default
		switch variant {
		case "http-only":
			// The service's own ceiling on this machine: HTTP, auth, decoding and
			// validation, with a store that commits nothing.
			cfg.Route, cfg.Store = ingest.Route1, discard{}
		case "http-waiting":
			cfg.Route, cfg.Store = ingest.Route2, waiting{time.Millisecond}
		case "route2-bare":
			st := benchStore(b)
			if _, err := st.DB().Exec("ALTER TABLE records DROP KEY records_batch"); err != nil {
				b.Fatal(err)
			}
			cfg.Route, cfg.Store = ingest.Route2, st.Writer(ingest.Route2)
		case ingest.Route2:
			st := benchStore(b)
			cfg.Store = st.Writer(variant)
			ob := ingest.NewOutbox(st, instantAck{}, func(string) ingest.Publisher { return instantAck{} },
				ingest.OutboxConfig{Every: time.Hour, LockName: testenv.Unique("bench")}, prometheus.NewRegistry(), variant, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { ob.Run(ctx); close(done) }()
			b.Cleanup(func() { cancel(); <-done })
			cfg.Committed = ob.Publish
		default:
			cfg.Store = benchStore(b).Writer(variant)
		}
		s, err := ingest.NewServer(cfg)
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(s.Handler())
		defer func() { srv.Close(); s.Close(context.Background()) }()
		cpu0 := testenv.CPUTime()
		rate = drive(b, srv.URL, clients, fmt.Sprintf("b-%s-%d", variant, clients))
		b.ReportMetric(rate, "records/s")
		// This process's CPU per record (service and clients together; the
		// database's is not in it): with BENCH_SPLIT, route2/http-only of
		// this is the part of the gap that is work, the rest is idle.
		b.ReportMetric(float64((testenv.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/record")
		if !strings.HasPrefix(variant, "http-") {
			b.ReportMetric(recordsPerCommit(b, reg), "records/commit")
		}
	})
	if rate > 0 {
		record_(name, rate)
	}
}

// drive posts b.N single-record requests from clients goroutines and returns
// records/s.
func drive(b *testing.B, url string, clients int, prefix string) float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	bodies := make([]string, b.N)
	for i := range bodies {
		bodies[i] = jsonOf(sample(fmt.Sprintf("%s-%d", prefix, i), i))
	}
	var next, failed atomic.Int64
	var firstFailure sync.Once
	var why string
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
				req, _ := http.NewRequest(http.MethodPost, url+"/ingest", strings.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					failed.Add(1)
					firstFailure.Do(func() {
						if err != nil {
							why = err.Error()
							return
						}
						body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
						why = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
					})
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
		b.Fatalf("%d requests failed; the first: %s", failed.Load(), why)
	}
	return float64(b.N) / el.Seconds()
}

// BenchmarkRawMultiInsert is MySQL's ceiling through the same link: 4 writers
// committing 1000-row multi-row INSERTs in autocommit straight through the store,
// no HTTP.
func BenchmarkRawMultiInsert(b *testing.B) {
	w := benchStore(b).Writer("raw")
	const per, writers = 1000, 4
	var next atomic.Int64
	var wg sync.WaitGroup
	ids := ingest.NewBatchIDs()
	b.ResetTimer()
	start := time.Now()
	for k := 0; k < writers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := make([]record.Record, per)
			for {
				from := int(next.Add(per)) - per
				if from >= b.N {
					return
				}
				n := min(per, b.N-from)
				for i := 0; i < n; i++ {
					recs[i] = sample(fmt.Sprintf("raw-%d", from+i), i)
				}
				now := time.Now()
				if _, err := w.InsertMulti(context.Background(), mysql.Batch{ID: ids.Next(now), StoredAt: now}, recs[:n]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "records/s")
	resultsMu.Lock()
	results["raw"] = []float64{rate} // the last call's, with the final b.N
	resultsMu.Unlock()
}

// discard is a Store that stores nothing, to measure the service without MySQL.
type discard struct{}

func (discard) InsertEach(context.Context, mysql.Batch, []record.Record) (mysql.Result, error) {
	return mysql.Result{}, nil
}
func (discard) InsertMulti(context.Context, mysql.Batch, []record.Record) (mysql.Result, error) {
	return mysql.Result{}, nil
}

// waiting commits nothing but takes d to do it, without using a CPU: a database
// infinitely fast in work and as slow as a commit in time.
type waiting struct{ d time.Duration }

func (w waiting) InsertEach(ctx context.Context, b mysql.Batch, recs []record.Record) (mysql.Result, error) {
	return w.InsertMulti(ctx, b, recs)
}
func (w waiting) InsertMulti(context.Context, mysql.Batch, []record.Record) (mysql.Result, error) {
	time.Sleep(w.d)
	return mysql.Result{}, nil
}

// instantAck acknowledges every batch at once: the outbox's MySQL side is
// measured, not Pub/Sub.
type instantAck struct{}

func (instantAck) Publish(_ context.Context, _ pubsub.Batch, _ []record.Record, done func(error)) {
	done(nil)
}

// recordsPerCommit reads the route's batch-size histogram: how many records each
// transaction carried on average.
func recordsPerCommit(b *testing.B, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vmpulse_ingest_batch_records" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() == 0 {
				break
			}
			return h.GetSampleSum() / float64(h.GetSampleCount())
		}
	}
	b.Fatal("no batch metrics")
	return 0
}
