package driver

import (
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

	"github.com/vmpulse/vmpulse/record"
)

// sample makes a valid record with the given id ("" for none) and process count.
func sample(id string, n int) json.RawMessage {
	r := map[string]any{
		"vm": "vm-test", "total_ram": 2048, "ram_libre": 1100, "uso_ram": 948,
		"porcentaje_ram": 46.3, "porcentaje_cpu_uso": 22.5, "porcentaje_cpu_libre": 77.5,
		"procesos_corriendo": 3, "total_procesos": 200 + n, "procesos_durmiendo": 150,
		"procesos_zombie": 1, "procesos_parados": 2, "hora": "2025-06-17 02:21:54",
	}
	if id != "" {
		r["id"] = id
	}
	b, _ := json.Marshal(r)
	return b
}

func TestParseWait(t *testing.T) {
	for in, want := range map[string]Wait{
		"1s-2s":      {time.Second, 2 * time.Second},
		"1-4":        {time.Second, 4 * time.Second},
		"500ms-1.5s": {500 * time.Millisecond, 1500 * time.Millisecond},
		"0":          {0, 0},
		" 2s ":       {2 * time.Second, 2 * time.Second},
		"0.1-0.2":    {100 * time.Millisecond, 200 * time.Millisecond},
	} {
		got, err := ParseWait(in)
		if err != nil || got != want {
			t.Errorf("ParseWait(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2s-1s", "x", "1s-", "-1"} {
		if w, err := ParseWait(in); err == nil {
			t.Errorf("ParseWait(%q) = %v, want an error", in, w)
		}
	}
}

func TestRecordsFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "records.json")
	recs := []json.RawMessage{sample("a1", 1), json.RawMessage(" {\"id\": \"a2\",\n \"x\": 1}"), sample("", 3)}
	if err := WriteFile(path, recs); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 5 || lines[0] != "[" || lines[4] != "]" || !strings.HasSuffix(lines[1], "},") || strings.HasSuffix(lines[3], ",") {
		t.Fatalf("file layout: want a JSON array with one record per line, got\n%s", data)
	}
	var arr []map[string]any
	if err := json.Unmarshal(data, &arr); err != nil || len(arr) != 3 {
		t.Fatalf("not a JSON array of 3: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	items, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Key != "a1" || items[0].Err != nil {
		t.Fatalf("items = %+v", items)
	}
	if items[1].Key != "a2" || items[1].Err == nil {
		t.Errorf("an invalid record with an id keeps its id and reports why: %+v", items[1])
	}
	recs3, _ := record.DecodeBatch(sample("", 3))
	if want := record.ContentID(recs3[0]); items[2].Key != want {
		t.Errorf("record without id: key %q, want the ingress's content id %q", items[2].Key, want)
	}
	// Overwriting replaces the file as a whole.
	if err := WriteFile(path, recs[:1]); err != nil {
		t.Fatal(err)
	}
	if items, _ := ReadFile(path); len(items) != 1 {
		t.Errorf("after rewrite: %d items", len(items))
	}
	// One object (the agent's answer) also parses.
	if items, err := ParseRecords(sample("one", 1)); err != nil || len(items) != 1 || items[0].Key != "one" {
		t.Errorf("single object: %+v %v", items, err)
	}
	for _, bad := range []string{"", "nope", "[1,", "{"} {
		if _, err := ParseRecords([]byte(bad)); err == nil {
			t.Errorf("ParseRecords(%q): want an error", bad)
		}
	}
}

// fakeAgent serves a new record every period, like the agent's ticker.
func fakeAgent(t *testing.T, period time.Duration, noID bool) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sample" {
			http.NotFound(w, r)
			return
		}
		n := hits.Add(1)
		if n%50 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		seq := int(time.Since(start) / period)
		id := fmt.Sprintf("S%06d", seq)
		if noID {
			id = ""
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(sample(id, seq))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestCollectStopsAtTargetWithoutDuplicates(t *testing.T) {
	for _, noID := range []bool{false, true} {
		t.Run(fmt.Sprintf("noID=%v", noID), func(t *testing.T) {
			srv, hits := fakeAgent(t, 2*time.Millisecond, noID)
			var progress []Progress
			var pmu sync.Mutex
			var failures atomic.Int64
			res, err := Collect(context.Background(), CollectConfig{
				AgentURL: srv.URL + "/", Load: Load{Users: 20, SpawnRate: 0, Wait: Wait{0, time.Millisecond}},
				Records: 150, Duration: 20 * time.Second,
				Progress:      func(p Progress) { pmu.Lock(); progress = append(progress, p); pmu.Unlock() },
				ProgressEvery: 20 * time.Millisecond,
				Failure:       func(string) { failures.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Stop != "records" || len(res.Records) != 150 {
				t.Fatalf("stop=%s records=%d, want records/150", res.Stop, len(res.Records))
			}
			seen := map[string]bool{}
			for _, raw := range res.Records {
				k, err := Key(raw)
				if err != nil || seen[k] {
					t.Fatalf("duplicate or invalid record %s: %v", raw, err)
				}
				seen[k] = true
			}
			if res.Duplicates == 0 {
				t.Errorf("20 users polling a 2 ms agent with no wait saw no duplicates: %+v", res)
			}
			if res.Failures == 0 || res.Failures != failures.Load() {
				t.Errorf("every 50th request fails: failures=%d, callback saw %d", res.Failures, failures.Load())
			}
			if got := int64(len(res.Records)) + res.Duplicates + res.Failures; got > res.Requests || res.Requests > hits.Load() {
				t.Errorf("requests=%d, records+duplicates+failures=%d, server hits=%d", res.Requests, got, hits.Load())
			}
			pmu.Lock()
			defer pmu.Unlock()
			if len(progress) < 2 || !progress[len(progress)-1].Final || progress[len(progress)-1].Records != 150 {
				t.Errorf("progress: %d snapshots, last %+v", len(progress), progress[len(progress)-1])
			}
		})
	}
}

func TestCollectTimeLimitAndSpawnRate(t *testing.T) {
	srv, _ := fakeAgent(t, time.Hour, false) // the same record all the time
	var maxUsers atomic.Int64
	res, err := Collect(context.Background(), CollectConfig{
		AgentURL: srv.URL, Load: Load{Users: 100, SpawnRate: 20, Wait: Wait{10 * time.Millisecond, 20 * time.Millisecond}},
		Records: 10, Duration: 300 * time.Millisecond,
		Progress:      func(p Progress) { maxUsers.Store(int64(p.Users)) },
		ProgressEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "duration" || len(res.Records) != 1 {
		t.Fatalf("stop=%s records=%d, want duration/1", res.Stop, len(res.Records))
	}
	// 20 users/s for 0.3 s: users 0..6 start at 0, 50 ms, …, 300 ms.
	if res.Users < 3 || res.Users > 8 {
		t.Errorf("%d users started in 300 ms at 20/s, want about 6", res.Users)
	}
	if res.Elapsed > 2*time.Second {
		t.Errorf("took %v", res.Elapsed)
	}
	if res.UniqueRatio() <= 0 || res.UniqueRatio() >= 0.5 {
		t.Errorf("unique ratio %v", res.UniqueRatio())
	}
}

func TestCollectCanceled(t *testing.T) {
	srv, hits := fakeAgent(t, time.Millisecond, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { // cancel once the users are polling, however slow the machine
		for hits.Load() < 20 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	res, err := Collect(ctx, CollectConfig{AgentURL: srv.URL, Load: Load{Users: 5, Wait: Wait{time.Millisecond, time.Millisecond}}, Records: 1e6})
	if err != nil || res.Stop != "canceled" || len(res.Records) == 0 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

// fakeIngress records what it commits and misbehaves on purpose.
type fakeIngress struct {
	mu        sync.Mutex
	commits   map[string]int // committed once; later copies are idempotent no-ops
	posts     map[string]int
	inFlight  map[string]bool
	overlap   []string
	fail503   map[string]int  // id -> failures left (503)
	hangup    map[string]int  // id -> times to close the connection without answering
	ackThenGo map[string]bool // commit, then drop the connection before answering
	always503 map[string]bool
}

func newFakeIngress() *fakeIngress {
	return &fakeIngress{commits: map[string]int{}, posts: map[string]int{}, inFlight: map[string]bool{},
		fail503: map[string]int{}, hangup: map[string]int{}, ackThenGo: map[string]bool{}, always503: map[string]bool{}}
}

func (f *fakeIngress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/ingest" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request line", http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	recs, err := record.DecodeBatch(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := recs[0].ID
	if id == "" {
		id = record.ContentID(recs[0])
	}
	f.mu.Lock()
	f.posts[id]++
	if f.inFlight[id] {
		f.overlap = append(f.overlap, id)
	}
	f.inFlight[id] = true
	f.mu.Unlock()
	time.Sleep(time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, id)
	hang := func() {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	switch {
	case f.always503[id]:
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
	case f.fail503[id] > 0:
		f.fail503[id]--
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
	case f.hangup[id] > 0:
		f.hangup[id]--
		hang()
	case f.ackThenGo[id]:
		delete(f.ackThenGo, id)
		f.commits[id] = 1
		hang()
	default:
		if f.commits[id] == 0 {
			f.commits[id] = 1
		}
		w.WriteHeader(http.StatusCreated)
	}
}

func TestSendExactlyOnceWithRetriesAndRejections(t *testing.T) {
	const n = 300
	var raws []json.RawMessage
	for i := range n {
		raws = append(raws, sample(fmt.Sprintf("R%04d", i), i))
	}
	raws = append(raws, sample("", 1000)) // no id: keyed by content
	bad := `{"id":"BAD1","total_ram":2048,"ram_libre":1,"uso_ram":2047,"porcentaje_ram":99,"porcentaje_cpu_uso":120,"porcentaje_cpu_libre":0,"procesos_corriendo":1,"total_procesos":2,"procesos_durmiendo":1,"procesos_zombie":0,"procesos_parados":0,"hora":"2025-06-17 02:21:54"}`
	raws = append(raws, json.RawMessage(bad))
	items, err := ParseRecords(EncodeRecords(raws))
	if err != nil {
		t.Fatal(err)
	}
	ing := newFakeIngress()
	for i := 0; i < n; i += 10 {
		ing.fail503[fmt.Sprintf("R%04d", i)] = 2
	}
	for i := 5; i < n; i += 25 {
		ing.hangup[fmt.Sprintf("R%04d", i)] = 1
	}
	ing.ackThenGo["R0007"] = true
	srv := httptest.NewServer(ing)
	defer srv.Close()

	var events []Event
	var emu sync.Mutex
	var last Progress
	res, err := Send(context.Background(), SendConfig{
		IngressURL: srv.URL, Load: Load{Users: 30, SpawnRate: 300, Wait: Wait{0, 2 * time.Millisecond}},
		Records: items, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Progress: func(p Progress) { last = p }, ProgressEvery: 10 * time.Millisecond,
		Event: func(e Event) { emu.Lock(); events = append(events, e); emu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "done" || res.Committed != n+1 || len(res.Unsent) != 0 || len(res.GaveUp) != 0 {
		t.Fatalf("stop=%s committed=%d unsent=%d gaveup=%d, want done/%d/0/0", res.Stop, res.Committed, len(res.Unsent), len(res.GaveUp), n+1)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Item.Key != "BAD1" || res.Rejected[0].Status != 400 ||
		!strings.Contains(res.Rejected[0].Message, "porcentaje_cpu_uso") {
		t.Errorf("rejected = %+v, want BAD1 with a 400 naming porcentaje_cpu_uso", res.Rejected)
	}
	if res.Complete() {
		t.Error("Complete() with a rejected record")
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if len(ing.overlap) > 0 {
		t.Errorf("records sent by two users at once: %v", ing.overlap)
	}
	if len(ing.commits) != n+1 {
		t.Errorf("%d records stored, want %d", len(ing.commits), n+1)
	}
	// 30 records fail twice with 503, 12 hang up once, 1 is acknowledged by a dropped
	// connection: each is resent until it gets its 201 and is never sent again after.
	wantFailures := int64(30*2 + 12 + 1)
	if res.Failures != wantFailures || res.Retries != wantFailures {
		t.Errorf("failures=%d retries=%d, want %d each", res.Failures, res.Retries, wantFailures)
	}
	for id, posts := range ing.posts {
		want := 1 + 2*ing0(id, 10, 0) + ing0(id, 25, 5)
		if id == "R0007" {
			want++
		}
		if id == "BAD1" || !strings.HasPrefix(id, "R") {
			want = 1
		}
		if posts != want {
			t.Errorf("%s posted %d times, want %d", id, posts, want)
		}
	}
	if res.Requests != int64(n+2)+wantFailures {
		t.Errorf("requests=%d, want %d", res.Requests, int64(n+2)+wantFailures)
	}
	emu.Lock()
	nf := 0
	for _, e := range events {
		if e.Kind == "failure" {
			nf++
		}
	}
	emu.Unlock()
	if nf != int(wantFailures) {
		t.Errorf("%d failure events, want %d", nf, wantFailures)
	}
	if !last.Final || last.Records != n+1 || last.Rejected != 1 || last.InFlight != 0 {
		t.Errorf("final progress %+v", last)
	}
}

// ing0 is 1 when the record R<i> has i ≡ rem (mod every).
func ing0(id string, every, rem int) int {
	var i int
	fmt.Sscanf(id, "R%04d", &i)
	if i%every == rem {
		return 1
	}
	return 0
}

func TestSendGivesUpAndKeepsUnsent(t *testing.T) {
	var raws []json.RawMessage
	for i := range 20 {
		raws = append(raws, sample(fmt.Sprintf("G%02d", i), i))
	}
	items, _ := ParseRecords(EncodeRecords(raws))
	ing := newFakeIngress()
	ing.always503["G03"] = true
	srv := httptest.NewServer(ing)
	defer srv.Close()
	var gaveUp []Event
	res, err := Send(context.Background(), SendConfig{
		IngressURL: srv.URL + "/ingest", Load: Load{Users: 4, Wait: Wait{0, time.Millisecond}}, Records: items,
		MaxAttempts: 3, Backoff: time.Millisecond,
		Event: func(e Event) {
			if e.Kind == "gave-up" {
				gaveUp = append(gaveUp, e)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "done" || res.Committed != 19 || len(res.GaveUp) != 1 || len(res.Unsent) != 1 || res.Unsent[0].Key != "G03" {
		t.Fatalf("res = %+v", res)
	}
	if res.Failures != 3 || len(gaveUp) != 1 || gaveUp[0].Attempt != 3 || gaveUp[0].Status != 503 {
		t.Errorf("failures=%d gave-up events=%+v", res.Failures, gaveUp)
	}
	if ing.posts["G03"] != 3 {
		t.Errorf("G03 posted %d times, want 3", ing.posts["G03"])
	}
}

func TestSendTimeLimitLeavesRestUnsent(t *testing.T) {
	var raws []json.RawMessage
	for i := range 200 {
		raws = append(raws, sample(fmt.Sprintf("T%03d", i), i))
	}
	items, _ := ParseRecords(EncodeRecords(raws))
	var commits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(50 * time.Millisecond)
		commits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	// 5 users × 1.5 s / 50 ms: at most 150 of the 200 records, and some even on a busy machine.
	res, err := Send(context.Background(), SendConfig{
		IngressURL: srv.URL, Load: Load{Users: 5, Wait: Wait{0, 0}}, Records: items, Duration: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "duration" || res.Committed == 0 || res.Committed+len(res.Unsent) != 200 {
		t.Fatalf("stop=%s committed=%d unsent=%d", res.Stop, res.Committed, len(res.Unsent))
	}
	if res.Failures != 0 {
		t.Errorf("requests cut short by the time limit counted as failures: %d", res.Failures)
	}
	for i := 1; i < len(res.Unsent); i++ {
		if res.Unsent[i-1].Index >= res.Unsent[i].Index {
			t.Fatal("unsent records not in file order")
		}
	}
}

func TestSendNothing(t *testing.T) {
	res, err := Send(context.Background(), SendConfig{IngressURL: "http://127.0.0.1:1", Load: Load{Users: 3}})
	if err != nil || res.Stop != "done" || res.Requests != 0 || !res.Complete() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestSendConnectionRefusedIsRetried(t *testing.T) {
	items, _ := ParseRecords(EncodeRecords([]json.RawMessage{sample("C1", 1)}))
	res, err := Send(context.Background(), SendConfig{
		IngressURL: "http://127.0.0.1:1", Load: Load{Users: 1}, Records: items, MaxAttempts: 2, Backoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 2 || len(res.GaveUp) != 1 || res.Complete() {
		t.Fatalf("res=%+v", res)
	}
}

func TestQueueHandsEachRecordOnce(t *testing.T) {
	var items []Item
	for i := range 5000 {
		items = append(items, Item{Index: i, Key: fmt.Sprint(i)})
	}
	q := newQueue(items)
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				j := q.take(time.Now())
				if j == nil {
					select {
					case <-q.done:
						return
					default:
						time.Sleep(time.Microsecond)
						continue
					}
				}
				mu.Lock()
				got[j.item.Index]++
				mu.Unlock()
				if j.item.Index%7 == 0 && j.attempt == 1 {
					q.retry(j, time.Now())
				} else {
					q.commit(j)
				}
			}
		})
	}
	wg.Wait()
	if q.committed != len(items) {
		t.Fatalf("committed %d of %d", q.committed, len(items))
	}
	for i := range items {
		want := 1
		if i%7 == 0 {
			want = 2
		}
		if got[i] != want {
			t.Fatalf("record %d handed out %d times, want %d", i, got[i], want)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for _, c := range [][3]string{
		{"http://h:1", "/ingest", "http://h:1/ingest"},
		{"http://h:1/", "/ingest", "http://h:1/ingest"},
		{"http://h:1/ingest", "/ingest", "http://h:1/ingest"},
		{"http://h:1/api/", "/sample", "http://h:1/api/sample"},
	} {
		if got := endpoint(c[0], c[1]); got != c[2] {
			t.Errorf("endpoint(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}
