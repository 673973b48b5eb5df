// Command vmpulse-route is the ingest service: POST /ingest commits records to
// MySQL with the strategy chosen by -strategy (route1: one transaction per request;
// route2: group commit of concurrent requests) and publishes each committed record
// to Pub/Sub. On GKE both strategies run as separate Deployments of this binary
// behind a Gateway that splits traffic 50/50.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmpulse/vmpulse/functions/ingest"
	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/functions/pubsub"
	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/internal/httpserve"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-route failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	addr, strategy           string
	db                       mysql.Config
	project, topic, emulator string
	createTopic              bool
	maxBody                  int64
	batchMax, writers        int
	batchDelay               time.Duration
	noPubsub                 bool
}

func parse(args []string) (config, error) {
	var c config
	fs := flagenv.New("vmpulse-route", "vmpulse-route stores records posted to /ingest in MySQL and publishes them to Pub/Sub.")
	fs.String(&c.addr, "addr", "", flagenv.PortAddr(":8080"), "listen address (default :$PORT when PORT is set)")
	fs.String(&c.strategy, "strategy", "STRATEGY", "", "ingest strategy: route1 (one transaction per request) or route2 (group commit)")
	fs.String(&c.db.DSN, "mysql-dsn", "MYSQL_DSN", "", "MySQL DSN, e.g. root@tcp(127.0.0.1:3306)/vmpulse (used when -cloudsql-instance is empty)")
	fs.String(&c.db.Instance, "cloudsql-instance", "CLOUDSQL_INSTANCE", "", "Cloud SQL instance connection name project:region:instance (uses the Cloud SQL Go connector)")
	fs.Bool(&c.db.PrivateIP, "cloudsql-private-ip", "CLOUDSQL_PRIVATE_IP", false, "dial the Cloud SQL instance's private IP")
	fs.Bool(&c.db.IAMAuth, "cloudsql-iam-auth", "CLOUDSQL_IAM_AUTH", false, "log in to Cloud SQL with IAM database authentication (no password)")
	fs.String(&c.db.User, "db-user", "DB_USER", "", "database user for Cloud SQL (with IAM auth: the service account name, the part of its email before @)")
	fs.String(&c.db.Password, "db-password", "DB_PASSWORD", "", "database password for Cloud SQL without IAM auth (prefer IAM auth)")
	fs.String(&c.db.Database, "db-name", "DB_NAME", "vmpulse", "database name (when the DSN names none)")
	fs.Duration(&c.db.Wait, "db-wait", "DB_WAIT", 60*time.Second, "how long to keep retrying an unreachable database at start")
	fs.Int(&c.db.MaxOpenConns, "db-conns", "DB_CONNS", 32, "maximum open database connections")
	fs.String(&c.project, "project", "PUBSUB_PROJECT", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project of the topic (when unset: $GOOGLE_CLOUD_PROJECT)")
	fs.String(&c.topic, "topic", "PUBSUB_TOPIC", "vmpulse-records", "Pub/Sub topic committed records are published to")
	fs.String(&c.emulator, "pubsub-emulator", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator (no credentials)")
	fs.Bool(&c.createTopic, "create-topic", "PUBSUB_CREATE_TOPIC", false, "create the topic if it is missing (always on with an emulator)")
	fs.Bool(&c.noPubsub, "no-pubsub", "NO_PUBSUB", false, "store only, publish nothing (for benchmarks of MySQL alone)")
	fs.Int64(&c.maxBody, "max-body", "MAX_BODY_BYTES", ingest.DefaultMaxBody, "largest accepted request body, bytes (413 above)")
	fs.Int(&c.batchMax, "batch-max", "BATCH_MAX_RECORDS", 1000, "route2: records per group commit at most")
	fs.Duration(&c.batchDelay, "batch-delay", "BATCH_MAX_DELAY", 0, "route2: how long a group that is not full waits for more requests (0: commit at once; groups form from the requests that arrive meanwhile)")
	fs.Int(&c.writers, "batch-writers", "BATCH_WRITERS", 4, "route2: groups committing at once")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.strategy != ingest.Route1 && c.strategy != ingest.Route2:
		return c, fmt.Errorf("-strategy %q: want route1 or route2", c.strategy)
	case c.db.DSN == "" && c.db.Instance == "":
		return c, errors.New("no database: set -mysql-dsn (MYSQL_DSN) or -cloudsql-instance (CLOUDSQL_INSTANCE)")
	case !c.noPubsub && c.project == "":
		return c, errors.New("no Pub/Sub project: set -project (PUBSUB_PROJECT or GOOGLE_CLOUD_PROJECT), or -no-pubsub")
	case c.maxBody < 1024:
		return c, fmt.Errorf("-max-body %d: must be at least 1024 bytes", c.maxBody)
	case c.batchMax < 1 || c.batchMax > mysql.MaxRowsPerStatement:
		return c, fmt.Errorf("-batch-max %d: must be within 1..%d", c.batchMax, mysql.MaxRowsPerStatement)
	case c.writers < 1 || c.writers > 64:
		return c, fmt.Errorf("-batch-writers %d: must be within 1..64", c.writers)
	}
	return c, nil
}

func run(args []string, log *slog.Logger) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	log = log.With("route", c.strategy)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, err := mysql.Open(ctx, c.db, log)
	if err != nil {
		return err
	}
	defer store.Close()

	checks := map[string]func(context.Context) error{"mysql": store.Ping}
	var pub *pubsub.Publisher
	if !c.noPubsub {
		client, err := pubsub.Connect(ctx, c.project, c.emulator)
		if err != nil {
			return err
		}
		defer client.Close()
		create := c.createTopic || c.emulator != ""
		if err := pubsub.EnsureTopic(ctx, client, c.topic, create); err != nil {
			return err
		}
		checks["pubsub"] = func(ctx context.Context) error { return pubsub.EnsureTopic(ctx, client, c.topic, false) }
		pub = pubsub.NewPublisher(client, c.topic, log)
	}

	cfg := ingest.Config{
		Route: c.strategy, Store: store, MaxBody: c.maxBody, Log: log, Checks: checks,
		Group: ingest.GroupConfig{MaxRecords: c.batchMax, MaxDelay: c.batchDelay, Writers: c.writers},
	}
	if pub != nil {
		cfg.Pub = pub
	}
	srv, err := ingest.NewServer(cfg)
	if err != nil {
		return err
	}
	log.Info("vmpulse-route starting", "strategy", c.strategy, "addr", c.addr, "topic", c.topic, "cloudsql", c.db.Instance != "")
	err = httpserve.Run(ctx, log, "route", httpserve.New(c.addr, srv.Handler()))
	// The server has drained its requests; finish queued commits, then publications.
	srv.Close()
	if pub != nil {
		pub.Stop()
	}
	return err
}
