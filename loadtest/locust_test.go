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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/loadtest/report"
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
	logs, code := run(t, 90*time.Second, []string{"RUN_FILE=" + filepath.Join(dir, "run.json")}, append(argv,
		"-f", "loadtest/locustfile_collect.py", "--headless", "-H", agent.URL,
		"-u", "40", "-r", "40", "-t", "60s", "--wait", "0.02-0.05", "--records", "300",
		"--out", out, "--csv", filepath.Join(dir, "collect"), "--html", filepath.Join(dir, "collect.html"))...)
	if code != 0 {
		t.Fatalf("exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
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
	if !strings.Contains(logs, "300 unique samples") || !strings.Contains(logs, "duplicates") {
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
	if r.Header.Get("Authorization") != "Bearer tok" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return
	}
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

	logs, code := run(t, 90*time.Second, []string{"IN=" + in, "MAX_ATTEMPTS=3", "INGEST_TOKEN=tok", "RUN_FILE=" + filepath.Join(dir, "run.json")}, append(argv,
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

// namedFakeAgent serves a new sample every interval named vm, and says its interval
// on /healthz when tell is set.
func namedFakeAgent(t *testing.T, vm string, interval time.Duration, tell bool) *httptest.Server {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if tell {
				fmt.Fprintf(w, `{"status":"ok","vm":%q,"interval":%q}`, vm, interval)
			} else {
				http.NotFound(w, r)
			}
			return
		}
		seq := int(time.Since(start) / interval)
		m := testRecord(fmt.Sprintf("%s-%05d", vm, seq), seq)
		m["vm"] = vm
		m["hora"] = start.UTC().Add(time.Duration(seq) * interval).Format("2006-01-02 15:04:05")
		json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLocustCollectSeveralAgents(t *testing.T) {
	argv := locust(t)
	a := []*httptest.Server{namedFakeAgent(t, "vm-a", 5*time.Millisecond, true), namedFakeAgent(t, "vm-b", 5*time.Millisecond, false),
		namedFakeAgent(t, "vm-c", 5*time.Millisecond, true)}
	urls := a[0].URL + "," + a[1].URL + "," + a[2].URL
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprintf("sequential=%v", seq), func(t *testing.T) {
			dir := t.TempDir()
			out, runFile := filepath.Join(dir, "records.json"), filepath.Join(dir, "run.json")
			args := append(slices.Clone(argv), "-f", "loadtest/locustfile_collect.py", "--headless", "--only-summary",
				"--agents", urls, "-u", "8", "-r", "40", "-t", "40s", "--wait", "0.005-0.01", "--records", "60",
				"--out", out, "--run-file", runFile)
			if seq {
				args = append(args, "--sequential")
			}
			logs, code := run(t, 2*time.Minute, nil, args...)
			if code != 0 {
				t.Fatalf("exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
			}
			f, err := driver.ReadRecordsFile(out, driver.UnitAuto)
			if err != nil {
				t.Fatal(err)
			}
			groups := driver.GroupByVM(f.Items)
			if len(groups) != 3 || len(groups[0].Items) != 60 || len(groups[2].Items) != 60 || groups[1].VM != "vm-b" {
				t.Fatalf("%d groups: %v", len(groups), groups)
			}
			run, err := report.LoadRun(runFile)
			if err != nil || len(run.Phases) != 3 {
				t.Fatalf("run file: %v %+v", err, run)
			}
			for i, p := range run.Phases {
				if p.Phase != "collect" || p.Unique != 60 || p.Outcome != "ok" || len(p.Timeline) == 0 || p.Requests == 0 ||
					p.Latency.Count != p.Requests || !strings.HasPrefix(p.Tool, "locust ") || p.VM != groups[i].VM {
					t.Errorf("phase %d: %+v", i, p)
				}
				if users := p.Timeline[len(p.Timeline)-1].Users; users != 8 && !seq {
					t.Errorf("phase %d ends with %d users, want 8 per agent", i, users)
				}
			}
			if p := run.Phases; seq == p[1].Started.Before(p[0].Ended) {
				t.Errorf("sequential=%v: agent 2 from %v, agent 1 until %v", seq, p[1].Started, p[0].Ended)
			}
			if p := run.Phases[0]; p.AgentInterval != "5ms" || p.AgentIntervalFrom != "healthz" {
				t.Errorf("agent interval %q from %q", p.AgentInterval, p.AgentIntervalFrom)
			}
		})
	}
}

func TestLocustCollectShortSaysWhatToChange(t *testing.T) {
	argv := locust(t)
	slow := namedFakeAgent(t, "slow", 200*time.Millisecond, true)
	dir := t.TempDir()
	logs, code := run(t, time.Minute, nil, append(slices.Clone(argv), "-f", "loadtest/locustfile_collect.py", "--headless",
		"--only-summary", "-H", slow.URL, "-u", "5", "-r", "5", "-t", "3s", "--wait", "0.01-0.02", "--records", "50",
		"--out", filepath.Join(dir, "r.json"), "--run-file", filepath.Join(dir, "run.json"))...)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (short):\n%s", code, tail(logs, 30))
	}
	for _, want := range []string{"SHORT: collected", "of 50 unique samples", "every 200ms (its /healthz)", "at most 15",
		"-interval 50ms", "make up -agent-interval 50ms"} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(logs, 20))
		}
	}
}

// routedIngress checks the token, decodes each record as the routes do and answers
// 201 naming a route and a commit time.
type routedIngress struct {
	mu     sync.Mutex
	n      int
	totals []int64
	noAuth int
}

func (f *routedIngress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer tok" {
		f.noAuth++
		http.Error(w, `{"error":"missing or invalid bearer token"}`, http.StatusUnauthorized)
		return
	}
	recs, err := record.DecodeBatch(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.n++
	f.totals = append(f.totals, recs[0].TotalRAM)
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"route":"route%d","stored":1,"ids":[%q],"commit_ms":%d.25,"batch":1}`, f.n%2+1, recs[0].ID, f.n%2+1)
}

func TestLocustSendTokenAndPeerFile(t *testing.T) {
	argv := locust(t)
	ing := &routedIngress{}
	srv := httptest.NewServer(ing)
	defer srv.Close()
	peer := filepath.Join(repoRoot(t), "loadtest", "testdata", "records", "peer-kib-metrics.json")
	dir := t.TempDir()
	base := append(slices.Clone(argv), "-f", "loadtest/locustfile_send.py", "--headless", "--only-summary", "-H", srv.URL,
		"-u", "10", "-r", "10", "--wait", "0-0.01", "--in", peer, "--run-file", filepath.Join(dir, "run.json"))

	// Without a token: refused at once, saying how to pass one.
	start := time.Now()
	logs, code := run(t, time.Minute, nil, base...)
	if code == 0 || ing.noAuth != 0 || !strings.Contains(logs, "INGEST_TOKEN=<token>") || !strings.Contains(logs, "--token-file") {
		t.Fatalf("without a token: exit %d, %d requests:\n%s", code, ing.noAuth, tail(logs, 20))
	}
	t.Logf("refused after %v", time.Since(start))

	// A wrong token stops the phase at the first 401.
	logs, code = run(t, time.Minute, []string{"INGEST_TOKEN=wrong"}, base...)
	if code != 1 || !strings.Contains(logs, "STOPPED: the ingress refused the token") || ing.noAuth > 12 || ing.n != 0 {
		t.Fatalf("wrong token: exit %d, %d refused, %d stored:\n%s", code, ing.noAuth, ing.n, tail(logs, 20))
	}

	// With the token (from a file): the peer's KiB figures arrive in MiB.
	tokenFile := filepath.Join(dir, "ingest-token")
	os.WriteFile(tokenFile, []byte("tok\n"), 0o600)
	logs, code = run(t, time.Minute, []string{"INGEST_TOKEN_FILE=" + tokenFile}, base...)
	if code != 0 || ing.n != 40 {
		t.Fatalf("exit %d, %d stored:\n%s", code, ing.n, tail(logs, 30))
	}
	for _, v := range ing.totals {
		if v != 3925 {
			t.Fatalf("stored total_ram %d, want 3925 MiB (4018904 KiB)", v)
		}
	}
	for _, want := range []string{`records under "metrics"`, "RAM figures in KiB", "converted to MiB in 40 records", "40/40 records committed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	run, err := report.LoadRun(filepath.Join(dir, "run.json"))
	if err != nil || len(run.Phases) != 1 {
		t.Fatalf("run file: %v", err)
	}
	p := run.Phases[0]
	if p.Phase != "send" || p.Committed != 40 || p.RAMUnit != "kib" || p.Routes["route1"].Records+p.Routes["route2"].Records != 40 ||
		len(p.Routes["route2"].CommitMS) != p.Routes["route2"].Records || p.FirstHora != "2025-07-02 03:06:09" || p.VM != "unknown" {
		t.Errorf("send phase: %+v", p)
	}
}
