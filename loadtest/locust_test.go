package loadtest_test

// Real Locust against in-process fakes of the agent and the ingress: the mechanics of the
// two locustfiles (stop at the target, de-duplication, exactly-once queue, retries,
// rejections, the unsent file, the reports) without the rest of the stack.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/record"
)

func testRecord(id string, n int) map[string]any {
	r := map[string]any{
		"vm": "vm-test", "total_ram": 2048, "ram_libre": 1100, "uso_ram": 948,
		"porcentaje_ram": 46.3, "porcentaje_cpu_uso": 22.5, "porcentaje_cpu_libre": 77.5,
		"procesos_corriendo": 3, "total_procesos": 200 + n, "procesos_durmiendo": 150,
		"procesos_zombie": 1, "procesos_parados": 2, "hora": "2025-06-17 02:21:54",
	}
	if id != "" {
		r["id"] = id
	}
	return r
}

func TestLocustCollectFakeAgent(t *testing.T) {
	argv := locust(t)
	var hits atomic.Int64
	start := time.Now()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if n%40 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		seq := int(time.Since(start) / (10 * time.Millisecond)) // a new sample every 10 ms
		json.NewEncoder(w).Encode(testRecord(fmt.Sprintf("S%06d", seq), seq))
	}))
	defer agent.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "records.json")
	began := time.Now()
	logs, code := run(t, 90*time.Second, nil, append(argv,
		"-f", "loadtest/locustfile_collect.py", "--headless", "-H", agent.URL,
		"-u", "40", "-r", "40", "-t", "60s", "--wait", "0.02-0.05", "--records", "300",
		"--out", out, "--csv", filepath.Join(dir, "collect"), "--html", filepath.Join(dir, "collect.html"))...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, tail(logs, 40))
	}
	if el := time.Since(began); el > 45*time.Second {
		t.Errorf("took %v: it should stop by itself at 300 records (~3 s)", el)
	}
	ids := readRecords(t, out)
	if len(ids) != 300 {
		t.Fatalf("%d records, want exactly 300", len(ids))
	}
	for _, f := range []string{"collect_stats.csv", "collect_failures.csv", "collect.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("report %s: %v", f, err)
		}
	}
	if !strings.Contains(logs, "300 unique records") || !strings.Contains(logs, "duplicates") {
		t.Errorf("no summary in the output:\n%s", tail(logs, 30))
	}
	stats, _ := os.ReadFile(filepath.Join(dir, "collect_failures.csv"))
	if !strings.Contains(string(stats), "HTTP 503") {
		t.Errorf("the agent's 503s are not in the failures report:\n%s", stats)
	}
}

// ingress is a fake /ingest that stores each id once and misbehaves on purpose.
type ingress struct {
	mu       sync.Mutex
	stored   map[string]bool
	posts    map[string]int
	inFlight map[string]bool
	overlap  []string
	fail     map[string]int // id -> 503s left
	hangup   map[string]int // id -> connection drops left
	never    map[string]bool
}

func (f *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/ingest" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want POST /ingest with application/json", http.StatusBadRequest)
		return
	}
	var probe struct{ ID string }
	json.Unmarshal(body, &probe)
	id := probe.ID
	f.mu.Lock()
	f.posts[id]++
	f.mu.Unlock()
	if _, err := record.DecodeBatch(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	if f.inFlight[id] {
		f.overlap = append(f.overlap, id)
	}
	f.inFlight[id] = true
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, id)
	switch {
	case f.never[id]:
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
	case f.fail[id] > 0:
		f.fail[id]--
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
	case f.hangup[id] > 0:
		f.hangup[id]--
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	default:
		f.stored[id] = true
		w.WriteHeader(http.StatusCreated)
	}
}

func TestLocustSendFakeIngress(t *testing.T) {
	argv := locust(t)
	const n = 120
	var recs []map[string]any
	for i := range n {
		recs = append(recs, testRecord(fmt.Sprintf("R%04d", i), i))
	}
	bad := testRecord("BAD1", 0)
	bad["porcentaje_cpu_uso"] = 120
	recs = append(recs, bad)
	dir := t.TempDir()
	in := filepath.Join(dir, "records.json")
	var lines []string
	for _, r := range recs {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
	}
	os.WriteFile(in, []byte("[\n"+strings.Join(lines, ",\n")+"\n]\n"), 0o644)

	ing := &ingress{stored: map[string]bool{}, posts: map[string]int{}, inFlight: map[string]bool{},
		fail: map[string]int{}, hangup: map[string]int{}, never: map[string]bool{"R0003": true}}
	for i := 0; i < n; i += 10 {
		ing.fail[fmt.Sprintf("R%04d", i)] = 2
	}
	for i := 5; i < n; i += 20 {
		ing.hangup[fmt.Sprintf("R%04d", i)] = 1
	}
	srv := httptest.NewServer(ing)
	defer srv.Close()

	logs, code := run(t, 90*time.Second, []string{"IN=" + in, "MAX_ATTEMPTS=3"}, append(argv,
		"-f", "loadtest/locustfile_send.py", "--headless", "-H", srv.URL,
		"-u", "30", "-r", "30", "--wait", "0.01-0.04",
		"--csv", filepath.Join(dir, "send"), "--html", filepath.Join(dir, "send.html"))...)
	if code != 1 {
		t.Errorf("exit %d, want 1 (one record rejected, one given up)", code)
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if len(ing.overlap) > 0 {
		t.Errorf("records sent by two users at once: %v", ing.overlap)
	}
	if len(ing.stored) != n-1 {
		t.Errorf("%d records stored, want %d:\n%s", len(ing.stored), n-1, tail(logs, 40))
	}
	for i := range n {
		id := fmt.Sprintf("R%04d", i)
		want := 1
		switch {
		case i == 3:
			want = 3 // never succeeds: MAX_ATTEMPTS
		case i%10 == 0:
			want = 3
		case i%20 == 5:
			want = 2
		}
		if ing.posts[id] != want {
			t.Errorf("%s posted %d times, want %d", id, ing.posts[id], want)
		}
	}
	if ing.posts["BAD1"] != 1 {
		t.Errorf("the invalid record was posted %d times, want 1 (a 4xx is not retried)", ing.posts["BAD1"])
	}
	for _, want := range []string{"rejected record 120 (BAD1): HTTP 400", "porcentaje_cpu_uso",
		"gave up on record 3 (R0003) after 3 attempts", "119/121 records committed", "1 rejected", "1 gave up",
		"33 failed attempts", "connection error"} { // 12 records × 2 503s, 6 hang-ups, 3 for R0003
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(logs, 50))
		}
	}
	unsent := readRecords(t, filepath.Join(dir, "records.unsent.json"))
	if len(unsent) != 1 || unsent[0] != "R0003" {
		t.Errorf("unsent file holds %v, want [R0003]", unsent)
	}
	for _, f := range []string{"send_stats.csv", "send_failures.csv", "send.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("report %s: %v", f, err)
		}
	}
}
