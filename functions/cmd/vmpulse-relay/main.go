// Command vmpulse-relay streams committed records to dashboards over websockets.
// Each instance creates its own Pub/Sub subscription at start (so every instance
// sees every record; a shared subscription would split them) and deletes it on
// SIGTERM; the subscription also expires by itself if the instance dies. It runs on
// Cloud Run with a long request timeout and session affinity.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/functions/relay"
	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/internal/httpserve"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-relay failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	addr, project, topic, emulator, prefix, origins, webDir string
	history, queue, maxClients                              int
}

func parse(args []string) (config, error) {
	var c config
	fs := flagenv.New("vmpulse-relay", "vmpulse-relay streams committed records from Pub/Sub to dashboards over websockets (GET /ws).")
	fs.String(&c.addr, "addr", "", flagenv.PortAddr(":8080"), "listen address (default :$PORT when PORT is set)")
	fs.String(&c.project, "project", "PUBSUB_PROJECT", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project of the topic (when unset: $GOOGLE_CLOUD_PROJECT)")
	fs.String(&c.topic, "topic", "PUBSUB_TOPIC", "vmpulse-records", "Pub/Sub topic the routes publish to")
	fs.String(&c.emulator, "pubsub-emulator", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator (no credentials)")
	fs.String(&c.prefix, "subscription-prefix", "SUBSCRIPTION_PREFIX", "vmpulse-relay-", "prefix of this instance's own subscription id")
	fs.String(&c.origins, "allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated dashboard origins allowed to open /ws (empty: same origin only; * allows any)")
	fs.Int(&c.history, "history", "HISTORY_SIZE", relay.DefaultHistory, "records kept in memory and sent to each new client")
	fs.Int(&c.queue, "client-queue", "CLIENT_QUEUE", relay.DefaultClientQueue, "records queued per client before the client is dropped as too slow")
	fs.Int(&c.maxClients, "max-clients", "MAX_CLIENTS", 5000, "concurrent websocket clients at most")
	fs.String(&c.webDir, "web-dir", "WEB_DIR", "", "also serve the built dashboard from this directory (local mode)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.project == "":
		return c, errors.New("no Pub/Sub project: set -project (PUBSUB_PROJECT or GOOGLE_CLOUD_PROJECT)")
	case c.history < 1 || c.history > 100000:
		return c, fmt.Errorf("-history %d: must be within 1..100000", c.history)
	case c.queue < 16:
		return c, fmt.Errorf("-client-queue %d: must be at least 16", c.queue)
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

func run(args []string, log *slog.Logger) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		Client: client, Topic: c.topic, SubscriptionID: instanceID(c.prefix), CreateTopic: c.emulator != "",
		History: c.history, ClientQueue: c.queue, WebDir: c.webDir, Log: log,
		WS: relay.Options{AllowedOrigins: origins, MaxClients: c.maxClients, Log: log},
	})
	if err != nil {
		return err
	}
	defer svc.Close()
	srv := httpserve.New(c.addr, svc.Handler())
	srv.WriteTimeout = 0 // websockets are long-lived; each write has its own deadline
	errc := make(chan error, 1)
	go func() { errc <- httpserve.Run(ctx, log, "relay", srv) }()
	select {
	case err = <-errc:
	case err = <-svc.Done():
		if err == nil {
			err = <-errc
		} else {
			stop()
			err = errors.Join(err, <-errc)
		}
	}
	stop()
	return err
}
