package driver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/record"
)

// SmokeVM is the vm of the records the smoke check sends, so that they never mix
// with a real VM's samples.
const SmokeVM = "vmpulse-smoke"

// SmokeConfig says what the smoke check talks to.
type SmokeConfig struct {
	IngressURL string // POST <ingress>/ingest
	RelayURL   string // the relay: http(s)://host[:port] or ws(s)://host[:port]/ws
	AgentURL   string // GET <agent>/sample; several agents comma-separated (one check each)
	Token      string // bearer token; "" for an ingress without auth (the 401 check is skipped)
	Records    int    // marked records to send (default 6); more are sent, up to 4×, until both routes took one
	Timeout    time.Duration
	Client     *http.Client
}

// Check is one line of the smoke check's result.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

func (c Check) String() string {
	s := "ok  "
	if !c.OK {
		s = "FAIL"
	}
	return fmt.Sprintf("%s %-9s %s", s, c.Name, c.Detail)
}

// Smoke checks a running deployment right after it was deployed: the agent serves a
// sample, the ingress refuses a record without the token, a handful of marked records
// are stored and split across both routes, and each comes back on the relay's
// websocket. Each check is printed to out as it finishes; the result lists them all.
func Smoke(ctx context.Context, cfg SmokeConfig, out io.Writer) []Check {
	if cfg.Records <= 0 {
		cfg.Records = 6
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	var checks []Check
	add := func(name string, ok bool, format string, a ...any) bool {
		c := Check{name, ok, fmt.Sprintf(format, a...)}
		checks = append(checks, c)
		if out != nil {
			fmt.Fprintln(out, c)
		}
		return ok
	}

	// 1. The agents, one check each.
	if cfg.AgentURL == "" {
		add("agent", false, "no agent URL (-agent, AGENT_URL)")
	}
	for _, a := range strings.Split(cfg.AgentURL, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		ac := cfg
		ac.AgentURL = a
		if r, err := smokeAgent(ctx, ac); err != nil {
			add("agent", false, "%s: %v", endpoint(a, "/sample"), err)
		} else {
			add("agent", true, "%s: vm %s, CPU %.1f %%, RAM %.1f %% of %d MiB, %d processes, sampled %s",
				endpoint(a, "/sample"), r.VM, r.PorcentajeCPUUso, r.PorcentajeRAM, r.TotalRAM, r.TotalProcesos, r.Hora)
		}
	}

	// 2. The relay's websocket, opened before sending so that the records arrive live.
	wsURL, err := relayWS(cfg.RelayURL)
	var ws *wsWatch
	if err == nil {
		ws, err = watchRelay(ctx, wsURL, cfg.Timeout)
	}
	if err != nil {
		add("relay", false, "%s: %v", cfg.RelayURL, err)
	} else {
		defer ws.close()
		add("relay", true, "%s: connected, %d records of history", wsURL, ws.historyLen())
	}

	ingest := endpoint(cfg.IngressURL, "/ingest")
	run := smokeRunID()
	mk := func(i int) (string, []byte) {
		id := fmt.Sprintf("smoke-%s-%02d", run, i)
		r := record.Record{ID: id, VM: SmokeVM, TotalRAM: 4096, RAMLibre: 3072, UsoRAM: 1024, PorcentajeRAM: 25,
			PorcentajeCPUUso: 12.5, PorcentajeCPULibre: 87.5, ProcesosCorriendo: 1, TotalProcesos: 100,
			ProcesosDurmiendo: 99, Hora: record.NewHora(time.Now())}
		b, _ := json.Marshal(r)
		return id, b
	}

	// 3. The credential: a record without the token must be refused.
	if cfg.Token != "" {
		_, body := mk(99)
		status, msg, err := smokePost(ctx, cfg.Client, ingest, "", body)
		switch {
		case err != nil:
			add("auth", false, "%s: %v", ingest, err)
		case status == http.StatusUnauthorized:
			add("auth", true, "%s refuses a record without a token (401)", ingest)
		case status/100 == 2:
			add("auth", false, "%s stored a record sent without a token (HTTP %d): anyone can write to it", ingest, status)
		default:
			add("auth", false, "%s answered HTTP %d to a record without a token, want 401: %s", ingest, status, msg)
		}
	}

	// 4. Marked records through the ingress, until both routes took some.
	routeOf := map[string]string{}
	var ids []string
	perRoute := map[string]int{}
	var failures []string
	sentAt := map[string]time.Time{}
	for i := 0; i < 4*cfg.Records && (i < cfg.Records || len(perRoute) < 2); i++ {
		id, body := mk(i)
		sentAt[id] = time.Now()
		status, msg, err := smokePost(ctx, cfg.Client, ingest, cfg.Token, body)
		if err != nil || status != http.StatusCreated {
			if err != nil {
				msg = err.Error()
			} else {
				msg = fmt.Sprintf("HTTP %d: %s", status, msg)
			}
			failures = append(failures, id+": "+msg)
			if len(failures) >= 3 && len(ids) == 0 {
				break // nothing gets through: no point in going on
			}
			continue
		}
		var a ack
		json.Unmarshal([]byte(msg), &a)
		if a.Route == "" {
			a.Route = "unknown"
		}
		routeOf[id] = a.Route
		perRoute[a.Route]++
		ids = append(ids, id)
	}
	routes := slices.Sorted(func(yield func(string) bool) {
		for r := range perRoute {
			if !yield(r) {
				return
			}
		}
	})
	var rs []string
	for _, r := range routes {
		rs = append(rs, fmt.Sprintf("%s ×%d", r, perRoute[r]))
	}
	if len(failures) > 0 {
		add("ingest", false, "%d of %d marked records stored through %s (%s); failed: %s", len(ids), len(ids)+len(failures), ingest,
			strings.Join(rs, ", "), strings.Join(failures[:min(3, len(failures))], "; "))
	} else {
		add("ingest", true, "%d marked records (vm %s, ids smoke-%s-*) stored through %s", len(ids), SmokeVM, run, ingest)
	}
	_, has1 := perRoute["route1"]
	_, has2 := perRoute["route2"]
	switch {
	case len(ids) == 0:
		add("split", false, "no record was stored, so the split cannot be seen")
	case has1 && has2:
		add("split", true, "both routes took records: %s", strings.Join(rs, ", "))
	default:
		add("split", false, "the 201 bodies name only %s after %d records: the split should send about half to route1 and half to route2",
			strings.Join(rs, ", "), len(ids))
	}

	// 5. Each stored record on the websocket, by the route that stored it.
	if ws == nil {
		add("websocket", false, "no websocket (see relay above)")
	} else if len(ids) > 0 {
		seen, wrong, lag := ws.waitFor(ctx, ids, routeOf, sentAt, cfg.Timeout)
		var missing []string
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				missing = append(missing, id)
			}
		}
		switch {
		case len(missing) > 0:
			add("websocket", false, "%d of %d records came back on %s within %s; missing: %s", len(seen), len(ids), wsURL, cfg.Timeout,
				strings.Join(missing[:min(3, len(missing))], ", "))
		case len(wrong) > 0:
			add("websocket", false, "every record came back, but with another route than the 201 said: %s", strings.Join(wrong, "; "))
		default:
			add("websocket", true, "%d/%d records came back on %s, each with its route, at most %s after it was sent",
				len(seen), len(ids), wsURL, lag.Round(time.Millisecond))
		}
	}
	return checks
}

func smokeRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// smokeAgent reads one sample; an agent that is still starting (503) is asked again
// until the timeout.
func smokeAgent(ctx context.Context, cfg SmokeConfig) (record.Record, error) {
	deadline := time.Now().Add(cfg.Timeout)
	for {
		r, status, after, err := smokeAgentGet(ctx, cfg)
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r, err
		}
		if !sleepFor(ctx, min(max(after, 100*time.Millisecond), time.Second)) {
			return r, err
		}
	}
}

func smokeAgentGet(ctx context.Context, cfg SmokeConfig) (record.Record, int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(cfg.AgentURL, "/sample"), nil)
	if err != nil {
		return record.Record{}, 0, 0, err
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return record.Record{}, 0, 0, fmt.Errorf("%s", shortErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return record.Record{}, resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After")),
			fmt.Errorf("HTTP %d: %s", resp.StatusCode, firstLine(body))
	}
	recs, err := record.DecodeBatch(body)
	if err != nil {
		return record.Record{}, resp.StatusCode, 0, fmt.Errorf("not a valid record: %v", err)
	}
	return recs[0], resp.StatusCode, 0, nil
}

// smokePost posts one record; msg is the body's first line.
func smokePost(ctx context.Context, c *http.Client, ingest, token string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ingest, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s", shortErr(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, firstLine(b), nil
}

// relayWS turns the relay's base URL into its websocket URL.
func relayWS(base string) (string, error) {
	if base == "" {
		return "", fmt.Errorf("no relay URL (-relay, RELAY_URL)")
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("relay URL %q: want http(s)://host[:port] or ws(s)://host[:port]/ws", base)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("relay URL %q: want http, https, ws or wss", base)
	}
	if !strings.HasSuffix(u.Path, "/ws") {
		u.Path += "/ws"
	}
	return u.String(), nil
}

// wsWatch reads a relay websocket in the background and remembers every record id
// it sees with its route.
type wsWatch struct {
	conn    *websocket.Conn
	mu      sync.Mutex
	history int
	seen    map[string]seenItem
	changed chan struct{}
	done    chan struct{}
	err     error
}

type seenItem struct {
	route string
	at    time.Time
}

func watchRelay(ctx context.Context, wsURL string, timeout time.Duration) (*wsWatch, error) {
	d := websocket.Dialer{HandshakeTimeout: timeout}
	conn, resp, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("websocket handshake: HTTP %d", resp.StatusCode)
		}
		return nil, err
	}
	w := &wsWatch{conn: conn, seen: map[string]seenItem{}, changed: make(chan struct{}, 1), done: make(chan struct{})}
	first := make(chan struct{})
	go w.read(first)
	select {
	case <-first:
	case <-time.After(timeout):
	}
	return w, nil
}

func (w *wsWatch) read(first chan struct{}) {
	defer close(w.done)
	var once sync.Once
	for {
		var f struct {
			Type  string `json:"type"`
			Items []struct {
				Route  string          `json:"route"`
				Record json.RawMessage `json:"record"`
			} `json:"items"`
		}
		if err := w.conn.ReadJSON(&f); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			once.Do(func() { close(first) })
			return
		}
		now := time.Now()
		w.mu.Lock()
		if f.Type == "history" {
			w.history += len(f.Items)
		}
		for _, it := range f.Items {
			var p struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(it.Record, &p) == nil && p.ID != "" {
				if _, ok := w.seen[p.ID]; !ok {
					w.seen[p.ID] = seenItem{it.Route, now}
				}
			}
		}
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
		if f.Type == "history" || f.Type == "batch" {
			once.Do(func() { close(first) })
		}
	}
}

func (w *wsWatch) allSeen(ids []string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if _, ok := w.seen[id]; !ok {
			return false
		}
	}
	return true
}

func (w *wsWatch) historyLen() int { w.mu.Lock(); defer w.mu.Unlock(); return w.history }

// waitFor waits until every id was seen or timeout passes. It returns what was seen,
// the ids seen with another route than want says, and the longest time from sending
// to seeing.
func (w *wsWatch) waitFor(ctx context.Context, ids []string, want map[string]string, sent map[string]time.Time, timeout time.Duration) (map[string]seenItem, []string, time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
wait:
	for !w.allSeen(ids) {
		select {
		case <-w.changed:
		case <-w.done:
			break wait
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	got := map[string]seenItem{}
	var wrong []string
	var lag time.Duration
	for _, id := range ids {
		s, ok := w.seen[id]
		if !ok {
			continue
		}
		got[id] = s
		if s.route != want[id] {
			wrong = append(wrong, fmt.Sprintf("%s: %s on the websocket, %s in the 201", id, s.route, want[id]))
		}
		lag = max(lag, s.at.Sub(sent[id]))
	}
	return got, wrong, lag
}

func (w *wsWatch) close() {
	w.conn.Close()
	<-w.done
}
