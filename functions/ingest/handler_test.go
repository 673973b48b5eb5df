package ingest

// Contract tests of the HTTP handler that need no database and no Pub/Sub: they
// run on the in-memory store (memStore), everywhere, in a fraction of a second.
// ingest_test.go runs the same service against MariaDB and the emulator.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmpulse/vmpulse/record"
)

const (
	tokenA = "token-a-0123456789abcdef"
	tokenB = "token-b-0123456789abcdef"
)

type handlerEnv struct {
	srv   *Server
	store *memStore
	log   *committedLog
	logs  *bytes.Buffer
	h     http.Handler
}

func newHandlerEnv(t *testing.T, route string, mod func(*Config)) *handlerEnv {
	t.Helper()
	tokens, err := StaticTokens(tokenA, tokenB)
	if err != nil {
		t.Fatal(err)
	}
	e := &handlerEnv{store: newMemStore(), log: &committedLog{}, logs: &bytes.Buffer{}}
	var mu sync.Mutex
	cfg := Config{Route: route, Store: e.store, Tokens: tokens, Committed: e.log.add,
		Log:   slog.New(slog.NewTextHandler(lockedWriter{&mu, e.logs}, nil)),
		Ready: func(context.Context) error { return nil }}
	if mod != nil {
		mod(&cfg)
	}
	if e.srv, err = NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.srv.Close(context.Background()) })
	e.h = e.srv.Handler()
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// do sends a request and returns the status, the decoded body and the raw body.
func (e *handlerEnv) do(t *testing.T, auth, contentType, body string) (int, map[string]any, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/ingest", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	raw := w.Body.Bytes()
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if w.Code == http.StatusTooManyRequests || w.Code == http.StatusServiceUnavailable {
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%d without Retry-After", w.Code)
		}
	}
	return w.Code, m, raw
}

func validRecord(id string) record.Record {
	return record.Record{ID: id, VM: "vm-1", TotalRAM: 2048, RAMLibre: 1100, UsoRAM: 948, PorcentajeRAM: 46.3,
		PorcentajeCPUUso: 22.5, PorcentajeCPULibre: 77.5, ProcesosCorriendo: 3, TotalProcesos: 233,
		ProcesosDurmiendo: 225, ProcesosZombie: 1, ProcesosParados: 2, Hora: record.NewHora(time.Now())}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const bearerA = "Bearer " + tokenA

func TestHandlerContract(t *testing.T) {
	for _, route := range []string{Route1, Route2} {
		t.Run(route, func(t *testing.T) {
			e := newHandlerEnv(t, route, nil)
			one := jsonBody(validRecord("r-1"))

			code, m, _ := e.do(t, bearerA, "application/json", one)
			if code != 201 || m["route"] != route || m["stored"] != 1.0 || fmt.Sprint(m["ids"]) != "[r-1]" {
				t.Fatalf("one record: %d %v", code, m)
			}
			// A peer record without an id gets a content id, the same every time.
			peer := validRecord("")
			code, m, _ = e.do(t, bearerA, "application/json; charset=utf-8", jsonBody([]record.Record{peer}))
			ids := fmt.Sprint(m["ids"])
			if code != 201 || !strings.HasPrefix(ids, "[c-") {
				t.Fatalf("peer: %d %v", code, m)
			}
			if _, m, _ = e.do(t, bearerA, "application/json", jsonBody([]record.Record{peer})); fmt.Sprint(m["ids"]) != ids {
				t.Fatalf("content id changed: %v then %v", ids, m["ids"])
			}

			bad := validRecord("r-2")
			bad.PorcentajeCPUUso = 120
			for _, c := range []struct {
				name, ctype, body string
				code              int
				field             string
				index             any
			}{
				{"wrong content type", "text/plain", one, 415, "", nil},
				{"no content type", "", one, 415, "", nil},
				{"invalid field", "application/json", jsonBody([]record.Record{validRecord("r-3"), bad}), 400, "porcentaje_cpu_uso", 1.0},
				{"missing field", "application/json", `{"id":"x","total_ram":1}`, 400, "ram_libre", nil},
				{"not json", "application/json", "{", 400, "record", nil},
				{"empty array", "application/json", "[]", 400, "", nil},
				{"too many records", "application/json", "[" + strings.Repeat(jsonBody(validRecord(""))+",", record.MaxBatch) + jsonBody(validRecord("")) + "]", 413, "body", nil},
			} {
				code, m, _ := e.do(t, bearerA, c.ctype, c.body)
				if code != c.code {
					t.Errorf("%s: %d %v, want %d", c.name, code, m, c.code)
					continue
				}
				if c.field != "" && m["field"] != c.field {
					t.Errorf("%s: field %v, want %s", c.name, m["field"], c.field)
				}
				if c.index != nil && m["index"] != c.index {
					t.Errorf("%s: index %v, want %v", c.name, m["index"], c.index)
				}
				if m["error"] == nil || m["route"] != route {
					t.Errorf("%s: body %v names no error or route", c.name, m)
				}
			}
			if len(e.store.rows) != 2 {
				t.Fatalf("%d rows after the refused requests, want 2", len(e.store.rows))
			}
			if n := testutil.ToFloat64(e.srv.m.records); n != 2 {
				t.Fatalf("vmpulse_ingest_records_total = %v, want 2", n)
			}
			if n := testutil.ToFloat64(e.srv.m.requests.WithLabelValues("400")); n != 4 {
				t.Fatalf("vmpulse_ingest_requests_total{code=400} = %v, want 4", n)
			}
		})
	}
}

// TestAuth: no token or a wrong one is 401 without echoing anything back; both
// tokens of a rotation are accepted; tokens never reach the logs.
func TestAuth(t *testing.T) {
	e := newHandlerEnv(t, Route2, nil)
	one := jsonBody(validRecord("a-1"))
	for _, auth := range []string{"", "Bearer", "Bearer wrong-token-0123456789", "Basic " + tokenA, tokenA, "Bearer " + tokenA + "x"} {
		code, m, raw := e.do(t, auth, "application/json", one)
		if code != 401 || strings.Contains(string(raw), "a-1") || (auth != "" && strings.Contains(string(raw), auth)) {
			t.Errorf("auth %q: %d %s", auth, code, raw)
		}
		if m["error"] == nil {
			t.Errorf("auth %q: no error message", auth)
		}
	}
	if len(e.store.rows) != 0 {
		t.Fatal("an unauthorized request stored a row")
	}
	for i, auth := range []string{"Bearer " + tokenA, "bearer " + tokenB} {
		if code, m, _ := e.do(t, auth, "application/json", jsonBody(validRecord(fmt.Sprint("ok-", i)))); code != 201 {
			t.Errorf("token %d: %d %v", i, code, m)
		}
	}
	if strings.Contains(e.logs.String(), tokenA) || strings.Contains(e.logs.String(), tokenB) {
		t.Fatal("a token reached the logs")
	}
}

// TestErrorBodiesAreShort: whatever the input, an error body is at most 1 KiB.
func TestErrorBodiesAreShort(t *testing.T) {
	e := newHandlerEnv(t, Route1, nil)
	huge := strings.Repeat("x", 3<<20)
	r := validRecord("h")
	for _, body := range []string{
		strings.Replace(jsonBody(r), `"hora":"`, `"hora":"`+huge, 1),
		strings.Replace(jsonBody(r), `"vm":"vm-1"`, `"vm":"`+huge+`"`, 1),
		"[" + jsonBody(r) + "," + huge + "]",
		`{"` + huge + `":1}`,
	} {
		code, _, raw := e.do(t, bearerA, "application/json", body)
		if code < 400 || len(raw) > 1024 {
			t.Errorf("%d with a %d-byte body", code, len(raw))
		}
	}
	code, _, raw := e.do(t, bearerA, "application/json; "+huge, "{}")
	if code != 415 || len(raw) > 1024 {
		t.Errorf("content type: %d, %d bytes", code, len(raw))
	}
}

// TestConflictIs409: a retried id with other values is refused naming the id; the
// other records of the request are stored; the stored values stay.
func TestConflictIs409(t *testing.T) {
	e := newHandlerEnv(t, Route2, nil)
	a := validRecord("c-1")
	if code, _, _ := e.do(t, bearerA, "application/json", jsonBody(a)); code != 201 {
		t.Fatal(code)
	}
	if code, m, _ := e.do(t, bearerA, "application/json", jsonBody(a)); code != 201 || m["stored"] != 1.0 {
		t.Fatalf("an identical retry: %d %v", code, m)
	}
	b := a
	b.ProcesosZombie = 5
	b.ProcesosDurmiendo -= 4
	code, m, _ := e.do(t, bearerA, "application/json", jsonBody([]record.Record{validRecord("c-2"), b}))
	if code != 409 || fmt.Sprint(m["conflicts"]) != "[c-1]" || !strings.Contains(fmt.Sprint(m["error"]), "c-1") {
		t.Fatalf("%d %v", code, m)
	}
	if _, ok := e.store.rows["c-2"]; !ok || e.store.rows["c-1"].ProcesosZombie != 1 {
		t.Fatal("the request's other record was not stored, or the stored one changed")
	}
}

// TestServiceUnavailable: a database that fails or hangs gives 503 + Retry-After
// within the DB timeout, and nothing is acknowledged.
func TestServiceUnavailable(t *testing.T) {
	for _, route := range []string{Route1, Route2} {
		t.Run(route, func(t *testing.T) {
			e := newHandlerEnv(t, route, func(c *Config) { c.DBTimeout = 100 * time.Millisecond })
			e.store.down = errors.New("connection refused")
			if code, m, _ := e.do(t, bearerA, "application/json", jsonBody(validRecord("u-1"))); code != 503 {
				t.Fatalf("down: %d %v", code, m)
			}
			e.store.mu.Lock()
			e.store.down = nil
			e.store.hold, e.store.started = make(chan struct{}), make(chan struct{}) // hangs
			e.store.mu.Unlock()
			start := time.Now()
			if code, m, _ := e.do(t, bearerA, "application/json", jsonBody(validRecord("u-2"))); code != 503 || time.Since(start) > 3*time.Second {
				t.Fatalf("hung: %d %v after %v", code, m, time.Since(start))
			}
		})
	}
}

// TestInflightCap: beyond the bytes a route may hold at once, 429 + Retry-After;
// a request over the body cap is refused before it is read.
func TestInflightCap(t *testing.T) {
	e := newHandlerEnv(t, Route2, func(c *Config) { c.MaxBody, c.MaxInflightBytes = 4096, 6000 })
	hold := make(chan struct{})
	e.store.hold, e.store.started = hold, make(chan struct{})
	body := jsonBody(validRecord("big")) + strings.Repeat(" ", 3000)
	first := make(chan int, 1)
	go func() { code, _, _ := e.do(t, bearerA, "application/json", body); first <- code }()
	<-e.store.started // the first request holds ~3.5 KB while it commits
	if code, m, _ := e.do(t, bearerA, "application/json", body); code != 429 {
		t.Fatalf("second request: %d %v, want 429", code, m)
	}
	if code, _, _ := e.do(t, bearerA, "application/json", strings.Repeat(" ", 5000)+"{}"); code != 413 {
		t.Fatalf("over the body cap: %d", code)
	}
	close(hold)
	if code := <-first; code != 201 {
		t.Fatalf("first request: %d", code)
	}
	if code, _, _ := e.do(t, bearerA, "application/json", jsonBody(validRecord("after"))); code != 201 {
		t.Fatalf("after the first finished: %d", code)
	}
}

// TestHealthIsReadiness: /healthz follows MySQL only; the status hook's fields
// (Pub/Sub's state) are reported without failing it.
func TestHealthIsReadiness(t *testing.T) {
	var dbErr error
	e := newHandlerEnv(t, Route1, func(c *Config) {
		c.Ready = func(context.Context) error { return dbErr }
		c.Status = func() map[string]any { return map[string]any{"pubsub": "failing: unavailable"} }
	})
	get := func() (int, map[string]any) {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	if code, m := get(); code != 200 || m["pubsub"] != "failing: unavailable" {
		t.Fatalf("%d %v", code, m)
	}
	dbErr = errors.New("dial tcp: connection refused")
	e.srv.healthAt = time.Time{} // skip the one-second cache
	if code, m := get(); code != 503 || m["mysql"] == nil {
		t.Fatalf("with MySQL down: %d %v", code, m)
	}
}

// FuzzHandler feeds arbitrary bodies to the handler: it never panics, never
// answers 5xx, and never stores anything it did not acknowledge. CI runs it for a
// bounded time (make fuzz-ingest).
func FuzzHandler(f *testing.F) {
	f.Add([]byte(jsonBody(validRecord("f-1"))))
	f.Add([]byte("[" + jsonBody(validRecord("f-2")) + "]"))
	f.Add([]byte(`[{"id":"x"},1,"s",null]`))
	f.Add([]byte(`{"hora":"2025-06-17T02:21:54Z","top_procesos":[{"pid":1,"name":"init","state":"S","rss_mib":3}]}`))
	e := newHandlerEnvF(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := len(e.store.rows)
		code, _, raw := e.do(t, bearerA, "application/json", string(body))
		if code >= 500 {
			t.Fatalf("%d for %q", code, body)
		}
		if len(raw) > 1024 && code != 201 {
			t.Fatalf("a %d-byte error body", len(raw))
		}
		if code != 201 && code != 409 && len(e.store.rows) != before {
			t.Fatalf("%d but rows went from %d to %d", code, before, len(e.store.rows))
		}
	})
}

func newHandlerEnvF(f *testing.F) *handlerEnv {
	tokens, _ := StaticTokens(tokenA)
	e := &handlerEnv{store: newMemStore(), log: &committedLog{}, logs: &bytes.Buffer{}}
	srv, err := NewServer(Config{Route: Route2, Store: e.store, Tokens: tokens, Committed: e.log.add,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close(context.Background()) })
	e.srv, e.h = srv, srv.Handler()
	return e
}
