package ingest_test

// Integration tests: route instances as vmpulse-route wires them (StartService)
// against MariaDB and the Pub/Sub emulator. handler_test.go covers the HTTP
// contract without either.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
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

const token = "integration-token-0123456789"

// collector subscribes to a fresh topic and counts what is published on it.
type collector struct {
	client *gps.Client
	topic  string

	mu        sync.Mutex
	published map[string]int // record id → times published
	attrs     map[string]map[string]string
	data      map[string][]byte
	beats     int
}

func newCollector(t *testing.T, name string) *collector {
	t.Helper()
	ctx := context.Background()
	client, err := pubsub.Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c := &collector{client: client, topic: testenv.Unique(name), published: map[string]int{},
		attrs: map[string]map[string]string{}, data: map[string][]byte{}}
	if err := pubsub.EnsureTopic(ctx, client, c.topic, true); err != nil {
		t.Fatal(err)
	}
	sub, err := pubsub.CreateInstanceSubscription(ctx, client, c.topic, testenv.Unique("collect"))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pubsub.Receive(rctx, client, sub, func(data []byte, attrs map[string]string) {
			m, err := pubsub.Decode(data, attrs)
			if err != nil {
				t.Errorf("undecodable message: %v", err)
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if m.Kind == pubsub.KindHeartbeat {
				c.beats++
				return
			}
			c.published[m.ID]++
			c.attrs[m.ID] = attrs
			c.data[m.ID] = data
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		pubsub.DeleteSubscription(context.Background(), client, sub)
	})
	return c
}

// waitPublished waits until every id was published, then a little longer to catch
// duplicates, and returns the counts.
func (c *collector) waitPublished(t *testing.T, ids []string, within time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		missing := 0
		for _, id := range ids {
			if c.published[id] == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records never published", missing, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.published {
		out[k] = v
	}
	return out
}

// route is one running route instance behind an httptest server.
type route struct {
	url   string
	svc   *ingest.Service
	store *mysql.Store
}

func startRoute(t *testing.T, name, dsn string, client *gps.Client, topic string, mod func(*ingest.ServiceConfig)) *route {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	store, err := mysql.Open(ctx, mysql.Config{DSN: dsn, Wait: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := ingest.StaticTokens(token)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingest.ServiceConfig{Route: name, Store: store, OwnStore: true, Pubsub: client, Topic: topic, Tokens: tokens,
		Heartbeat: time.Second, MaxBody: 64 << 10, Log: log}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := ingest.StartService(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		svc.Close(ctx)
	})
	return &route{url: srv.URL, svc: svc, store: store}
}

func (r *route) post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.url+"/ingest", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func (r *route) rows(t *testing.T) int {
	var n int
	if err := r.store.DB().QueryRow("SELECT COUNT(*) FROM records").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *route) get(t *testing.T, path string) (int, string) {
	resp, err := http.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sample(id string, i int) record.Record {
	return record.Record{
		ID: id, VM: "vm-test", Source: record.SourceProcfs, TotalRAM: 2048, RAMLibre: int64(1000 + i%100), UsoRAM: int64(1048 - i%100),
		PorcentajeRAM: float64(1048-i%100) * 100 / 2048, PorcentajeCPUUso: float64(i % 100), PorcentajeCPULibre: float64(100 - i%100),
		ProcesosCorriendo: 2, TotalProcesos: 100, ProcesosDurmiendo: 97, ProcesosZombie: 0, ProcesosParados: 1,
		Hora:        record.NewHora(time.Now()),
		TopProcesos: []record.Process{{PID: 1, Name: "init", State: "S", RSSMiB: 3}},
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestStrategiesStoreAndPublishEachRecordOnce sends N records as concurrent
// single-record requests (and an array) to each strategy, retries some, and
// checks every record is stored once, tagged with its route, and published once:
// a retry of a stored record is acknowledged but not published again.
func TestStrategiesStoreAndPublishEachRecordOnce(t *testing.T) {
	for _, name := range []string{ingest.Route1, ingest.Route2} {
		t.Run(name, func(t *testing.T) {
			col := newCollector(t, "records-"+name)
			r := startRoute(t, name, testenv.MySQL(t), col.client, col.topic, nil)
			const n = 300
			ids := make([]string, 0, n+30)
			sent := make([]string, n) // the bodies, to retry them unchanged
			var wg sync.WaitGroup
			errs := make(chan string, n)
			sem := make(chan struct{}, 32)
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("%s-%04d", name, i)
				ids = append(ids, id)
				sent[i] = jsonOf(sample(id, i))
				wg.Add(1)
				sem <- struct{}{}
				go func(i int, id string) {
					defer wg.Done()
					defer func() { <-sem }()
					code, body := r.post(t, sent[i])
					if code != http.StatusCreated || body["route"] != name {
						errs <- fmt.Sprintf("%s: %d %v", id, code, body)
					}
				}(i, id)
			}
			var arr []record.Record
			for i := 0; i < 30; i++ {
				id := fmt.Sprintf("%s-arr-%02d", name, i)
				ids = append(ids, id)
				arr = append(arr, sample(id, i))
			}
			if code, body := r.post(t, jsonOf(arr)); code != http.StatusCreated || body["stored"] != float64(30) {
				t.Fatalf("array: %d %v", code, body)
			}
			wg.Wait()
			close(errs)
			for msg := range errs {
				t.Error(msg)
			}
			col.waitPublished(t, ids, 30*time.Second)
			// Retrying stored records (a client that lost the answer) changes nothing
			// and publishes nothing again.
			for i := 0; i < 5; i++ {
				if code, m := r.post(t, sent[i]); code != http.StatusCreated {
					t.Fatalf("retry: %d %v", code, m)
				}
			}
			if got := r.rows(t); got != len(ids) {
				t.Fatalf("%d rows, want %d", got, len(ids))
			}
			byRoute, err := r.store.CountByRoute(context.Background(), nil)
			if err != nil || byRoute[name] != int64(len(ids)) {
				t.Fatalf("rows by route: %v %v", byRoute, err)
			}
			time.Sleep(time.Second)
			pub := col.waitPublished(t, ids, time.Second)
			for _, id := range ids {
				if pub[id] != 1 {
					t.Errorf("%s published %d times, want 1", id, pub[id])
				}
			}
			col.mu.Lock()
			a, data, beats := col.attrs[ids[10]], col.data[ids[10]], col.beats
			col.mu.Unlock()
			if a[pubsub.AttrRoute] != name || a[pubsub.AttrVM] != "vm-test" || a[pubsub.AttrStoredAt] == "" ||
				a[pubsub.AttrCommitMS] == "" || a[pubsub.AttrBatch] == "" || a[pubsub.AttrKind] != pubsub.KindRecord {
				t.Errorf("attributes %v", a)
			}
			// What was published is what MySQL holds.
			var got record.Record
			json.Unmarshal(data, &got)
			batch, _ := strconv.ParseInt(a[pubsub.AttrBatch], 10, 64)
			sbs, err := r.store.ReadBatches(context.Background(), []int64{batch})
			sb := sbs[batch]
			if err != nil || sb == nil {
				t.Fatalf("published %s in batch %d, which MySQL does not hold: %v", data, batch, err)
			}
			found := false
			for _, s := range sb.Records {
				found = found || (s.ID == got.ID && record.Equal(s, got))
			}
			if err != nil || !found || sb.Route != name {
				t.Errorf("published %s, but batch %d holds %+v (%v)", data, batch, sb, err)
			}
			if beats == 0 {
				t.Error("no heartbeat was published")
			}
			_, m := r.get(t, "/metrics")
			for _, want := range []string{
				fmt.Sprintf(`vmpulse_ingest_records_total{route="%s"} %d`, name, len(ids)),
				fmt.Sprintf(`vmpulse_ingest_published_total{route="%s"} %d`, name, len(ids)),
				fmt.Sprintf(`vmpulse_ingest_requests_total{code="201",route="%s"} %d`, name, n+1+5),
				"vmpulse_ingest_commit_seconds_bucket", "go_goroutines", "process_resident_memory_bytes",
			} {
				if !strings.Contains(m, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			if !strings.Contains(m, fmt.Sprintf(`vmpulse_ingest_publish_errors_total{route="%s"} 0`, name)) {
				t.Errorf("publish errors reported:\n%s", m)
			}
		})
	}
}

// TestPeerRecordGetsStableID: a record from another implementation (no id, RAM in
// bytes) is stored under a content id in MiB, so sending it again does not
// duplicate it.
func TestPeerRecordGetsStableID(t *testing.T) {
	col := newCollector(t, "peer")
	r := startRoute(t, ingest.Route1, testenv.MySQL(t), col.client, col.topic, nil)
	peer := `{"total_ram":2072,"ram_libre":1710751744,"uso_ram":440,"porcentaje_ram":21,"porcentaje_cpu_uso":22,
	"porcentaje_cpu_libre":78,"procesos_corriendo":1,"total_procesos":233,"procesos_durmiendo":225,
	"procesos_zombie":1,"procesos_parados":2,"hora":"2025-06-17 02:21:54"}`
	_, first := r.post(t, peer)
	code, again := r.post(t, peer)
	if code != 201 || jsonOf(first["ids"]) != jsonOf(again["ids"]) {
		t.Fatalf("ids %v then %v", first["ids"], again["ids"])
	}
	if n := r.rows(t); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	var libre int
	r.store.DB().QueryRow("SELECT ram_libre FROM records").Scan(&libre)
	if libre != 1631 {
		t.Fatalf("ram_libre %d MiB, want 1631 (converted from bytes)", libre)
	}
}

// TestOutboxRepublishesWhatPubSubMissed: a route whose Pub/Sub is unreachable
// still stores and acknowledges at once, reports Pub/Sub failing without failing
// readiness, and its records reach the topic anyway: the outbox of another
// instance (holding the republisher's lock) finds the unmarked batches after the
// grace period and publishes them from MySQL.
func TestOutboxRepublishesWhatPubSubMissed(t *testing.T) {
	col := newCollector(t, "outbox")
	dsn := testenv.MySQL(t)
	fast := func(c *ingest.ServiceConfig) {
		c.DBTimeout = time.Second
		c.Outbox = ingest.OutboxConfig{Grace: 2 * time.Second, Every: 200 * time.Millisecond, Lookback: time.Minute,
			LockName: testenv.Unique("outbox-lock")}
	}
	good := startRoute(t, ingest.Route2, dsn, col.client, col.topic, fast)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, m := good.get(t, "/metrics"); strings.Contains(m, `vmpulse_outbox_leader{route="route2"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first instance never took the republisher's lock")
		}
		time.Sleep(100 * time.Millisecond)
	}
	dead, err := pubsub.Connect(context.Background(), "vmpulse-test", "127.0.0.1:1") // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	cut := startRoute(t, ingest.Route1, dsn, dead, col.topic, fast)
	var ids []string
	start := time.Now()
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("cut-%02d", i)
		ids = append(ids, id)
		if code, m := cut.post(t, jsonOf(sample(id, i))); code != 201 {
			t.Fatalf("%s: %d %v", id, code, m)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("20 requests took %v with Pub/Sub down: ingest waited on Pub/Sub", el)
	}
	pub := col.waitPublished(t, ids, 30*time.Second)
	for _, id := range ids {
		if pub[id] < 1 {
			t.Fatalf("%s never published", id)
		}
	}
	if a := col.attrs[ids[0]]; a[pubsub.AttrRoute] != ingest.Route1 {
		t.Fatalf("republished with attributes %v: the route that stored it must be kept", a)
	}
	if code, h := cut.get(t, "/healthz"); code != 200 || !strings.Contains(h, `"pubsub":"failing`) {
		t.Fatalf("readiness with Pub/Sub down: %d %s", code, h)
	}
	if _, m := good.get(t, "/metrics"); !strings.Contains(m, `vmpulse_outbox_republished_records_total{route="route2"} 20`) {
		t.Errorf("republished count missing:\n%s", grep(m, "vmpulse_outbox"))
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestHealthFollowsMySQL: with the database closed, readiness fails and ingest
// answers 503 + Retry-After; nothing is acknowledged.
func TestHealthFollowsMySQL(t *testing.T) {
	r := startRoute(t, ingest.Route2, testenv.MySQL(t), nil, "", nil)
	if code, body := r.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz %d %s", code, body)
	}
	r.store.Close()
	time.Sleep(1100 * time.Millisecond) // past the health cache
	if code, body := r.get(t, "/healthz"); code != 503 || !bytes.Contains([]byte(body), []byte("mysql")) {
		t.Fatalf("/healthz with MySQL closed: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, r.url+"/ingest", strings.NewReader(jsonOf(sample("x", 1))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("ingest with MySQL closed: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
