package agent

import (
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
	"testing"
	"time"

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

func TestOpenSource(t *testing.T) {
	root := fakeProc(t)
	if s, err := OpenSource(SourceAuto, root, "", 0); err != nil || s.Name() != "procfs" {
		t.Fatalf("auto without modules: %v, %v", s, err)
	}
	_, err := OpenSource(SourceKmod, root, "_x", 0)
	if err == nil || !strings.Contains(err.Error(), "procesos_so1_x") {
		t.Fatalf("kmod without modules: err = %v", err)
	}
	if _, err := OpenSource("magic", root, "", 0); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("bad mode: err = %v", err)
	}
	for _, f := range []string{"cpu_so1", "ram_so1", "procesos_so1"} {
		os.WriteFile(filepath.Join(root, f), []byte("{}"), 0o644)
	}
	if s, err := OpenSource(SourceAuto, root, "", 0); err != nil || s.Name() != "kmod" {
		t.Fatalf("auto with modules: %v, %v", s, err)
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
		if r.TotalProcesos != 9 || r.ProcesosZombie != 1 || r.ProcesosParados != 2 || len(r.TopProcesos) != 2 {
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
	r := s.build(a, b, time.Now())
	if r.PorcentajeCPUUso != 50 || r.PorcentajeCPULibre != 50 {
		t.Fatalf("cpu %v / %v, want 50 / 50", r.PorcentajeCPUUso, r.PorcentajeCPULibre)
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
		if _, ok := s.Latest(); ok {
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
	if err != nil || recs[0].VM != "vm-http" {
		t.Fatalf("/sample body %s: %v", body, err)
	}
	code, body = get("/healthz")
	var h map[string]any
	json.Unmarshal([]byte(body), &h)
	if code != 200 || h["source"] != "procfs" || h["status"] != "ok" {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	_, body = get("/metrics")
	for _, want := range []string{`vmpulse_agent_source_info{source="procfs"} 1`, "vmpulse_agent_samples_total", `vmpulse_agent_http_requests_total{path="/sample",code="200"} 1`} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if resp, _ := http.Post(srv.URL+"/sample", "text/plain", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /sample: %d", resp.StatusCode)
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
		if r.VM != "ci" || r.ProcesosCorriendo+r.ProcesosDurmiendo+r.ProcesosZombie+r.ProcesosParados > r.TotalProcesos {
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

func TestVMName(t *testing.T) {
	for in, want := range map[string]string{
		"web-1": "web-1", "(none)": "vm", "": "vm", "my host!": "my-host", "ünï": "n",
		strings.Repeat("x", 80): strings.Repeat("x", 64),
	} {
		if got := VMName(in); got != want {
			t.Errorf("VMName(%q) = %q, want %q", in, got, want)
		}
	}
}
