// Command vmpulse-load is the Go load generator of vmpulse: the assignment's two Locust
// phases (collect samples from the agents, send them to the ingress) with the same
// parameters and records file as loadtest/locustfile_*.py, the split report that
// reads back from MySQL which route stored each record, the run report, and the
// smoke check of a fresh deployment.
//
//	vmpulse-load collect -agents http://127.0.0.1:8090,http://127.0.0.1:8091 -users 300 -records 2000 -duration 3m -out out/records.json
//	INGEST_TOKEN=… vmpulse-load send -ingress http://127.0.0.1:8000 -users 150 -in out/records.json
//	vmpulse-load split -mysql-dsn 'root@tcp(127.0.0.1:3307)/vmpulse' -in out/records.json
//	vmpulse-load report -run out/run.json -out out/report.html
//	vmpulse-load smoke -ingress URL -relay URL -agent URL -token-file .vmpulse/ingest-token
//
// Every flag falls back to an environment variable (named in -h). Progress goes to
// stderr every -progress; the summary goes to stdout.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/loadtest/report"
	"github.com/vmpulse/vmpulse/record"
)

const usage = `vmpulse-load drives the vmpulse pipeline the way the assignment's Locust scripts do.

usage:
  vmpulse-load collect [flags]   phase 1: poll the agents' GET /sample, keep unique samples, write the records file
  vmpulse-load send [flags]      phase 2: POST every record of the file to the ingress exactly once (with the ingest token)
  vmpulse-load split [flags]     read back from MySQL which route stored each record; chi-square vs 50/50
  vmpulse-load report [flags]    the run's report: one self-contained HTML file and the same data as JSON
  vmpulse-load smoke [flags]     check a deployment: agent, token, ingest, split, relay websocket

Run "vmpulse-load <command> -h" for the flags of a command. Every flag can also be
given as the environment variable shown in brackets.
`

const tool = "vmpulse-load"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "collect":
		code = collect(ctx, args, os.Stdout, os.Stderr)
	case "send":
		code = send(ctx, args, os.Stdout, os.Stderr)
	case "split":
		code = splitReport(ctx, args, os.Stdout, os.Stderr)
	case "report":
		code = reportCmd(ctx, args, os.Stdout, os.Stderr)
	case "smoke":
		code = smoke(ctx, args, os.Stdout, os.Stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprintf(os.Stderr, "vmpulse-load: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

func newFlags(name, summary string, stderr io.Writer) *flagenv.Set {
	fs := flagenv.New("vmpulse-load "+name, summary)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args; ok is false when the command should exit with code (0 after -h).
func parse(fs *flagenv.Set, name string, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		fmt.Fprintf(stderr, "vmpulse-load %s: %v\n", name, err)
		return 2, false
	}
	return 0, true
}

// loadFlags are the flags both phases share.
type loadFlags struct {
	users    int
	rate     string
	wait     string
	timeout  time.Duration
	progress time.Duration
	runFile  string
	seq      bool
}

func (l *loadFlags) define(fs *flagenv.Set, phase string, users int, wait string, timeout time.Duration, per string) {
	up := strings.ToUpper(phase)
	fs.Int(&l.users, "users", up+"_USERS", users, "simulated users "+per)
	fs.String(&l.rate, "spawn-rate", up+"_SPAWN_RATE", "5", "`users` started per second (300 users at 5/s all run after 60 s)")
	fs.String(&l.wait, "wait", up+"_WAIT", wait, "each user waits a random time in this range after each request (1s-2s, 1-2, 500ms-1s)")
	fs.Duration(&l.timeout, "timeout", "TIMEOUT", timeout, "per-request timeout")
	fs.Duration(&l.progress, "progress", "PROGRESS", 2*time.Second, "progress line interval on stderr")
	fs.String(&l.runFile, "run", "RUN_FILE", "out/run.json", "run file the phase is recorded in, for vmpulse-load report (empty: none)")
	fs.Bool(&l.seq, "sequential", "SEQUENTIAL", false, "with several "+map[string]string{"collect": "agents", "send": "VMs"}[phase]+
		": one after another instead of all at once")
}

func (l *loadFlags) load() (driver.Load, error) {
	rate, err := strconv.ParseFloat(strings.TrimSpace(l.rate), 64)
	if err != nil || rate < 0 {
		return driver.Load{}, fmt.Errorf("-spawn-rate %q: want a number of users per second (0: all at once)", l.rate)
	}
	w, err := driver.ParseWait(l.wait)
	if err != nil {
		return driver.Load{}, fmt.Errorf("-wait: %v", err)
	}
	if l.users < 1 {
		return driver.Load{}, fmt.Errorf("-users %d: want at least 1", l.users)
	}
	return driver.Load{Users: l.users, SpawnRate: rate, Wait: w}, nil
}

func (l *loadFlags) order() string {
	if l.seq {
		return "sequential"
	}
	return "parallel"
}

// messages logs the first few occurrences of each kind of problem and counts them all.
type messages struct {
	mu     sync.Mutex
	w      io.Writer
	limit  int
	logged int
	counts map[string]int
}

func newMessages(w io.Writer, limit int) *messages {
	return &messages{w: w, limit: limit, counts: map[string]int{}}
}

func (m *messages) add(kind, line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[kind]++
	if m.logged < m.limit {
		m.logged++
		fmt.Fprintln(m.w, line)
		if m.logged == m.limit {
			fmt.Fprintln(m.w, "(further messages are only counted; see the summary)")
		}
	}
}

func (m *messages) summary(w io.Writer, title string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.counts) == 0 {
		return
	}
	kinds := make([]string, 0, len(m.counts))
	for k := range m.counts {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return m.counts[kinds[i]] > m.counts[kinds[j]] })
	fmt.Fprintln(w, title)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %6d  %s\n", m.counts[k], k)
	}
}

func progressTo(w io.Writer) func(driver.Progress) {
	var mu sync.Mutex
	return func(p driver.Progress) {
		if !p.Final {
			mu.Lock()
			fmt.Fprintln(w, p)
			mu.Unlock()
		}
	}
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func collect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("collect", "Phase 1: simulated users poll each agent's GET /sample; samples are de-duplicated by id\n"+
		"(by content when they have none); each agent's polling stops at -records unique samples or after\n"+
		"-duration. The samples of every agent are written atomically to -out as one JSON array, and the\n"+
		"phase is recorded in -run. Exit 1 when an agent falls short of -records (the message says what to change).", stderr)
	var lf loadFlags
	lf.define(fs, "collect", 300, "1s-2s", 10*time.Second, "per agent")
	var agent, agents, out string
	var records int
	var duration time.Duration
	fs.String(&agent, "agent", "AGENT_URL", "http://127.0.0.1:8090", "base URL of the agent (GET <agent>/sample)")
	fs.String(&agents, "agents", "AGENT_URLS", "", "several agents, comma-separated (replaces -agent): each gets the same load")
	fs.Int(&records, "records", "RECORDS", 2000, "stop polling an agent at this many unique samples (0: only the time limit)")
	fs.Duration(&duration, "duration", "DURATION", 3*time.Minute, "time limit per agent (0: only the record count)")
	fs.String(&out, "out", "OUT", "out/records.json", "records file to write")
	if code, ok := parse(fs, "collect", args, stderr); !ok {
		return code
	}
	load, err := lf.load()
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load collect:", err)
		return 2
	}
	urls := splitList(agents)
	if len(urls) == 0 {
		urls = []string{agent}
	}
	if records < 0 {
		fmt.Fprintf(stderr, "vmpulse-load collect: -records %d: want 0 or more\n", records)
		return 2
	}
	client := driver.NewClient(load.Users*len(urls), lf.timeout)
	infos := make([]driver.AgentInfo, len(urls))
	for i, u := range urls {
		info, err := driver.ProbeAgent(ctx, client, u)
		if err != nil {
			fmt.Fprintf(stderr, "collect: %v: is the agent running? (make up starts one on 127.0.0.1:8090)\n", err)
			continue
		}
		infos[i] = info
		if info.Interval > 0 {
			fmt.Fprintf(stderr, "collect: agent %s (vm %s) samples every %s (its /healthz)", u, orUnknown(info.VM), info.Interval)
			if duration > 0 && records > 0 && int(duration/info.Interval) < records {
				fmt.Fprintf(stderr, ": at most %d unique samples in %s, short of %d", int(duration/info.Interval), duration, records)
			}
			fmt.Fprintln(stderr)
		}
	}
	fmt.Fprintf(stderr, "collect: %d agent(s) %s, each: users=%d spawn-rate=%g/s wait=%s records=%d duration=%s -> %s\n",
		len(urls), lf.order(), load.Users, load.SpawnRate, load.Wait, records, duration, out)
	fails := newMessages(stderr, 20)
	cfgs := make([]driver.CollectConfig, len(urls))
	for i, u := range urls {
		label := ""
		if len(urls) > 1 {
			label = u + ": "
		}
		cfgs[i] = driver.CollectConfig{AgentURL: u, Load: load, Records: records, Duration: duration, Timeout: lf.timeout,
			Client: client, Progress: progressTo(stderr), ProgressEvery: lf.progress,
			Failure: func(reason string) { fails.add(label+reason, "request failed: "+label+reason) }}
	}
	results, err := driver.CollectAgents(ctx, cfgs, lf.seq)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load collect:", err)
		return 2
	}
	var all []json.RawMessage
	for _, r := range results {
		if r != nil {
			all = append(all, r.Records...)
		}
	}
	code := 0
	if len(all) > 0 {
		if err := driver.WriteFile(out, all); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load collect: writing the records:", err)
			return 1
		}
	}
	run := &report.Run{}
	var shorts []string
	for i, res := range results {
		u := urls[i]
		if res == nil {
			shorts = append(shorts, u+": not polled (interrupted before its turn)")
			continue
		}
		secs := res.Elapsed.Seconds()
		fmt.Fprintf(stdout, "collect %s: %d unique samples (vm %s) in %.1fs (stopped by %s): %.1f samples/s\n",
			u, len(res.Records), orUnknown(res.VM), secs, res.Stop, float64(len(res.Records))/secs)
		fmt.Fprintf(stdout, "  %d requests (%.1f req/s) from %d users, %d failed; %d duplicates; latency p50 %.1f ms, p95 %.1f ms\n",
			res.Requests, float64(res.Requests)/secs, res.Users, res.Failures, res.Duplicates, res.Latency.P50MS, res.Latency.P95MS)
		interval, from := infos[i].Interval, "its /healthz"
		if interval == 0 {
			interval, from = driver.InferInterval(res.Records), "inferred from the samples' times"
		}
		p := report.Phase{Phase: "collect", Tool: tool, URL: u, VM: res.VM, Started: res.Started, Ended: res.Started.Add(res.Elapsed),
			Users: load.Users, SpawnRate: load.SpawnRate, Wait: load.Wait.String(), Order: lf.order(), RecordsFile: out,
			Requests: res.Requests, Failures: res.Failures, Latency: res.Latency, Timeline: res.Timeline,
			Goal: records, Duration: duration.String(), Unique: len(res.Records), Duplicates: res.Duplicates, Outcome: "ok"}
		if interval > 0 {
			p.AgentInterval = interval.String()
			p.AgentIntervalFrom = map[bool]string{true: "healthz", false: "samples"}[from == "its /healthz"]
		}
		if msg := driver.Shortfall(res, u, records, duration, interval, from); msg != "" {
			p.Outcome, p.Message = "short", msg
			shorts = append(shorts, msg)
		} else if len(res.Records) == 0 {
			p.Outcome, p.Message = "short", "no samples collected"
			shorts = append(shorts, u+": no samples collected")
		}
		run.Phases = append(run.Phases, p)
	}
	if len(all) > 0 {
		fmt.Fprintf(stdout, "  %d samples written to %s\n", len(all), out)
	} else {
		fmt.Fprintln(stdout, "  no samples collected; nothing written")
	}
	fails.summary(stdout, "  failures by reason:")
	if lf.runFile != "" && len(run.Phases) > 0 {
		if err := run.Save(lf.runFile); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load collect: writing the run file:", err)
			code = 1
		} else {
			fmt.Fprintf(stdout, "  run recorded in %s (a new run; `vmpulse-load report` turns it into a report)\n", lf.runFile)
		}
	}
	for _, s := range shorts {
		fmt.Fprintln(stdout, "SHORT: "+s)
		code = 1
	}
	return code
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// tokenFlags are the ingest token's flags (send, smoke).
type tokenFlags struct {
	file    string
	noToken bool
}

func (t *tokenFlags) define(fs *flagenv.Set) {
	fs.String(&t.file, "token-file", "INGEST_TOKEN_FILE", "", "`file` whose first non-empty line is the ingest token (make up writes .vmpulse/ingest-token); "+
		"INGEST_TOKEN=<token> gives the token itself and wins")
	fs.Bool(&t.noToken, "no-token", "", false, "send without a token, to an ingress that runs without auth")
}

func (t *tokenFlags) token() (string, error) {
	if t.noToken {
		return "", nil
	}
	return driver.LoadToken(os.Getenv("INGEST_TOKEN"), t.file)
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("send", "Phase 2: simulated users take records from one shared queue and POST each to the ingress\n"+
		"exactly once, with \"Authorization: Bearer <token>\" (the token: INGEST_TOKEN, or -token-file /\n"+
		"INGEST_TOKEN_FILE; -no-token for an open ingress). Failures (5xx, 408, 429, connection errors) are\n"+
		"retried with backoff; other 4xx are rejections; a refused token (401/403) stops the phase. The\n"+
		"records of each VM get the same load, all at once or in turn (-sequential). Files of other\n"+
		"implementations are read as they are: a JSON array, JSON Lines, or an object holding the array under\n"+
		"\"metrics\", \"records\", \"data\", \"samples\", \"items\", …; RAM figures in KiB or bytes are found\n"+
		"per file (or given with -ram-unit) and sent in MiB. Records never acknowledged are written to\n"+
		"<in>.unsent.json.", stderr)
	var lf loadFlags
	lf.define(fs, "send", 150, "1s-4s", 30*time.Second, "per VM")
	var tf tokenFlags
	tf.define(fs)
	var ingress, in, unit string
	var duration time.Duration
	var attempts int
	fs.String(&ingress, "ingress", "INGRESS_URL", "http://127.0.0.1:8000", "base URL of the ingress / traffic split (POST <ingress>/ingest)")
	fs.String(&in, "in", "IN", "out/records.json", "records file to send")
	fs.String(&unit, "ram-unit", "RAM_UNIT", "auto", "unit of the file's RAM figures: auto (found from the file, and said), mib, kib or bytes")
	fs.Duration(&duration, "duration", "SEND_DURATION", 0, "time limit (0: until every record is sent)")
	fs.Int(&attempts, "max-attempts", "MAX_ATTEMPTS", 10, "attempts per record before giving up on it")
	if code, ok := parse(fs, "send", args, stderr); !ok {
		return code
	}
	load, err := lf.load()
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 2
	}
	if _, err := driver.ParseRAMUnit(unit); err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send: -ram-unit:", err)
		return 2
	}
	token, err := tf.token()
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 2
	}
	file, err := driver.ReadRecordsFile(in, unit)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 1
	}
	invalid := 0
	for _, it := range file.Items {
		if it.Err != nil {
			invalid++
		}
	}
	fmt.Fprintf(stderr, "send: %s: %s\n", in, file.Describe())
	if invalid > 0 {
		fmt.Fprintf(stderr, "send: %d records break the contract (sent anyway: the ingress says why)\n", invalid)
	}
	groups := driver.GroupByVM(file.Items)
	var names []string
	for _, g := range groups {
		names = append(names, fmt.Sprintf("%s (%d)", g.VM, len(g.Items)))
	}
	auth := "with the ingest token"
	if token == "" {
		auth = "without a token (-no-token)"
	}
	fmt.Fprintf(stderr, "send: VMs %s %s -> %s %s; each: users=%d spawn-rate=%g/s wait=%s\n",
		strings.Join(names, ", "), lf.order(), strings.TrimRight(ingress, "/"), auth, load.Users, load.SpawnRate, load.Wait)
	failures := newMessages(stderr, 20)
	rejections := newMessages(stderr, 50)
	results, err := driver.SendGroups(ctx, driver.SendConfig{
		IngressURL: ingress, Load: load, Token: token, MaxAttempts: attempts, Duration: duration, Timeout: lf.timeout,
		Client: driver.NewClient(load.Users*len(groups), lf.timeout), Progress: progressTo(stderr), ProgressEvery: lf.progress,
		Event: func(e driver.Event) {
			kind := e.Message
			if e.Status != 0 {
				kind = fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
			}
			if e.Kind == "rejected" {
				rejections.add(kind, e.String())
			} else {
				failures.add(kind, e.String())
			}
		},
	}, groups, lf.seq)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 2
	}
	code := 0
	run, joined := &report.Run{}, false
	if lf.runFile != "" {
		run, joined, _ = report.JoinRun(lf.runFile, in)
	}
	var unsent []driver.Item
	var unauthorized string
	totalCommitted := 0
	for i, res := range results {
		g := groups[i]
		if res == nil {
			unsent = append(unsent, g.Items...)
			fmt.Fprintf(stdout, "send %s: not sent (stopped before its turn)\n", g.VM)
			continue
		}
		totalCommitted += res.Committed
		secs := res.Elapsed.Seconds()
		fmt.Fprintf(stdout, "send %s: %d/%d records committed in %.1fs (stopped: %s)\n", g.VM, res.Committed, len(g.Items), secs, res.Stop)
		fmt.Fprintf(stdout, "  %d requests (%.1f req/s) from %d users; %d failed and were retried (%d resends); %d rejected; %d gave up; %d unsent; latency p50 %.1f ms, p95 %.1f ms\n",
			res.Requests, float64(res.Requests)/secs, res.Users, res.Failures, res.Retries, len(res.Rejected), len(res.GaveUp), len(res.Unsent),
			res.Latency.P50MS, res.Latency.P95MS)
		routes := map[string]report.RouteAcks{}
		var rs []string
		for _, r := range sortedKeys(res.Routes) {
			a := res.Routes[r]
			routes[r] = report.RouteAcks{Records: a.Records, CommitMS: a.CommitMS}
			cm := append([]float64(nil), a.CommitMS...)
			rs = append(rs, fmt.Sprintf("%s %d (commit p50 %.1f ms, p95 %.1f ms)", r, a.Records, driver.Percentile(cm, 0.5), driver.Percentile(cm, 0.95)))
		}
		if len(rs) > 0 {
			fmt.Fprintf(stdout, "  by route, as the 201 bodies say: %s\n", strings.Join(rs, "; "))
		}
		unsent = append(unsent, res.Unsent...)
		if res.Unauthorized != "" {
			unauthorized = res.Unauthorized
		}
		first, last := horaSpan(g.Items)
		p := report.Phase{Phase: "send", Tool: tool, URL: strings.TrimRight(ingress, "/"), VM: g.VM, Started: res.Started,
			Ended: res.Started.Add(res.Elapsed), Users: load.Users, SpawnRate: load.SpawnRate, Wait: load.Wait.String(), Order: lf.order(),
			RecordsFile: in, Requests: res.Requests, Failures: res.Failures, Latency: res.Latency, Timeline: res.Timeline,
			RAMUnit: file.Unit, Records: len(g.Items), Committed: res.Committed, Rejected: len(res.Rejected), Unsent: len(res.Unsent),
			FirstHora: first, LastHora: last, Routes: routes, Outcome: "ok"}
		if !res.Complete() {
			p.Outcome = "short"
			p.Message = fmt.Sprintf("%d of %d records committed: %d rejected, %d unsent", res.Committed, len(g.Items), len(res.Rejected), len(res.Unsent))
			code = 1
		}
		run.Phases = append(run.Phases, p)
	}
	failures.summary(stdout, "  failed attempts by reason:")
	rejections.summary(stdout, "  rejections by reason:")
	if len(unsent) > 0 {
		path := strings.TrimSuffix(in, ".json") + ".unsent.json"
		if err := driver.WriteFile(path, driver.Raws(unsent)); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load send: writing the unsent records:", err)
		} else {
			fmt.Fprintf(stdout, "  the %d unsent records are in %s (send them with -in %s)\n", len(unsent), path, path)
		}
		code = 1
	}
	if lf.runFile != "" && len(run.Phases) > 0 {
		if err := run.Save(lf.runFile); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load send: writing the run file:", err)
			code = 1
		} else if joined {
			fmt.Fprintf(stdout, "  recorded in %s with the collect phase that wrote %s\n", lf.runFile, in)
		} else {
			fmt.Fprintf(stdout, "  recorded in %s (a new run: no collect phase there wrote %s)\n", lf.runFile, in)
		}
	}
	if unauthorized != "" {
		fmt.Fprintf(stdout, "STOPPED: the ingress refused the token (%s): check INGEST_TOKEN or -token-file (`make up` writes a fresh token to .vmpulse/ingest-token at every start)\n", unauthorized)
		return 1
	}
	for _, res := range results {
		if res != nil && len(res.Rejected) > 0 {
			fmt.Fprintln(stdout, "SHORT: the ingress rejected records; the reasons are above (a field and what is wrong with it)")
			break
		}
	}
	if code == 0 {
		fmt.Fprintf(stdout, "send: all %d records committed\n", totalCommitted)
	}
	return code
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// horaSpan is the first and last sample time of items (records that parse).
func horaSpan(items []driver.Item) (first, last string) {
	var lo, hi time.Time
	for _, it := range items {
		var p struct {
			Hora string `json:"hora"`
		}
		if json.Unmarshal(it.Raw, &p) != nil {
			continue
		}
		h, err := record.ParseHora(p.Hora)
		if err != nil {
			continue
		}
		if lo.IsZero() || h.Before(lo) {
			lo = h.Time
		}
		if h.After(hi) {
			hi = h.Time
		}
	}
	if lo.IsZero() {
		return "", ""
	}
	return lo.Format(record.HoraLayout), hi.Format(record.HoraLayout)
}

// openDB opens the routes' database for reading (times parsed as UTC).
func openDB(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("-mysql-dsn: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("-mysql-dsn: %w", err)
	}
	return sql.OpenDB(conn), nil
}

func splitReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("split", "Reads back from the records table which route stored each record of -in and tests the\n"+
		"split against 50/50 (Pearson's chi-square). Exits 1 when a record is missing or stored\n"+
		"twice, or when p < -alpha.", stderr)
	var dsn, in, unit, alpha string
	fs.String(&dsn, "mysql-dsn", "MYSQL_DSN", "root@tcp(127.0.0.1:3307)/vmpulse", "MySQL DSN (go-sql-driver form) of the database the routes write to")
	fs.String(&in, "in", "IN", "out/records.json", "records file whose records to look for")
	fs.String(&unit, "ram-unit", "RAM_UNIT", "auto", "unit of the file's RAM figures, as given to send (auto, mib, kib, bytes)")
	fs.String(&alpha, "alpha", "ALPHA", "0.001", "significance level: p below it means the split is not 50/50")
	if code, ok := parse(fs, "split", args, stderr); !ok {
		return code
	}
	a, err := strconv.ParseFloat(alpha, 64)
	if err != nil || a <= 0 || a >= 1 {
		fmt.Fprintf(stderr, "vmpulse-load split: -alpha %q: want a number between 0 and 1\n", alpha)
		return 2
	}
	file, err := driver.ReadRecordsFile(in, unit)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split:", err)
		return 1
	}
	db, err := openDB(dsn)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split:", err)
		return 2
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep, err := driver.Split(qctx, db, file.Items, a)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split:", err)
		return 1
	}
	rep.Write(stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}

func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("report", "Writes the run's report: one self-contained HTML file (opens from disk: no server, no\n"+
		"network, no script) and the same data as JSON next to it (<out> with .json). It joins the run file\n"+
		"(what the load commands did, second by second) with MySQL's rows: per VM the CPU and RAM charts,\n"+
		"process states and the capacity verdict with its rule and explanation; the load figures per phase;\n"+
		"the 50/50 split with its chi-square p-value; the route race (throughput and commit latency).", stderr)
	var runFile, dsn, out, alpha string
	fs.String(&runFile, "run", "RUN_FILE", "out/run.json", "run file written by the load commands (vmpulse-load or the locustfiles)")
	fs.String(&dsn, "mysql-dsn", "MYSQL_DSN", "root@tcp(127.0.0.1:3307)/vmpulse", "MySQL DSN (go-sql-driver form) of the database the routes write to")
	fs.String(&out, "out", "REPORT", "out/report.html", "HTML file to write; the JSON goes next to it")
	fs.String(&alpha, "alpha", "ALPHA", "0.001", "significance level of the split test")
	if code, ok := parse(fs, "report", args, stderr); !ok {
		return code
	}
	a, err := strconv.ParseFloat(alpha, 64)
	if err != nil || a <= 0 || a >= 1 {
		fmt.Fprintf(stderr, "vmpulse-load report: -alpha %q: want a number between 0 and 1\n", alpha)
		return 2
	}
	run, err := report.LoadRun(runFile)
	if err != nil {
		fmt.Fprintf(stderr, "vmpulse-load report: %v (run a load phase first: make load)\n", err)
		return 1
	}
	db, err := openDB(dsn)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load report:", err)
		return 2
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := report.Build(qctx, db, run, report.Options{RunFile: runFile, Alpha: a})
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load report:", err)
		return 1
	}
	jsonOut := strings.TrimSuffix(out, filepath.Ext(out)) + ".json"
	var h, j strings.Builder
	if err := rep.WriteHTML(&h); err != nil {
		fmt.Fprintln(stderr, "vmpulse-load report:", err)
		return 1
	}
	if err := rep.WriteJSON(&j); err != nil {
		fmt.Fprintln(stderr, "vmpulse-load report:", err)
		return 1
	}
	for path, data := range map[string]string{out: h.String(), jsonOut: j.String()} {
		if err := driver.WriteFileAtomic(path, []byte(data)); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load report:", err)
			return 1
		}
	}
	for _, vm := range rep.VMs {
		fmt.Fprintf(stdout, "%-12s %-12s %s (%d samples)\n", vm.VM, strings.ToUpper(vm.Judgement.Verdict), vm.Judgement.Explanation, vm.Samples)
	}
	if s := rep.Split; s != nil {
		fmt.Fprintf(stdout, "split: route1 %d, route2 %d: chi-square %.3f, p = %.4g (%s)\n", s.PerRoute["route1"], s.PerRoute["route2"],
			s.ChiSquare, s.P, map[bool]string{true: "consistent with 50/50", false: "NOT consistent with 50/50"}[s.Consistent])
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	fmt.Fprintf(stdout, "report: %s (open it in a browser, no server needed) and %s\n", out, jsonOut)
	return 0
}

func smoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("smoke", "Checks a deployment right after it was deployed, one line per check: the agent serves a\n"+
		"sample; the ingress refuses a record without the token (401); a handful of marked records (vm\n"+
		"\""+driver.SmokeVM+"\") are stored and split across both routes (the 201 bodies name them); each comes\n"+
		"back on the relay's websocket with its route. Exit 1 when any check fails.", stderr)
	var tf tokenFlags
	tf.define(fs)
	var ingress, relay, agent string
	var n int
	var timeout time.Duration
	fs.String(&ingress, "ingress", "INGRESS_URL", "http://127.0.0.1:8000", "base URL of the ingress (the Gateway; locally the split)")
	fs.String(&relay, "relay", "RELAY_URL", "http://127.0.0.1:8080", "base URL of the relay (its websocket is <relay>/ws)")
	fs.String(&agent, "agent", "AGENT_URL", "http://127.0.0.1:8090", "base URL of an agent; several comma-separated (each is read once)")
	fs.Int(&n, "records", "SMOKE_RECORDS", 6, "marked records to send (more, up to 4×, until both routes took one)")
	fs.Duration(&timeout, "timeout", "SMOKE_TIMEOUT", 30*time.Second, "how long to wait for each answer and for the websocket")
	if code, ok := parse(fs, "smoke", args, stderr); !ok {
		return code
	}
	token, err := tf.token()
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load smoke:", err)
		return 2
	}
	checks := driver.Smoke(ctx, driver.SmokeConfig{IngressURL: ingress, RelayURL: relay, AgentURL: agent, Token: token,
		Records: n, Timeout: timeout, Client: &http.Client{Timeout: timeout}}, stdout)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "smoke: %d of %d checks failed\n", failed, len(checks))
		return 1
	}
	fmt.Fprintf(stdout, "smoke: all %d checks passed\n", len(checks))
	return 0
}
