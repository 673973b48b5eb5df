package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func distDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"index.html":       `<!doctype html><div id="root"></div>`,
		"assets/app-1.js":  `console.log(1)`,
		"assets/app-1.css": `body{}`,
	} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestServesDashboardConfigAndHealth(t *testing.T) {
	dir := distDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-dir", dir, "-relay-url", "wss://relay.example/ws", "-machine-types", "vm-a=e2-small"}, io.Discard, log, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not start")
	}
	base := "http://" + addr

	if code, _, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, h, body := get(t, base+"/config.json"); code != 200 || body != `{"relayUrl":"wss://relay.example/ws","machineTypes":{"vm-a":"e2-small"}}` || h.Get("Cache-Control") != "no-store" {
		t.Errorf("/config.json: %d %q %v", code, body, h)
	}
	if code, _, body := get(t, base+"/some/route"); code != 200 || !strings.Contains(body, `id="root"`) {
		t.Errorf("SPA fallback: %d %q", code, body)
	}
	if code, h, _ := get(t, base+"/assets/app-1.js"); code != 200 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d %v", code, h)
	}
	res, err := http.Post(base+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", res.StatusCode)
	}

	cancel() // what SIGTERM does in main
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graceful shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	for _, want := range []string{`"msg":"vmpulse-web starting"`, `"relay_url":"wss://relay.example/ws"`, `"msg":"vmpulse-web stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv("PORT", "9123")
	t.Setenv("WEB_DIR", "/tmp/somewhere")
	t.Setenv("RELAY_URL", "wss://from-env/ws")
	t.Setenv("MACHINE_TYPES", "vm-a=e2-small")
	o, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o != (options{addr: ":9123", dir: "/tmp/somewhere", relayURL: "wss://from-env/ws", machineTypes: "vm-a=e2-small"}) {
		t.Errorf("from env: %+v", o)
	}
	o, err = parse([]string{"-addr", "127.0.0.1:1", "-dir", "d", "-relay-url", "", "-machine-types", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o != (options{addr: "127.0.0.1:1", dir: "d", relayURL: ""}) {
		t.Errorf("flags win: %+v", o)
	}
}

func TestMachineTypes(t *testing.T) {
	t.Setenv("MACHINE_TYPES", "")
	got, err := parseMachineTypes(" vm-a=e2-small , vm_b.2=e2-standard-2")
	if err != nil || len(got) != 2 || got["vm-a"] != "e2-small" || got["vm_b.2"] != "e2-standard-2" {
		t.Errorf("parse: %v %v", got, err)
	}
	if got, err := parseMachineTypes(""); got != nil || err != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"vm-a", "vm-a=", "=e2", "vm a=e2", "vm-a=e2,vm-a=e2-small", "vm-a=e2;rm", strings.Repeat("x", 100) + "=e2"} {
		_, err := parse([]string{"-machine-types", bad}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-machine-types") || len(err.Error()) > 200 {
			t.Errorf("-machine-types %q: %v, want a short error naming the flag", bad, err)
		}
	}
	many := make([]string, maxMachineTypes+1)
	for i := range many {
		many[i] = fmt.Sprintf("vm-%d=e2-small", i)
	}
	if _, err := parseMachineTypes(strings.Join(many, ",")); err == nil {
		t.Error("more than the cap was accepted")
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("PORT", "")
	t.Setenv("WEB_DIR", "")
	t.Setenv("RELAY_URL", "")
	t.Setenv("MACHINE_TYPES", "")
	o, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o != (options{addr: ":8080", dir: "/srv/dist"}) {
		t.Errorf("defaults: %+v", o)
	}
}

func TestHelpDocumentsTheFlags(t *testing.T) {
	var out bytes.Buffer
	_, err := parse([]string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-addr", "PORT", "-dir", "WEB_DIR", "-relay-url", "RELAY_URL", "-machine-types", "MACHINE_TYPES", "config.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRejectsBadInput(t *testing.T) {
	t.Setenv("RELAY_URL", "")
	for _, u := range []string{"ftp://x/ws", "relay.example/ws", "//relay.example/ws", "wss:///ws"} {
		if _, err := parse([]string{"-relay-url", u}, io.Discard); err == nil || !strings.Contains(err.Error(), "-relay-url") {
			t.Errorf("-relay-url %q: %v, want an error naming the flag", u, err)
		}
	}
	for _, u := range []string{"", "/ws", "ws://127.0.0.1:8081/ws", "https://r.example/ws"} {
		if _, err := parse([]string{"-relay-url", u}, io.Discard); err != nil {
			t.Errorf("-relay-url %q: %v", u, err)
		}
	}
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-dir", t.TempDir()}, io.Discard, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("empty dir: %v, want an error about index.html", err)
	}
	if _, err := parse([]string{"extra"}, io.Discard); err == nil {
		t.Error("a positional argument was accepted")
	}
}
