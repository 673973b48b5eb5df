package faults

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	_ "github.com/go-sql-driver/mysql" // database/sql driver for the checks

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/functions/split"
	"github.com/vmpulse/vmpulse/internal/mariadbd"
	"github.com/vmpulse/vmpulse/loadtest/driver"
)

// MemLimitMiB is the memory limit of the routes (k8s/route*.yaml) and of the
// relay (terraform/run.tf).
const MemLimitMiB = 512

// Project is the Pub/Sub project the stacks use on the emulator.
const Project = "vmpulse-faults"

// StackConfig says where a Stack's parts are.
type StackConfig struct {
	Name     string // scenario name, used in topic and database names
	Dir      string // logs and token
	Bins     *Binaries
	DB       *mariadbd.Server // the server; the stack uses its own database on it
	Emulator string           // host:port of the Pub/Sub emulator
	// RouteArgs are extra flags for both routes (e.g. -batch-max).
	RouteArgs []string
}

// Stack is one vmpulse pipeline: two routes behind a 50/50 split, a relay and a
// dashboard client, each dependency reached through a fault proxy:
//
//	driver → split → route1, route2 → MySQLProxy (toxiproxy) → Cutter → MariaDB
//	                             └──→ PubsubProxy (toxiproxy) → emulator ←── relay → WS
type Stack struct {
	Cfg         StackConfig
	DBName      string
	Topic       string
	Token       string // bearer token, when the routes take -token-file
	MySQLProxy  *Proxy
	Cutter      *CommitCutter
	PubsubProxy *Proxy
	Routes      map[string]*Process
	Relay       *Process
	SplitURL    string
	split       *split.Proxy
	splitSrv    *http.Server
	WS          *WSClient
	Check       *sql.DB // straight to MariaDB, for the verdict
	Requests    RequestStats
	// Witness is a subscription of the harness's own, straight to the emulator
	// (no fault proxy): what it saw was published, which tells a record lost
	// by a route (never published) from one lost by the relay.
	Witness *Witness
}

// RouteNames are the two strategies.
var RouteNames = []string{"route1", "route2"}

// NewStack starts everything; Close stops it.
func NewStack(ctx context.Context, cfg StackConfig) (s *Stack, err error) {
	s = &Stack{Cfg: cfg, Routes: map[string]*Process{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	slug := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_").Replace(cfg.Name))
	if len(slug) > 40 {
		slug = slug[:40]
	}
	s.DBName = "faults_" + slug + "_" + randHex(3)
	s.Topic = "faults-" + strings.ReplaceAll(slug, "_", "-") + "-" + randHex(4)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return s, err
	}
	if s.Cutter, err = NewCommitCutter(cfg.DB.Addr()); err != nil {
		return s, err
	}
	if s.MySQLProxy, err = NewProxy(cfg.Name+"-mysql", s.Cutter.Addr()); err != nil {
		return s, err
	}
	if s.PubsubProxy, err = NewProxy(cfg.Name+"-pubsub", cfg.Emulator); err != nil {
		return s, err
	}
	if s.Check, err = sql.Open("mysql", mariadbd.DSN(cfg.DB.Addr(), s.DBName)); err != nil {
		return s, err
	}
	s.Check.SetMaxOpenConns(4)

	if cfg.Bins.RouteFlags["token-file"] {
		s.Token = randHex(24)
		if err := os.WriteFile(filepath.Join(cfg.Dir, "ingest-token"), []byte(s.Token+"\n"), 0o600); err != nil {
			return s, err
		}
	}
	if s.Witness, err = NewWitness(ctx, cfg.Emulator, s.Topic); err != nil {
		return s, err
	}
	if s.Relay, err = s.newRelay(); err != nil {
		return s, err
	}
	if err := s.Relay.Start(ctx); err != nil {
		return s, err
	}
	for _, name := range RouteNames {
		p, err := s.newRoute(name)
		if err != nil {
			return s, err
		}
		s.Routes[name] = p
		if err := p.Start(ctx); err != nil {
			return s, err
		}
	}
	var backends []*split.Backend
	for _, name := range RouteNames {
		u, _ := url.Parse(s.Routes[name].baseURL())
		backends = append(backends, &split.Backend{Name: name, URL: u, Weight: 50})
	}
	if s.split, err = split.New(backends, slog.New(slog.DiscardHandler)); err != nil {
		return s, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	s.splitSrv = &http.Server{Handler: s.split, ReadHeaderTimeout: 10 * time.Second}
	go s.splitSrv.Serve(ln)
	s.SplitURL = "http://" + ln.Addr().String()
	s.WS = NewWSClient("ws://" + s.Relay.addr() + "/ws")
	// The first history frame tells the client is listening before load starts.
	deadline := time.Now().Add(10 * time.Second)
	for !s.WS.Connected() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !s.WS.Connected() {
		return s, errors.New("websocket client could not connect to the relay")
	}
	return s, nil
}

func (p *Process) baseURL() string { return "http://" + p.addr() }

// addr is the -addr argument of a route or relay process.
func (p *Process) addr() string {
	for i, a := range p.Args {
		if a == "-addr" && i+1 < len(p.Args) {
			return p.Args[i+1]
		}
	}
	return ""
}

// loopbackAddr returns a free 127.0.0.1:port to listen on.
func loopbackAddr() (string, error) {
	port, err := mariadbd.FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(port), nil
}

func (s *Stack) newRoute(name string) (*Process, error) {
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	flags := s.Cfg.Bins.RouteFlags
	args := []string{
		"-strategy", name,
		"-addr", addr,
		"-mysql-dsn", mariadbd.DSN(s.MySQLProxy.Addr(), s.DBName),
		"-project", Project,
		"-topic", s.Topic,
		"-pubsub-emulator", s.PubsubProxy.Addr(),
		"-db-wait", "60s",
	}
	if flags["token-file"] {
		args = append(args, "-token-file", filepath.Join(s.Cfg.Dir, "ingest-token"))
	}
	args = append(args, s.Cfg.RouteArgs...)
	return &Process{
		Name: name, Bin: s.Cfg.Bins.Route, Args: args, Env: childEnv(s.Cfg.Dir),
		Log: logPath(s.Cfg.Dir, name), HealthURLs: []string{"http://" + addr + "/healthz"},
		// The route serves /metrics on its own port (it has no -metrics-addr).
		MetricsURL: "http://" + addr + "/metrics", LimitMiB: MemLimitMiB,
	}, nil
}

func (s *Stack) newRelay() (*Process, error) {
	addr, err := loopbackAddr()
	if err != nil {
		return nil, err
	}
	flags := s.Cfg.Bins.RelayFlags
	args := []string{
		"-addr", addr,
		"-project", Project,
		"-topic", s.Topic,
		"-pubsub-emulator", s.PubsubProxy.Addr(),
		"-subscription-prefix", "faults-relay-",
	}
	metrics := "http://" + addr + "/metrics"
	if flags["metrics-addr"] {
		// Its own free port: the flag's default (127.0.0.1:9090) would collide
		// between stacks.
		maddr, err := loopbackAddr()
		if err != nil {
			return nil, err
		}
		args = append(args, "-metrics-addr", maddr)
		metrics = "http://" + maddr + "/metrics"
	}
	return &Process{
		Name: "relay", Bin: s.Cfg.Bins.Relay, Args: args, Env: childEnv(s.Cfg.Dir),
		Log: logPath(s.Cfg.Dir, "relay"),
		// GET /health is the relay's only health path.
		HealthURLs: []string{"http://" + addr + "/health"},
		MetricsURL: metrics, LimitMiB: MemLimitMiB,
	}, nil
}

// Processes lists the routes and the relay.
func (s *Stack) Processes() []*Process {
	out := []*Process{}
	for _, n := range RouteNames {
		if p := s.Routes[n]; p != nil {
			out = append(out, p)
		}
	}
	if s.Relay != nil {
		out = append(out, s.Relay)
	}
	return out
}

// HTTPClient is the senders' client: the driver's, timing every request into
// s.Requests. It adds no token: the senders pass s.Token as SendConfig.Token.
func (s *Stack) HTTPClient(users int, timeout time.Duration) *http.Client {
	c := driver.NewClient(users, timeout)
	c.Transport = timed{stats: &s.Requests, next: c.Transport}
	return c
}

// RequestStats times the senders' requests.
type RequestStats struct {
	mu      sync.Mutex
	longest time.Duration
	over    map[time.Duration]int
}

// Over returns how many requests took longer than d (d must be one of
// requestThresholds) and the longest one.
func (r *RequestStats) Over(d time.Duration) (int, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over[d], r.longest
}

var requestThresholds = []time.Duration{10 * time.Second, 12 * time.Second}

type timed struct {
	stats *RequestStats
	next  http.RoundTripper
}

func (t timed) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	d := time.Since(start) // to the response headers: when the route answered
	t.stats.mu.Lock()
	t.stats.longest = max(t.stats.longest, d)
	if t.stats.over == nil {
		t.stats.over = map[time.Duration]int{}
	}
	for _, th := range requestThresholds {
		if d > th {
			t.stats.over[th]++
		}
	}
	t.stats.mu.Unlock()
	return resp, err
}

// Close stops every process and proxy, and deletes the topic's subscriptions and
// the topic from the shared emulator.
func (s *Stack) Close() {
	if s.WS != nil {
		s.WS.Close()
	}
	if s.splitSrv != nil {
		s.splitSrv.Close()
	}
	for _, p := range s.Processes() {
		p.Stop()
	}
	if s.MySQLProxy != nil {
		s.MySQLProxy.Close()
	}
	if s.PubsubProxy != nil {
		s.PubsubProxy.Close()
	}
	if s.Cutter != nil {
		s.Cutter.Close()
	}
	if s.Check != nil {
		s.Check.Close()
	}
	if s.Witness != nil {
		s.Witness.Close()
	}
	if s.Topic != "" && s.Cfg.Emulator != "" {
		deleteTopic(s.Cfg.Emulator, s.Topic)
	}
}

// Witness records the ids published to a topic.
type Witness struct {
	mu     sync.Mutex
	ids    map[string]struct{}
	cancel context.CancelFunc
	done   chan struct{}
	client interface{ Close() error }
}

// NewWitness creates the topic if needed and a subscription on it, and receives.
func NewWitness(ctx context.Context, emulator, topic string) (*Witness, error) {
	c, err := pubsub.Connect(ctx, Project, emulator)
	if err != nil {
		return nil, err
	}
	if err := pubsub.EnsureTopic(ctx, c, topic, true); err != nil {
		c.Close()
		return nil, err
	}
	sub, err := pubsub.CreateInstanceSubscription(ctx, c, topic, "faults-witness-"+randHex(6))
	if err != nil {
		c.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	w := &Witness{ids: map[string]struct{}{}, cancel: cancel, done: make(chan struct{}), client: c}
	go func() {
		defer close(w.done)
		_ = pubsub.Receive(rctx, c, sub, func(data []byte, _ map[string]string) {
			var head struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(data, &head) == nil && head.ID != "" {
				w.mu.Lock()
				w.ids[head.ID] = struct{}{}
				w.mu.Unlock()
			}
		})
	}()
	return w, nil
}

// Published reports whether id was seen on the topic.
func (w *Witness) Published(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.ids[id]
	return ok
}

// Close stops receiving (the subscription goes with the topic).
func (w *Witness) Close() {
	w.cancel()
	<-w.done
	w.client.Close()
}

// deleteTopic removes a topic and its subscriptions (those a killed relay left
// behind too), so that the shared emulator does not keep their messages.
func deleteTopic(emulator, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pubsub.Connect(ctx, Project, emulator)
	if err != nil {
		return
	}
	defer c.Close()
	name := pubsub.TopicName(Project, topic)
	it := c.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: name})
	for {
		sub, err := it.Next()
		if err != nil {
			break
		}
		_ = pubsub.DeleteSubscription(ctx, c, sub)
	}
	_ = c.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: name})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rowsInMySQL returns every id in the stack's records table with its stored_at,
// and the ids stored more than once.
func (s *Stack) rowsInMySQL(ctx context.Context) (map[string]time.Time, map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := s.Check.QueryContext(ctx, "SELECT id, stored_at FROM records")
	if err != nil {
		return nil, nil, fmt.Errorf("read ids from MySQL: %w", err)
	}
	defer rows.Close()
	ids := map[string]time.Time{}
	dups := map[string]int{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, nil, fmt.Errorf("read ids from MySQL: %w", err)
		}
		if _, ok := ids[id]; ok {
			dups[id]++
		}
		ids[id] = at
	}
	return ids, dups, rows.Err()
}
