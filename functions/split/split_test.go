package split

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

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
	if _, pv := driver.ChiSquare([]int64{hit["a"], hit["b"]}, []float64{1, 1}); pv < 0.001 {
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
