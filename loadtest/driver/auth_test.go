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
)

// tokenIngress checks the bearer token as the routes do (401, no body echo) and
// answers 201 with the route and commit time, alternating between two routes.
type tokenIngress struct {
	token  string
	n      atomic.Int64
	mu     sync.Mutex
	stored map[string]int
	noAuth atomic.Int64
}

func (f *tokenIngress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.noAuth.Add(1)
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, `{"error":"missing or invalid bearer token"}`, http.StatusUnauthorized)
		return
	}
	var p struct{ ID string }
	json.Unmarshal(body, &p)
	f.mu.Lock()
	f.stored[p.ID]++
	f.mu.Unlock()
	n := f.n.Add(1)
	route := []string{"route1", "route2"}[n%2]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"route":%q,"stored":1,"ids":[%q],"commit_ms":%d.5,"batch":1}`, route, p.ID, 1+n%2*10)
}

func items(t *testing.T, n int, vm string) []Item {
	var raws []json.RawMessage
	for i := range n {
		var m map[string]any
		json.Unmarshal(sample(fmt.Sprintf("%s-%03d", vm, i), i), &m)
		m["vm"] = vm
		b, _ := json.Marshal(m)
		raws = append(raws, b)
	}
	f, err := ParseRecordsFile(EncodeRecords(raws), UnitAuto)
	if err != nil {
		t.Fatal(err)
	}
	return f.Items
}

func TestSendWithTokenAggregatesRoutes(t *testing.T) {
	ing := &tokenIngress{token: "s3cret", stored: map[string]int{}}
	srv := httptest.NewServer(ing)
	defer srv.Close()
	recs := append(items(t, 30, "vm-a"), items(t, 20, "vm-b")...)
	groups := GroupByVM(recs)
	if len(groups) != 2 || groups[0].VM != "vm-a" || len(groups[1].Items) != 20 {
		t.Fatalf("groups: %+v", groups)
	}
	for _, seq := range []bool{false, true} {
		ing.stored = map[string]int{}
		res, err := SendGroups(context.Background(), SendConfig{IngressURL: srv.URL, Token: "s3cret",
			Load: Load{Users: 5, SpawnRate: 0, Wait: Wait{0, time.Millisecond}}}, groups, seq)
		if err != nil {
			t.Fatal(err)
		}
		total, routeRecs := 0, 0
		for i, r := range res {
			if !r.Complete() || r.Committed != len(groups[i].Items) {
				t.Fatalf("sequential=%v %s: %+v", seq, groups[i].VM, r)
			}
			total += r.Committed
			for route, rs := range r.Routes {
				if route != "route1" && route != "route2" || len(rs.CommitMS) != rs.Records {
					t.Errorf("route %q: %+v", route, rs)
				}
				routeRecs += rs.Records
			}
			if r.Latency.Count != int64(r.Committed) || len(r.Timeline) == 0 || r.Timeline[0].Requests == 0 {
				t.Errorf("latency %+v, timeline %+v", r.Latency, r.Timeline)
			}
		}
		if total != 50 || routeRecs != 50 || len(ing.stored) != 50 {
			t.Errorf("sequential=%v: %d committed, %d by route, %d stored", seq, total, routeRecs, len(ing.stored))
		}
	}
	if ing.noAuth.Load() != 0 {
		t.Errorf("%d requests without the token", ing.noAuth.Load())
	}
}

// A refused token stops the phase at once instead of posting every record to get
// the same 401.
func TestSendStopsOnUnauthorized(t *testing.T) {
	ing := &tokenIngress{token: "right", stored: map[string]int{}}
	srv := httptest.NewServer(ing)
	defer srv.Close()
	recs := items(t, 200, "vm-a")
	start := time.Now()
	res, err := Send(context.Background(), SendConfig{IngressURL: srv.URL, Token: "wrong", Records: recs,
		Load: Load{Users: 4, SpawnRate: 0, Wait: Wait{10 * time.Millisecond, 10 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stop != "unauthorized" || !strings.Contains(res.Unauthorized, "HTTP 401") || len(res.Unsent) != 200 || res.Committed != 0 {
		t.Fatalf("stop %q %q, %d unsent, %d committed", res.Stop, res.Unauthorized, len(res.Unsent), res.Committed)
	}
	if n := ing.noAuth.Load(); n > 8 || time.Since(start) > 5*time.Second {
		t.Errorf("%d requests refused in %v before stopping", n, time.Since(start))
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ingest-token")
	os.WriteFile(file, []byte("\n  tok-from-file  \nsecond-token\n"), 0o600)
	for _, c := range []struct{ env, file, want, err string }{
		{"tok-env", file, "tok-env", ""},
		{"", file, "tok-from-file", ""},
		{" ", "", "", "INGEST_TOKEN=<token>"},
		{"", filepath.Join(dir, "none"), "", "reading the token file"},
	} {
		got, err := LoadToken(c.env, c.file)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("LoadToken(%q, %q) = %q, %v", c.env, c.file, got, err)
		}
	}
	if !strings.Contains(NoToken, "-token-file") || !strings.Contains(NoToken, "-no-token") {
		t.Errorf("NoToken does not say how: %s", NoToken)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h hist
	var xs []float64
	for i := 1; i <= 1000; i++ {
		h.add(float64(i) / 10)
		xs = append(xs, float64(i)/10)
	}
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := Percentile(xs, q)
		if got := h.quantile(q); got < exact || got > exact*1.021 {
			t.Errorf("q%.2f = %v, exact %v", q, got, exact)
		}
	}
	if s := h.summary(); s.Count != 1000 || s.MaxMS != 100 || s.MeanMS != 50.05 {
		t.Errorf("summary %+v", s)
	}
}
