package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/testenv"
)

// The end-to-end benchmarks publish ~950-byte records at a fixed rate with the
// real client, batched as the routes batch (functions/pubsub/publish.go), and
// receive them with the relay's receive loop (functions/pubsub.Receive), on a
// topic with the production retention and a subscription made as a relay
// instance makes its own. Latency is from the Publish call to the callback.
//
//	go test -run '^$' -bench . ./local/broker/
//
// VMPULSE_BENCH_SECONDS sets the length of each run (default 10),
// VMPULSE_BENCH_SOAK_SECONDS the length of the memory run (default 60),
// VMPULSE_BENCH_RATES the rates (default 100,3500); VMPULSE_BENCH_TIMELINE=1
// logs p50/p99 per second of sending (with -v), to tell stalls (on a shared
// machine, mostly garbage-collection pauses stretched by the OS scheduler:
// GODEBUG=gctrace=1 shows them) from a steady state.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchRates() []int {
	v := os.Getenv("VMPULSE_BENCH_RATES")
	if v == "" {
		return []int{100, 3500}
	}
	var rates []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			rates = append(rates, n)
		}
	}
	return rates
}

// payloadTemplate is a record-shaped JSON document of about 950 bytes whose
// id starts at payloadID (12 digits).
var payloadTemplate, payloadID = func() ([]byte, int) {
	var b strings.Builder
	b.WriteString(`{"id":"bench-000000000000","vm":"bench-vm-1","total_ram":16000,"ram_libre":9000,"uso_ram":7000,"porcentaje_ram":43.75,` +
		`"porcentaje_cpu_uso":61.5,"porcentaje_cpu_libre":38.5,"procesos_corriendo":3,"total_procesos":412,"procesos_durmiendo":409,` +
		`"procesos_zombie":0,"procesos_parados":0,"hora":"2026-12-01 10:00:00","source":"kmod","top_procesos":[`)
	for p := range 9 {
		if p > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"pid":%d,"name":"worker-process-%02d","state":"S","rss_mib":%d}`, 1000+p, p, 100+p)
	}
	b.WriteString(`]}`)
	return []byte(b.String()), len(`{"id":"bench-`)
}()

// payload returns the template with id i.
func payload(i int) []byte {
	p := append([]byte(nil), payloadTemplate...)
	for j := payloadID + 11; j >= payloadID && i > 0; j-- {
		p[j] = byte('0' + i%10)
		i /= 10
	}
	return p
}

// loadResult is what one run measured.
type loadResult struct {
	sent, failed   int // publications made and failed
	received, dups int
	lost           int // published but never received
	p50, p99, max  time.Duration
	rate           float64       // messages received per second of publishing
	cpu            time.Duration // CPU of this process (clients, and the server when in-process) per message
	stalls         int           // times a 5 ms ticker of this process ran 50 ms late or more
	worstStall     time.Duration
}

// watchStalls measures how late a 5 ms ticker runs until stop is closed: on a
// shared machine, when the whole process did not get the CPU (or a garbage
// collection's stop-the-world was stretched by the OS), whatever the server.
func watchStalls(stop <-chan struct{}) (count func() (int, time.Duration)) {
	var mu sync.Mutex
	n, worst := 0, time.Duration(0)
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				if late := now.Sub(last) - 5*time.Millisecond; late >= 50*time.Millisecond {
					mu.Lock()
					n++
					worst = max(worst, late)
					mu.Unlock()
				}
				last = now
			}
		}
	}()
	return func() (int, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		return n, worst
	}
}

// runLoad publishes at rate messages/s for d on a fresh topic of the server at
// addr and measures publish → subscriber latency. Messages still undelivered
// drain seconds after publishing ended count as lost, and in the percentiles
// with the time they had waited by then (a lower bound).
func runLoad(b testing.TB, addr string, rate int, d, drain time.Duration) loadResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := pubsub.Connect(ctx, project, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	topicID := testenv.Unique("bench")
	topic := pubsub.TopicName(project, topicID)
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pb.Topic{Name: topic, MessageRetentionDuration: durationpb.New(20 * time.Minute)}); err != nil {
		b.Fatal(err)
	}
	defer c.TopicAdminClient.DeleteTopic(context.Background(), &pb.DeleteTopicRequest{Topic: topic})
	sub, err := pubsub.CreateInstanceSubscription(ctx, c, topicID, testenv.Unique("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer pubsub.DeleteSubscription(context.Background(), c, sub)

	total := int(float64(rate) * d.Seconds())
	sentAt := make([]int64, total)  // unix ns
	latency := make([]int64, total) // ns, 0 until the first delivery
	var received, dups, warm, failedCount atomic.Int64
	all := make(chan struct{})
	rctx, rcancel := context.WithCancel(ctx)
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- pubsub.Receive(rctx, c, sub, func(_ []byte, attrs map[string]string) {
			now := time.Now().UnixNano()
			if attrs["n"] == "warmup" {
				warm.Add(1)
				return
			}
			i, err := strconv.Atoi(attrs["n"])
			if err != nil || i < 0 || i >= total {
				return
			}
			// Only the first delivery of each message counts.
			if !atomic.CompareAndSwapInt64(&latency[i], 0, max(1, now-atomic.LoadInt64(&sentAt[i]))) {
				dups.Add(1)
				return
			}
			if received.Add(1) == int64(total)-failedCount.Load() {
				close(all)
			}
		})
	}()
	// The routes' publisher settings (functions/pubsub.NewPublisher). A
	// publication that fails (buffer full, or 10 s of retries) is counted,
	// not expected: the routes' outbox would publish it again.
	p := c.Publisher(topicID)
	p.PublishSettings.DelayThreshold = 5 * time.Millisecond
	p.PublishSettings.CountThreshold = 200
	p.PublishSettings.ByteThreshold = 1 << 20
	p.PublishSettings.Timeout = 10 * time.Second
	p.PublishSettings.FlowControlSettings = gps.FlowControlSettings{
		MaxOutstandingMessages: 20000, MaxOutstandingBytes: 64 << 20, LimitExceededBehavior: gps.FlowControlSignalError,
	}
	// Warm up (connections, streams) before the clock starts.
	const warmup = 50
	for range warmup {
		p.Publish(ctx, &gps.Message{Data: payload(-1), Attributes: map[string]string{"n": "warmup"}})
		time.Sleep(10 * time.Millisecond)
	}
	for t0 := time.Now(); warm.Load() < warmup && time.Since(t0) < 30*time.Second; {
		time.Sleep(10 * time.Millisecond)
	}
	// Results are checked as they complete, so the harness holds none.
	cpu0 := testenv.CPUTime()
	type pending struct {
		i int
		r *gps.PublishResult
	}
	results := make(chan pending, 1<<14)
	failed := make([]bool, total)
	var publishErr error
	nFailed := 0
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for pr := range results {
			if _, err := pr.r.Get(ctx); err != nil {
				failed[pr.i] = true
				nFailed++
				failedCount.Add(1)
				if publishErr == nil {
					publishErr = err
				}
			}
		}
	}()
	stopWatch := make(chan struct{})
	stalls := watchStalls(stopWatch)
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	sent := 0
	for sent < total {
		<-tick.C
		due := min(int(float64(rate)*time.Since(start).Seconds()), total)
		for ; sent < due; sent++ {
			now := time.Now()
			atomic.StoreInt64(&sentAt[sent], now.UnixNano())
			results <- pending{sent, p.Publish(ctx, &gps.Message{
				Data: payload(sent),
				Attributes: map[string]string{
					"n": strconv.Itoa(sent), "kind": "record", "route": "route2", "vm": "bench-vm-1",
					"commit_ms": "1.234", "stored_at": now.UTC().Format(time.RFC3339Nano), "batch": "1",
				},
			})}
		}
	}
	tick.Stop()
	publishing := time.Since(start)
	close(results)
	<-checked
	if publishErr != nil {
		b.Logf("%d publications failed, the first with: %v", nFailed, publishErr)
	}
	p.Stop()
	if received.Load() < int64(total)-failedCount.Load() {
		select {
		case <-all:
		case <-time.After(drain):
		}
	}
	end := time.Now().UnixNano()
	close(stopWatch)
	rcancel()
	<-recvDone

	res := loadResult{sent: total, failed: nFailed, received: int(received.Load()), dups: int(dups.Load())}
	res.cpu = (testenv.CPUTime() - cpu0) / time.Duration(total)
	res.stalls, res.worstStall = stalls()
	res.rate = float64(res.received) / publishing.Seconds()
	lat := make([]time.Duration, 0, total)
	for i := range total {
		l := time.Duration(atomic.LoadInt64(&latency[i]))
		if l == 0 {
			if failed[i] {
				continue
			}
			res.lost++
			l = time.Duration(end - atomic.LoadInt64(&sentAt[i]))
		}
		lat = append(lat, l)
	}
	if os.Getenv("VMPULSE_BENCH_TIMELINE") != "" {
		// p50/p99 of the messages sent in each second, to tell a steady
		// state from a few stalls.
		for sec := 0; sec*rate < total; sec++ {
			var w []time.Duration
			for i := sec * rate; i < min(total, (sec+1)*rate); i++ {
				if l := atomic.LoadInt64(&latency[i]); l > 0 {
					w = append(w, time.Duration(l))
				}
			}
			if len(w) > 0 {
				slices.Sort(w)
				b.Logf("second %2d: p50 %6.1f ms p99 %6.1f ms max %6.1f ms", sec, ms(w[len(w)/2]), ms(w[len(w)*99/100]), ms(w[len(w)-1]))
			}
		}
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		res.p50 = lat[n/2]
		res.p99 = lat[min(n-1, n*99/100)]
		res.max = lat[n-1]
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// servers starts each server for one run.
var servers = []struct {
	name  string
	start func(b *testing.B) (addr string, stop func())
}{
	{"emulator", func(b *testing.B) (string, func()) { return testenv.PubsubEmulator(b), func() {} }},
	{"broker", func(b *testing.B) (string, func()) {
		s, err := Start("127.0.0.1:0", Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			b.Fatal(err)
		}
		return s.Addr(), func() { s.Close() }
	}},
	{"pstest", func(b *testing.B) (string, func()) {
		s := pstest.NewServerWithAddress("127.0.0.1:0")
		return s.Addr, func() { s.Close() }
	}},
}

// BenchmarkEndToEnd measures publish → subscriber latency through the Java
// emulator, this broker and pstest, side by side at each rate, and reports
// the ratios to the emulator.
func BenchmarkEndToEnd(b *testing.B) {
	d := time.Duration(envInt("VMPULSE_BENCH_SECONDS", 10)) * time.Second
	for _, rate := range benchRates() {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			got := map[string]loadResult{}
			for _, srv := range servers {
				b.Run(srv.name, func(b *testing.B) {
					addr, stop := srv.start(b)
					defer stop()
					runtime.GC()
					r := runLoad(b, addr, rate, d, 10*time.Second)
					got[srv.name] = r
					b.ReportMetric(ms(r.p50), "p50_ms")
					b.ReportMetric(ms(r.p99), "p99_ms")
					b.ReportMetric(ms(r.max), "max_ms")
					b.ReportMetric(float64(r.lost), "lost")
					b.ReportMetric(float64(r.failed), "publish_failed")
					b.ReportMetric(float64(r.dups), "dups")
					b.ReportMetric(float64(r.cpu.Microseconds()), "cpu_us/msg")
					b.ReportMetric(float64(r.stalls), "stalls")
					if emu, ok := got["emulator"]; ok && srv.name != "emulator" && emu.p99 > 0 {
						b.ReportMetric(float64(r.p50)/float64(emu.p50), "p50_x_emulator")
						b.ReportMetric(float64(r.p99)/float64(emu.p99), "p99_x_emulator")
					}
					b.ReportMetric(0, "ns/op")
				})
			}
			printTable(os.Stdout, rate, d, got)
		})
	}
}

func printTable(w io.Writer, rate int, d time.Duration, got map[string]loadResult) {
	fmt.Fprintf(w, "\npublish → subscriber, %d msg/s for %v, ~950-byte records, real v2 client (load average now %s):\n", rate, d, loadAvg())
	fmt.Fprintf(w, "%-9s %8s %8s %8s %9s %6s %6s %5s %10s %10s %12s %15s\n", "server", "p50 ms", "p99 ms", "max ms", "received", "lost", "failed", "dups", "p50/emu", "p99/emu", "cpu µs/msg", "stalls (worst)")
	emu, hasEmu := got["emulator"]
	for _, srv := range servers {
		r, ok := got[srv.name]
		if !ok {
			continue
		}
		r50, r99 := "-", "-"
		if hasEmu && emu.p50 > 0 {
			r50 = fmt.Sprintf("%.2f", float64(r.p50)/float64(emu.p50))
			r99 = fmt.Sprintf("%.2f", float64(r.p99)/float64(emu.p99))
		}
		fmt.Fprintf(w, "%-9s %8.1f %8.1f %8.1f %9d %6d %6d %5d %10s %10s %12d %6d (%4.0f ms)\n", srv.name, ms(r.p50), ms(r.p99), ms(r.max), r.received, r.lost, r.failed, r.dups, r50, r99, r.cpu.Microseconds(), r.stalls, ms(r.worstStall))
	}
	fmt.Fprintln(w, "lost: published, not received 10 s after publishing ended (in the percentiles with their wait so far); failed: publications the client gave up on.")
	fmt.Fprintln(w, "cpu µs/msg: this process only: the clients, plus the server for broker and pstest (the emulator is a separate JVM).")
	fmt.Fprintln(w, "stalls: times a 5 ms ticker in this process ran ≥ 50 ms late (the process did not get the CPU), and the worst.")
	fmt.Fprintln(w)
}

// heapMiB returns the live heap after a collection.
func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkBrokerMemory runs the broker at 3 500 msg/s for a minute on a
// topic with the production retention (20 min, more than the cap can hold)
// and a cap of 64 MiB, sampling the live heap of the process (broker and
// clients) every 5 s: it must level off at the cap, not grow with the run.
func BenchmarkBrokerMemory(b *testing.B) {
	d := time.Duration(envInt("VMPULSE_BENCH_SOAK_SECONDS", 60)) * time.Second
	const limit = 64 << 20
	s, err := Start("127.0.0.1:0", Options{MaxBytes: limit, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	before := heapMiB()
	var mu sync.Mutex
	var samples []float64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				h := heapMiB()
				mu.Lock()
				samples = append(samples, h)
				mu.Unlock()
			}
		}
	}()
	r := runLoad(b, s.Addr(), 3500, d, 10*time.Second)
	close(stop)
	<-sampled
	st := s.Stats()
	after := heapMiB()
	mu.Lock()
	defer mu.Unlock()
	half := samples[len(samples)/2]
	peak := slices.Max(samples)
	fmt.Printf("\nbroker at 3500 msg/s for %v, cap %d MiB, load average %s: heap before %.1f MiB, at half time %.1f MiB, peak %.1f MiB, after %.1f MiB (topic deleted); "+
		"held at the end %.1f MiB in %d messages; evicted retained %d, unacked %d; p50 %.1f ms p99 %.1f ms lost %d\nheap samples (MiB, every 5 s): %.0f\n\n",
		d, limit>>20, loadAvg(), before, half, peak, after, float64(st.Bytes)/(1<<20), st.Messages, st.EvictedRetained, st.EvictedUnacked,
		ms(r.p50), ms(r.p99), r.lost, samples)
	b.ReportMetric(before, "heap_before_MiB")
	b.ReportMetric(half, "heap_half_MiB")
	b.ReportMetric(peak, "heap_peak_MiB")
	b.ReportMetric(samples[len(samples)-1], "heap_end_MiB")
	b.ReportMetric(after, "heap_after_MiB")
	b.ReportMetric(ms(r.p99), "p99_ms")
	b.ReportMetric(float64(r.lost), "lost")
	b.ReportMetric(float64(st.EvictedUnacked), "evicted_unacked")
	b.ReportMetric(0, "ns/op")
}

// loadAvg returns the machine's 1-minute load average, so that a reader can
// tell a quiet run from a noisy one.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%s on %d CPUs", f[0], runtime.NumCPU())
}
