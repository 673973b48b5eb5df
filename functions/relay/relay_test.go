package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/metrics"
	"github.com/vmpulse/vmpulse/internal/testenv"
)

type frameMsg struct {
	Type  string `json:"type"`
	Items []Item `json:"items"`
}

func item(id string) Item {
	return Item{Route: "route1", CommitMS: 1.5, StoredAt: "2026-01-01T00:00:00Z", Record: json.RawMessage(`{"id":"` + id + `"}`)}
}

func dial(t *testing.T, url, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", h)
}

func read(t *testing.T, c *websocket.Conn) frameMsg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f frameMsg
	if err := c.ReadJSON(&f); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

func ids(items []Item) []string {
	var out []string
	for _, it := range items {
		var r struct{ ID string }
		json.Unmarshal(it.Record, &r)
		out = append(out, r.ID)
	}
	return out
}

func newHubServer(t *testing.T, history, queue int, o Options) (*Hub, *httptest.Server, *metrics.Registry) {
	reg := metrics.NewRegistry()
	h := NewHub(history, queue, reg)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h.Handler(o))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return h, srv, reg
}

func TestHistoryThenLiveBatchesWithoutGapsOrDuplicates(t *testing.T) {
	h, srv, _ := newHubServer(t, 3, 64, Options{})
	for i := 0; i < 5; i++ {
		h.Add(fmt.Sprint("h", i), item(fmt.Sprint("h", i)))
	}
	h.Add("h4", item("h4")) // a redelivery: not kept twice
	c, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := read(t, c)
	if f.Type != "history" || strings.Join(ids(f.Items), ",") != "h2,h3,h4" {
		t.Fatalf("history frame %s %v, want the last 3 oldest first", f.Type, ids(f.Items))
	}
	if f.Items[0].Route != "route1" || f.Items[0].CommitMS != 1.5 {
		t.Fatalf("item %+v", f.Items[0])
	}
	for i := 0; i < 50; i++ {
		h.Add(fmt.Sprint("l", i), item(fmt.Sprint("l", i)))
	}
	var got []string
	frames := 0
	start := time.Now()
	for len(got) < 50 {
		f := read(t, c)
		if f.Type != "batch" {
			t.Fatalf("frame type %s", f.Type)
		}
		frames++
		got = append(got, ids(f.Items)...)
	}
	for i, id := range got {
		if id != fmt.Sprint("l", i) {
			t.Fatalf("live item %d is %s (got %v)", i, id, got)
		}
	}
	// Batched: 50 items added at once arrive in few frames, not 50.
	if frames > 3 {
		t.Fatalf("%d frames for 50 items in %v", frames, time.Since(start))
	}
}

// TestFramesAreRateLimited: items trickling in every millisecond arrive at most
// about ten frames per second.
func TestFramesAreRateLimited(t *testing.T) {
	h, srv, _ := newHubServer(t, 10, 4096, Options{})
	c, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // history
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				h.Add(fmt.Sprint("t", i), item(fmt.Sprint("t", i)))
			}
		}
	}()
	frames := 0
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		read(t, c)
		frames++
	}
	close(stop)
	if frames > 12 {
		t.Fatalf("%d frames in one second, want at most ~10", frames)
	}
}

// TestSlowClientIsDroppedAndDoesNotStallOthers: a client that never reads fills
// its queue and is disconnected; a fast client keeps receiving everything.
func TestSlowClientIsDroppedAndDoesNotStallOthers(t *testing.T) {
	h, srv, reg := newHubServer(t, 10, 64, Options{})
	// The slow client completes the handshake and never reads again, so the
	// relay's writes to it back up once the socket buffers are full.
	slow, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	read(t, fast)
	got := make(chan []string, 1000)
	go func() {
		for {
			var f frameMsg
			fast.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := fast.ReadJSON(&f); err != nil {
				close(got)
				return
			}
			got <- ids(f.Items)
		}
	}()
	pad := strings.Repeat("x", 20000)
	total := 0
	add := func() {
		for i := 0; i < 5; i++ {
			id := fmt.Sprint("s", total)
			total++
			h.Add(id, Item{Route: "route2", Record: json.RawMessage(`{"id":"` + id + `","pad":"` + pad + `"}`)})
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.Clients() > 1 && time.Now().Before(deadline) {
		add() // about 10 MB/s
		time.Sleep(10 * time.Millisecond)
	}
	if h.Clients() != 1 {
		t.Fatalf("%d clients still connected after %d items; the slow one should be gone", h.Clients(), total)
	}
	add()
	received := 0
	for received < total {
		batch, ok := <-got
		if !ok {
			t.Fatalf("fast client disconnected after %d of %d items", received, total)
		}
		received += len(batch)
	}
	var b strings.Builder
	reg.Write(&b)
	if !strings.Contains(b.String(), `vmpulse_relay_clients_dropped_total{reason="slow"} 1`) {
		t.Fatalf("metrics:\n%s", b.String())
	}
	t.Logf("slow client dropped after %d items of 20 KB; the fast one received all of them", total)
}

// TestTextKeepaliveWhenQuiet: browsers do not see ping control frames, so a quiet
// stream carries {"type":"ping"} text frames; a busy one does not need them.
func TestTextKeepaliveWhenQuiet(t *testing.T) {
	h, srv, _ := newHubServer(t, 1, 64, Options{PingEvery: 150 * time.Millisecond})
	c, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // history
	if f := read(t, c); f.Type != "ping" || len(f.Items) != 0 {
		t.Fatalf("quiet stream: frame %+v, want a ping", f)
	}
	// While data flows every 50 ms, frames are batches, not pings.
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				h.Add(fmt.Sprint("k", i), item(fmt.Sprint("k", i)))
			}
		}
	}()
	defer close(stop)
	batches, pings := 0, 0
	for batches < 10 {
		switch f := read(t, c); f.Type {
		case "batch":
			batches++
		case "ping":
			pings++ // one may be on its way when data starts; a stalled machine may add one
		default:
			t.Fatalf("frame type %s", f.Type)
		}
	}
	if pings > 2 {
		t.Fatalf("%d pings among 10 batches while data flowed", pings)
	}
}

func TestOriginCheck(t *testing.T) {
	_, srv, _ := newHubServer(t, 1, 16, Options{AllowedOrigins: []string{"https://dash.example.com/"}})
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true},                          // not a browser
		{"https://dash.example.com", true},  // allowed
		{"https://DASH.example.com", true},  // case-insensitive
		{"https://evil.example.com", false}, // other origin
		{srv.URL, true},                     // same origin as the relay
	}
	for _, c := range cases {
		conn, resp, err := dial(t, srv.URL, c.origin)
		if c.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", c.origin, err)
				continue
			}
			conn.Close()
		} else if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: err=%v resp=%v, want 403", c.origin, err, resp)
		}
	}
	_, srvAny, _ := newHubServer(t, 1, 16, Options{AllowedOrigins: []string{"*"}})
	conn, _, err := dial(t, srvAny.URL, "https://anything.example")
	if err != nil {
		t.Fatalf("* refused: %v", err)
	}
	conn.Close()
}

func TestMaxClientsAndCloseAll(t *testing.T) {
	h, srv, _ := newHubServer(t, 1, 16, Options{MaxClients: 1})
	c1, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	read(t, c1)
	_, resp, err := dial(t, srv.URL, "")
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second client: %v %v, want 503", err, resp)
	}
	h.CloseAll()
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c1.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after CloseAll: %v, want a going-away close", err)
	}
}

// TestServiceEveryInstanceSeesEveryRecord runs two relay instances against the
// Pub/Sub emulator: each has its own subscription, so a record published once
// reaches the clients of both. Closing an instance deletes its subscription.
func TestServiceEveryInstanceSeesEveryRecord(t *testing.T) {
	ctx := context.Background()
	client, err := pubsub.Connect(ctx, "vmpulse-test", testenv.PubsubEmulator(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topic := testenv.Unique("relay")
	log := slog.New(slog.DiscardHandler)
	var conns []*websocket.Conn
	var svcs []*Service
	for i := 0; i < 2; i++ {
		svc, err := Start(ctx, Config{Client: client, Topic: topic, SubscriptionID: testenv.Unique("relay-inst"), CreateTopic: true,
			History: 100, ClientQueue: 1000, Log: log, WS: Options{Log: log}})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		svcs = append(svcs, svc)
		srv := httptest.NewServer(svc.Handler())
		defer srv.Close()
		c, _, err := dial(t, srv.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		read(t, c)
		conns = append(conns, c)
	}
	pub := client.Publisher(topic)
	const n = 100
	for i := 0; i < n; i++ {
		pub.Publish(ctx, pubMsg(fmt.Sprintf("rec-%03d", i)))
	}
	pub.Stop()
	for i, c := range conns {
		seen := map[string]bool{}
		for len(seen) < n {
			for _, id := range ids(read(t, c).Items) {
				seen[id] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("instance %d saw %d of %d", i, len(seen), n)
		}
	}
	sub := svcs[0].Subscription()
	if err := svcs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.GetSubscription(ctx, getSub(sub)); err == nil {
		t.Fatalf("subscription %s still exists after Close", sub)
	}
}

// TestFromMessage checks the Pub/Sub message → Item mapping.
func TestFromMessage(t *testing.T) {
	id, it, err := FromMessage([]byte(`{"id":"x1","vm":"v"}`), map[string]string{
		pubsub.AttrRoute: "route2", pubsub.AttrCommitMS: "2.500", pubsub.AttrStoredAt: "2026-01-01T00:00:00.5Z"})
	if err != nil || id != "x1" || it.Route != "route2" || it.CommitMS != 2.5 || it.StoredAt != "2026-01-01T00:00:00.5Z" {
		t.Fatalf("%s %+v %v", id, it, err)
	}
	if _, _, err := FromMessage([]byte("nope"), nil); err == nil {
		t.Fatal("non-JSON data accepted")
	}
}
