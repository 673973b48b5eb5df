package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// DefaultMaxBytes is the default byte cap (Options.MaxBytes).
const DefaultMaxBytes = 256 << 20

// Options configure a Server. The zero value is usable.
type Options struct {
	// MaxBytes caps what messages hold in memory: their data, attributes and a
	// fixed overhead, plus a fixed cost per subscription holding each. When a
	// publish would exceed it, the oldest messages kept only for Seek are
	// evicted first; when none is left, the oldest unacknowledged messages.
	// Both are counted (Stats) and logged. 0 means DefaultMaxBytes.
	MaxBytes int64
	// Logger receives evictions (warn, error for unacknowledged messages),
	// expired subscriptions and shutdown. nil means slog.Default().
	Logger *slog.Logger
	// Now is the wall clock used for publish times, Seek, message retention
	// and subscription expiration; nil means time.Now. Ack deadlines are
	// timed with real timers whatever Now says.
	Now func() time.Time
}

// Server is an in-process Pub/Sub server speaking the google.pubsub.v1 gRPC
// API. Its exported methods are safe for concurrent use.
type Server struct {
	pb.UnimplementedPublisherServer
	pb.UnimplementedSubscriberServer

	now      func() time.Time
	log      *slog.Logger
	maxBytes int64

	mu         sync.Mutex
	topics     map[string]*topic
	subs       map[string]*subscription
	seq        uint64
	lastPub    time.Time
	bytes      int64
	messages   int64
	allHead    *message
	allTail    *message
	retained   seqHeap
	published  uint64
	nextClient uint64
	closed     bool // no timers once set

	evictedRetained uint64
	evictedUnacked  uint64
	pendRetained    uint64
	pendUnacked     uint64
	pendUnackedSubs map[string]uint64
	lastRetainedLog time.Time

	unavailable atomic.Bool
	outageMu    sync.Mutex
	outage      chan struct{} // closed while unavailable

	gs        *grpc.Server
	addr      string
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start listens on addr (host:port; port 0 picks a free one) and serves.
func Start(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", addr, err)
	}
	s, err := StartOn(ln, opts)
	if err != nil {
		ln.Close()
	}
	return s, err
}

// StartOn serves on ln, which the Server closes when it is closed.
func StartOn(ln net.Listener, opts Options) (*Server, error) {
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("broker: Options.MaxBytes: %d is negative", opts.MaxBytes)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Server{
		now:             opts.Now,
		log:             opts.Logger,
		maxBytes:        opts.MaxBytes,
		topics:          map[string]*topic{},
		subs:            map[string]*subscription{},
		pendUnackedSubs: map[string]uint64{},
		outage:          make(chan struct{}),
		done:            make(chan struct{}),
		addr:            ln.Addr().String(),
		// Message ids stay unique across restarts of the process.
		seq: uint64(time.Now().UnixMicro()),
	}
	b.gs = grpc.NewServer(
		grpc.MaxRecvMsgSize(maxRequestBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(b.unaryGate),
		grpc.ChainStreamInterceptor(b.streamGate),
		grpc.UnknownServiceHandler(unknownService),
	)
	pb.RegisterPublisherServer(b.gs, b)
	pb.RegisterSubscriberServer(b.gs, b)
	b.wg.Add(2)
	// The label marks every goroutine of the server in CPU profiles of a
	// process that embeds it (go tool pprof -tagfocus component=pubsub-broker).
	labels := pprof.Labels("component", "pubsub-broker")
	go pprof.Do(context.Background(), labels, func(context.Context) {
		defer b.wg.Done()
		if err := b.gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.log.Error("broker: serve", "addr", b.addr, "err", err)
		}
	})
	go pprof.Do(context.Background(), labels, func(context.Context) { b.janitor() })
	return b, nil
}

// maxRequestBytes bounds one request (the service accepts 10 MB publishes).
const maxRequestBytes = 16 << 20

// Addr is the host:port to use as PUBSUB_EMULATOR_HOST.
func (b *Server) Addr() string { return b.addr }

// Close ends every stream and stops serving.
func (b *Server) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		stopped := make(chan struct{})
		go func() { b.gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			b.gs.Stop()
			<-stopped
		}
		b.wg.Wait()
		b.mu.Lock()
		b.closed = true
		for _, s := range b.subs {
			if s.timer != nil {
				s.timer.Stop()
			}
		}
		logs := b.evictionLogs(true)
		b.mu.Unlock()
		logs()
	})
	return nil
}

// SetUnavailable simulates an outage: while on, every RPC fails with
// Unavailable and open streams are cut (the client retries); nothing stored is
// lost, and ack deadlines keep running.
func (b *Server) SetUnavailable(on bool) {
	b.outageMu.Lock()
	defer b.outageMu.Unlock()
	if b.unavailable.Load() == on {
		return
	}
	b.unavailable.Store(on)
	if on {
		close(b.outage)
	} else {
		b.outage = make(chan struct{})
	}
}

// outageChan is closed when an outage starts.
func (b *Server) outageChan() <-chan struct{} {
	b.outageMu.Lock()
	defer b.outageMu.Unlock()
	return b.outage
}

var errUnavailable = status.Error(codes.Unavailable, "vmpulse broker: unavailable (outage simulated with SetUnavailable); retry")

func (b *Server) unaryGate(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if b.unavailable.Load() {
		return nil, errUnavailable
	}
	return h(ctx, req)
}

func (b *Server) streamGate(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if b.unavailable.Load() {
		return errUnavailable
	}
	return h(srv, ss)
}

func unknownService(_ any, ss grpc.ServerStream) error {
	m, _ := grpc.MethodFromServerStream(ss)
	return status.Errorf(codes.Unimplemented, "vmpulse broker: %s is not implemented; it serves google.pubsub.v1.Publisher and google.pubsub.v1.Subscriber only", m)
}

// janitor applies retention and expiration once a second and reports
// evictions. Each pass costs what it removes, not what is held.
func (b *Server) janitor() {
	defer b.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		b.mu.Lock()
		expired := b.sweep()
		logs := b.evictionLogs(false)
		b.mu.Unlock()
		for _, name := range expired {
			b.log.Info("broker: subscription expired after inactivity (expiration_policy)", "subscription", name)
		}
		logs()
	}
}

// sweep trims topics and subscriptions and deletes expired subscriptions,
// returning their names.
func (b *Server) sweep() []string {
	wall := b.now()
	for _, t := range b.topics {
		b.trimTopic(t, wall)
	}
	var expired []string
	for _, s := range b.subs {
		b.trimSubscription(s, wall)
		if s.ttl > 0 && s.streams == 0 && wall.Sub(s.lastActive) > s.ttl {
			expired = append(expired, s.name)
			b.deleteSubscription(s)
		}
	}
	return expired
}

// evictionLogs returns a function logging the evictions since the last call:
// unacknowledged messages at once (error: a subscriber will never see them),
// retained-only ones every 10 s at most (warning: Seek cannot replay them).
func (b *Server) evictionLogs(force bool) func() {
	var fns []func()
	if b.pendUnacked > 0 {
		n, total, subs := b.pendUnacked, b.evictedUnacked, b.pendUnackedSubs
		bytes, limit := b.bytes, b.maxBytes
		fns = append(fns, func() {
			b.log.Error("broker: byte cap reached: unacknowledged messages dropped, subscribers will never receive them",
				"dropped", n, "dropped_total", total, "per_subscription", subs, "held_bytes", bytes, "max_bytes", limit)
		})
		b.pendUnacked = 0
		b.pendUnackedSubs = map[string]uint64{}
	}
	wall := b.now()
	if b.pendRetained > 0 && (force || wall.Sub(b.lastRetainedLog) >= 10*time.Second) {
		n, total := b.pendRetained, b.evictedRetained
		var oldest time.Duration
		if len(b.retained) > 0 {
			oldest = wall.Sub(b.retained[0].pubTime)
		}
		for _, t := range b.topics {
			if t.logHead != nil && wall.Sub(t.logHead.pubTime) > oldest {
				oldest = wall.Sub(t.logHead.pubTime)
			}
		}
		limit := b.maxBytes
		fns = append(fns, func() {
			b.log.Warn("broker: byte cap reached: oldest retained messages evicted, Seek can no longer replay them",
				"evicted", n, "evicted_total", total, "replayable_history", oldest.Round(time.Second).String(), "max_bytes", limit)
		})
		b.pendRetained = 0
		b.lastRetainedLog = wall
	}
	return func() {
		for _, f := range fns {
			f()
		}
	}
}

// Stats is a snapshot of what a Server holds.
type Stats struct {
	Messages        int64  // distinct messages held (in a backlog or kept for Seek)
	Bytes           int64  // counted against MaxBytes
	MaxBytes        int64  // the cap
	Published       uint64 // messages accepted since start
	EvictedRetained uint64 // messages kept only for Seek, evicted by the cap
	EvictedUnacked  uint64 // unacknowledged messages dropped by the cap
	Topics          []TopicStats
	Subscriptions   []SubscriptionStats
}

// TopicStats describes one topic.
type TopicStats struct {
	Name          string
	Retained      int   // messages kept for Seek
	RetainedBytes int64 // their size
}

// SubscriptionStats describes one subscription.
type SubscriptionStats struct {
	Name, Topic  string
	Backlog      int   // unacknowledged messages, delivered or not
	BacklogBytes int64 // their size
	Outstanding  int   // delivered, awaiting ack or deadline
	Streams      int   // open streaming pulls
	Delivered    uint64
	Redelivered  uint64 // deliveries after a nack or an expired deadline
	Acked        uint64
	Expired      uint64 // ack deadlines that passed
	Dropped      uint64 // older than the retention
	Evicted      uint64 // dropped by the byte cap
}

// Subscription returns the stats of the subscription with the given full name.
func (st Stats) Subscription(name string) (SubscriptionStats, bool) {
	for _, s := range st.Subscriptions {
		if s.Name == name {
			return s, true
		}
	}
	return SubscriptionStats{}, false
}

// Stats returns what the server holds now.
func (b *Server) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{
		Messages: b.messages, Bytes: b.bytes, MaxBytes: b.maxBytes, Published: b.published,
		EvictedRetained: b.evictedRetained, EvictedUnacked: b.evictedUnacked,
	}
	for _, t := range b.topics {
		st.Topics = append(st.Topics, TopicStats{Name: t.name, Retained: t.logN, RetainedBytes: t.logBytes})
	}
	for _, s := range b.subs {
		st.Subscriptions = append(st.Subscriptions, SubscriptionStats{
			Name: s.name, Topic: s.topicName(), Backlog: len(s.entries), BacklogBytes: s.backlogBytes,
			Outstanding: s.outstanding, Streams: s.streams, Delivered: s.delivered, Redelivered: s.redelivered,
			Acked: s.acked, Expired: s.expired, Dropped: s.dropped, Evicted: s.evicted,
		})
	}
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Name < st.Topics[j].Name })
	sort.Slice(st.Subscriptions, func(i, j int) bool { return st.Subscriptions[i].Name < st.Subscriptions[j].Name })
	return st
}
