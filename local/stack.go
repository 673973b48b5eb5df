// Package local runs the whole vmpulse pipeline on one machine for people without
// a Google Cloud account: the agent sampling this machine, a feeder sending its
// samples through a 50/50 split (standing in for the GKE Gateway) to both ingest
// routes, MySQL, Pub/Sub, and the relay serving the dashboard. When MYSQL_DSN or
// PUBSUB_EMULATOR_HOST are not given, the stack brings its own: a private MariaDB
// server on a throwaway data directory when MariaDB is installed (else an
// in-memory MySQL-compatible server, correct but slow beyond a few hundred
// records/s) and an in-process Pub/Sub broker (local/broker). The routes and the
// relay run the same code as in production.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vmpulse/vmpulse/agent"
	"github.com/vmpulse/vmpulse/frontend/web"
	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/functions/relay"
	"github.com/vmpulse/vmpulse/functions/split"
	"github.com/vmpulse/vmpulse/internal/httpserve"
	"github.com/vmpulse/vmpulse/local/broker"
	"github.com/vmpulse/vmpulse/record"
)

// Config says what to run where. Addresses may use port 0 (tests).
type Config struct {
	SplitAddr, Route1Addr, Route2Addr, AgentAddr, RelayAddr string
	// PubsubAddr and MySQLAddr are where the stack's own Pub/Sub and MySQL listen.
	PubsubAddr, MySQLAddr string
	// MySQLDSN and PubsubEmulator select services run by somebody else instead.
	MySQLDSN, PubsubEmulator string
	// Database is the stack's own MySQL when MySQLDSN is empty: DatabaseMariaDB,
	// DatabaseEmbedded, or DatabaseAuto ("", the default: MariaDB when installed).
	Database               string
	Project, Topic, DBName string

	VM            string
	AgentInterval time.Duration
	// Agents is how many named agents to run (default 1): several read this same
	// machine under the names <VM>-1, <VM>-2, …, on consecutive ports from
	// AgentAddr's (each on a free port when AgentAddr's port is 0).
	Agents      int
	AgentSource string // auto, kmod or procfs
	ProcRoot    string
	KmodSuffix  string

	Relay  bool   // run the relay in-process
	WebDir string // dashboard files served next to the relay ("" for none)
	Feed   bool   // send the agent's latest sample through the split every FeedInterval
	// FeedInterval is how often the feeder posts the latest sample (default 1 s):
	// slower than the agent samples, so that the load phases' records are mostly
	// new to the routes.
	FeedInterval time.Duration

	// IngestToken is the bearer token the routes accept and the feeder sends.
	IngestToken string
	// Outbox tunes the routes' outboxes (zero: the defaults).
	Outbox ingest.OutboxConfig

	Log *slog.Logger
}

// The stack's own database (Config.Database).
const (
	DatabaseAuto     = "auto"
	DatabaseMariaDB  = "mariadb"
	DatabaseEmbedded = "embedded"
)

// Addrs are the addresses the stack listens on.
type Addrs struct {
	Split, Route1, Route2, Agent, Relay, Pubsub, MySQL string
	// Agents are the addresses of every agent (Agent is the first) and VMs their
	// vm names, in the same order.
	Agents, VMs []string
	MySQLDSN    string
	// Database says which MySQL the stack uses: "mariadb", "embedded" or
	// "external" (MySQLDSN).
	Database string
}

// Stack is a running local pipeline.
type Stack struct {
	Addrs Addrs

	cancel  context.CancelFunc
	servers []*namedServer                // shut down in this order, then:
	routes  []func(context.Context) error // finish commits and publications
	stores  []func() error                // close the database pools
	infra   []func() error                // the Pub/Sub client, then the stand-ins
	errc    chan error
	feeders []*Feeder
	proxy   *split.Proxy
	relay   *relay.Service
	once    sync.Once
	stopErr error
}

type namedServer struct {
	name string
	srv  *http.Server
	done chan error
}

// listen opens addr or explains what to do when the port is taken.
func listen(name, addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot listen on %s (is another vmpulse stack running? choose another port with %s): %w", name, addr, flag, err)
	}
	return ln, nil
}

// Start brings the stack up; everything is listening when it returns.
func Start(ctx context.Context, cfg Config) (st *Stack, err error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stack{cancel: cancel, errc: make(chan error, 16)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	log := cfg.Log

	// MySQL: the configured server, else a private MariaDB, else the embedded one.
	dsn := cfg.MySQLDSN
	s.Addrs.Database = "external"
	if dsn == "" {
		if dsn, err = s.startDatabase(ctx, cfg); err != nil {
			return s, err
		}
	}
	s.Addrs.MySQLDSN = dsn

	// Pub/Sub: the configured emulator or the embedded broker.
	emu := cfg.PubsubEmulator
	if emu == "" {
		ln, err := listen("embedded Pub/Sub", cfg.PubsubAddr, "-pubsub-addr")
		if err != nil {
			return s, err
		}
		br, err := broker.StartOn(ln, broker.Options{Logger: log.With("component", "pubsub")})
		if err != nil {
			ln.Close()
			return s, err
		}
		s.infra = append(s.infra, br.Close)
		emu = br.Addr()
	}
	s.Addrs.Pubsub = emu
	client, err := pubsub.Connect(ctx, cfg.Project, emu)
	if err != nil {
		return s, err
	}
	s.infra = append([]func() error{client.Close}, s.infra...)
	if err := pubsub.EnsureTopic(ctx, client, cfg.Topic, true); err != nil {
		return s, err
	}

	// Agents: one, or several named agents on consecutive ports reading this
	// machine, so a comparison of VMs can be seen without a cloud.
	agentAddrs, err := agentAddrs(cfg.AgentAddr, max(cfg.Agents, 1))
	if err != nil {
		return s, err
	}
	var agentLns []net.Listener
	var samplers []*agent.Sampler
	for i, addr := range agentAddrs {
		src, err := agent.OpenSource(cfg.AgentSource, cfg.ProcRoot, cfg.KmodSuffix, 10)
		if err != nil {
			return s, err
		}
		vm := record.VMName(cfg.VM)
		if len(agentAddrs) > 1 {
			vm = record.VMName(fmt.Sprintf("%s-%d", cfg.VM, i+1))
		}
		sampler := agent.New(src, agent.Options{VM: vm, Interval: cfg.AgentInterval, Top: 10, Log: log.With("component", "agent", "vm", vm)})
		ln, err := listen("agent "+vm, addr, "-agent-addr")
		if err != nil {
			return s, err
		}
		agentLns, samplers = append(agentLns, ln), append(samplers, sampler)
		s.Addrs.Agents = append(s.Addrs.Agents, ln.Addr().String())
		s.Addrs.VMs = append(s.Addrs.VMs, vm)
		go func() {
			if err := sampler.Run(ctx); err != nil {
				s.errc <- fmt.Errorf("agent %s: %w", vm, err)
			}
		}()
	}

	// Routes: one service each, as two Deployments would have.
	routeAddr := map[string]string{ingest.Route1: cfg.Route1Addr, ingest.Route2: cfg.Route2Addr}
	routeLn := map[string]net.Listener{}
	var routeSrv []*namedServer
	tokens, err := ingest.StaticTokens(cfg.IngestToken)
	if err != nil {
		return s, fmt.Errorf("ingest token: %w", err)
	}
	// The embedded server's in-memory tables are not safe under concurrent
	// transactions (a commit can overwrite another session's rows), so with it
	// both routes share one store with a single connection: every write runs
	// alone. MariaDB gets one pool per route, as two Deployments would have.
	var shared *mysql.Store
	dbTimeout := time.Duration(0) // the routes' default
	if s.Addrs.Database == DatabaseEmbedded {
		// Every write waits its turn for the one connection: allow for the queue.
		dbTimeout = 25 * time.Second
		shared, err = mysql.Open(ctx, mysql.Config{DSN: dsn, Database: cfg.DBName, Wait: 10 * time.Second, MaxOpenConns: 1}, log)
		if err != nil {
			return s, err
		}
		s.stores = append(s.stores, shared.Close)
	}
	for _, route := range []string{ingest.Route1, ingest.Route2} {
		rlog := log.With("component", route)
		store := shared
		if store == nil {
			if store, err = mysql.Open(ctx, mysql.Config{DSN: dsn, Database: cfg.DBName, Wait: 10 * time.Second}, rlog); err != nil {
				return s, fmt.Errorf("%s: %w", route, err)
			}
			s.stores = append(s.stores, store.Close)
		}
		svc, err := ingest.StartService(ctx, ingest.ServiceConfig{Route: route, Store: store, Pubsub: client, Topic: cfg.Topic,
			Tokens: tokens, Outbox: cfg.Outbox, DBTimeout: dbTimeout, Log: rlog})
		if err != nil {
			return s, err
		}
		s.routes = append(s.routes, svc.Close)
		ln, err := listen(route, routeAddr[route], "-"+route+"-addr")
		if err != nil {
			return s, err
		}
		routeLn[route] = ln
		routeSrv = append(routeSrv, &namedServer{name: route, srv: httpserve.New(ln.Addr().String(), svc.Handler())})
	}
	s.Addrs.Route1 = routeLn[ingest.Route1].Addr().String()
	s.Addrs.Route2 = routeLn[ingest.Route2].Addr().String()

	// The split standing in for the Gateway's weighted HTTPRoute.
	backends, err := split.ParseBackends("route1=http://" + s.Addrs.Route1 + "=50,route2=http://" + s.Addrs.Route2 + "=50")
	if err != nil {
		return s, err
	}
	if s.proxy, err = split.New(backends, log.With("component", "split")); err != nil {
		return s, err
	}
	splitLn, err := listen("split", cfg.SplitAddr, "-split-addr")
	if err != nil {
		return s, err
	}
	s.Addrs.Split = splitLn.Addr().String()
	s.Addrs.Agent = s.Addrs.Agents[0]

	// Relay.
	var relayLn net.Listener
	if cfg.Relay {
		if relayLn, err = listen("relay", cfg.RelayAddr, "-relay-addr"); err != nil {
			return s, err
		}
		s.Addrs.Relay = relayLn.Addr().String()
		// As in production: history replayed from the topic on start (both the
		// embedded broker and the emulator keep what a topic retains and replay it
		// with its data), stall detection on the routes' heartbeats.
		s.relay, err = relay.Start(ctx, relay.Config{
			Client: client, Topic: cfg.Topic, SubscriptionID: "vmpulse-relay-local-" + strconv.Itoa(os.Getpid()),
			CreateTopic: true, Replay: relay.DefaultReplay, StallAfter: relay.DefaultStallAfter,
			Log: log.With("component", "relay"),
			WS:  relay.Options{Log: log.With("component", "relay"), Compression: true},
		})
		if err != nil {
			relayLn.Close()
			return s, err
		}
	}

	// Serve. Shutdown order: split first (no new work), then routes, relay, agent.
	splitSrv := &namedServer{name: "split", srv: httpserve.New(s.Addrs.Split, s.proxy)}
	s.serve(ctx, splitSrv, splitLn)
	for _, ns := range routeSrv {
		s.serve(ctx, ns, routeLn[ns.name])
	}
	if relayLn != nil {
		// The relay serves its own paths; the dashboard is mounted next to it.
		mux := http.NewServeMux()
		s.relay.Mount(mux)
		if cfg.WebDir != "" {
			mux.Handle("/", web.Handler(os.DirFS(cfg.WebDir), web.Config{}))
		}
		rs := httpserve.New(s.Addrs.Relay, mux)
		rs.WriteTimeout = 0
		s.serve(ctx, &namedServer{name: "relay", srv: rs}, relayLn)
	}
	for i, ln := range agentLns {
		s.serve(ctx, &namedServer{name: "agent " + s.Addrs.VMs[i], srv: httpserve.New(ln.Addr().String(), samplers[i].Handler())}, ln)
	}

	if cfg.Feed {
		every := cfg.FeedInterval
		if every <= 0 {
			every = time.Second
		}
		for i, a := range s.Addrs.Agents {
			f := NewFeeder("http://"+a, "http://"+s.Addrs.Split, cfg.IngestToken, every, log.With("component", "feeder", "vm", s.Addrs.VMs[i]))
			s.feeders = append(s.feeders, f)
			go f.Run(ctx)
		}
	}
	return s, nil
}

func (s *Stack) serve(ctx context.Context, ns *namedServer, ln net.Listener) {
	ns.done = make(chan error, 1)
	s.servers = append(s.servers, ns)
	go func() {
		err := ns.srv.Serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("%s: %w", ns.name, err)
		}
		ns.done <- nil
	}()
}

// Wait blocks until ctx ends or a component fails, then stops the stack.
func (s *Stack) Wait(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	return errors.Join(err, s.Close())
}

// Sent reports how many requests the split sent to each route.
func (s *Stack) Sent() map[string]int64 { return s.proxy.Sent() }

// Fed is how many samples the built-in feeders stored.
func (s *Stack) Fed() int64 {
	var n int64
	for _, f := range s.feeders {
		n += f.Sent()
	}
	return n
}

// Relay returns the in-process relay (nil when Relay is off).
func (s *Stack) Relay() *relay.Service { return s.relay }

// Close stops everything in order: the feeder, the split, the routes (their
// accepted requests still commit and publish), the relay, the agent, then Pub/Sub
// and MySQL.
func (s *Stack) Close() error {
	s.once.Do(func() {
		s.cancel()
		var errs []error
		for _, ns := range s.servers {
			ctx, cancel := context.WithTimeout(context.Background(), httpserve.ShutdownGrace)
			if err := ns.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: shutdown: %w", ns.name, err))
			}
			cancel()
			<-ns.done
		}
		// Routes first, so their last publications still reach the relay.
		var closers []func() error
		for _, c := range s.routes {
			closers = append(closers, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				return c(ctx)
			})
		}
		if s.relay != nil {
			closers = append(closers, s.relay.Close)
		}
		closers = append(append(closers, s.stores...), s.infra...)
		for _, c := range closers {
			if err := c(); err != nil {
				errs = append(errs, err)
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// agentAddrs returns n listen addresses: base, then the next ports (all port 0
// when base's is 0).
func agentAddrs(base string, n int) ([]string, error) {
	host, port, err := net.SplitHostPort(base)
	if err != nil {
		return nil, fmt.Errorf("-agent-addr %q: %w", base, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p+n-1 > 65535 {
		return nil, fmt.Errorf("-agent-addr %q: not a port that leaves room for %d agents", base, n)
	}
	out := make([]string, n)
	for i := range out {
		q := p
		if p != 0 {
			q = p + i
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(q))
	}
	return out, nil
}
