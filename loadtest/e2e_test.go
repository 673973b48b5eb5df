package loadtest_test

// End to end against the real local stack (bin/vmpulse-up with -feed=false, so only
// the load under test reaches MySQL): phase 1 with the agent sampling every 20 ms, phase
// 2 through the 50/50 split, then every record is looked up in the embedded MySQL.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/loadtest/report"
)

type stack struct {
	agentURL, splitURL, dsn string
	tokenFile               string // the ingest token vmpulse-up created
	db                      *sql.DB
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// vmpulseUp finds the stack binary: $VMPULSE_BIN (the binary or its directory,
// default <repo>/bin), else builds ./local/cmd/vmpulse-up.
func vmpulseUp(t *testing.T) string {
	root := repoRoot(t)
	p := os.Getenv("VMPULSE_BIN")
	if p == "" {
		p = filepath.Join(root, "bin")
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		p = filepath.Join(p, "vmpulse-up")
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if _, err := os.Stat(filepath.Join(root, "local", "cmd", "vmpulse-up")); err != nil {
		missing(t, "the local stack is missing: neither %s nor ./local/cmd/vmpulse-up exists (make build, or set VMPULSE_BIN)", p)
	}
	return goBinary(t, "local/cmd/vmpulse-up")
}

func startStack(t *testing.T) *stack {
	bin := vmpulseUp(t)
	addr := map[string]string{}
	for _, k := range []string{"split", "route1", "route2", "agent", "relay", "pubsub", "mysql"} {
		addr[k] = freePort(t)
	}
	tokenFile := filepath.Join(t.TempDir(), ".vmpulse", "ingest-token")
	args := []string{"-feed=false", "-relay=false", "-agent-interval", "20ms", "-web-dir", "", "-token-file", tokenFile}
	for _, k := range []string{"split", "route1", "route2", "agent", "relay", "pubsub", "mysql"} {
		args = append(args, "-"+k+"-addr", addr[k])
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("vmpulse-up did not stop within 15 s of SIGTERM; killing it")
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vmpulse-up output:\n%s", tail(out.String(), 40))
		}
	})
	s := &stack{
		tokenFile: tokenFile,
		agentURL:  "http://" + addr["agent"],
		splitURL:  "http://" + addr["split"],
		dsn:       "root@tcp(" + addr["mysql"] + ")/vmpulse?timeout=5s",
	}
	db, err := sql.Open("mysql", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("vmpulse-up exited during start-up:\n%s", tail(out.String(), 40))
		default:
		}
		if s.ready() {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("vmpulse-up not ready after 90 s:\n%s", tail(out.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *stack) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(s.agentURL + "/sample")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return false
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.splitURL, "http://"), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int
	return s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM records").Scan(&n) == nil
}

// checkStored asserts that the table holds exactly the records of the file, once each,
// and that the split between the routes is consistent with 50/50.
func (s *stack) checkStored(t *testing.T, path string, ids []string) {
	t.Helper()
	rows, err := s.db.Query("SELECT id, route FROM records")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	perRoute := map[string]int{}
	for rows.Next() {
		var id, route string
		if err := rows.Scan(&id, &route); err != nil {
			t.Fatal(err)
		}
		stored[id]++
		perRoute[route]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missingIDs, extra, dup []string
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		if stored[id] == 0 {
			missingIDs = append(missingIDs, id)
		}
	}
	for id, n := range stored {
		if !want[id] {
			extra = append(extra, id)
		}
		if n > 1 {
			dup = append(dup, id)
		}
	}
	if len(missingIDs)+len(extra)+len(dup) > 0 {
		t.Errorf("MySQL does not hold exactly the %d records of the file: %d missing (e.g. %v), %d not in the file, %d stored twice; rows per route %v",
			len(ids), len(missingIDs), missingIDs[:min(3, len(missingIDs))], len(extra), len(dup), perRoute)
	}
	items, err := driver.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := driver.Split(context.Background(), s.db, items, 0.001)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Write(&b)
	t.Logf("%s", b.String())
	if rep.PerRoute["route1"] == 0 || rep.PerRoute["route2"] == 0 || !rep.Consistent {
		t.Errorf("split not consistent with 50/50 (p = %.3g): %v", rep.P, rep.PerRoute)
	}
}

func TestE2ELocust(t *testing.T) {
	argv := locust(t)
	s := startStack(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "records.json")

	logs, code := run(t, 2*time.Minute, nil, append(slices.Clone(argv),
		"-f", "loadtest/locustfile_collect.py", "--headless", "--only-summary", "-H", s.agentURL,
		"-u", "50", "-r", "25", "-t", "90s", "--records", "200", "--out", path, "--run-file", filepath.Join(dir, "run.json"),
		"--csv", filepath.Join(dir, "collect"), "--html", filepath.Join(dir, "collect.html"))...)
	if code != 0 {
		t.Fatalf("collect: exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
	}
	ids := readRecords(t, path)
	if len(ids) != 200 {
		t.Fatalf("collect: %d records, want exactly 200", len(ids))
	}

	logs, code = run(t, 2*time.Minute, nil, append(slices.Clone(argv),
		"-f", "loadtest/locustfile_send.py", "--headless", "--only-summary", "-H", s.splitURL,
		"-u", "50", "-r", "25", "--in", path, "--token-file", s.tokenFile, "--run-file", filepath.Join(dir, "run.json"),
		"--csv", filepath.Join(dir, "send"), "--html", filepath.Join(dir, "send.html"))...)
	if code != 0 || !strings.Contains(logs, "200/200 records committed") {
		t.Fatalf("send: exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
	}
	for _, f := range []string{"collect_stats.csv", "collect.html", "send_stats.csv", "send.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	s.checkStored(t, path, ids)
	splitCLI(t, s, path)

	// The report of the Locust run: one VM, its 200 samples sent, split read back.
	bin := goBinary(t, "loadtest/cmd/vmpulse-load")
	html := filepath.Join(dir, "report.html")
	logs, code = run(t, time.Minute, []string{"MYSQL_DSN=" + s.dsn}, bin, "report", "-run", filepath.Join(dir, "run.json"), "-out", html)
	if code != 0 || !strings.Contains(logs, "split: route1 ") {
		t.Fatalf("report: exit %d (%s):\n%s", code, gist(logs), logs)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json of the Locust run: %v\n%s", err, b)
	}
	samples, tool, p95 := 0, "", 0.0
	if len(rep.VMs) > 0 {
		samples = rep.VMs[0].Samples
	}
	if len(rep.Phases) > 0 {
		tool = rep.Phases[0].Tool
	}
	if len(rep.Race) > 0 {
		p95 = rep.Race[0].CommitP95MS
	}
	if len(rep.VMs) != 1 || samples < 200 || rep.Split.Total != 200 || len(rep.Phases) != 2 || !strings.HasPrefix(tool, "locust") ||
		len(rep.Race) != 2 || p95 <= 0 {
		t.Errorf("report of the Locust run: %d VMs (want 1), %d samples (want ≥ 200), split total %d (want 200), %d phases (want 2), tool %q (want locust…), %d routes raced (want 2), commit p95 %g ms (want > 0)\n%s",
			len(rep.VMs), samples, rep.Split.Total, len(rep.Phases), tool, len(rep.Race), p95, b)
	}
}

func TestE2EGoDriver(t *testing.T) {
	s := startStack(t)
	bin := goBinary(t, "loadtest/cmd/vmpulse-load")
	path := filepath.Join(t.TempDir(), "records.json")

	logs, code := run(t, 2*time.Minute, nil, bin, "collect", "-agent", s.agentURL,
		"-users", "50", "-spawn-rate", "25", "-records", "200", "-duration", "90s", "-out", path, "-run", "")
	if code != 0 || !strings.Contains(logs, "200 unique samples") {
		t.Fatalf("collect: exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
	}
	ids := readRecords(t, path)
	if len(ids) != 200 {
		t.Fatalf("collect: %d records, want exactly 200", len(ids))
	}
	// Without the token the send stops before any request and says how to pass one.
	logs, code = run(t, time.Minute, []string{"INGRESS_URL=" + s.splitURL, "IN=" + path}, bin, "send", "-run", "")
	if code != 2 || !strings.Contains(logs, "INGEST_TOKEN=<token>") || strings.Contains(logs, "records committed") {
		t.Fatalf("send without a token: exit %d (%s):\n%s", code, gist(logs), tail(logs, 10))
	}
	// Flags fall back to the environment; the token comes from the file vmpulse-up wrote.
	logs, code = run(t, 2*time.Minute, []string{"INGRESS_URL=" + s.splitURL, "SEND_USERS=50", "SEND_SPAWN_RATE=25", "IN=" + path,
		"INGEST_TOKEN_FILE=" + s.tokenFile}, bin, "send", "-run", "")
	if code != 0 || !strings.Contains(logs, "200/200 records committed") {
		t.Fatalf("send: exit %d (%s):\n%s", code, gist(logs), tail(logs, 40))
	}
	s.checkStored(t, path, ids)
	splitCLI(t, s, path)
}

// splitCLI runs `vmpulse-load split` the way `make load-split` does.
func splitCLI(t *testing.T, s *stack, path string) {
	t.Helper()
	bin := goBinary(t, "loadtest/cmd/vmpulse-load")
	logs, code := run(t, time.Minute, []string{"MYSQL_DSN=" + s.dsn}, bin, "split", "-in", path)
	if code != 0 || !strings.Contains(logs, "200 found in MySQL, 0 missing") || !strings.Contains(logs, "consistent with 50/50") {
		t.Errorf("vmpulse-load split: exit %d (%s):\n%s", code, gist(logs), logs)
	}
}
