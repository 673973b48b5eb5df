// Command bench measures the vmpulse agent against Debian's
// prometheus-node-exporter on this machine, side by side in one run, and prints a
// table with the ratios (make bench-agent; see agent/bench.mk):
//
//   - CPU at one sample per second: each target is asked once a second (the agent
//     for /sample, which it also samples once a second; node_exporter for
//     /metrics, which it gathers on every scrape) for -duration, and its CPU time
//     over that window is divided by the wall time;
//   - RSS at the end of that window, and the peak after the load;
//   - requests per second under load for -load, with wrk (Debian's wrk package)
//     or, without it, a small keep-alive Go client, and the target's CPU time per
//     request;
//   - bytes per response, plain and gzip (what Prometheus asks for).
//
// -agents takes several agent binaries (name=path, comma-separated), so that
// the agent before and after a change run in the same conditions. -procs and
// -threads start that many idle processes with that many idle threads each first:
// the agent's /proc reader looks at threads, node_exporter does not.
//
// The machine is shared and noisy: compare the ratios of one run, not absolute
// figures across runs.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vmpulse/vmpulse/internal/flagenv"
)

// childEnv turns this program into an idle process with that many idle threads.
const childEnv = "VMPULSE_AGENTBENCH_IDLE_THREADS"

func main() {
	if n := os.Getenv(childEnv); n != "" {
		idleChild(n)
		return
	}
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench-agent:", err)
		os.Exit(1)
	}
}

// idleChild parks n OS threads (each goroutine locked to its own thread, blocked
// on a channel) and waits forever.
func idleChild(n string) {
	threads, err := strconv.Atoi(n)
	if err != nil {
		os.Exit(2)
	}
	runtime.GOMAXPROCS(1)
	block := make(chan struct{})
	for range threads {
		go func() {
			runtime.LockOSThread()
			<-block
		}()
	}
	<-block
}

type config struct {
	agents, nodeExporter, agentArgs string
	duration, load                  time.Duration
	connections, procs, threads     int
}

// target is one server under test.
type target struct {
	name, path string
	args       []string
	url        string // what is asked once a second and under load
	gzipURL    bool   // whether it answers gzip when asked
	cmd        *exec.Cmd
	stderr     bytes.Buffer

	source          string
	cpuPct          float64
	rssMiB, hwmMiB  float64
	reqPerSec       float64
	cpuPerReq       time.Duration
	bytes, gzBytes  int
	loadErr, cpuErr error
}

func run(args []string) error {
	var c config
	fs := flagenv.New("bench-agent", "bench-agent runs vmpulse agents and prometheus-node-exporter side by side and prints CPU, RSS, requests/s and bytes per response.")
	fs.String(&c.agents, "agents", "BENCH_AGENTS", "bin/vmpulse-agent", "agent binaries to measure, comma-separated, each path or name=path")
	fs.String(&c.nodeExporter, "node-exporter", "NODE_EXPORTER", "prometheus-node-exporter", "node_exporter binary (Debian package prometheus-node-exporter)")
	fs.String(&c.agentArgs, "agent-args", "BENCH_AGENT_ARGS", "", "extra flags for every agent, space-separated (e.g. -source procfs)")
	fs.Duration(&c.duration, "duration", "BENCH_DURATION", 30*time.Second, "CPU window at one request per second per target")
	fs.Duration(&c.load, "load", "BENCH_LOAD", 10*time.Second, "requests/s run per target")
	fs.Int(&c.connections, "connections", "BENCH_CONNECTIONS", 32, "concurrent connections in the requests/s run")
	fs.Int(&c.procs, "procs", "BENCH_PROCS", 0, "idle processes to start first (the agent reads each one's threads when they run)")
	fs.Int(&c.threads, "threads", "BENCH_THREADS", 20, "idle threads in each of the -procs processes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case c.duration < 5*time.Second:
		return fmt.Errorf("-duration %v: want at least 5s", c.duration)
	case c.load < time.Second:
		return fmt.Errorf("-load %v: want at least 1s", c.load)
	case c.connections < 1:
		return fmt.Errorf("-connections %d: want at least 1", c.connections)
	case c.procs < 0 || c.procs > 2000 || c.threads < 0 || c.threads > 1000:
		return fmt.Errorf("-procs %d -threads %d: want 0..2000 and 0..1000", c.procs, c.threads)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var targets []*target
	for _, a := range strings.Split(c.agents, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		name, path, ok := strings.Cut(a, "=")
		if !ok {
			name, path = "agent", a
		}
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("-agents: %s: %w (build it with: go build -o %s ./agent/cmd/vmpulse-agent)", name, err, path)
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		t := &target{name: name, path: path, url: "http://" + port + "/sample",
			args: append([]string{"-addr", port, "-interval", "1s", "-vm", "bench"}, strings.Fields(c.agentArgs)...)}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return fmt.Errorf("-agents: no agent given")
	}
	ne, err := exec.LookPath(c.nodeExporter)
	if err != nil {
		return fmt.Errorf("-node-exporter %s: %w (install it: apt-get install prometheus-node-exporter)", c.nodeExporter, err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	targets = append(targets, &target{name: "node_exporter", path: ne, url: "http://" + port + "/metrics",
		gzipURL: true, args: []string{"--web.listen-address=" + port, "--log.level=warn"}})

	if c.procs > 0 {
		kill, err := startIdle(ctx, c.procs, c.threads)
		defer kill()
		if err != nil {
			return err
		}
	}
	for _, t := range targets {
		if err := t.start(); err != nil {
			return err
		}
		defer t.stop()
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	for _, t := range targets {
		if err := t.waitReady(ctx, client); err != nil {
			return err
		}
	}
	machine := describeMachine()
	fmt.Printf("%s\n", machine)
	fmt.Printf("warming up 3 s, then %v at one request per second per target\n", c.duration)

	// CPU at one sample per second.
	tick := func() {
		for _, t := range targets {
			if n, gz, err := t.get(client); err == nil {
				t.bytes, t.gzBytes = n, gz
			}
		}
	}
	if err := every(ctx, 3*time.Second, tick); err != nil {
		return err
	}
	start := time.Now()
	before := make([]time.Duration, len(targets))
	for i, t := range targets {
		before[i], t.cpuErr = cpuTime(t.cmd.Process.Pid)
	}
	if err := every(ctx, c.duration, tick); err != nil {
		return err
	}
	wall := time.Since(start)
	for i, t := range targets {
		after, err := cpuTime(t.cmd.Process.Pid)
		t.cpuErr = cmp.Or(t.cpuErr, err)
		t.cpuPct = 100 * float64(after-before[i]) / float64(wall)
		t.rssMiB, _ = statusKiB(t.cmd.Process.Pid, "VmRSS")
		t.rssMiB /= 1024
	}

	// Requests per second, one target at a time.
	wrk, _ := exec.LookPath("wrk")
	tool := "wrk"
	if wrk == "" {
		tool = "a Go client (wrk not found: apt-get install wrk)"
	}
	fmt.Printf("requests/s: %v per target, %d connections, %s\n", c.load, c.connections, tool)
	for _, t := range targets {
		cpu0, _ := cpuTime(t.cmd.Process.Pid)
		var n int64
		if wrk != "" {
			n, t.loadErr = runWrk(ctx, wrk, t.url, c.connections, c.load)
		} else {
			n, t.loadErr = goLoad(ctx, t.url, c.connections, c.load)
		}
		cpu1, _ := cpuTime(t.cmd.Process.Pid)
		t.reqPerSec = float64(n) / c.load.Seconds()
		if n > 0 {
			t.cpuPerReq = (cpu1 - cpu0) / time.Duration(n)
		}
		t.hwmMiB, _ = statusKiB(t.cmd.Process.Pid, "VmHWM")
		t.hwmMiB /= 1024
	}
	print(os.Stdout, targets, c)
	return nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startIdle starts n idle processes with threads idle threads each and waits
// until they all have them.
func startIdle(ctx context.Context, n, threads int) (kill func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return func() {}, fmt.Errorf("find this program to start idle processes: %w", err)
	}
	var cmds []*exec.Cmd
	kill = func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	for range n {
		c := exec.Command(self)
		c.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(threads))
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return kill, fmt.Errorf("start idle process: %w", err)
		}
		cmds = append(cmds, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cmds {
		for {
			got, _ := statusKiB(c.Process.Pid, "Threads")
			if int(got) >= threads {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return kill, fmt.Errorf("idle process %d has %v threads after 30 s, want %d", c.Process.Pid, got, threads)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Printf("started %d idle processes with %d idle threads each\n", n, threads)
	return kill, nil
}

func (t *target) start() error {
	t.cmd = exec.Command(t.path, t.args...)
	t.cmd.Stderr = &t.stderr
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", t.name, t.path, err)
	}
	return nil
}

func (t *target) stop() {
	t.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { t.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.cmd.Process.Kill()
		<-done
	}
}

// waitReady waits until the target answers 200; for an agent it also notes the
// source its /healthz reports.
func (t *target) waitReady(ctx context.Context, client *http.Client) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := t.get(client); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer %s within 20 s; its stderr:\n%s", t.name, t.url, t.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.source = "-"
	if strings.HasSuffix(t.url, "/sample") {
		resp, err := client.Get(strings.TrimSuffix(t.url, "/sample") + "/healthz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := regexp.MustCompile(`"source":"(\w+)"`).FindSubmatch(b); m != nil {
				t.source = string(m[1])
			}
		}
	}
	return nil
}

// get asks the target once, plain, and once with gzip when it compresses; it
// returns both sizes.
func (t *target) get(client *http.Client) (plain, gz int, err error) {
	fetch := func(enc string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, t.url, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", t.url, resp.Status)
		}
		return int(n), err
	}
	if plain, err = fetch(""); err != nil || !t.gzipURL {
		return plain, plain, err
	}
	gz, err = fetch("gzip")
	return plain, gz, err
}

// every calls fn once a second for d.
func every(ctx context.Context, d time.Duration, fn func()) error {
	end := time.Now().Add(d)
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for time.Now().Before(end) {
		fn()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
	return nil
}

// cpuTime is the CPU time a process has used: the sum over its threads of
// /proc/[pid]/task/[tid]/schedstat's first field (nanoseconds on a CPU), or,
// without schedstat, utime + stime from /proc/[pid]/stat (10 ms ticks).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err == nil && len(tasks) > 0 {
		var sum int64
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread exited
			}
			if v, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64); err == nil {
				sum += v
			}
		}
		return time.Duration(sum), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// statusKiB reads one "Key: value [kB]" line of /proc/[pid]/status.
func statusKiB(pid int, key string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strconv.ParseFloat(strings.Fields(v)[0], 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

var wrkRPS = regexp.MustCompile(`(\d+) requests in`)

// runWrk runs wrk and returns how many requests completed.
func runWrk(ctx context.Context, wrk, url string, conns int, d time.Duration) (int64, error) {
	threads := min(2, conns)
	out, err := exec.CommandContext(ctx, wrk, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %w: %s", err, out)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no request count: %s", out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) {
		return 0, fmt.Errorf("wrk saw non-2xx answers: %s", out)
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

// goLoad is wrk's stand-in: conns keep-alive clients asking in a loop for d.
func goLoad(ctx context.Context, url string, conns int, d time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: conns, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var n atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	tr.CloseIdleConnections()
	if err, _ := firstErr.Load().(error); err != nil {
		return n.Load(), err
	}
	return n.Load(), nil
}

// describeMachine says what ran the benchmark: kernel, CPUs, processes and
// threads, load.
func describeMachine() string {
	var uts syscall.Utsname
	syscall.Uname(&uts)
	release := bytesToString(uts.Release[:])
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			model = string(m[1])
		}
	}
	procs := 0
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if c := e.Name()[0]; c >= '1' && c <= '9' {
				procs++
			}
		}
	}
	threads, load := "?", "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b)) // "0.50 0.40 0.30 2/254 1234"
		if len(f) >= 4 {
			load = f[0]
			_, threads, _ = strings.Cut(f[3], "/")
		}
	}
	return fmt.Sprintf("%s: Linux %s, %d CPUs (%s), %d processes, %s threads, load average %s",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), release, runtime.NumCPU(), model, procs, threads, load)
}

func bytesToString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func print(w io.Writer, targets []*target, c config) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tsource\tCPU % of a core at 1/s\tRSS MiB\tpeak RSS MiB\treq/s\tCPU µs/req\tbytes/resp\tgzip bytes\t")
	for _, t := range targets {
		cpu := fmt.Sprintf("%.3f", t.cpuPct)
		if t.cpuErr != nil {
			cpu = "error"
		}
		rps := fmt.Sprintf("%.0f", t.reqPerSec)
		if t.loadErr != nil {
			rps = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%s\t%.1f\t%d\t%d\t\n", t.name, t.source, cpu, t.rssMiB, t.hwmMiB,
			rps, float64(t.cpuPerReq)/float64(time.Microsecond), t.bytes, t.gzBytes)
	}
	tw.Flush()
	ne := targets[len(targets)-1]
	fmt.Fprintln(w)
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		if r := a / b; r < 0.1 {
			return fmt.Sprintf("%.2g×", r)
		} else {
			return fmt.Sprintf("%.2f×", r)
		}
	}
	for _, t := range targets[:len(targets)-1] {
		fmt.Fprintf(w, "%s ÷ node_exporter: CPU %s, RSS %s, req/s %s, CPU per request %s, bytes %s (gzip %s)\n", t.name,
			ratio(t.cpuPct, ne.cpuPct), ratio(t.rssMiB, ne.rssMiB), ratio(t.reqPerSec, ne.reqPerSec),
			ratio(float64(t.cpuPerReq), float64(ne.cpuPerReq)), ratio(float64(t.bytes), float64(ne.bytes)),
			ratio(float64(t.gzBytes), float64(ne.gzBytes)))
	}
	if len(targets) > 2 {
		first := targets[0]
		for _, t := range targets[1 : len(targets)-1] {
			fmt.Fprintf(w, "%s ÷ %s: CPU %s, RSS %s, req/s %s\n", t.name, first.name,
				ratio(t.cpuPct, first.cpuPct), ratio(t.rssMiB, first.rssMiB), ratio(t.reqPerSec, first.reqPerSec))
		}
	}
	for _, t := range targets {
		for _, err := range []error{t.cpuErr, t.loadErr} {
			if err != nil {
				fmt.Fprintf(w, "%s: %v\n", t.name, err)
			}
		}
	}
	if c.procs > 0 {
		fmt.Fprintf(w, "with %d extra idle processes of %d idle threads each\n", c.procs, c.threads)
	}
	fmt.Fprintln(w, "(one run on a shared machine: compare the ratios, not absolute figures across runs)")
}
