package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
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
	if !strings.Contains(stdout.String(), "50 unique records") || !strings.Contains(stdout.String(), "stopped by records") ||
		!strings.Contains(stderr.String(), "collect ") {
		t.Errorf("output:\n%s\n%s", stdout.String(), stderr.String())
	}

	var mu sync.Mutex
	stored := map[string]int{}
	fails := map[string]bool{}
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	for _, want := range []string{"48/50 records committed", "1 rejected", "1 gave up", "1 unsent", "r.unsent.json",
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
