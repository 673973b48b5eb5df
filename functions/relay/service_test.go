package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gps "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/testenv"
)

func emulatorClient(t *testing.T, addr string) *gps.Client {
	t.Helper()
	c, err := pubsub.Connect(context.Background(), "vmpulse-test", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startService(t *testing.T, cfg Config) (*Service, *httptest.Server) {
	t.Helper()
	if cfg.SubscriptionID == "" {
		cfg.SubscriptionID = testenv.Unique("relay-inst")
	}
	cfg.CreateTopic = true
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	svc, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
	})
	return svc, srv
}

// collector reads every frame of a client and keeps the ids it saw.
type collector struct {
	mu      sync.Mutex
	seen    map[string]int
	frames  []frameMsg
	err     error
	history int // items in the history frame
}

func collect(t *testing.T, url string) *collector {
	t.Helper()
	c := connect(t, url)
	col := &collector{seen: map[string]int{}, history: -1}
	go func() {
		for {
			var f frameMsg
			if err := c.ReadJSON(&f); err != nil {
				col.mu.Lock()
				col.err = err
				col.mu.Unlock()
				return
			}
			col.mu.Lock()
			if f.Type == "history" {
				col.history = len(f.Items)
			}
			col.frames = append(col.frames, f)
			for _, id := range ids(f.Items) {
				col.seen[id]++
			}
			col.mu.Unlock()
		}
	}()
	return col
}

// waitAll waits until the client saw every id in want, and fails on duplicates
// or ids that were not published.
func (col *collector) waitAll(t *testing.T, want map[string]bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		col.mu.Lock()
		missing := 0
		for id := range want {
			if col.seen[id] == 0 {
				missing++
			}
		}
		for id, n := range col.seen {
			if n > 1 {
				t.Errorf("id %s reached the client %d times", id, n)
			}
			if !want[id] {
				t.Errorf("unexpected id %q reached the client", id)
			}
		}
		err := col.err
		col.mu.Unlock()
		if missing == 0 {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("%d of %d ids never reached the client (connection: %v)", missing, len(want), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServiceEveryInstanceSeesEveryRecord runs two relay instances against the
// Pub/Sub emulator: each has its own subscription, so a record published once
// reaches the clients of both; heartbeats reach none. Closing an instance
// deletes its subscription.
func TestServiceEveryInstanceSeesEveryRecord(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	topic := testenv.Unique("relay")
	var cols []*collector
	var svcs []*Service
	for i := 0; i < 2; i++ {
		svc, srv := startService(t, Config{Client: client, Topic: topic})
		svcs = append(svcs, svc)
		cols = append(cols, collect(t, srv.URL))
	}
	pub := client.Publisher(topic)
	defer pub.Stop()
	want := map[string]bool{}
	const n = 100
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("rec-%03d", i)
		want[id] = true
		pub.Publish(context.Background(), recordMsg(id, time.Now()))
		if i%20 == 0 {
			pub.Publish(context.Background(), heartbeatMsg())
		}
	}
	pub.Flush()
	for _, col := range cols {
		col.waitAll(t, want, 15*time.Second)
	}
	for i, svc := range svcs {
		if hb := testutil.ToFloat64(svc.m.heartbeats); hb != 5 {
			t.Errorf("instance %d counted %v heartbeats, want 5", i, hb)
		}
	}
	sub := svcs[0].Subscription()
	if err := svcs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SubscriptionAdminClient.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: sub}); err == nil {
		t.Fatalf("subscription %s still exists after Close", sub)
	}
}

// TestNewInstanceReplaysHistory: an instance that starts after records were
// published seeks its new subscription back and serves them to its first
// client, each once, although some were published twice.
func TestNewInstanceReplaysHistory(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	topic := testenv.Unique("replay")
	// The topic as a route (or Terraform) left it: with retention.
	ctx := context.Background()
	if err := pubsub.EnsureTopic(ctx, client, topic, true); err != nil {
		t.Fatal(err)
	}
	pub := client.Publisher(topic)
	defer pub.Stop()
	want := map[string]bool{}
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("old-%02d", i)
		want[id] = true
		pub.Publish(ctx, recordMsg(id, time.Now().Add(-time.Duration(40-i)*time.Second)))
		if i%10 == 0 { // a route retrying a publish
			pub.Publish(ctx, recordMsg(id, time.Now().Add(-time.Duration(40-i)*time.Second)))
			pub.Publish(ctx, heartbeatMsg())
		}
	}
	pub.Flush()

	svc, srv := startService(t, Config{Client: client, Topic: topic, Replay: 15 * time.Minute})
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(svc.hub.m.received) < 44 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * flushEvery)
	col := collect(t, srv.URL)
	col.waitAll(t, want, 10*time.Second)
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.history != 40 {
		t.Fatalf("the first client's history held %d records, want all 40", col.history)
	}
	h := col.frames[0]
	if h.Items[0].Route != "route1" || h.Items[0].CommitMS != 1.25 || !strings.Contains(string(h.Items[0].Record), `"name":""`) {
		t.Fatalf("replayed item %+v (process names must be redacted)", h.Items[0])
	}
	if got := testutil.ToFloat64(svc.hub.m.dupes); got != 4 {
		t.Errorf("duplicates %v, want 4", got)
	}
}

// TestTopicCreatedWithRetention: with CreateTopic a missing topic is created
// with retention covering the replay window, and one without gets it (in its
// metadata: the emulator does not replay a topic updated so, see
// pubsub.EnsureRetainingTopic).
func TestTopicCreatedWithRetention(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	ctx := context.Background()
	missing := testenv.Unique("retain")
	bare := testenv.Unique("bare")
	if err := pubsub.EnsureTopic(ctx, client, bare, true); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{missing, bare} {
		startService(t, Config{Client: client, Topic: topic, Replay: 15 * time.Minute})
		tp, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: pubsub.TopicName(client.Project(), topic)})
		if err != nil {
			t.Fatal(err)
		}
		if d := tp.GetMessageRetentionDuration().AsDuration(); d < 20*time.Minute {
			t.Errorf("topic %s retains %v, want ≥ 20m", topic, d)
		}
	}
}

// TestStalledReceiveHeals cuts the relay's connection to the emulator. After a
// reset the emulator keeps the subscription's stream silent for minutes without
// an error; the relay notices the silence (no heartbeat either), restarts
// receiving on a fresh subscription sought back to its last message, and every
// record published before, during and after the cut reaches the client once.
func TestStalledReceiveHeals(t *testing.T) {
	emu := testenv.PubsubEmulator(t)
	proxy := newCutProxy(t, emu)
	direct := emulatorClient(t, emu)
	relayClient := emulatorClient(t, proxy.addr())
	topic := testenv.Unique("stall")
	svc, srv := startService(t, Config{Client: relayClient, Topic: topic, Replay: 15 * time.Minute, StallAfter: time.Second})
	col := collect(t, srv.URL)
	// The control: the same connection, a plain receive loop without the watch.
	ctrlSub, err := pubsub.CreateInstanceSubscription(context.Background(), direct, topic, testenv.Unique("control"))
	if err != nil {
		t.Fatal(err)
	}
	defer pubsub.DeleteSubscription(context.Background(), direct, ctrlSub)
	var ctrlMu sync.Mutex
	ctrl := map[string]bool{}
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	go pubsub.Receive(cctx, relayClient, ctrlSub, func(data []byte, _ map[string]string) {
		var r struct{ ID string }
		json.Unmarshal(data, &r)
		ctrlMu.Lock()
		ctrl[r.ID] = true
		ctrlMu.Unlock()
	})

	pub := direct.Publisher(topic)
	defer pub.Stop()
	pub.PublishSettings.DelayThreshold = time.Millisecond
	var mu sync.Mutex
	want := map[string]bool{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the routes: records and heartbeats, through the fault
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			id := fmt.Sprintf("s-%04d", i)
			pub.Publish(context.Background(), recordMsg(id, time.Now()))
			if i%10 == 0 {
				pub.Publish(context.Background(), heartbeatMsg())
			}
			mu.Lock()
			want[id] = true
			mu.Unlock()
		}
	}()
	time.Sleep(time.Second)
	proxy.cut()
	time.Sleep(4 * time.Second)
	proxy.restore()
	time.Sleep(time.Second)
	close(stop)
	<-done
	pub.Flush()
	healedAt := time.Now()
	mu.Lock()
	all := want
	mu.Unlock()
	col.waitAll(t, all, 20*time.Second)
	ctrlMu.Lock()
	t.Logf("%d records, all on the websocket %v after the link came back; %v restarts; a plain receive loop on the same connection had %d",
		len(all), time.Since(healedAt).Round(time.Millisecond), gathered(t, svc, "vmpulse_relay_receive_restarts_total"), len(ctrl))
	ctrlMu.Unlock()
	if gathered(t, svc, "vmpulse_relay_receive_restarts_total") < 1 {
		t.Fatal("the receive loop was never restarted")
	}
	// Healthy again: fresh messages, no stall.
	deadline := time.Now().Add(5 * time.Second)
	for {
		publish(t, pub, heartbeatMsg())
		st := svc.state(time.Now())
		if st.Status == "ok" && st.AgeS < 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after healing: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The subscriptions left behind are deleted.
	deadline = time.Now().Add(5 * time.Second)
	for len(topicSubs(t, direct, topic)) != 2 && time.Now().Before(deadline) { // with the control
		time.Sleep(100 * time.Millisecond)
	}
	if subs := topicSubs(t, direct, topic); len(subs) != 2 || (subs[0] != svc.Subscription() && subs[1] != svc.Subscription()) {
		t.Fatalf("subscriptions %v, want only the current one %s and the control", subs, svc.Subscription())
	}
}

// TestHealthFailsWhenStallOutlastsRestarts: with nothing on the topic (no
// heartbeat: routes gone or the subscription stuck) the relay restarts
// receiving, reports the stall in its metrics, and /health answers 503 once the
// stall outlasts the restarts; a heartbeat makes it healthy again.
func TestHealthFailsWhenStallOutlastsRestarts(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	topic := testenv.Unique("silent")
	svc, srv := startService(t, Config{Client: client, Topic: topic, StallAfter: time.Second, UnhealthyAfter: time.Second})
	col := collect(t, srv.URL)
	health := func() (int, state) {
		resp, err := http.Get(srv.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st state
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("health body %s: %v", b, err)
		}
		return resp.StatusCode, st
	}
	if code, st := health(); code != 200 || st.Status != "ok" {
		t.Fatalf("fresh relay: %d %+v", code, st)
	}
	reg := svc.Registry()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, st := health()
		if code == http.StatusServiceUnavailable {
			if st.Status != "unhealthy" || st.Restarts < 1 || st.AgeS < 2 {
				t.Fatalf("503 with %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %+v", code, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, err := testutil.GatherAndCount(reg, "vmpulse_relay_stalled", "vmpulse_relay_last_message_age_seconds", "vmpulse_relay_receive_restarts_total"); err != nil || n != 3 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vmpulse_relay_stalled 1 while no message arrived for -stall-after (the receive loop is being restarted), else 0.
# TYPE vmpulse_relay_stalled gauge
vmpulse_relay_stalled 1
`), "vmpulse_relay_stalled"); err != nil {
		t.Fatal(err)
	}
	pub := client.Publisher(topic)
	defer pub.Stop()
	deadline = time.Now().Add(10 * time.Second)
	for {
		publish(t, pub, heartbeatMsg())
		if code, st := health(); code == 200 && st.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			code, st := health()
			t.Fatalf("after a heartbeat: %d %+v", code, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, f := range col.frames {
		if len(f.Items) > 0 {
			t.Fatalf("a heartbeat reached the client: %+v", f)
		}
	}
}

// TestHandlerServesOnlyItsPaths: the relay's handler has /ws and /health, and
// no dashboard or metrics.
func TestHandlerServesOnlyItsPaths(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	_, srv := startService(t, Config{Client: client, Topic: testenv.Unique("paths")})
	for path, want := range map[string]int{"/health": 200, "/metrics": 404, "/": 404, "/index.html": 404, "/healthz": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	conn, _, err := dial(t, srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// TestHeartbeatGapRequestsRestart: a gap of more than two and a half of an
// instance's intervals, or a skipped number in its sequence, asks for a restart
// sought back to before the gap; redeliveries and new instances do not. The
// pace is the one the heartbeats announce, so a gap right after the first
// heartbeat counts (the relay cannot learn a pace from one heartbeat); heartbeats
// of earlier releases (no seq, no every_ms) have theirs learnt.
func TestHeartbeatGapRequestsRestart(t *testing.T) {
	s := &Service{cfg: Config{heartbeatFloor: time.Second}, hb: map[string]*hbState{}, reqc: make(chan struct{}, 1), m: &serviceMetrics{
		heartbeatGaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "gaps"})}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	beat := func(inst string, sent time.Time, seq uint64, every time.Duration) *restartRequest {
		now = now.Add(time.Second)
		s.heartbeat(pubsub.Message{Kind: pubsub.KindHeartbeat, Instance: inst, StoredAt: sent, Seq: seq, Every: every}, now)
		s.reqMu.Lock()
		defer s.reqMu.Unlock()
		r := s.req
		s.req = nil
		return r
	}
	gaps := 0
	wantRestart := func(what string, r *restartRequest, from time.Time) {
		t.Helper()
		gaps++
		if r == nil || !r.from.Equal(from.Add(-restartOverlap)) {
			t.Fatalf("%s: restart %+v, want one from %v before the heartbeat at %v", what, r, restartOverlap, from.Sub(t0))
		}
	}

	// Earlier releases: the pace is learnt as the shortest interval seen.
	for i, sent := range []time.Time{t0, t0.Add(5 * time.Second), t0.Add(10 * time.Second), t0.Add(7 * time.Second), t0.Add(22 * time.Second)} {
		if r := beat("old", sent, 0, 0); r != nil {
			t.Fatalf("heartbeat %d (%v): restart %+v", i, sent.Sub(t0), r)
		}
	}
	// 22 s after 10 s is 12 s: within 2.5 × 5 s. 36 s is 14 s after 22 s: a gap.
	wantRestart("learnt pace", beat("old", t0.Add(36*time.Second), 0, 0), t0.Add(22*time.Second))
	if r := beat("r2", t0.Add(100*time.Second), 0, 0); r != nil {
		t.Fatalf("a new instance: %+v", r)
	}

	// Announced pace: a gap right after the first heartbeat is noticed.
	wantRestart("a gap after the first heartbeat", func() *restartRequest {
		beat("new", t0, 1, 5*time.Second)
		return beat("new", t0.Add(20*time.Second), 2, 5*time.Second)
	}(), t0)
	// A skipped number is noticed though the interval looks normal (one
	// heartbeat went to a stream nobody reads).
	if r := beat("new", t0.Add(25*time.Second), 3, 5*time.Second); r != nil {
		t.Fatalf("the next heartbeat in sequence: %+v", r)
	}
	wantRestart("a skipped number", beat("new", t0.Add(35*time.Second), 5, 5*time.Second), t0.Add(25*time.Second))
	if r := beat("new", t0.Add(30*time.Second), 4, 5*time.Second); r != nil {
		t.Fatalf("the skipped heartbeat arriving late: %+v", r)
	}
	if r := beat("new", t0.Add(40*time.Second), 6, 5*time.Second); r != nil {
		t.Fatalf("back in sequence: %+v", r)
	}
	if got := testutil.ToFloat64(s.m.heartbeatGaps); got != float64(gaps) {
		t.Fatalf("gaps counted %v, want %d", got, gaps)
	}
}

// TestPartialStallHealsOnHeartbeatGap: a second reader on the relay's
// subscription takes part of its records, as the Java emulator's stale stream
// does after a connection reset, while the routes' heartbeats pause (as they do
// when the routes cannot publish). Messages keep arriving, so the relay is never
// silent for -stall-after; the gap in the heartbeats makes it restart on a fresh
// subscription sought back, and every record reaches the client, the taken ones
// included.
func TestPartialStallHealsOnHeartbeatGap(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	ctx := context.Background()
	topic := testenv.Unique("partial")
	if err := pubsub.EnsureTopic(ctx, client, topic, true); err != nil {
		t.Fatal(err)
	}
	svc, srv := startService(t, Config{Client: client, Topic: topic, Replay: 15 * time.Minute, StallAfter: time.Minute,
		heartbeatFloor: 100 * time.Millisecond})
	col := collect(t, srv.URL)
	pub := client.Publisher(topic)
	pub.PublishSettings.DelayThreshold = time.Millisecond
	defer pub.Stop()
	beat := func(n int) {
		for i := 0; i < n; i++ {
			m := heartbeatMsg()
			m.Attributes["instance"] = "route1-a"
			m.Attributes["sent_at"] = time.Now().UTC().Format(time.RFC3339Nano)
			publish(t, pub, m)
			time.Sleep(200 * time.Millisecond)
		}
	}
	beat(4) // the pace: one every 200 ms
	thiefCtx, stopThief := context.WithCancel(ctx)
	defer stopThief()
	var stolen sync.Map
	go pubsub.Receive(thiefCtx, client, svc.Subscription(), func(data []byte, attrs map[string]string) {
		if attrs["kind"] == "record" {
			var r struct{ ID string }
			json.Unmarshal(data, &r)
			stolen.Store(r.ID, true)
		}
	})
	time.Sleep(300 * time.Millisecond)
	want := map[string]bool{}
	for i := 0; i < 40; i++ { // 1 s of records and no heartbeat
		id := fmt.Sprintf("p-%02d", i)
		want[id] = true
		pub.Publish(ctx, recordMsg(id, time.Now()))
		time.Sleep(25 * time.Millisecond)
	}
	pub.Flush()
	stopThief()
	beat(3)
	n := 0
	stolen.Range(func(any, any) bool { n++; return true })
	col.waitAll(t, want, 15*time.Second)
	t.Logf("the second reader took %d of 40 records; %v heartbeat gaps, %v restarts", n,
		testutil.ToFloat64(svc.m.heartbeatGaps), gathered(t, svc, "vmpulse_relay_receive_restarts_total"))
	if testutil.ToFloat64(svc.m.heartbeatGaps) < 1 || gathered(t, svc, "vmpulse_relay_receive_restarts_total") < 1 {
		t.Fatal("the heartbeat gap did not restart receiving")
	}
	if n == 0 {
		t.Log("the emulator gave the second reader nothing this time: the restart had nothing to recover")
	}
}

// TestCapsHoldAcrossMounts: the relay's paths mounted on a second mux (as the
// commands do, next to the dashboard) share the first one's client cap.
func TestCapsHoldAcrossMounts(t *testing.T) {
	client := emulatorClient(t, testenv.PubsubEmulator(t))
	svc, first := startService(t, Config{Client: client, Topic: testenv.Unique("mounts"), WS: Options{MaxClients: 1}})
	mux := http.NewServeMux()
	svc.Mount(mux)
	second := httptest.NewServer(mux)
	defer second.Close()
	conn, _, err := dial(t, first.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if c2, resp, err := dial(t, second.URL, ""); err == nil {
		c2.Close()
		t.Fatal("a second client got in through another mux with -max-clients 1")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second mux: %v %v, want 503", resp, err)
	}
}

// gathered is the value of the service's counter or gauge name, as /metrics
// would show it.
func gathered(t *testing.T, svc *Service, name string) float64 {
	t.Helper()
	mfs, err := svc.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not gathered", name)
	return 0
}
