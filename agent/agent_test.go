package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

// fakeProc copies the procfs fixture tree so a test can change /proc/stat between
// readings; the source under test is the real procfs reader.
func fakeProc(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS("procfs/testdata/proc")); err != nil {
		t.Fatal(err)
	}
	return dst
}

// loadModules writes the three kernel module files into a fake proc root, from the
// kmod package's fixtures (as if the modules were loaded).
func loadModules(t *testing.T, root string) {
	t.Helper()
	for name, fixture := range map[string]string{"cpu_so1": "cpu.json", "ram_so1": "ram.json", "procesos_so1": "procesos.json"} {
		b, err := os.ReadFile(filepath.Join("kmod/testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		// Whole files only: a sampler reading meanwhile sees a file or none.
		tmp := filepath.Join(root, "."+name)
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenSource(t *testing.T) {
	root := fakeProc(t)
	_, err := OpenSource(SourceKmod, root, "_x", 0)
	if err == nil || !strings.Contains(err.Error(), "procesos_so1_x") || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("kmod without modules: err = %v", err)
	}
	if _, err := OpenSource("magic", root, "", 0); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("bad mode: err = %v", err)
	}
	auto, err := OpenSource(SourceAuto, root, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Auto mode decides on every read, and says why it reads /proc.
	read := func() source.Reading {
		t.Helper()
		r, err := auto.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := read(); r.Source != "procfs" || !strings.Contains(r.Fallback, "kernel modules not loaded") || !strings.Contains(r.Fallback, "cpu_so1") {
		t.Fatalf("auto without modules: %q, %q", r.Source, r.Fallback)
	}
	loadModules(t, root)
	if r := read(); r.Source != "kmod" || r.Fallback != "" || r.Procs.Total != 68 {
		t.Fatalf("auto with modules: %q, %q, %+v", r.Source, r.Fallback, r.Procs)
	}
	os.Remove(filepath.Join(root, "ram_so1"))
	if r := read(); r.Source != "procfs" || r.Fallback != "kernel module file missing: "+filepath.Join(root, "ram_so1") {
		t.Fatalf("auto without ram_so1: %q, %q", r.Source, r.Fallback)
	}
	loadModules(t, root)
	os.WriteFile(filepath.Join(root, "cpu_so1"), []byte(`{"unit":"ns"}`), 0o644)
	if r := read(); r.Source != "procfs" || !strings.Contains(r.Fallback, "unreadable") || !strings.Contains(r.Fallback, `"user" is missing`) {
		t.Fatalf("auto with a bad cpu_so1: %q, %q", r.Source, r.Fallback)
	}
	loadModules(t, root)
	if s, err := OpenSource(SourceKmod, root, "", 0); err != nil || s.Name() != "kmod" {
		t.Fatalf("kmod with modules: %v, %v", s, err)
	}
}

func TestSamplesFromFixture(t *testing.T) {
	root := fakeProc(t)
	src, _ := OpenSource(SourceProcfs, root, "", 2)
	s := New(src, Options{VM: "vm-test", Interval: 20 * time.Millisecond, Top: 2, Log: slog.New(slog.DiscardHandler)})
	var got []record.Record
	err := s.Samples(context.Background(), 2, func(r record.Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The fixture does not change between readings: no CPU time passed, so no CPU % either.
	for _, r := range got {
		if err := r.Validate(); err != nil {
			t.Fatalf("invalid record %+v: %v", r, err)
		}
		if r.VM != "vm-test" || r.TotalRAM != 2048 || r.RAMLibre != 1100 || r.UsoRAM != 948 || r.PorcentajeRAM != 46.29 || r.PorcentajeCPUUso != 0 {
			t.Fatalf("record %+v", r)
		}
		if r.Source != "procfs" || r.TotalProcesos != 11 || r.ProcesosZombie != 1 || r.ProcesosParados != 2 || len(r.TopProcesos) != 2 {
			t.Fatalf("record %+v", r)
		}
	}
	if got[0].ID == got[1].ID {
		t.Fatal("two samples share an id")
	}
}

func TestBuildCPUPercent(t *testing.T) {
	root := fakeProc(t)
	src, _ := OpenSource(SourceProcfs, root, "", 0)
	s := New(src, Options{VM: "v", Interval: time.Second, Top: 2, Log: slog.New(slog.DiscardHandler)})
	a, _ := src.Read(context.Background())
	os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  10132178 290696 3084744 46828523 16683 0 25195 10 0 0\n"), 0o644)
	b, _ := src.Read(context.Background())
	// Δ: user 25, system 25, idle 40, steal 10 → total 100, not busy 50.
	r, ok := s.build(a, b, time.Now())
	if !ok || r.PorcentajeCPUUso != 50 || r.PorcentajeCPULibre != 50 {
		t.Fatalf("cpu %v / %v (%v), want 50 / 50", r.PorcentajeCPUUso, r.PorcentajeCPULibre, ok)
	}
	// Counters of two different sources (ticks, nanoseconds) give no sample.
	b.Source = "kmod"
	if _, ok := s.build(a, b, time.Now()); ok {
		t.Fatal("a record built across a change of source")
	}
}

func TestHTTP(t *testing.T) {
	root := fakeProc(t)
	src, _ := OpenSource(SourceProcfs, root, "", 0)
	s := New(src, Options{VM: "vm-http", Interval: 20 * time.Millisecond, Top: 2, Log: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/sample"); code != http.StatusServiceUnavailable {
		t.Fatalf("/sample before the first sample: %d, want 503", code)
	}
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz before the first sample: %d, want 503", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s.latest.Load() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sample after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, body := get("/sample")
	if code != 200 {
		t.Fatalf("/sample: %d %s", code, body)
	}
	recs, err := record.DecodeBatch([]byte(body))
	if err != nil || recs[0].VM != "vm-http" || recs[0].Source != "procfs" {
		t.Fatalf("/sample body %s: %v", body, err)
	}
	code, body = get("/healthz")
	var h map[string]any
	json.Unmarshal([]byte(body), &h)
	if code != 200 || h["source"] != "procfs" || h["status"] != "ok" || h["reason"] != nil {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if resp, _ := http.Post(srv.URL+"/sample", "text/plain", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /sample: %d", resp.StatusCode)
	}
	get("/nope")
	code, body = get("/metrics")
	if code != 200 || !strings.Contains(body, "vmpulse_agent_samples_total") || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	err = testutil.GatherAndCompare(s.reg, strings.NewReader(`
# HELP vmpulse_agent_http_requests_total HTTP requests served, by path and status code.
# TYPE vmpulse_agent_http_requests_total counter
vmpulse_agent_http_requests_total{code="200",path="/healthz"} 1
vmpulse_agent_http_requests_total{code="200",path="/metrics"} 1
vmpulse_agent_http_requests_total{code="200",path="/sample"} 1
vmpulse_agent_http_requests_total{code="404",path="other"} 1
vmpulse_agent_http_requests_total{code="405",path="/sample"} 1
vmpulse_agent_http_requests_total{code="503",path="/healthz"} 1
vmpulse_agent_http_requests_total{code="503",path="/sample"} 1
# HELP vmpulse_agent_source_info 1 for the source the latest sample was read from (kmod or procfs), and whether the kernel modules are expected (-expect-kmod).
# TYPE vmpulse_agent_source_info gauge
vmpulse_agent_source_info{expect_kmod="false",source="procfs"} 1
# HELP vmpulse_agent_degraded 1 while the kernel modules are expected (-expect-kmod) but the agent reads /proc instead.
# TYPE vmpulse_agent_degraded gauge
vmpulse_agent_degraded 0
`), "vmpulse_agent_http_requests_total", "vmpulse_agent_source_info", "vmpulse_agent_degraded")
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(s.samples); n < 1 {
		t.Fatalf("vmpulse_agent_samples_total = %v", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAgentBinaryCountMode runs the real binary against this machine's /proc.
func TestAgentBinaryCountMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "vmpulse-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/vmpulse-agent").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-count", "2", "-interval", "100ms", "-source", "procfs", "-vm", "ci").Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", out)
	}
	for _, l := range lines {
		recs, err := record.DecodeBatch([]byte(l))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		r := recs[0]
		if r.VM != "ci" || r.Source != "procfs" || r.ProcesosCorriendo+r.ProcesosDurmiendo+r.ProcesosZombie+r.ProcesosParados > r.TotalProcesos {
			t.Fatalf("record %+v", r)
		}
	}
	// A source that cannot be read makes the agent exit with the reason, instead
	// of serving "starting" forever.
	cmd := exec.Command(bin, "-source", "procfs", "-proc", t.TempDir(), "-addr", "127.0.0.1:0")
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if cmd.ProcessState.Success() || !strings.Contains(string(out), "first reading") {
			t.Fatalf("unreadable source: exit %v, output %s", cmd.ProcessState, out)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the agent kept running with an unreadable source")
	}
	// A bad flag names itself.
	msg, err := exec.Command(bin, "-interval", "1ms").CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "-interval") {
		t.Fatalf("bad interval: %v %s", err, msg)
	}
}

// syncBuffer collects log output written from the sampling goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestExpectKmod: with the kernel modules expected, reading /proc is loud (error
// log with the reason, /healthz 503 degraded, metrics) while /sample keeps
// serving; once the modules are there the agent reads them and is healthy, and
// a module file that disappears is reported again.
func TestExpectKmod(t *testing.T) {
	root := fakeProc(t)
	src, err := OpenSource(SourceAuto, root, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	s := New(src, Options{VM: "vm-kmod", Interval: 20 * time.Millisecond, Top: 2, ExpectKmod: true,
		Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	type health struct {
		Status, Source, Reason string
		ExpectKmod             bool `json:"expect_kmod"`
	}
	// waitFor polls /healthz and /sample until the sample comes from src.
	waitFor := func(src string) (int, health, record.Record) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var h health
			var rec record.Record
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			code := resp.StatusCode
			if resp, err := http.Get(srv.URL + "/sample"); err == nil {
				json.NewDecoder(resp.Body).Decode(&rec)
				resp.Body.Close()
			}
			if h.Source == src && rec.Source == src {
				return code, h, rec
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s sample after 5 s: health %+v, sample source %q", src, h, rec.Source)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	code, h, rec := waitFor("procfs")
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || !h.ExpectKmod || !strings.Contains(h.Reason, "kernel modules not loaded") {
		t.Fatalf("/healthz while reading /proc: %d %+v", code, h)
	}
	if err := rec.Validate(); err != nil || rec.TotalProcesos != 11 {
		t.Fatalf("/sample while degraded: %+v, %v", rec, err)
	}
	if testutil.ToFloat64(s.degraded) != 1 || testutil.ToFloat64(s.sourceInfo.WithLabelValues("procfs", "true")) != 1 {
		t.Fatal("metrics do not say degraded")
	}
	if l := logs.String(); !strings.Contains(l, `"level":"ERROR"`) || !strings.Contains(l, "kernel modules not loaded") {
		t.Fatalf("no error log with the reason:\n%s", l)
	}

	loadModules(t, root)
	code, h, rec = waitFor("kmod")
	if code != http.StatusOK || h.Status != "ok" || h.Reason != "" || rec.TotalProcesos != 68 {
		t.Fatalf("/healthz with the modules: %d %+v, sample %+v", code, h, rec)
	}
	if testutil.ToFloat64(s.degraded) != 0 || testutil.CollectAndCount(s.sourceInfo) != 1 || testutil.ToFloat64(s.sourceInfo.WithLabelValues("kmod", "true")) != 1 {
		t.Fatal("metrics do not say kmod")
	}

	os.Remove(filepath.Join(root, "procesos_so1"))
	code, h, _ = waitFor("procfs")
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || !strings.Contains(h.Reason, "file missing: "+filepath.Join(root, "procesos_so1")) {
		t.Fatalf("/healthz after a module file went away: %d %+v", code, h)
	}
	// One error line per change of reason (loading the three files one by one
	// may show "file missing" in between), not one per sample.
	if n := strings.Count(logs.String(), `"level":"ERROR","msg":"kernel modules expected`); n < 2 || n > 4 {
		t.Fatalf("%d error lines, want one per change of reason:\n%s", n, logs.String())
	}
}

// TestAgentBinaryExpectKmod runs the real binary with EXPECT_KMOD on a /proc
// without the modules: it serves samples from /proc, says why on /healthz (503)
// and logs the reason at error level.
func TestAgentBinaryExpectKmod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "vmpulse-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/vmpulse-agent").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-expect-kmod", "-source", "procfs").CombinedOutput(); err == nil || !strings.Contains(string(out), "-expect-kmod") {
		t.Fatalf("-expect-kmod -source procfs: %v %s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-proc", fakeProc(t), "-interval", "50ms", "-vm", "ci")
	cmd.Env = append(os.Environ(), "EXPECT_KMOD=true")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Wait for the listening address and the error line, in either order.
	var log []string
	addr, reported := "", false
	timeout := time.After(10 * time.Second)
	for addr == "" || !reported {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the agent exited:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			// Cloud Logging's field names (internal/logging).
			var e struct{ Severity, Message, Addr, Reason string }
			json.Unmarshal([]byte(l), &e)
			addr = cmp.Or(addr, e.Addr)
			reported = reported || e.Severity == "ERROR" && strings.Contains(e.Reason, "kernel modules not loaded")
		case <-timeout:
			t.Fatalf("want the listening address and an error log with the reason:\n%s", strings.Join(log, "\n"))
		}
	}
	go func() {
		for range lines {
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var h struct{ Status, Source, Reason string }
		json.Unmarshal(b, &h)
		if h.Status == "degraded" {
			if resp.StatusCode != http.StatusServiceUnavailable || h.Source != "procfs" || !strings.Contains(h.Reason, "not loaded") {
				t.Fatalf("/healthz: %d %s", resp.StatusCode, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never degraded: %d %s", resp.StatusCode, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/sample")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if recs, err := record.DecodeBatch(b); resp.StatusCode != 200 || err != nil || recs[0].Source != "procfs" {
		t.Fatalf("/sample while degraded: %d %s %v", resp.StatusCode, b, err)
	}
}
