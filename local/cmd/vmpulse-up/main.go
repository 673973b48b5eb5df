// Command vmpulse-up runs the whole vmpulse pipeline on this machine: the agent
// sampling it, a feeder sending every sample through a 50/50 split to both ingest
// routes, MySQL, Pub/Sub, and the relay serving the live dashboard at
// http://localhost:8080/. With no MYSQL_DSN it starts a private MariaDB server on
// a throwaway data directory (or, without MariaDB installed, an in-memory
// MySQL-compatible server); with no PUBSUB_EMULATOR_HOST it runs an in-process
// broker speaking the Pub/Sub API. Ctrl-C stops it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/local"
	"github.com/vmpulse/vmpulse/record"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-up failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	host, _ := os.Hostname()
	var c local.Config
	var tokenFile string
	fs := flagenv.New("vmpulse-up", "vmpulse-up runs the whole vmpulse pipeline on this machine, with its own MySQL (a private MariaDB when installed) and Pub/Sub unless others are configured.")
	fs.String(&c.SplitAddr, "split-addr", "", "127.0.0.1:8000", "the 50/50 split (stand-in for the Gateway): POST /ingest")
	fs.String(&c.Route1Addr, "route1-addr", "", "127.0.0.1:8001", "route1 (one transaction per request)")
	fs.String(&c.Route2Addr, "route2-addr", "", "127.0.0.1:8002", "route2 (group commit)")
	fs.String(&c.AgentAddr, "agent-addr", "", "127.0.0.1:8090", "the agent: GET /sample (with -agents N, the next ports too)")
	fs.Int(&c.Agents, "agents", "AGENTS", 1, "named agents to run, each reading this machine as <vm>-1, <vm>-2, …: a side-by-side comparison without a cloud")
	fs.String(&c.RelayAddr, "relay-addr", "", "127.0.0.1:8080", "the relay and the dashboard")
	fs.String(&c.PubsubAddr, "pubsub-addr", "", "127.0.0.1:8085", "the embedded Pub/Sub broker (usable as PUBSUB_EMULATOR_HOST by other processes)")
	fs.String(&c.MySQLAddr, "mysql-addr", "", "127.0.0.1:3307", "the stack's own MySQL (user root, no password; its data is deleted at stop)")
	fs.String(&c.Database, "database", "VMPULSE_DATABASE", local.DatabaseAuto, "the stack's own MySQL: mariadb (a private mariadbd, the real engine), embedded (in memory, no install, a few hundred records/s at most) or auto (mariadb when installed)")
	fs.String(&c.MySQLDSN, "mysql-dsn", "MYSQL_DSN", "", "use this MySQL instead of the stack's own, e.g. root@tcp(127.0.0.1:3306)/vmpulse")
	fs.String(&c.PubsubEmulator, "pubsub-emulator", "PUBSUB_EMULATOR_HOST", "", "use this Pub/Sub emulator instead of the embedded broker")
	fs.String(&c.Project, "project", "PUBSUB_PROJECT", "vmpulse-local", "Pub/Sub project")
	fs.String(&c.Topic, "topic", "PUBSUB_TOPIC", "vmpulse-records", "Pub/Sub topic")
	fs.String(&c.DBName, "db-name", "DB_NAME", "vmpulse", "database name")
	fs.String(&c.VM, "vm", "VM_NAME", record.VMName(host), "name of this machine in its records")
	fs.Duration(&c.AgentInterval, "agent-interval", "SAMPLE_INTERVAL", 80*time.Millisecond, "time between agent samples: 80ms yields the assignment's ~2000 unique samples in a 3-minute collection with its ramp-up (10ms gives 100/s)")
	fs.Duration(&c.FeedInterval, "feed-interval", "FEED_INTERVAL", time.Second, "how often the built-in feeder posts the agent's latest sample (the live view without other load)")
	fs.String(&tokenFile, "token-file", "INGEST_TOKEN_FILE", ".vmpulse/ingest-token", "file with the ingest token the routes accept; created with a fresh random token when missing")
	fs.String(&c.AgentSource, "agent-source", "AGENT_SOURCE", "auto", "agent source: auto, kmod or procfs")
	fs.String(&c.ProcRoot, "proc", "PROC_ROOT", "/proc", "procfs mount point")
	fs.String(&c.KmodSuffix, "kmod-suffix", "KMOD_SUFFIX", "", "suffix of the kernel modules' /proc names")
	fs.Bool(&c.Relay, "relay", "", true, "run the relay in this process (false: run vmpulse-relay separately against -pubsub-addr)")
	fs.Bool(&c.Feed, "feed", "", true, "send every agent sample through the split (false: only external load reaches the routes)")
	fs.String(&c.WebDir, "web-dir", "WEB_DIR", defaultWebDir(), "built dashboard served by the relay (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Agents < 1 || c.Agents > 16 {
		return fmt.Errorf("-agents %d: must be within 1..16", c.Agents)
	}
	if c.AgentInterval < 10*time.Millisecond {
		return fmt.Errorf("-agent-interval %v: must be at least 10ms", c.AgentInterval)
	}
	if c.WebDir != "" {
		if _, err := os.Stat(filepath.Join(c.WebDir, "index.html")); err != nil {
			log.Warn("no dashboard build found; serving /ws only (build it with `make web`)", "web-dir", c.WebDir)
			c.WebDir = ""
		}
	}
	token, created, err := local.EnsureToken(tokenFile)
	if err != nil {
		return fmt.Errorf("-token-file: %w", err)
	}
	if created {
		log.Info("created a fresh ingest token", "file", tokenFile)
	}
	c.IngestToken = token
	c.Log = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := local.Start(ctx, c)
	if err != nil {
		return err
	}
	// Tell the load commands where the agents are (make load reads this file).
	agentsFile := filepath.Join(filepath.Dir(tokenFile), "agents")
	var urls []string
	for _, a := range st.Addrs.Agents {
		urls = append(urls, "http://"+a)
	}
	if err := os.WriteFile(agentsFile, []byte(strings.Join(urls, "\n")+"\n"), 0o644); err != nil {
		log.Warn("could not write the agents' addresses for make load", "file", agentsFile, "err", err)
	}
	printWhere(c, st.Addrs, tokenFile)
	go progress(ctx, st, log)
	return st.Wait(ctx)
}

func defaultWebDir() string {
	for _, d := range []string{"frontend/dist", "../frontend/dist"} {
		if _, err := os.Stat(filepath.Join(d, "index.html")); err == nil {
			return d
		}
	}
	return "frontend/dist"
}

func printWhere(c local.Config, a local.Addrs, tokenFile string) {
	db := "MySQL from MYSQL_DSN"
	switch a.Database {
	case local.DatabaseMariaDB:
		db = "private MariaDB at " + a.MySQL + " (mysql -h127.0.0.1 -P" + portOf(a.MySQL) + " -uroot " + c.DBName + "; deleted at stop)"
	case local.DatabaseEmbedded:
		db = "in-memory MySQL stand-in at " + a.MySQL + " (slow beyond a few hundred records/s: install MariaDB for the real engine)"
	}
	ps := "embedded Pub/Sub broker at " + a.Pubsub + " (PUBSUB_EMULATOR_HOST=" + a.Pubsub + ")"
	if c.PubsubEmulator != "" {
		ps = "Pub/Sub emulator at " + a.Pubsub
	}
	fmt.Printf(`
vmpulse is running on this machine:

  dashboard   http://%s/        (live CPU, RAM, processes, route race)
  relay       ws://%s/ws
  agents      %s   sampling every %v
  split 50/50 http://%s/ingest   → route1 http://%s  route2 http://%s
  MySQL       %s
  Pub/Sub     %s, topic %s

Ingest needs the token in %s:
  curl -H "Authorization: Bearer $(cat %s)" -H 'Content-Type: application/json' -d @record.json http://%s/ingest
  make load, make smoke and vmpulse-load read it from there (INGEST_TOKEN_FILE).

Feeder: %v (one sample every %v). Drive the assignment's load phases with `+"`make load`"+`. Ctrl-C stops everything.

`, orNone(a.Relay), orNone(a.Relay), agentList(a), c.AgentInterval, a.Split, a.Route1, a.Route2, db, ps, c.Topic,
		tokenFile, tokenFile, a.Split, c.Feed, c.FeedInterval)
}

func agentList(a local.Addrs) string {
	var parts []string
	for i, addr := range a.Agents {
		parts = append(parts, fmt.Sprintf("%s http://%s/sample", a.VMs[i], addr))
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(not running: -relay=false)"
	}
	return s
}

func progress(ctx context.Context, st *local.Stack, log *slog.Logger) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sent := st.Sent()
			attrs := []any{"route1", sent["route1"], "route2", sent["route2"]}
			attrs = append(attrs, "fed", st.Fed())
			if r := st.Relay(); r != nil {
				attrs = append(attrs, "dashboards", r.Hub().Clients())
			}
			log.Info("progress: requests through the split", attrs...)
		}
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
