// Command relaybench measures the relay's fan-out: a real vmpulse-relay process
// against a real broker (the Pub/Sub emulator), a publisher at -rate records/s of
// about 950 bytes, and N websocket clients in this process. For each N it prints
// commit→client latency (p50/p99, first and second half of the window: a lag that
// grows shows in the second), relay RSS per connection, relay CPU per delivered
// byte, and the items clients that stayed connected missed.
//
//	make bench-relay CLIENTS=1000,2500,5000 RATE=100
//	relaybench -relay bin/vmpulse-relay -clients 1000,2500,5000 -rate 100
//
// Any relay binary works (flags it lacks are not passed), so the same command
// measures an older build: -relay /path/to/old/vmpulse-relay.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/functions/pubsub"
)

type options struct {
	relays     []string
	relay      string // the one being measured
	clients    []int
	rate       int
	duration   time.Duration
	warmup     time.Duration
	emulator   string
	size       int
	compress   bool
	parallel   int
	relayFlags string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveMinimalArg {
		serveMinimal(os.Args[2:])
		return
	}
	var o options
	var clients, relays string
	flag.StringVar(&relays, "relay", "bin/vmpulse-relay", "the relay binary to measure; several, comma-separated, are measured in turn for each client count (before/after in one run); \"minimal\" is the reference design of the same protocol (minimal.go), whose CPU per byte is the limit")
	flag.StringVar(&clients, "clients", "1000,2500,5000", "comma-separated client counts, one run each")
	flag.IntVar(&o.rate, "rate", 100, "records published per second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measurement window per run")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "flow before the window opens")
	flag.StringVar(&o.emulator, "emulator", envOr("VMPULSE_TEST_PUBSUB", "127.0.0.1:8681"), "Pub/Sub emulator host:port")
	flag.IntVar(&o.size, "size", 950, "bytes per record")
	flag.BoolVar(&o.compress, "compress", false, "clients offer permessage-deflate, as browsers do")
	flag.IntVar(&o.parallel, "parallel", 200, "concurrent dials while connecting")
	flag.StringVar(&o.relayFlags, "relay-flags", "", "extra flags for the relay (space-separated)")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile here (the load generator's own cost)")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	for _, s := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-clients %q: want positive integers separated by commas", clients))
		}
		o.clients = append(o.clients, n)
	}
	if o.rate < 1 || o.rate > 10000 {
		fatal(fmt.Errorf("-rate %d: must be within 1..10000", o.rate))
	}
	for _, r := range strings.Split(relays, ",") {
		if r == minimalRelay {
			o.relays = append(o.relays, r)
			continue
		}
		if _, err := os.Stat(r); err != nil {
			fatal(fmt.Errorf("-relay %s: %w (build it with `make build`)", r, err))
		}
		o.relays = append(o.relays, r)
	}
	if c, err := net.DialTimeout("tcp", o.emulator, 2*time.Second); err != nil {
		fatal(fmt.Errorf("no Pub/Sub emulator at %s (`make services`): %w", o.emulator, err))
	} else {
		c.Close()
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(slices.Max(o.clients)+200) {
		rl.Cur = min(rl.Max, uint64(slices.Max(o.clients)+1000))
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		if rl.Cur < uint64(slices.Max(o.clients)+200) {
			fatal(fmt.Errorf("open files limit %d is too low for %d clients (ulimit -n)", rl.Cur, slices.Max(o.clients)))
		}
	}
	fmt.Printf("%d records/s of %d B, window %v after %v warm-up, clients offer deflate: %v, %d CPUs, load average %s\n",
		o.rate, o.size, o.duration, o.warmup, o.compress, runtime.NumCPU(), loadavg())
	for i, r := range o.relays {
		fmt.Printf("relay %c: %s\n", 'A'+i, r)
	}
	fmt.Println("| relay | clients | connected | dropped | records/s | delivered MB/s | broker only p50 / p99 ms | p50 ms | p99 ms 1st half | p99 ms 2nd half | max ms | RSS/conn KiB | RSS/conn KiB excl. shared | relay CPU % | relay ns/B | wire B/item | missed | bench CPU % | SIGTERM→exit ms |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var ratios []string
	for _, n := range o.clients {
		ref := -1.0              // the reference relay's ns/B at this client count
		got := map[int]float64{} // relay index → its ns/B
		for i, relay := range o.relays {
			o.relay = relay
			r, err := runOnce(o, n)
			if err != nil {
				fatal(err)
			}
			fmt.Printf("| %c %s\n", 'A'+i, r)
			for why, k := range r.dropReasons {
				fmt.Printf("|   | dropped ×%d: %s |\n", k, why)
			}
			if relay == minimalRelay {
				ref = r.nsPerByte
			} else {
				got[i] = r.nsPerByte
			}
		}
		for i := range o.relays { // in the relays' order
			if v, ok := got[i]; ok && ref > 0 {
				ratios = append(ratios, fmt.Sprintf("%d clients: relay %c %.2f ns/B ÷ minimal %.2f ns/B = %.2f", n, 'A'+i, v, ref, v/ref))
			}
		}
	}
	for _, r := range ratios {
		fmt.Println(r)
	}
	fmt.Printf("load average at the end: %s\n", loadavg())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "relaybench:", err)
	os.Exit(1)
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// ---- the relay process -------------------------------------------------------

type relayProc struct {
	cmd     *exec.Cmd
	addrs   chan [2]string
	exited  chan struct{}
	metrics string
}

func startRelay(o options, topic string, n int) (*relayProc, string, error) {
	bin, args := o.relay, []string{}
	var help []byte
	if bin == minimalRelay {
		bin, args = os.Args[0], []string{serveMinimalArg}
	} else {
		help, _ = exec.Command(bin, "-h").CombinedOutput()
	}
	has := func(f string) bool {
		return bytes.Contains(help, []byte("-"+f+" ")) || bytes.Contains(help, []byte("-"+f+"\n"))
	}
	args = append(args, "-addr", "127.0.0.1:0", "-max-clients", strconv.Itoa(n+100))
	if has("max-per-ip") {
		args = append(args, "-max-per-ip", "0")
	}
	if has("metrics-addr") {
		args = append(args, "-metrics-addr", "127.0.0.1:0")
	}
	if o.relay != minimalRelay {
		args = append(args, strings.Fields(o.relayFlags)...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PUBSUB_EMULATOR_HOST="+o.emulator, "PUBSUB_PROJECT=vmpulse-bench", "PUBSUB_TOPIC="+topic)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &relayProc{cmd: cmd, addrs: make(chan [2]string, 4), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			// Older relays log slog's msg and level, newer ones Cloud Logging's
			// message and severity.
			var e struct{ Msg, Message, Addr, Level, Severity string }
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			msg := e.Msg + e.Message
			if strings.HasSuffix(msg, " listening") {
				p.addrs <- [2]string{strings.TrimSuffix(msg, " listening"), e.Addr}
			} else if e.Level == "ERROR" || e.Severity == "ERROR" {
				fmt.Fprintln(os.Stderr, "relay:", sc.Text())
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	want := 1
	if has("metrics-addr") {
		want = 2
	}
	var addr string
	for i := 0; i < want; i++ {
		select {
		case a := <-p.addrs:
			if a[0] == "relay" {
				addr = a[1]
			} else {
				p.metrics = a[1]
			}
		case <-p.exited:
			return nil, "", errors.New("the relay exited at start")
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			return nil, "", errors.New("the relay did not listen within 60 s")
		}
	}
	return p, addr, nil
}

// usage reads the relay's CPU time (utime+stime, seconds) and RSS (bytes).
func usage(pid int) (cpu float64, rss int64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu = (ut + st) / clkTck
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return
}

const clkTck = 100 // USER_HZ on Linux

// shared reads the relay's own account of memory shared by all clients (ring and
// history), when it exports one.
func shared(metricsAddr string) int64 {
	if metricsAddr == "" {
		return -1
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var total float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []string{"vmpulse_relay_ring_bytes ", "vmpulse_relay_history_bytes "} {
			if strings.HasPrefix(line, m) {
				v, _ := strconv.ParseFloat(strings.TrimPrefix(line, m), 64)
				total += v
				found = true
			}
		}
	}
	if !found {
		return -1
	}
	return int64(total)
}

// ---- clients --------------------------------------------------------------------

// Latency histogram buckets: 1 ms to 500 ms, 5 ms to 2 s, 50 ms to 60 s.
const nBuckets = 500 + 300 + 1160 + 1

func bucket(ms float64) int {
	switch {
	case ms < 0:
		return 0
	case ms < 500:
		return int(ms)
	case ms < 2000:
		return 500 + int((ms-500)/5)
	case ms < 60000:
		return 800 + int((ms-2000)/50)
	}
	return nBuckets - 1
}

func bucketMS(b int) float64 {
	switch {
	case b < 500:
		return float64(b) + 0.5
	case b < 800:
		return 500 + float64(b-500)*5 + 2.5
	case b < nBuckets-1:
		return 2000 + float64(b-800)*50 + 25
	}
	return 60000
}

type window struct {
	start, mid, end atomic.Int64 // publish times (unix ns) of the measurement window
}

type client struct {
	conn    *websocket.Conn
	wire    atomic.Int64 // bytes read from the socket
	payload atomic.Int64 // websocket payload bytes
	seen    []uint64     // bitset of sequence numbers
	hist    [2][]uint16  // latency histograms, first and second half of the window
	maxMS   float64
	sc      scanner
	err     error
	done    chan struct{}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

var idMark = []byte(`"id":"b-`)

// read scans each frame as it streams in, in chunks of a fixed buffer: frames
// after a broker burst can be hundreds of KB, and growing a buffer per client
// for them costs the load generator more than the relay spends sending.
func (c *client) read(w *window) {
	defer close(c.done)
	buf := make([]byte, 16<<10)
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			c.err = err
			return
		}
		c.sc.reset()
		keep := 0
		for {
			k, err := r.Read(buf[keep:])
			c.payload.Add(int64(k))
			keep = c.sc.feed(buf[:keep+k], time.Now().UnixNano(), w, c)
			if err == io.EOF {
				break
			}
			if err != nil {
				c.err = err
				return
			}
		}
	}
}

// scanner finds the ids ("b-<seq>-<publish unix ns>") in a frame fed in chunks.
type scanner struct {
	skip    int // bytes after an id that cannot hold the next one (most of a record)
	pending int // bytes still to skip at the start of the next chunk
}

func (s *scanner) reset() { s.pending = 0 }

// idTail is more than the longest "b-<seq>-<ns>" with its closing quote.
const idTail = 48

// feed scans chunk, records what it finds in c, and moves the bytes that may
// start an id it could not finish to the front of chunk, returning their count.
func (s *scanner) feed(chunk []byte, now int64, w *window, c *client) int {
	data := chunk
	d := min(s.pending, len(data))
	data, s.pending = data[d:], s.pending-d
	ws, wm, we := w.start.Load(), w.mid.Load(), w.end.Load()
	for len(data) > 0 {
		i := bytes.Index(data, idMark)
		if i < 0 {
			break
		}
		rest := data[i+len(idMark):]
		seq, r1 := digits(rest)
		if len(r1) == 0 {
			data = data[i:] // cut in the middle: finish with the next chunk
			break
		}
		if r1[0] != '-' {
			data = rest
			continue
		}
		at, r2 := digits(r1[1:])
		if len(r2) == 0 {
			data = data[i:]
			break
		}
		c.record(seq, at, now, ws, wm, we)
		if s.skip >= len(r2) {
			s.pending = s.skip - len(r2)
			data = nil
			break
		}
		data = r2[s.skip:]
	}
	// Keep what may hold the start of an id.
	if len(data) > idTail && !bytes.Contains(data[len(data)-idTail:], idMark[:1]) {
		return 0
	}
	keep := data[max(0, len(data)-idTail):]
	if i := bytes.Index(data, idMark); i >= 0 { // an id cut short: keep it whole
		keep = data[i:]
	}
	return copy(chunk, keep)
}

func (c *client) record(seq, at, now, ws, wm, we int64) {
	c.mark(seq)
	if ws == 0 || at < ws || at >= we {
		return
	}
	ms := float64(now-at) / 1e6
	half := 0
	if at >= wm {
		half = 1
	}
	c.hist[half][bucket(ms)]++
	c.maxMS = max(c.maxMS, ms)
}

func digits(b []byte) (int64, []byte) {
	var n int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int64(b[i]-'0')
		i++
	}
	return n, b[i:]
}

func (c *client) mark(seq int64) {
	w := int(seq / 64)
	for w >= len(c.seen) {
		c.seen = append(c.seen, 0)
	}
	c.seen[w] |= 1 << (seq % 64)
}

func (c *client) has(seq int64) bool {
	w := int(seq / 64)
	return w < len(c.seen) && c.seen[w]&(1<<(seq%64)) != 0
}

func connect(o options, addr string, n int, w *window) ([]*client, error) {
	clients := make([]*client, n)
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	var failed atomic.Int32
	var firstErr atomic.Value
	for i := range clients {
		c := &client{done: make(chan struct{}), sc: scanner{skip: o.size / 2}}
		c.hist[0] = make([]uint16, nBuckets)
		c.hist[1] = make([]uint16, nBuckets)
		clients[i] = c
		d := websocket.Dialer{
			ReadBufferSize:    16 << 10, // a frame's header and body in one read
			EnableCompression: o.compress,
			HandshakeTimeout:  30 * time.Second,
			NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				nc, err := (&net.Dialer{}).DialContext(ctx, network, a)
				if err != nil {
					return nil, err
				}
				return countingConn{nc, &c.wire}, nil
			},
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, _, err := d.Dial("ws://"+addr+"/ws", nil)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				close(c.done)
				c.err = err
				return
			}
			c.conn = conn
			go c.read(w)
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return clients, fmt.Errorf("%d of %d clients could not connect: %v", f, n, firstErr.Load())
	}
	return clients, nil
}

// ---- publisher --------------------------------------------------------------------

// record returns a record of about size bytes, shaped like the agent's (ten top
// processes, varying figures), so that compression ratios are realistic.
func record(seq int64, at time.Time, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(seq), 7))
	names := []string{"java", "mariadbd", "chromium", "node", "vmpulse-route", "systemd", "sshd", "containerd", "kubelet", "python3", "nginx", "postgres"}
	var procs []string
	for i := 0; i < 10; i++ {
		procs = append(procs, fmt.Sprintf(`{"pid":%d,"name":%q,"state":"%c","rss_mib":%d}`,
			1+r.IntN(40000), names[r.IntN(len(names))], "SRDI"[r.IntN(4)], r.IntN(3000)))
	}
	total := 7940
	free := 1000 + r.IntN(6000)
	cpu := float64(r.IntN(10000)) / 100
	b := fmt.Appendf(nil, `{"id":"b-%d-%d","vm":"bench-vm","total_ram":%d,"ram_libre":%d,"uso_ram":%d,"porcentaje_ram":%.2f,`+
		`"porcentaje_cpu_uso":%.2f,"porcentaje_cpu_libre":%.2f,"procesos_corriendo":%d,"total_procesos":%d,"procesos_durmiendo":%d,`+
		`"procesos_zombie":0,"procesos_parados":0,"hora":%q,"source":"procfs","top_procesos":[%s]`,
		seq, at.UnixNano(), total, free, total-free, 100*float64(total-free)/float64(total), cpu, 100-cpu,
		1+r.IntN(4), 150+r.IntN(100), 140+r.IntN(100), at.UTC().Format("2006-01-02 15:04:05"), strings.Join(procs, ","))
	if pad := size - len(b) - len(`,"note":""}`); pad > 0 {
		hex := make([]byte, pad)
		for i := range hex {
			hex[i] = "0123456789abcdef"[r.IntN(16)]
		}
		b = fmt.Appendf(b, `,"note":%q`, hex)
	}
	return append(b, '}')
}

type publisher struct {
	next     atomic.Int64 // next sequence number
	mu       sync.Mutex
	ok       map[int64]bool
	failures atomic.Int64
}

func (p *publisher) run(ctx context.Context, c *gps.Client, topic string, rate, size int) {
	pub := c.Publisher(topic)
	pub.PublishSettings.DelayThreshold = time.Millisecond
	defer pub.Stop()
	// Every millisecond, publish what is due since the start: the rate holds on
	// average even when this process is short of CPU (a ticker would drop ticks).
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	hb := time.NewTicker(5 * time.Second)
	defer hb.Stop()
	start := time.Now()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
			pub.Publish(ctx, &gps.Message{Attributes: map[string]string{"kind": "heartbeat", "route": "bench", "instance": "bench",
				"sent_at": time.Now().UTC().Format(time.RFC3339)}})
			continue
		case now = <-tick.C:
		}
		due := int64(now.Sub(start).Seconds() * float64(rate))
		for p.next.Load() < due {
			seq := p.next.Add(1) - 1
			route := "route1"
			if seq%2 == 1 {
				route = "route2"
			}
			res := pub.Publish(ctx, &gps.Message{Data: record(seq, now, size), Attributes: map[string]string{
				"kind": "record", "route": route, "vm": "bench-vm", "commit_ms": "1.000",
				"stored_at": now.UTC().Format(time.RFC3339Nano), "batch": "1"}})
			go func() {
				if _, err := res.Get(context.Background()); err != nil {
					p.failures.Add(1)
					return
				}
				p.mu.Lock()
				p.ok[seq] = true
				p.mu.Unlock()
			}()
		}
	}
}

// ---- one run ----------------------------------------------------------------------

type result struct {
	rate, mbps             float64
	dropReasons            map[string]int
	brokerP50, brokerP99   float64
	n, connected, dropped  int
	p50, p99a, p99b, maxMS float64
	rssPerConn, rssExcl    float64
	cpuPct, nsPerByte      float64
	wirePerItem            float64
	missed                 int64
	benchCPU               float64
	shutdownMS             int64
}

func (r result) String() string {
	excl := "n/a"
	if r.rssExcl >= 0 {
		excl = fmt.Sprintf("%.1f", r.rssExcl)
	}
	return fmt.Sprintf("| %d | %d | %d | %.0f | %.0f | %.0f / %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %s | %.0f | %.2f | %.0f | %d | %.0f | %d |",
		r.n, r.connected, r.dropped, r.rate, r.mbps, r.brokerP50, r.brokerP99, r.p50, r.p99a, r.p99b, r.maxMS, r.rssPerConn, excl, r.cpuPct, r.nsPerByte, r.wirePerItem, r.missed, r.benchCPU, r.shutdownMS)
}

func runOnce(o options, n int) (result, error) {
	res := result{n: n, dropReasons: map[string]int{}}
	ctx := context.Background()
	topic := fmt.Sprintf("bench-relay-%d-%d", n, time.Now().UnixNano())
	ps, err := pubsub.Connect(ctx, "vmpulse-bench", o.emulator)
	if err != nil {
		return res, err
	}
	defer ps.Close()
	if err := pubsub.EnsureTopic(ctx, ps, topic, true); err != nil {
		return res, err
	}
	defer ps.TopicAdminClient.DeleteTopic(ctx, deleteTopicReq(pubsub.TopicName("vmpulse-bench", topic)))

	proc, addr, err := startRelay(o, topic, n)
	if err != nil {
		return res, err
	}
	pid := proc.cmd.Process.Pid
	defer proc.cmd.Process.Kill()
	time.Sleep(time.Second)
	_, rss0 := usage(pid)
	shared0 := shared(proc.metrics)

	w := &window{}
	clients, err := connect(o, addr, n, w)
	if err != nil {
		return res, err
	}
	// The broker alone: a plain subscriber on the same topic, for reference.
	broker := &client{done: make(chan struct{})}
	broker.hist[0], broker.hist[1] = make([]uint16, nBuckets), make([]uint16, nBuckets)
	bsub, err := pubsub.CreateInstanceSubscription(ctx, ps, topic, topic+"-direct")
	if err != nil {
		return res, err
	}
	defer pubsub.DeleteSubscription(context.Background(), ps, bsub)
	bctx, stopBroker := context.WithCancel(ctx)
	defer stopBroker()
	var bmu sync.Mutex
	go pubsub.ReceiveDeliveries(bctx, ps, bsub, func(d pubsub.Delivery) {
		now := time.Now().UnixNano()
		seq, rest := digits(bytes.TrimPrefix(d.Data, []byte(`{"id":"b-`)))
		if len(rest) == 0 || rest[0] != '-' {
			return
		}
		at, _ := digits(rest[1:])
		if ws := w.start.Load(); ws == 0 || at < ws || at >= w.end.Load() {
			return
		}
		_ = seq
		bmu.Lock()
		broker.hist[0][bucket(float64(now-at)/1e6)]++
		bmu.Unlock()
	})

	p := &publisher{ok: map[int64]bool{}}
	pctx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() { p.run(pctx, ps, topic, o.rate, o.size); close(pubDone) }()

	time.Sleep(o.warmup)
	t0 := time.Now()
	w.start.Store(t0.UnixNano())
	w.mid.Store(t0.Add(o.duration / 2).UnixNano())
	w.end.Store(t0.Add(o.duration).UnixNano())
	firstSeq := p.next.Load()
	cpu0, _ := usage(pid)
	self0, _ := usage(os.Getpid())
	var pay0 int64
	wire0 := make([]int64, len(clients))
	for i, c := range clients {
		pay0 += c.payload.Load()
		wire0[i] = c.wire.Load()
	}
	var rssSum, rssN int64
	var sharedEnd int64 = -1
	for time.Since(t0) < o.duration {
		time.Sleep(time.Second)
		_, rss := usage(pid)
		rssSum += rss
		rssN++
	}
	cpu1, _ := usage(pid)
	self1, _ := usage(os.Getpid())
	elapsed := time.Since(t0).Seconds()
	var pay1 int64
	wire1 := make([]int64, len(clients))
	for i, c := range clients {
		pay1 += c.payload.Load()
		wire1[i] = c.wire.Load()
	}
	sharedEnd = shared(proc.metrics)
	lastSeq := p.next.Load() - 1
	stopPub()
	<-pubDone
	time.Sleep(3 * time.Second) // drain

	// SIGTERM with every client connected: how long the relay takes to let go.
	ts := time.Now()
	proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-proc.exited:
		res.shutdownMS = time.Since(ts).Milliseconds()
	case <-time.After(15 * time.Second):
		res.shutdownMS = -1
	}
	for _, c := range clients {
		if c.conn != nil {
			c.conn.Close()
		}
	}
	var hist [2][]uint64
	hist[0], hist[1] = make([]uint64, nBuckets), make([]uint64, nBuckets)
	var wire, items int64
	for i, c := range clients {
		<-c.done
		// A client the relay dropped before the shutdown did not keep up.
		if c.err != nil && !websocket.IsCloseError(c.err, websocket.CloseGoingAway) && c.conn != nil && !closedByUs(c.err) {
			res.dropped++
			res.dropReasons[c.err.Error()]++
			continue
		}
		res.connected++
		for h := 0; h < 2; h++ {
			for b, v := range c.hist[h] {
				hist[h][b] += uint64(v)
			}
		}
		res.maxMS = max(res.maxMS, c.maxMS)
		wire += wire1[i] - wire0[i]
		p.mu.Lock()
		for s := firstSeq; s <= lastSeq; s++ {
			if p.ok[s] {
				if !c.has(s) {
					res.missed++
				}
				items++
			}
		}
		p.mu.Unlock()
	}
	bh := make([]uint64, nBuckets)
	bmu.Lock()
	for b, v := range broker.hist[0] {
		bh[b] = uint64(v)
	}
	bmu.Unlock()
	res.brokerP50, res.brokerP99 = quantile(bh, 0.5), quantile(bh, 0.99)
	all := make([]uint64, nBuckets)
	for b := range all {
		all[b] = hist[0][b] + hist[1][b]
	}
	res.p50 = quantile(all, 0.5)
	res.p99a = quantile(hist[0], 0.99)
	res.p99b = quantile(hist[1], 0.99)
	var rssMean float64
	if rssN > 0 {
		rssMean = float64(rssSum) / float64(rssN)
	}
	res.rssPerConn = (rssMean - float64(rss0)) / float64(n) / 1024
	res.rssExcl = -1
	if shared0 >= 0 && sharedEnd >= 0 {
		res.rssExcl = (rssMean - float64(rss0) - float64(sharedEnd-shared0)) / float64(n) / 1024
	}
	res.cpuPct = 100 * (cpu1 - cpu0) / elapsed
	res.rate = float64(lastSeq-firstSeq+1) / elapsed
	res.mbps = float64(pay1-pay0) / elapsed / 1e6
	if pay1 > pay0 {
		res.nsPerByte = (cpu1 - cpu0) * 1e9 / float64(pay1-pay0)
	}
	if items > 0 {
		res.wirePerItem = float64(wire) / float64(items) // bytes read in the window per item published in it
	}
	res.benchCPU = 100 * (self1 - self0) / elapsed
	if f := p.failures.Load(); f > 0 {
		slog.Warn("publishes failed", "count", f)
	}
	return res, nil
}

func deleteTopicReq(name string) *pubsubpb.DeleteTopicRequest {
	return &pubsubpb.DeleteTopicRequest{Topic: name}
}

func closedByUs(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "use of closed network connection")
}

func quantile(h []uint64, q float64) float64 {
	var total uint64
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return math.NaN()
	}
	want := uint64(math.Ceil(q * float64(total)))
	var acc uint64
	for b, v := range h {
		acc += v
		if acc >= want {
			return bucketMS(b)
		}
	}
	return bucketMS(len(h) - 1)
}
