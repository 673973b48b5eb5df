// Command vmpulse-relay streams committed records to dashboards over websockets.
// Each instance creates its own Pub/Sub subscription at start (so every instance
// sees every record; a shared subscription would split them), seeks it back to
// replay recent history, and deletes it on SIGTERM; the subscription also expires
// by itself if the instance dies. It runs on Cloud Run with a long request
// timeout and session affinity.
//
// The public port serves only GET /ws and GET /health (and, for local use with
// -web-dir, the dashboard). Metrics are on -metrics-addr, profiles on
// -pprof-addr, both private.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmpulse/vmpulse/frontend/web"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/functions/relay"
	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/internal/httpserve"
	"github.com/vmpulse/vmpulse/internal/logging"
	"github.com/vmpulse/vmpulse/internal/pprofserve"
)

func main() {
	log := logging.New(os.Stderr, slog.LevelInfo)
	if err := run(context.Background(), os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-relay failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	addr, metricsAddr, pprofAddr                      string
	project, topic, emulator, prefix, origins, webDir string
	createTopic, exposeProcesses, compression         bool
	history, historyBytes, queue                      int
	maxClients, maxPerIP, trustedProxies              int
	replay, stallAfter, unhealthyAfter                time.Duration
}

func parse(args []string) (config, error) {
	var c config
	fs := flagenv.New("vmpulse-relay", "vmpulse-relay streams committed records from Pub/Sub to dashboards over websockets (GET /ws; health: GET /health).")
	fs.String(&c.addr, "addr", "", flagenv.PortAddr(":8080"), "public listen address: /ws and /health (default :$PORT when PORT is set)")
	fs.String(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9090", "private address of GET /metrics; empty: no metrics server. Never the public port")
	fs.String(&c.pprofAddr, "pprof-addr", "PPROF_ADDR", "", "loopback address of /debug/pprof/ (e.g. 127.0.0.1:6060); empty: off")
	fs.String(&c.project, "project", "PUBSUB_PROJECT", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project of the topic (when unset: $GOOGLE_CLOUD_PROJECT)")
	fs.String(&c.topic, "topic", "PUBSUB_TOPIC", "vmpulse-records", "Pub/Sub topic the routes publish to")
	fs.String(&c.emulator, "pubsub-emulator", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator (no credentials; implies -create-topic)")
	fs.Bool(&c.createTopic, "create-topic", "CREATE_TOPIC", false, "create a missing topic, with message retention for -replay (in Google Cloud Terraform owns the topic)")
	fs.String(&c.prefix, "subscription-prefix", "SUBSCRIPTION_PREFIX", "vmpulse-relay-", "prefix of this instance's own subscription id")
	fs.String(&c.origins, "allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated dashboard origins allowed to open /ws (empty: same origin only; * allows any; null is always refused)")
	fs.Duration(&c.replay, "replay", "REPLAY", relay.DefaultReplay, "seek the new subscription this far back so the first client gets history (bounded by the topic's retention); also the age limit of the history; 0: off")
	fs.Duration(&c.stallAfter, "stall-after", "STALL_AFTER", relay.DefaultStallAfter, "restart receiving on a fresh subscription after this long without any new message (routes send a heartbeat every 5 s; redeliveries do not count); 0: off")
	fs.Duration(&c.unhealthyAfter, "unhealthy-after", "UNHEALTHY_AFTER", relay.DefaultUnhealthyAfter, "GET /health answers 503 when a stall outlasts -stall-after by this much despite restarts (Cloud Run's liveness probe then replaces the instance)")
	fs.Int(&c.history, "history", "HISTORY_SIZE", relay.DefaultHistory, "records kept in memory and sent to each new client")
	fs.Int(&c.historyBytes, "history-bytes", "HISTORY_BYTES", relay.DefaultHistoryBytes, "bytes of records kept in memory and sent to each new client")
	fs.Int(&c.queue, "client-queue", "CLIENT_QUEUE", relay.DefaultClientQueue, "records a client may fall behind before it is dropped as too slow (one ring shared by all clients)")
	fs.Int(&c.maxClients, "max-clients", "MAX_CLIENTS", relay.DefaultMaxClients, "concurrent websocket clients at most; on Cloud Run set it to the service's max concurrency (at most 1000): it must not exceed it, and below it clients are refused while the instance has room")
	fs.Int(&c.maxPerIP, "max-per-ip", "MAX_PER_IP", relay.DefaultMaxPerAddr, "concurrent websocket clients per client address (IPv6: per /64); 0: no limit")
	fs.Int(&c.trustedProxies, "trusted-proxies", "TRUSTED_PROXIES", 0, "proxies in front of the relay that append to X-Forwarded-For (Cloud Run's URL: 1; behind an external Application Load Balancer: 2); 0: use the connection's address")
	fs.Bool(&c.exposeProcesses, "expose-processes", "EXPOSE_PROCESSES", false, "send process names (top_procesos[].name) to clients; off: they are sent empty (for a private dashboard only)")
	fs.Bool(&c.compression, "compression", "COMPRESSION", true, "permessage-deflate with clients that offer it (browsers do); each frame is compressed once for all clients")
	fs.String(&c.webDir, "web-dir", "WEB_DIR", "", "also serve the built dashboard from this directory (local mode)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.project == "":
		return c, errors.New("no Pub/Sub project: set -project (PUBSUB_PROJECT or GOOGLE_CLOUD_PROJECT)")
	case c.history < 1 || c.history > 1_000_000:
		return c, fmt.Errorf("-history %d: must be within 1..1000000", c.history)
	case c.historyBytes < 1<<10 || c.historyBytes > 1<<30:
		return c, fmt.Errorf("-history-bytes %d: must be within 1 KiB..1 GiB", c.historyBytes)
	case c.queue < 16 || c.queue > 10_000_000:
		return c, fmt.Errorf("-client-queue %d: must be within 16..10000000", c.queue)
	case c.maxClients < 1 || c.maxClients > 100_000:
		return c, fmt.Errorf("-max-clients %d: must be within 1..100000", c.maxClients)
	case c.maxPerIP < 0:
		return c, fmt.Errorf("-max-per-ip %d: must be 0 (no limit) or more", c.maxPerIP)
	case c.trustedProxies < 0 || c.trustedProxies > 10:
		return c, fmt.Errorf("-trusted-proxies %d: must be within 0..10", c.trustedProxies)
	case c.replay < 0 || c.replay > 7*24*time.Hour:
		return c, fmt.Errorf("-replay %v: must be within 0..168h", c.replay)
	case c.stallAfter != 0 && c.stallAfter < time.Second:
		return c, fmt.Errorf("-stall-after %v: must be 0 (off) or at least 1s", c.stallAfter)
	case c.unhealthyAfter < 0:
		return c, fmt.Errorf("-unhealthy-after %v: must not be negative", c.unhealthyAfter)
	}
	if err := pprofserve.Check(c.pprofAddr); err != nil {
		return c, fmt.Errorf("-pprof-addr: %w", err)
	}
	if c.webDir != "" {
		if _, err := os.Stat(c.webDir + "/index.html"); err != nil {
			return c, fmt.Errorf("-web-dir %s: no index.html (build the dashboard with `make web`): %w", c.webDir, err)
		}
	}
	return c, nil
}

// instanceID names this instance's subscription: Cloud Run's revision when known,
// plus randomness, since instances of one revision share everything else.
func instanceID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	rev := os.Getenv("K_REVISION")
	if rev == "" {
		rev, _ = os.Hostname()
	}
	rev = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(rev))
	if len(rev) > 40 {
		rev = rev[:40]
	}
	return prefix + rev + "-" + hex.EncodeToString(b[:])
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	client, err := pubsub.Connect(ctx, c.project, c.emulator)
	if err != nil {
		return err
	}
	defer client.Close()
	var origins []string
	if c.origins != "" {
		origins = strings.Split(c.origins, ",")
	}
	svc, err := relay.Start(ctx, relay.Config{
		Client: client, Topic: c.topic, SubscriptionID: instanceID(c.prefix),
		CreateTopic: c.createTopic || c.emulator != "",
		Replay:      c.replay, StallAfter: c.stallAfter, UnhealthyAfter: c.unhealthyAfter,
		Hub: relay.HubConfig{History: c.history, HistoryBytes: c.historyBytes, ClientQueue: c.queue,
			ExposeProcesses: c.exposeProcesses},
		WS: relay.Options{AllowedOrigins: origins, MaxClients: c.maxClients, MaxPerAddr: c.maxPerIP,
			TrustedProxies: c.trustedProxies, Compression: c.compression},
		Log: log,
	})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	svc.Mount(mux)
	if c.webDir != "" {
		mux.Handle("/", web.Handler(os.DirFS(c.webDir), web.Config{}))
	}
	srv := httpserve.New(c.addr, mux)
	srv.WriteTimeout = 0 // websockets are long-lived; each write has its own deadline
	servers := []func() error{func() error { return httpserve.Run(ctx, log, "relay", srv) }}
	if c.metricsAddr != "" {
		m := httpserve.New(c.metricsAddr, svc.MetricsHandler())
		servers = append(servers, func() error { return httpserve.Run(ctx, log, "relay metrics", m) })
	}
	go func() { // loopback only; off unless -pprof-addr
		if err := pprofserve.Run(ctx, c.pprofAddr, log); err != nil {
			log.Error("profiler stopped", "err", err)
		}
	}()
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s() }()
	}
	// Until SIGTERM or a server fails (a port taken, say).
	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc:
		errs = append(errs, err)
		servers = servers[1:]
	}
	stop()
	// Clients first, so they reconnect elsewhere while the rest winds down; the
	// servers shut down meanwhile (websockets are not theirs to wait for).
	t0 := time.Now()
	_ = svc.Close() // a subscription left behind is logged there and expires by itself
	for range servers {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	log.Info("vmpulse-relay stopped", "shutdown_ms", time.Since(t0).Milliseconds())
	return errors.Join(errs...)
}
