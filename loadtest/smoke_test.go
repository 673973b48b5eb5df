package loadtest_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/local"
)

// testToken is the ingest token of the in-process stacks.
const testToken = "loadtest-token-0123456789"

// inProcessStack starts the local stack (what `make up` runs) in this process, on
// free ports, with agents named <vm>-1…n when agents > 1, without its feeder: only
// the test's load reaches the routes. The routes accept testToken.
func inProcessStack(t *testing.T, relay bool, agents int) *local.Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := local.Config{
		SplitAddr: "127.0.0.1:0", Route1Addr: "127.0.0.1:0", Route2Addr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
		RelayAddr: "127.0.0.1:0", PubsubAddr: "127.0.0.1:0", MySQLAddr: "127.0.0.1:0",
		Project: "vmpulse-test", Topic: testenv.Unique("loadtest"), DBName: "vmpulse",
		VM: "lt", AgentInterval: 50 * time.Millisecond, AgentSource: "procfs", ProcRoot: "/proc", Agents: agents,
		Relay: relay, IngestToken: testToken, Log: slog.New(slog.DiscardHandler),
	}
	st, err := local.Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := st.Close(); err != nil {
			t.Errorf("stack close: %v", err)
		}
	})
	return st
}

// TestSmokeAgainstLocalStack runs `make smoke`'s check against the local stack.
func TestSmokeAgainstLocalStack(t *testing.T) {
	st := inProcessStack(t, true, 1)
	var out bytes.Buffer
	checks := driver.Smoke(context.Background(), driver.SmokeConfig{
		IngressURL: "http://" + st.Addrs.Split, RelayURL: "http://" + st.Addrs.Relay, AgentURL: "http://" + st.Addrs.Agent,
		Token: testToken, Records: 6, Timeout: 20 * time.Second,
	}, &out)
	t.Logf("smoke:\n%s", out.String())
	names := map[string]bool{}
	for _, c := range checks {
		names[c.Name] = true
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Detail)
		}
	}
	for _, n := range []string{"agent", "relay", "auth", "ingest", "split", "websocket"} {
		if !names[n] {
			t.Errorf("no %s check", n)
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines != len(checks) {
		t.Errorf("%d lines for %d checks", lines, len(checks))
	}

	// A relay that is not there fails its checks, and only those.
	out.Reset()
	checks = driver.Smoke(context.Background(), driver.SmokeConfig{
		IngressURL: "http://" + st.Addrs.Split, RelayURL: "http://127.0.0.1:1", AgentURL: "http://" + st.Addrs.Agent,
		Token: testToken, Records: 2, Timeout: 5 * time.Second,
	}, &out)
	for _, c := range checks {
		if c.OK == (c.Name == "relay" || c.Name == "websocket") {
			t.Errorf("without a relay: %s", c)
		}
	}
	if !strings.Contains(out.String(), "FAIL relay") {
		t.Errorf("output:\n%s", out.String())
	}

	// A wrong token: every record is refused, and the check says so.
	out.Reset()
	checks = driver.Smoke(context.Background(), driver.SmokeConfig{
		IngressURL: "http://" + st.Addrs.Split, RelayURL: "http://" + st.Addrs.Relay, AgentURL: "http://" + st.Addrs.Agent,
		Token: "wrong", Records: 2, Timeout: 5 * time.Second,
	}, &out)
	if failed(checks) == 0 || !strings.Contains(out.String(), "FAIL ingest") || !strings.Contains(out.String(), "HTTP 401") {
		t.Errorf("with a wrong token:\n%s", out.String())
	}
}

// failed counts the checks that did not pass.
func failed(checks []driver.Check) int {
	n := 0
	for _, c := range checks {
		if !c.OK {
			n++
		}
	}
	return n
}
