package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/gorilla/websocket"
	"google.golang.org/api/iterator"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/testenv"
)

func TestParse(t *testing.T) {
	t.Setenv("PUBSUB_PROJECT", "p")
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxClients != 1000 || c.metricsAddr != "127.0.0.1:9090" || c.pprofAddr != "" || c.replay != 15*time.Minute ||
		c.stallAfter != 30*time.Second || c.exposeProcesses || c.trustedProxies != 0 || c.maxPerIP != 20 {
		t.Fatalf("defaults %+v", c)
	}
	for args, want := range map[string]string{
		"-max-clients 0":            "-max-clients",
		"-pprof-addr 0.0.0.0:6060":  "-pprof-addr",
		"-pprof-addr :6060":         "-pprof-addr",
		"-stall-after 10ms":         "-stall-after",
		"-replay -1s":               "-replay",
		"-max-per-ip -1":            "-max-per-ip",
		"-trusted-proxies 11":       "-trusted-proxies",
		"-history-bytes 10":         "-history-bytes",
		"-client-queue 1":           "-client-queue",
		"-web-dir /nonexistent/dir": "-web-dir",
	} {
		if _, err := parse(strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", args, err, want)
		}
	}
	for _, ok := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0"} {
		if _, err := parse([]string{"-pprof-addr", ok}); err != nil {
			t.Errorf("-pprof-addr %s: %v", ok, err)
		}
	}
	t.Setenv("STALL_AFTER", "soon")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "STALL_AFTER") {
		t.Fatalf("bad STALL_AFTER: %v", err)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// relayBinary builds the real command once per test run.
func relayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vmpulse-relay-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vmpulse-relay")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// process is a running vmpulse-relay whose JSON log is parsed for the
// addresses it listens on.
type process struct {
	cmd   *exec.Cmd
	addrs chan [2]string // server name, address
	done  chan error
	mu    sync.Mutex
	log   []string
}

func startRelay(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(relayBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, addrs: make(chan [2]string, 8), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log = append(p.log, line)
			p.mu.Unlock()
			var e struct{ Message, Addr string }
			if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e.Message, " listening") {
				p.addrs <- [2]string{e.Message[:strings.Index(e.Message, " listening")], e.Addr}
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("relay log:\n%s", strings.Join(p.log, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// waitAddrs returns the addresses of n servers.
func (p *process) waitAddrs(t *testing.T, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for len(out) < n {
		select {
		case a := <-p.addrs:
			out[a[0]] = a[1]
		case err := <-p.done:
			t.Fatalf("relay exited: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatalf("relay not listening after 60 s (have %v)", out)
		}
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBinaryServesPathsAndStopsOnSIGTERM runs the real binary against the
// emulator: public port with /ws and /health only, metrics and pprof on their own
// loopback ports; on SIGTERM, clients get 1001, the subscription is deleted and
// the process exits well within Cloud Run's 10 s.
func TestBinaryServesPathsAndStopsOnSIGTERM(t *testing.T) {
	emu := testenv.PubsubEmulator(t)
	topic := testenv.Unique("relaybin")
	p := startRelay(t, []string{"PUBSUB_EMULATOR_HOST=" + emu, "PUBSUB_PROJECT=vmpulse-test", "PUBSUB_TOPIC=" + topic},
		"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-pprof-addr", "127.0.0.1:0")
	addrs := p.waitAddrs(t, 3)
	pub, met, prof := "http://"+addrs["relay"], "http://"+addrs["relay metrics"], "http://"+addrs["profiler"]

	if code, body := get(t, pub+"/health"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("/health: %d %s", code, body)
	}
	for _, path := range []string{"/metrics", "/healthz", "/debug/pprof/"} {
		if code, _ := get(t, pub+path); code != 404 {
			t.Errorf("public %s: %d, want 404", path, code)
		}
	}
	code, body := get(t, met+"/metrics")
	for _, want := range []string{"vmpulse_relay_clients ", "vmpulse_relay_receive_restarts_total ", "vmpulse_relay_last_message_age_seconds ",
		"vmpulse_relay_stalled ", "go_goroutines ", "process_resident_memory_bytes "} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics: %d, no %q", code, want)
		}
	}
	if code, _ := get(t, prof+"/debug/pprof/"); code != 200 {
		t.Errorf("pprof: %d", code)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addrs["relay"]+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // history
		t.Fatal(err)
	}
	client, err := pubsub.Connect(context.Background(), "vmpulse-test", emu)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if n := countSubs(t, client, topic); n != 1 {
		t.Fatalf("%d subscriptions on the topic, want 1", n)
	}

	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err = ws.ReadMessage(); err != nil {
			break
		}
	}
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("client after SIGTERM: %v, want close 1001", err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(9 * time.Second):
		t.Fatal("still running 9 s after SIGTERM")
	}
	took := time.Since(t0)
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("shutdown took %v; Cloud Run kills at 10 s", took)
	}
	if n := countSubs(t, client, topic); n != 0 {
		t.Errorf("%d subscriptions left on the topic", n)
	}
}

func countSubs(t *testing.T, cl *gps.Client, topic string) int {
	t.Helper()
	it := cl.TopicAdminClient.ListTopicSubscriptions(context.Background(),
		&pubsubpb.ListTopicSubscriptionsRequest{Topic: pubsub.TopicName(cl.Project(), topic)})
	n := 0
	for {
		_, err := it.Next()
		if err == iterator.Done {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
