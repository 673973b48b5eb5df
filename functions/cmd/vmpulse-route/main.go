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
	"github.com/vmpulse/vmpulse/internal/logging"
	"github.com/vmpulse/vmpulse/internal/memlimit"
	"github.com/vmpulse/vmpulse/internal/pprofserve"
)

func main() {
	log := logging.New(os.Stderr, slog.LevelInfo)
	if err := run(os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-route failed", "err", err)
		os.Exit(1)
	}
}

type config struct {
	addr, strategy, pprofAddr string
	db                        mysql.Config
	project, topic, emulator  string
	createTopic, noPubsub     bool
	tokenFile                 string
	noAuth                    bool
	maxBody, maxInflight      int64
	batchMax, writers         int
	batchDelay, dbTimeout     time.Duration
	heartbeat                 time.Duration
	outbox                    ingest.OutboxConfig
}

func parse(args []string) (config, error) {
	var c config
	fs := flagenv.New("vmpulse-route", "vmpulse-route stores records posted to /ingest in MySQL and publishes them to Pub/Sub.\n\n"+
		"POST /ingest takes one record or a JSON array (at most 5000) with Authorization: Bearer <token>; GET /healthz is\n"+
		"readiness (MySQL only); GET /metrics is Prometheus. Every committed record reaches Pub/Sub at least once: what\n"+
		"fails to publish is published again from MySQL by the outbox.")
	fs.String(&c.addr, "addr", "", flagenv.PortAddr(":8080"), "listen address (default :$PORT when PORT is set)")
	fs.String(&c.strategy, "strategy", "STRATEGY", "", "ingest strategy: route1 (one transaction per request) or route2 (group commit)")
	fs.String(&c.tokenFile, "token-file", "INGEST_TOKEN_FILE", "", "file holding the accepted bearer token (two lines during a rotation); re-read when it changes")
	fs.Bool(&c.noAuth, "no-auth", "NO_AUTH", false, "accept requests without a token (only behind another authenticating proxy)")
	fs.String(&c.db.DSN, "mysql-dsn", "MYSQL_DSN", "", "MySQL DSN, e.g. root@tcp(127.0.0.1:3306)/vmpulse (used when -cloudsql-instance is empty)")
	fs.String(&c.db.Instance, "cloudsql-instance", "CLOUDSQL_INSTANCE", "", "Cloud SQL instance connection name project:region:instance (uses the Cloud SQL Go connector)")
	fs.Bool(&c.db.PrivateIP, "cloudsql-private-ip", "CLOUDSQL_PRIVATE_IP", false, "dial the Cloud SQL instance's private IP")
	fs.Bool(&c.db.IAMAuth, "cloudsql-iam-auth", "CLOUDSQL_IAM_AUTH", false, "log in to Cloud SQL with IAM database authentication (no password)")
	fs.String(&c.db.User, "db-user", "DB_USER", "", "database user for Cloud SQL (with IAM auth: the service account name, the part of its email before @)")
	fs.String(&c.db.Password, "db-password", "DB_PASSWORD", "", "database password for Cloud SQL without IAM auth (prefer IAM auth)")
	fs.String(&c.db.Database, "db-name", "DB_NAME", "vmpulse", "database name (when the DSN names none)")
	fs.Duration(&c.db.Wait, "db-wait", "DB_WAIT", 60*time.Second, "how long to keep retrying an unreachable database at start")
	fs.Int(&c.db.MaxOpenConns, "db-conns", "DB_CONNS", 32, "maximum open database connections")
	fs.Duration(&c.dbTimeout, "db-timeout", "DB_TIMEOUT", ingest.DefaultDBTimeout, "deadline of a request's whole write (a transaction, or a group commit); past it the request gets 503 + Retry-After")
	fs.Duration(&c.db.StatementTimeout, "db-statement-timeout", "DB_STATEMENT_TIMEOUT", mysql.DefaultStatementTimeout, "deadline of each round trip of a write (BEGIN, INSERT, COMMIT): how long a database that stops answering can hold a request")
	fs.String(&c.project, "project", "PUBSUB_PROJECT", os.Getenv("GOOGLE_CLOUD_PROJECT"), "Google Cloud project of the topic (when unset: $GOOGLE_CLOUD_PROJECT)")
	fs.String(&c.topic, "topic", "PUBSUB_TOPIC", "vmpulse-records", "Pub/Sub topic committed records are published to")
	fs.String(&c.emulator, "pubsub-emulator", "PUBSUB_EMULATOR_HOST", "", "host:port of a Pub/Sub emulator (no credentials)")
	fs.Bool(&c.createTopic, "create-topic", "PUBSUB_CREATE_TOPIC", false, "create the topic if it is missing (always on with an emulator)")
	fs.Bool(&c.noPubsub, "no-pubsub", "NO_PUBSUB", false, "store only, publish nothing (for benchmarks of MySQL alone)")
	fs.Duration(&c.heartbeat, "heartbeat", "HEARTBEAT_INTERVAL", 5*time.Second, "how often this instance publishes a heartbeat for the relays")
	fs.Duration(&c.outbox.Grace, "outbox-grace", "OUTBOX_GRACE", 15*time.Second, fmt.Sprintf("age at which a committed batch not known to be published is published again from MySQL (at least %v, a publication's retry window)", pubsub.PublishTimeout))
	fs.Duration(&c.outbox.Lookback, "outbox-lookback", "OUTBOX_LOOKBACK", 30*time.Minute, "how far back the outbox looks for unpublished batches when it starts")
	fs.Int64(&c.maxBody, "max-body", "MAX_BODY_BYTES", ingest.DefaultMaxBody, "largest accepted request body, bytes (413 above)")
	fs.Int64(&c.maxInflight, "max-inflight-bytes", "MAX_INFLIGHT_BYTES", ingest.DefaultMaxInflight, "request bodies held at once, bytes (429 + Retry-After above)")
	fs.Int(&c.batchMax, "batch-max", "BATCH_MAX_RECORDS", 1000, "route2: records per group commit at most")
	fs.Duration(&c.batchDelay, "batch-delay", "BATCH_MAX_DELAY", 0, "route2: how long a group that is not full waits for more requests (0: commit at once; groups form from the requests that arrive meanwhile)")
	fs.Int(&c.writers, "batch-writers", "BATCH_WRITERS", 4, "route2: groups committing at once")
	fs.String(&c.pprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve Go's profiler on this loopback address, e.g. 127.0.0.1:6060 (off when empty)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.strategy != ingest.Route1 && c.strategy != ingest.Route2:
		return c, fmt.Errorf("-strategy %q: want route1 or route2", c.strategy)
	case c.db.DSN == "" && c.db.Instance == "":
		return c, errors.New("no database: set -mysql-dsn (MYSQL_DSN) or -cloudsql-instance (CLOUDSQL_INSTANCE)")
	case c.db.Instance != "" && c.db.User == "":
		return c, errors.New("-cloudsql-instance needs -db-user (DB_USER)")
	case c.db.IAMAuth && c.db.Password != "":
		return c, errors.New("-db-password must be empty with -cloudsql-iam-auth")
	case c.tokenFile == "" && !c.noAuth:
		return c, errors.New("no ingest token: set -token-file (INGEST_TOKEN_FILE) to a file holding the token, or -no-auth to accept anyone")
	case c.tokenFile != "" && c.noAuth:
		return c, errors.New("-token-file and -no-auth contradict each other: choose one")
	case !c.noPubsub && c.project == "":
		return c, errors.New("no Pub/Sub project: set -project (PUBSUB_PROJECT or GOOGLE_CLOUD_PROJECT), or -no-pubsub")
	case c.maxBody < 1024:
		return c, fmt.Errorf("-max-body %d: must be at least 1024 bytes", c.maxBody)
	case c.maxInflight < c.maxBody:
		return c, fmt.Errorf("-max-inflight-bytes %d: must be at least -max-body (%d)", c.maxInflight, c.maxBody)
	case c.batchMax < 1 || c.batchMax > mysql.MaxRowsPerStatement:
		return c, fmt.Errorf("-batch-max %d: must be within 1..%d", c.batchMax, mysql.MaxRowsPerStatement)
	case c.writers < 1 || c.writers > 64:
		return c, fmt.Errorf("-batch-writers %d: must be within 1..64", c.writers)
	case c.dbTimeout < 100*time.Millisecond || c.dbTimeout > time.Minute:
		return c, fmt.Errorf("-db-timeout %v: must be within 100ms..1m", c.dbTimeout)
	case c.db.StatementTimeout < 100*time.Millisecond || c.db.StatementTimeout > c.dbTimeout:
		return c, fmt.Errorf("-db-statement-timeout %v: must be within 100ms..-db-timeout (%v)", c.db.StatementTimeout, c.dbTimeout)
	case c.outbox.Grace < pubsub.PublishTimeout:
		return c, fmt.Errorf("-outbox-grace %v: must be at least %v (a publication retries that long)", c.outbox.Grace, pubsub.PublishTimeout)
	case c.heartbeat < time.Second:
		return c, fmt.Errorf("-heartbeat %v: must be at least 1s", c.heartbeat)
	}
	if err := pprofserve.Check(c.pprofAddr); err != nil {
		return c, fmt.Errorf("-pprof-addr: %w", err)
	}
	return c, nil
}

// closeGrace bounds the ordered close after the HTTP server stopped: GKE kills a
// pod 30 s after SIGTERM, and the server's own shutdown takes up to
// httpserve.ShutdownGrace of that.
const closeGrace = 15 * time.Second

func run(args []string, log *slog.Logger) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	log = log.With("route", c.strategy)
	if soft := memlimit.Set(); soft > 0 {
		log.Info("Go memory limit set below the container's", "soft_limit_mib", soft>>20)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		if err := pprofserve.Run(ctx, c.pprofAddr, log); err != nil {
			log.Error("profiler stopped", "err", err)
		}
	}()

	var tokens *ingest.Tokens
	if !c.noAuth {
		if tokens, err = ingest.LoadTokens(c.tokenFile); err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
	} else {
		log.Warn("ingest accepts requests without a token (-no-auth)")
	}
	store, err := mysql.Open(ctx, c.db, log)
	if err != nil {
		return err
	}
	sc := ingest.ServiceConfig{
		Route: c.strategy, Store: store, OwnStore: true, Topic: c.topic, Tokens: tokens,
		Heartbeat: c.heartbeat, Outbox: c.outbox, MaxBody: c.maxBody, MaxInflightBytes: c.maxInflight,
		DBTimeout: c.dbTimeout, Log: log,
		Group: ingest.GroupConfig{MaxRecords: c.batchMax, MaxDelay: c.batchDelay, Writers: c.writers},
	}
	if !c.noPubsub {
		client, err := pubsub.Connect(ctx, c.project, c.emulator)
		if err != nil {
			store.Close()
			return err
		}
		defer client.Close()
		if err := pubsub.EnsureTopic(ctx, client, c.topic, c.createTopic || c.emulator != ""); err != nil {
			store.Close()
			return err
		}
		sc.Pubsub = client
	}
	svc, err := ingest.StartService(ctx, sc)
	if err != nil {
		store.Close()
		return err
	}
	log.Info("vmpulse-route starting", "strategy", c.strategy, "addr", c.addr, "topic", c.topic,
		"cloudsql", c.db.Instance != "", "auth", tokens != nil, "pubsub", !c.noPubsub)
	err = httpserve.Run(ctx, log, "route", httpserve.New(c.addr, svc.Handler()))
	// The server has drained its requests; finish queued commits and publications.
	cctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	return errors.Join(err, svc.Close(cctx))
}
