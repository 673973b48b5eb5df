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
	"path"
	"strings"
)

// Config is what the page reads from /config.json.
type Config struct {
	// RelayURL is the websocket URL of the relay (ws:// or wss://), or empty for
	// same-origin /ws.
	RelayURL string `json:"relayUrl"`
}

// Handler serves dist (the output of `npm run build`) with /config.json from cfg.
// Unknown paths without a file extension get index.html, so client-side routes
// survive a reload. Hashed assets under /assets/ are cached for a year; everything
// else must be revalidated so that a new deployment is picked up at once.
func Handler(dist fs.FS, cfg Config) http.Handler {
	cfgJSON, _ := json.Marshal(cfg) // a Config always marshals
	files := http.FileServerFS(dist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if r.URL.Path == "/config.json" {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			_, _ = w.Write(cfgJSON)
			return
		}
		p := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if strings.HasPrefix(p, "assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		if p != "" && path.Ext(p) == "" {
			if _, err := fs.Stat(dist, p); errors.Is(err, fs.ErrNotExist) {
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/"
				files.ServeHTTP(w, r2)
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}
