package split

import (
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestChiSquareKnownValues(t *testing.T) {
	// Reference values: chi-square survival function (e.g. scipy.stats.chi2.sf).
	cases := []struct {
		obs     []int64
		w       []float64
		stat, p float64
	}{
		{[]int64{50, 50}, []float64{1, 1}, 0, 1},
		{[]int64{60, 40}, []float64{1, 1}, 4, 0.04550026389635842},
		{[]int64{1000, 1100}, []float64{50, 50}, 4.761904761904762, 0.029096331741252},
		{[]int64{30, 30, 40}, []float64{1, 1, 1}, 2, 0.36787944117144233},
		{[]int64{500, 500}, []float64{1, 0}, math.Inf(1), 0},
	}
	for _, c := range cases {
		stat, p := ChiSquare(c.obs, c.w)
		if math.Abs(stat-c.stat) > 1e-9 && !(math.IsInf(c.stat, 1) && math.IsInf(stat, 1)) {
			t.Errorf("ChiSquare(%v) stat = %v, want %v", c.obs, stat, c.stat)
		}
		if math.Abs(p-c.p) > 1e-9 {
			t.Errorf("ChiSquare(%v) p = %v, want %v", c.obs, p, c.p)
		}
	}
}

func TestParseBackendsErrors(t *testing.T) {
	for _, s := range []string{"a=http://x", "a=notaurl=1", "a=http://x:1=half"} {
		if _, err := ParseBackends(s); err == nil {
			t.Errorf("ParseBackends(%q): no error", s)
		}
	}
	if _, err := New(nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("New with no backends: no error")
	}
}

// TestProxySplitsByWeight sends requests through the proxy to two real backends
// and checks the split with the same chi-square test used on the stack.
func TestProxySplitsByWeight(t *testing.T) {
	hit := map[string]int64{}
	mk := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Write([]byte(name))
		}))
	}
	a, b := mk("a"), mk("b")
	defer a.Close()
	defer b.Close()
	bs, err := ParseBackends("a=" + a.URL + "=50,b=" + b.URL + "=50")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(bs, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	defer front.Close()
	const n = 2000
	for i := 0; i < n; i++ {
		resp, err := http.Get(front.URL + "/ingest")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		hit[string(body)]++
		if resp.Header.Get("X-Vmpulse-Backend") != string(body) {
			t.Fatalf("header says %q, body %q", resp.Header.Get("X-Vmpulse-Backend"), body)
		}
	}
	if hit["a"]+hit["b"] != n {
		t.Fatalf("hits %v, want %d in all", hit, n)
	}
	sent := p.Sent()
	if sent["a"] != hit["a"] || sent["b"] != hit["b"] {
		t.Fatalf("Sent() = %v, backends saw %v", sent, hit)
	}
	if _, pv := ChiSquare([]int64{hit["a"], hit["b"]}, []float64{1, 1}); pv < 0.001 {
		t.Fatalf("split %v is not consistent with 50/50 (p=%g)", hit, pv)
	}
}

func TestProxyBackendDown(t *testing.T) {
	bs, _ := ParseBackends("a=http://127.0.0.1:1=1")
	p, _ := New(bs, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("POST", "/ingest", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", rec.Code)
	}
}
