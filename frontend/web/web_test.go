package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

var dist = fstest.MapFS{
	"index.html":              {Data: []byte("<!doctype html><title>vmpulse</title><div id=root></div>")},
	"assets/index-AbC123.js":  {Data: []byte("console.log('app')")},
	"assets/index-AbC123.css": {Data: []byte("body{}")},
	"favicon.svg":             {Data: []byte("<svg/>")},
	"docs/index.html":         {Data: []byte("docs page")},
	"empty/.keep":             {Data: nil},
}

func do(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestConfigJSON(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{RelayURL: "wss://relay-abc.a.run.app/ws"}, `{"relayUrl":"wss://relay-abc.a.run.app/ws"}`},
		{Config{}, `{"relayUrl":""}`},
		{Config{RelayURL: `wss://x/ws?a="b"&c=<d>`}, `{"relayUrl":"wss://x/ws?a=\"b\"\u0026c=\u003cd\u003e"}`},
		{Config{MachineTypes: map[string]string{"vm-a": "e2-small", "vm-b": "e2-medium"}}, `{"relayUrl":"","machineTypes":{"vm-a":"e2-small","vm-b":"e2-medium"}}`},
	} {
		res, body := do(t, Handler(dist, tc.cfg), "GET", "/config.json")
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if body != tc.want {
			t.Errorf("body %s, want %s", body, tc.want)
		}
		var got Config
		if err := json.Unmarshal([]byte(body), &got); err != nil || !reflect.DeepEqual(got, tc.cfg) {
			t.Errorf("round trip: %+v, %v; want %+v", got, err, tc.cfg)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store: a redeploy with another RELAY_URL must be seen at once", cc)
		}
	}
}

func TestConfigJSONWinsOverAFileInDist(t *testing.T) {
	d := fstest.MapFS{"index.html": dist["index.html"], "config.json": {Data: []byte(`{"relayUrl":"ws://baked/ws"}`)}}
	_, body := do(t, Handler(d, Config{RelayURL: "wss://runtime/ws"}), "GET", "/config.json")
	if !strings.Contains(body, "wss://runtime/ws") {
		t.Fatalf("config.json = %s: the run-time value must win over a file in dist", body)
	}
}

func TestSPAFallback(t *testing.T) {
	h := Handler(dist, Config{})
	for _, p := range []string{"/", "/vm/vm-1", "/some/client/route", "/assets", "/empty", "/empty/", "/assets/"} {
		res, body := do(t, h, "GET", p)
		if res.StatusCode != 200 || !strings.Contains(body, "id=root") {
			t.Errorf("GET %s: %d %q, want index.html", p, res.StatusCode, body)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		if strings.Contains(body, "index-AbC123") || strings.Contains(body, ".keep") {
			t.Errorf("GET %s listed a directory: %q", p, body)
		}
	}
	// a directory with its own index.html is served as such
	if res, body := do(t, h, "GET", "/docs/"); res.StatusCode != 200 || body != "docs page" {
		t.Errorf("GET /docs/: %d %q", res.StatusCode, body)
	}
	// missing files with an extension are real 404s, not the page
	for _, p := range []string{"/assets/index-OLD999.js", "/missing.css", "/favicon.ico"} {
		res, body := do(t, h, "GET", p)
		if res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
		if strings.Contains(body, "id=root") {
			t.Errorf("GET %s served the page", p)
		}
	}
}

// The relay's path is not a client route: a page that reaches the web server at /ws
// (an empty or wrong relay URL on Cloud Run) must get a 404, not index.html with 200.
func TestWebSocketPathIsNotTheSPA(t *testing.T) {
	h := Handler(dist, Config{RelayURL: "wss://relay.example/ws"})
	for _, p := range []string{"/ws", "/ws/", "/ws/anything", "/ws?x=1", "//ws", "/./ws"} {
		for _, m := range []string{"GET", "HEAD"} {
			res, body := do(t, h, m, p)
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", m, p, res.StatusCode)
			}
			if strings.Contains(body, "id=root") {
				t.Errorf("%s %s served the page", m, p)
			}
		}
	}
	// a websocket handshake gets the 404 too
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("websocket handshake on /ws: %d, want 404", rec.Code)
	}
	// other paths that merely start with "ws" are still client routes
	for _, p := range []string{"/wsx", "/vm/ws", "/wss"} {
		if res, body := do(t, h, "GET", p); res.StatusCode != 200 || !strings.Contains(body, "id=root") {
			t.Errorf("GET %s: %d, want index.html", p, res.StatusCode)
		}
	}
}

func TestCacheHeaders(t *testing.T) {
	h := Handler(dist, Config{})
	res, body := do(t, h, "GET", "/assets/index-AbC123.js")
	if res.StatusCode != 200 || body != "console.log('app')" {
		t.Fatalf("asset: %d %q", res.StatusCode, body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
		t.Errorf("asset Cache-Control %q", cc)
	}
	if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("asset Content-Type %q", ct)
	}
	res, _ = do(t, h, "GET", "/assets/index-AbC123.css")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("css Content-Type %q", ct)
	}
	for _, p := range []string{"/", "/favicon.svg"} {
		res, _ := do(t, h, "GET", p)
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
	}
	// a traversal attempt is cleaned, and does not get the immutable header by
	// pretending to be under assets/
	res, _ = do(t, h, "GET", "/assets/../index.html")
	if cc := res.Header.Get("Cache-Control"); cc == "public, max-age=31536000, immutable" {
		t.Errorf("/assets/../index.html cached as an asset")
	}
}

func TestMethods(t *testing.T) {
	h := Handler(dist, Config{RelayURL: "wss://r/ws"})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		for _, p := range []string{"/", "/config.json", "/assets/index-AbC123.js"} {
			res, _ := do(t, h, m, p)
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, p, res.StatusCode)
			}
			if a := res.Header.Get("Allow"); a != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", m, p, a)
			}
		}
	}
	res, body := do(t, h, "HEAD", "/")
	if res.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /: %d %q", res.StatusCode, body)
	}
	res, body = do(t, h, "HEAD", "/config.json")
	if res.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /config.json: %d %q", res.StatusCode, body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	res, _ := do(t, Handler(dist, Config{RelayURL: "https://relay-xyz.a.run.app/ws"}), "GET", "/")
	if v := res.Header.Get("X-Content-Type-Options"); v != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", v)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self' wss://relay-xyz.a.run.app;", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

func TestRelayOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"/ws":                    "",
		"wss://r.example/ws":     "wss://r.example",
		"ws://127.0.0.1:8081/ws": "ws://127.0.0.1:8081",
		"http://r.example:81/x":  "ws://r.example:81",
		"https://r.example":      "wss://r.example",
		"ftp://r.example/ws":     "",
		"wss://a b/ws":           "",
		"wss://r.example';x/ws":  "",
		"::not a url":            "",
		"  wss://r.example/ws  ": "wss://r.example",
	} {
		if got := relayOrigin(in); got != want {
			t.Errorf("relayOrigin(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	if err := Check(dist); err != nil {
		t.Errorf("Check(dist) = %v", err)
	}
	if err := Check(fstest.MapFS{"assets/a.js": {}}); err != ErrNoIndex {
		t.Errorf("Check(no index) = %v, want ErrNoIndex", err)
	}
}
