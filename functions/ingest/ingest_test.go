package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"

	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/record"
)

// env is one route wired to a fresh MariaDB database and a fresh topic on the
// Pub/Sub emulator, with a subscription that collects what was published.
type env struct {
	srv    *httptest.Server
	ingest *ingest.Server
	store  *mysql.Store
	client *gps.Client

	mu        sync.Mutex
	published map[string]int // record id → times published
	attrs     map[string]map[string]string
}

func newEnv(t *testing.T, route string) *env {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store, err := mysql.Open(ctx, mysql.Config{DSN: testenv.MySQL(t), Wait: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	client, err := pubsub.Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	topic := testenv.Unique("records-" + route)
	if err := pubsub.EnsureTopic(ctx, client, topic, true); err != nil {
		t.Fatal(err)
	}
	sub, err := pubsub.CreateInstanceSubscription(ctx, client, topic, testenv.Unique("collect"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, client: client, published: map[string]int{}, attrs: map[string]map[string]string{}}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pubsub.Receive(rctx, client, sub, func(data []byte, attrs map[string]string) {
			var r record.Record
			if err := json.Unmarshal(data, &r); err != nil {
				t.Errorf("published data is not a record: %s", data)
				return
			}
			e.mu.Lock()
			e.published[r.ID]++
			e.attrs[r.ID] = attrs
			e.mu.Unlock()
		})
	}()
	pub := pubsub.NewPublisher(client, topic, log)
	s, err := ingest.NewServer(ingest.Config{Route: route, Store: store, Pub: pub, Log: log, MaxBody: 64 << 10,
		Checks: map[string]func(context.Context) error{"mysql": store.Ping}})
	if err != nil {
		t.Fatal(err)
	}
	e.ingest = s
	e.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		s.Close()
		pub.Stop()
		cancel()
		<-done
		pubsub.DeleteSubscription(context.Background(), client, sub)
	})
	return e
}

func (e *env) post(t *testing.T, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+"/ingest", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (e *env) rows(t *testing.T) int {
	var n int
	if err := e.store.DB().QueryRow("SELECT COUNT(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitPublished waits until every id was published, then a little longer to catch
// duplicates, and returns the counts.
func (e *env) waitPublished(t *testing.T, ids []string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.mu.Lock()
		missing := 0
		for _, id := range ids {
			if e.published[id] == 0 {
				missing++
			}
		}
		e.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records never published", missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.published {
		out[k] = v
	}
	return out
}

func sample(id string, i int) record.Record {
	return record.Record{
		ID: id, VM: "vm-test", TotalRAM: 2048, RAMLibre: int64(1000 + i%100), UsoRAM: int64(1048 - i%100),
		PorcentajeRAM: float64(1048-i%100) * 100 / 2048, PorcentajeCPUUso: float64(i % 100), PorcentajeCPULibre: float64(100 - i%100),
		ProcesosCorriendo: 2, TotalProcesos: 100, ProcesosDurmiendo: 97, ProcesosZombie: 0, ProcesosParados: 1,
		Hora: record.NewHora(time.Now()),
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestStrategiesStoreAndPublishEachRecordOnce sends N records as concurrent
// single-record requests (and a few arrays) to each strategy, retries some, and
// checks every record is stored once, tagged with its route, and published once.
func TestStrategiesStoreAndPublishEachRecordOnce(t *testing.T) {
	for _, route := range []string{ingest.Route1, ingest.Route2} {
		t.Run(route, func(t *testing.T) {
			e := newEnv(t, route)
			const n = 300
			ids := make([]string, 0, n+30)
			var wg sync.WaitGroup
			errs := make(chan string, n)
			sem := make(chan struct{}, 32)
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("%s-%04d", route, i)
				ids = append(ids, id)
				wg.Add(1)
				sem <- struct{}{}
				go func(i int, id string) {
					defer wg.Done()
					defer func() { <-sem }()
					code, body := e.post(t, "application/json", jsonOf(sample(id, i)))
					if code != http.StatusCreated || body["route"] != route {
						errs <- fmt.Sprintf("%s: %d %v", id, code, body)
					}
				}(i, id)
			}
			// An array of 30 in one request.
			var arr []record.Record
			for i := 0; i < 30; i++ {
				id := fmt.Sprintf("%s-arr-%02d", route, i)
				ids = append(ids, id)
				arr = append(arr, sample(id, i))
			}
			if code, body := e.post(t, "application/json; charset=utf-8", jsonOf(arr)); code != http.StatusCreated || body["stored"] != float64(30) {
				t.Fatalf("array: %d %v", code, body)
			}
			wg.Wait()
			close(errs)
			for msg := range errs {
				t.Error(msg)
			}
			// Retrying already stored records (a client that lost the answer) changes nothing.
			for i := 0; i < 5; i++ {
				if code, _ := e.post(t, "application/json", jsonOf(sample(ids[i], i))); code != http.StatusCreated {
					t.Fatalf("retry: %d", code)
				}
			}
			if got := e.rows(t); got != len(ids) {
				t.Fatalf("%d rows, want %d", got, len(ids))
			}
			byRoute, err := e.store.CountByRoute(context.Background(), nil)
			if err != nil || byRoute[route] != int64(len(ids)) {
				t.Fatalf("rows by route: %v %v", byRoute, err)
			}
			pub := e.waitPublished(t, ids)
			for _, id := range ids {
				want := 1
				if id == ids[0] || id == ids[1] || id == ids[2] || id == ids[3] || id == ids[4] {
					want = 2 // a retried record is published again: at-least-once, de-duplicated by id downstream
				}
				if pub[id] != want {
					t.Errorf("%s published %d times, want %d", id, pub[id], want)
				}
			}
			if len(pub) != len(ids) {
				t.Errorf("%d distinct ids published, want %d", len(pub), len(ids))
			}
			e.mu.Lock()
			a := e.attrs[ids[10]]
			e.mu.Unlock()
			if a[pubsub.AttrRoute] != route || a[pubsub.AttrVM] != "vm-test" || a[pubsub.AttrStoredAt] == "" || a[pubsub.AttrCommitMS] == "" {
				t.Errorf("attributes %v", a)
			}
			resp, _ := http.Get(e.srv.URL + "/metrics")
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{
				fmt.Sprintf(`vmpulse_ingest_records_total{route="%s"} %d`, route, len(ids)+5),
				// Every record was acknowledged by Pub/Sub (waitPublished saw them all).
				fmt.Sprintf(`vmpulse_ingest_published_total{route="%s"} %d`, route, len(ids)+5),
				"vmpulse_ingest_commit_seconds_bucket",
			} {
				if !bytes.Contains(m, []byte(want)) {
					t.Errorf("/metrics lacks %q:\n%s", want, m)
				}
			}
			if bytes.Contains(m, []byte("vmpulse_ingest_publish_errors_total{")) {
				t.Errorf("publish errors reported:\n%s", m)
			}
		})
	}
}

// TestInvalidInputChangesNothing: every bad request is refused with a message
// naming the problem, and no row appears.
func TestInvalidInputChangesNothing(t *testing.T) {
	e := newEnv(t, ingest.Route2)
	good := jsonOf(sample("good-1", 1))
	bad := strings.Replace(good, `"porcentaje_cpu_uso":1`, `"porcentaje_cpu_uso":140`, 1)
	cases := []struct {
		name, ctype, body string
		code              int
		field             string
	}{
		{"invalid field", "application/json", bad, 400, "porcentaje_cpu_uso"},
		{"one bad in an array", "application/json", "[" + good + "," + bad + "]", 400, "porcentaje_cpu_uso"},
		{"not json", "application/json", "{nope", 400, ""},
		{"empty array", "application/json", "[]", 400, ""},
		{"form post", "application/x-www-form-urlencoded", good, 415, ""},
		{"no content type", "", good, 415, ""},
		{"too large", "application/json", "[" + strings.Repeat(good+",", 400) + good + "]", 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.post(t, c.ctype, c.body)
			if code != c.code {
				t.Fatalf("status %d (%v), want %d", code, body, c.code)
			}
			if c.field != "" && body["field"] != c.field {
				t.Fatalf("field %v, want %s (%v)", body["field"], c.field, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Fatalf("no error message: %v", body)
			}
		})
	}
	if code, body := e.post(t, "application/json", "["+good+","+bad+"]"); code != 400 || body["index"] != float64(1) {
		t.Fatalf("index of the bad record: %d %v", code, body)
	}
	if n := e.rows(t); n != 0 {
		t.Fatalf("%d rows after invalid requests, want 0", n)
	}
	resp, _ := http.Get(e.srv.URL + "/ingest")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /ingest: %d", resp.StatusCode)
	}
	resp, _ = http.Get(e.srv.URL + "/healthz")
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
}

// TestPeerRecordGetsStableID: a record from another implementation (no id) is
// stored under a content id, so sending it again does not duplicate it.
func TestPeerRecordGetsStableID(t *testing.T) {
	e := newEnv(t, ingest.Route1)
	peer := `{"total_ram":2072,"ram_libre":1710751744,"uso_ram":440,"porcentaje_ram":21,"porcentaje_cpu_uso":22,
	"porcentaje_cpu_libre":78,"procesos_corriendo":1,"total_procesos":233,"procesos_durmiendo":225,
	"procesos_zombie":1,"procesos_parados":2,"hora":"2025-06-17 02:21:54"}`
	_, first := e.post(t, "application/json", peer)
	code, again := e.post(t, "application/json", peer)
	if code != 201 || jsonOf(first["ids"]) != jsonOf(again["ids"]) {
		t.Fatalf("ids %v then %v", first["ids"], again["ids"])
	}
	if n := e.rows(t); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	var libre int
	e.store.DB().QueryRow("SELECT ram_libre FROM records").Scan(&libre)
	if libre != 1631 {
		t.Fatalf("ram_libre %d MiB, want 1631 (converted from bytes)", libre)
	}
}

// TestHealthReportsFailingDependency: with the database gone, /healthz is 503 and
// names it, and ingest answers 503 (retry) instead of losing records.
func TestHealthReportsFailingDependency(t *testing.T) {
	e := newEnv(t, ingest.Route1)
	e.store.Close()
	resp, err := http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "mysql") {
		t.Fatalf("/healthz: %d %s", resp.StatusCode, b)
	}
	code, body := e.post(t, "application/json", jsonOf(sample("x", 1)))
	if code != 503 {
		t.Fatalf("ingest with the DB gone: %d %v", code, body)
	}
}
