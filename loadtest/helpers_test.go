package loadtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/record"
)

// repoRoot is the module root (the tests run in loadtest/).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func inCI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// missing skips the test locally and fails it in CI, saying how to get the component.
func missing(t testing.TB, format string, a ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, a...)
	if inCI() {
		t.Fatal("CI=true, so not skipping: " + msg)
	}
	t.Skip(msg)
}

var (
	locustOnce sync.Once
	locustArgv []string
	locustErr  string
)

// locust returns the command that runs Locust: $LOCUST (split on spaces) if set,
// otherwise Debian's /usr/bin/python3 -m locust (python3-locust), otherwise locust on
// PATH, as long as it imports.
func locust(t testing.TB) []string {
	t.Helper()
	locustOnce.Do(func() {
		var candidates [][]string
		if v := os.Getenv("LOCUST"); v != "" {
			candidates = append(candidates, strings.Fields(v))
		}
		candidates = append(candidates, []string{"/usr/bin/python3", "-m", "locust"}, []string{"locust"})
		for _, c := range candidates {
			cmd := exec.Command(c[0], append(c[1:], "--version")...)
			if out, err := cmd.CombinedOutput(); err == nil && strings.Contains(strings.ToLower(string(out)), "locust") {
				locustArgv = c
				return
			}
		}
		locustErr = "Locust is not installed: apt-get install python3-locust (or set LOCUST to the command that runs it)"
	})
	if locustArgv == nil {
		missing(t, "%s", locustErr)
	}
	return locustArgv
}

// run runs a command with a timeout, returning its combined output and exit code.
func run(t testing.TB, timeout time.Duration, env []string, argv ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(append(cleanEnv(), "PYTHONDONTWRITEBYTECODE=1"), env...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %v:\n%s", strings.Join(argv, " "), timeout, tail(out.String(), 60))
	}
	if err != nil && code < 0 {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	if os.Getenv("LOADTEST_LOGS") != "" {
		t.Logf("output of %s:\n%s", strings.Join(argv, " "), out.String())
	}
	t.Logf("%s: exit %d after %.1fs", filepath.Base(argv[0])+" "+strings.Join(argv[1:min(len(argv), 4)], " "), code, time.Since(start).Seconds())
	return out.String(), code
}

// cleanEnv is the environment without the variables the tools read, so that the
// tests see only what they set.
func cleanEnv() []string {
	drop := map[string]bool{}
	for _, k := range []string{"AGENT_URL", "INGRESS_URL", "COLLECT_USERS", "COLLECT_SPAWN_RATE", "COLLECT_WAIT",
		"SEND_USERS", "SEND_SPAWN_RATE", "SEND_WAIT", "SEND_DURATION", "RECORDS", "DURATION", "OUT", "IN",
		"TIMEOUT", "MAX_ATTEMPTS", "MYSQL_DSN", "PUBSUB_EMULATOR_HOST", "ALPHA", "PROGRESS", "AGENT_URLS", "SEQUENTIAL",
		"RUN_FILE", "REPORT", "RAM_UNIT", "INGEST_TOKEN", "INGEST_TOKEN_FILE", "RELAY_URL", "SMOKE_RECORDS", "SMOKE_TIMEOUT"} {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] && !strings.HasPrefix(k, "LOCUST_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("… (%d lines before)", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// readRecords reads a records file and checks that it is exactly the contract: a JSON
// array of valid records with distinct ids. It returns the ids in file order.
func readRecords(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		t.Fatalf("%s is not a JSON array: %v", path, err)
	}
	seen := map[string]int{}
	var ids []string
	for i, raw := range raws {
		recs, err := record.DecodeBatch(raw)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: record %d is not a valid record: %v\n%s", path, i, err, raw)
		}
		id := recs[0].ID
		if id == "" {
			t.Fatalf("%s: record %d has no id", path, i)
		}
		if j, dup := seen[id]; dup {
			t.Fatalf("%s: records %d and %d share the id %s", path, j, i, id)
		}
		seen[id] = i
		ids = append(ids, id)
	}
	items, err := driver.ReadFile(path)
	if err != nil || len(items) != len(ids) {
		t.Fatalf("driver.ReadFile: %d items, %v", len(items), err)
	}
	return ids
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// goBinary builds ./<pkg> of the module once per test run into a temporary directory.
func goBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildOnce.Do(func() { buildDir, buildErr = os.MkdirTemp("", "vmpulse-loadtest-bin") })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// gist is the line of a tool's output that most likely says how it ended (the
// last error, or the last outcome line), for the first line of a failure message:
// `make test` repeats only first lines after its summary.
func gist(logs string) string {
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	for _, marks := range [][]string{{"ERROR", "STOPPED", "Traceback", "Error:", "error:"}, {"records committed", "unique samples", "CRITICAL", "WARNING"}} {
		for i := len(lines) - 1; i >= 0; i-- {
			for _, m := range marks {
				if strings.Contains(lines[i], m) {
					l := strings.TrimSpace(lines[i])
					if len(l) > 200 {
						l = l[:200] + " …"
					}
					return l
				}
			}
		}
	}
	return "no error line in its output"
}
