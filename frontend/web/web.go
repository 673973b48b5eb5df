// Package web serves the built dashboard (frontend/dist) and its run-time
// configuration. The relay URL is never baked into the bundle: the page fetches
// /config.json from the server that served it, so one image works for every
// deployment (Cloud Run injects RELAY_URL; the local stack leaves it empty, which
// makes the page use same-origin /ws).
package web

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Config is what the page reads from /config.json.
type Config struct {
	// RelayURL is the websocket URL of the relay (ws:// or wss://), or empty for
	// same-origin /ws.
	RelayURL string `json:"relayUrl"`
	// MachineTypes names each VM's machine type (VM name → e.g. "e2-small") for the
	// comparison table; records do not carry it. Omitted when empty.
	MachineTypes map[string]string `json:"machineTypes,omitempty"`
}

// Handler serves dist (the output of `npm run build`) with /config.json from cfg.
// Unknown paths without a file extension get index.html, so client-side routes
// survive a reload, except /ws and /ws/…: that is the relay's path, and a page that
// reaches this server there (a wrong relay URL) must fail visibly, not get HTML.
// Directories are never listed. Hashed assets under /assets/ are
// cached for a year; everything else must be revalidated so that a new deployment
// is picked up at once. Every answer carries a Content-Security-Policy that lets the
// page talk only to its own origin and to the relay named in cfg.
func Handler(dist fs.FS, cfg Config) http.Handler {
	cfgJSON, _ := json.Marshal(cfg) // a Config always marshals
	csp := contentSecurityPolicy(cfg.RelayURL)
	files := http.FileServerFS(dist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/config.json" {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Length", strconv.Itoa(len(cfgJSON)))
			if r.Method == http.MethodHead {
				return
			}
			_, _ = w.Write(cfgJSON)
			return
		}
		h.Set("Content-Security-Policy", csp)
		p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if strings.HasPrefix(p, "assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if p == "ws" || strings.HasPrefix(p, "ws/") {
			h.Set("Cache-Control", "no-cache")
			http.NotFound(w, r)
			return
		}
		if p != "" && !serveable(dist, p) {
			if path.Ext(p) != "" {
				// a missing file (an old hashed asset, a typo): a real 404, not the
				// page, so the browser does not try to run HTML as a script
				h.Set("Cache-Control", "no-cache")
				http.NotFound(w, r)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/"
			r2.URL.RawPath = ""
			h.Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r2)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// serveable reports whether p names a regular file, or a directory with an
// index.html (the file server would list any other directory).
func serveable(dist fs.FS, p string) bool {
	st, err := fs.Stat(dist, p)
	if err != nil {
		return false
	}
	if !st.IsDir() {
		return true
	}
	st, err = fs.Stat(dist, path.Join(p, "index.html"))
	return err == nil && !st.IsDir()
}

// contentSecurityPolicy allows scripts, styles and connections to the page's own
// origin, plus websocket connections to the relay's origin when it is elsewhere.
func contentSecurityPolicy(relayURL string) string {
	connect := "'self'"
	if o := relayOrigin(relayURL); o != "" {
		connect += " " + o
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data:",
		"connect-src " + connect,
		"object-src 'none'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
		"form-action 'none'",
	}, "; ")
}

// relayOrigin is the websocket origin of relayURL ("wss://host[:port]"), mapping
// http(s) to ws(s) as the page does, or "" when it is empty, a path or unusable.
func relayOrigin(relayURL string) string {
	u, err := url.Parse(strings.TrimSpace(relayURL))
	if err != nil || u.Host == "" || strings.ContainsAny(u.Host, " ;'\"") {
		return ""
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// ErrNoIndex is returned by Check when dist has no index.html.
var ErrNoIndex = errors.New("no index.html (build the dashboard with `npm ci && npm run build` in frontend/)")

// Check reports whether dist looks like a built dashboard.
func Check(dist fs.FS) error {
	st, err := fs.Stat(dist, "index.html")
	if err != nil || st.IsDir() {
		return ErrNoIndex
	}
	return nil
}
