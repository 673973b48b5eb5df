package loadtest_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/agent"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/local"
)

// inProcessStack starts the local stack (what `make up` runs) in this process, on
// free ports, without its feeder: only the test's load reaches the routes.
func inProcessStack(t *testing.T, relay bool) *local.Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := local.Config{
		SplitAddr: "127.0.0.1:0", Route1Addr: "127.0.0.1:0", Route2Addr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
		RelayAddr: "127.0.0.1:0", PubsubAddr: "127.0.0.1:0", MySQLAddr: "127.0.0.1:0",
		Project: "vmpulse-test", Topic: testenv.Unique("loadtest"), DBName: "vmpulse",
		VM: "smoke-host", AgentInterval: 50 * time.Millisecond, AgentSource: "procfs", ProcRoot: "/proc",
		Relay: relay, Log: slog.New(slog.DiscardHandler),
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

// namedAgents serves n real agents sampling this machine (as `make up -agents n`
// does), named prefix-1…n, each every interval.
func namedAgents(t *testing.T, prefix string, n int, interval time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var urls []string
	for i := 1; i <= n; i++ {
		src, err := agent.OpenSource("procfs", "/proc", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		s := agent.New(src, agent.Options{VM: prefix + "-" + string(rune('0'+i)), Interval: interval, Top: 5, Log: slog.New(slog.DiscardHandler)})
		go s.Run(ctx)
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

// TestSmokeAgainstLocalStack runs `make smoke`'s check against the local stack.
func TestSmokeAgainstLocalStack(t *testing.T) {
	st := inProcessStack(t, true)
	var out bytes.Buffer
	checks := driver.Smoke(context.Background(), driver.SmokeConfig{
		IngressURL: "http://" + st.Addrs.Split, RelayURL: "http://" + st.Addrs.Relay, AgentURL: "http://" + st.Addrs.Agent,
		Records: 6, Timeout: 20 * time.Second,
	}, &out)
	t.Logf("smoke:\n%s", out.String())
	names := map[string]bool{}
	for _, c := range checks {
		names[c.Name] = true
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Detail)
		}
	}
	for _, n := range []string{"agent", "relay", "ingest", "split", "websocket"} {
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
		Records: 2, Timeout: 5 * time.Second,
	}, &out)
	for _, c := range checks {
		if c.OK == (c.Name == "relay" || c.Name == "websocket") {
			t.Errorf("without a relay: %s", c)
		}
	}
	if !strings.Contains(out.String(), "FAIL relay") {
		t.Errorf("output:\n%s", out.String())
	}
}
