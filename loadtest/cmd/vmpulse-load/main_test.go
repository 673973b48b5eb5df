package main

import (
	"bytes"
	"context"
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

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/loadtest/report"
	"github.com/vmpulse/vmpulse/record"
)

func rec(id string) map[string]any {
	return map[string]any{
		"id": id, "vm": "t", "total_ram": 2048, "ram_libre": 1100, "uso_ram": 948,
		"porcentaje_ram": 46.3, "porcentaje_cpu_uso": 22.5, "porcentaje_cpu_libre": 77.5,
		"procesos_corriendo": 3, "total_procesos": 233, "procesos_durmiendo": 225,
		"procesos_zombie": 1, "procesos_parados": 2, "hora": "2025-06-17 02:21:54",
	}
}

func TestCollectAndSendCommands(t *testing.T) {
	var n atomic.Int64
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(rec(fmt.Sprintf("A%05d", n.Add(1)/3))) // each record served 3 times
	}))
	defer agent.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "r.json")
	t.Setenv("RUN_FILE", filepath.Join(dir, "run.json"))
	t.Setenv("AGENT_URL", agent.URL)
	t.Setenv("COLLECT_WAIT", "0-1ms")
	var stdout, stderr bytes.Buffer
	code := collect(context.Background(), []string{"-users", "4", "-spawn-rate", "0", "-records", "50", "-out", out, "-progress", "10ms"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("collect: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	items, err := driver.ReadFile(out)
	if err != nil || len(items) != 50 {
		t.Fatalf("%d records, %v", len(items), err)
	}
	if !strings.Contains(stdout.String(), "50 unique samples") || !strings.Contains(stdout.String(), "stopped by records") ||
		!strings.Contains(stderr.String(), "collect ") {
		t.Errorf("output:\n%s\n%s", stdout.String(), stderr.String())
	}

	var mu sync.Mutex
	stored := map[string]int{}
	fails := map[string]bool{}
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		id, _ := m["id"].(string)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case id == "A00007":
			http.Error(w, "always down", http.StatusBadGateway)
		case id == "A00009":
			http.Error(w, `{"error":"hora: bad","field":"hora"}`, http.StatusBadRequest)
		case !fails[id]:
			fails[id] = true
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			stored[id]++
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer ingress.Close()
	t.Setenv("INGRESS_URL", ingress.URL)
	t.Setenv("IN", out)
	t.Setenv("SEND_WAIT", "0")
	t.Setenv("MAX_ATTEMPTS", "3")
	t.Setenv("INGEST_TOKEN", "tok")
	stdout.Reset()
	stderr.Reset()
	start := time.Now()
	code = send(context.Background(), []string{"-users", "8", "-spawn-rate", "0"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("send: exit %d, want 1 (one rejected, one given up)", code)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("send took %v", time.Since(start))
	}
	if len(stored) != 48 {
		t.Errorf("%d stored, want 48", len(stored))
	}
	for id, c := range stored {
		if c != 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
	o := stdout.String()
	for _, want := range []string{"48/50 records committed", "1 rejected", "1 gave up", "1 unsent", "r.unsent.json", "recorded in",
		"HTTP 400: {\"error\":\"hora: bad\",\"field\":\"hora\"}"} {
		if !strings.Contains(o, want) {
			t.Errorf("send output lacks %q:\n%s\n%s", want, o, stderr.String())
		}
	}
	unsent, err := driver.ReadFile(filepath.Join(dir, "r.unsent.json"))
	if err != nil || len(unsent) != 1 || unsent[0].Key != "A00007" { // rejected records are not unsent: they were answered
		t.Errorf("unsent file: %+v %v", unsent, err)
	}
}

func TestFlagErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	t.Setenv("COLLECT_USERS", "many")
	if code := collect(context.Background(), nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "COLLECT_USERS") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := send(context.Background(), []string{"-wait", "4-1"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := splitReport(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "MYSQL_DSN") {
		t.Errorf("-h: exit %d: %s", code, stderr.String())
	}
}

func TestSendWithoutTokenFailsAtOnce(t *testing.T) {
	var hits atomic.Int64
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer ingress.Close()
	dir := t.TempDir()
	in := filepath.Join(dir, "r.json")
	b, _ := json.Marshal([]any{rec("A1")})
	os.WriteFile(in, b, 0o644)
	t.Setenv("INGEST_TOKEN", "")
	t.Setenv("RUN_FILE", filepath.Join(dir, "run.json"))
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := send(context.Background(), []string{"-ingress", ingress.URL, "-in", in}, &stdout, &stderr)
	if code != 2 || hits.Load() != 0 || time.Since(start) > 2*time.Second {
		t.Errorf("exit %d after %v, %d requests", code, time.Since(start), hits.Load())
	}
	for _, want := range []string{"no ingest token", "INGEST_TOKEN=<token>", "-token-file", ".vmpulse/ingest-token", "-no-token"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("message lacks %q: %s", want, stderr.String())
		}
	}
	// The help says how to pass it, too.
	stderr.Reset()
	if code := send(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	for _, want := range []string{"INGEST_TOKEN_FILE", "INGEST_TOKEN=<token>", "-no-token", "-ram-unit", "\"metrics\"", "-sequential"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("send -h lacks %q", want)
		}
	}
}

// fakeAgent serves a new sample every interval, as the agent does, named vm, and
// says its interval on /healthz.
func fakeAgent(t *testing.T, vm string, interval time.Duration) *httptest.Server {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintf(w, `{"status":"ok","vm":%q,"interval":%q}`, vm, interval)
			return
		}
		seq := int(time.Since(start) / interval)
		m := rec(fmt.Sprintf("%s-%05d", vm, seq))
		m["vm"] = vm
		m["hora"] = start.UTC().Add(time.Duration(seq) * interval).Format("2006-01-02 15:04:05")
		json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCollectShortSaysWhatToChange(t *testing.T) {
	a := fakeAgent(t, "slow", 100*time.Millisecond)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := collect(context.Background(), []string{"-agent", a.URL, "-users", "5", "-spawn-rate", "0", "-wait", "0-5ms",
		"-records", "40", "-duration", "1s", "-out", filepath.Join(dir, "r.json"), "-run", filepath.Join(dir, "run.json")}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (short):\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"SHORT: collected", "of 40 unique samples", "every 100ms (its /healthz)", "at most 10",
		"-interval 20ms", "make up -agent-interval 20ms"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "at most 10 unique samples in 1s, short of 40") {
		t.Errorf("no warning before the run:\n%s", stderr.String())
	}
	run, err := report.LoadRun(filepath.Join(dir, "run.json"))
	if err != nil || len(run.Phases) != 1 || run.Phases[0].Outcome != "short" || run.Phases[0].AgentInterval != "100ms" {
		t.Fatalf("run file: %v %+v", err, run)
	}
}

func TestCollectSeveralAgents(t *testing.T) {
	agents := []*httptest.Server{fakeAgent(t, "vm-1", 5*time.Millisecond), fakeAgent(t, "vm-2", 5*time.Millisecond), fakeAgent(t, "vm-3", 5*time.Millisecond)}
	urls := agents[0].URL + "," + agents[1].URL + ", " + agents[2].URL
	for _, seq := range []string{"false", "true"} {
		t.Run("sequential="+seq, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("AGENT_URLS", urls)
			t.Setenv("SEQUENTIAL", seq)
			var stdout, stderr bytes.Buffer
			code := collect(context.Background(), []string{"-users", "4", "-spawn-rate", "0", "-wait", "1ms-2ms", "-records", "30",
				"-duration", "20s", "-out", filepath.Join(dir, "r.json"), "-run", filepath.Join(dir, "run.json")}, &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
			}
			f, err := driver.ReadRecordsFile(filepath.Join(dir, "r.json"), "auto")
			if err != nil {
				t.Fatal(err)
			}
			groups := driver.GroupByVM(f.Items)
			if len(groups) != 3 || groups[0].VM != "vm-1" || groups[2].VM != "vm-3" || len(groups[1].Items) != 30 {
				t.Fatalf("groups %v", groups)
			}
			run, err := report.LoadRun(filepath.Join(dir, "run.json"))
			if err != nil || len(run.Phases) != 3 {
				t.Fatalf("%v %+v", err, run)
			}
			for i, p := range run.Phases {
				if p.VM != fmt.Sprintf("vm-%d", i+1) || p.Unique != 30 || p.Order != map[string]string{"true": "sequential", "false": "parallel"}[seq] {
					t.Errorf("phase %d: %+v", i, p)
				}
			}
			overlap := run.Phases[1].Started.Before(run.Phases[0].Ended)
			if overlap == (seq == "true") {
				t.Errorf("sequential=%s: phase 2 started %v, phase 1 ended %v", seq, run.Phases[1].Started, run.Phases[0].Ended)
			}
		})
	}
}

// A peer implementation's file (KiB, wrapped in {"metadata","metrics"}) goes
// through unchanged and is stored with its true figures.
func TestSendPeerFile(t *testing.T) {
	var mu sync.Mutex
	var totals []int64
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		recs, err := record.DecodeBatch(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		totals = append(totals, recs[0].TotalRAM)
		mu.Unlock()
		w.WriteHeader(201)
	}))
	defer ingress.Close()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := send(context.Background(), []string{"-ingress", ingress.URL, "-no-token", "-users", "10", "-spawn-rate", "0", "-wait", "0",
		"-in", "../../testdata/records/peer-kib-metrics.json", "-run", filepath.Join(dir, "run.json")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	if len(totals) != 40 {
		t.Fatalf("%d stored", len(totals))
	}
	for _, v := range totals {
		if v != 3925 {
			t.Fatalf("stored total_ram %d MiB, want 3925 (4018904 KiB)", v)
		}
	}
	for _, want := range []string{`records under "metrics"`, "RAM figures in KiB", "total_ram 4018904 is 3.8 GiB read as KiB", "converted to MiB in 40 records"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("send does not say %q:\n%s", want, stderr.String())
		}
	}
}
