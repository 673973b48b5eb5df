// Command vmpulse-load is the Go load generator of vmpulse: the assignment's two Locust
// phases (collect records from the agent, send them to the ingress) with the same
// parameters and records file as loadtest/locustfile_*.py, plus the split report that
// reads back from MySQL which route stored each record.
//
//	vmpulse-load collect -agent http://127.0.0.1:8090 -users 300 -spawn-rate 5 -wait 1s-2s -records 2000 -duration 3m -out out/records.json
//	vmpulse-load send -ingress http://127.0.0.1:8000 -users 150 -spawn-rate 5 -wait 1s-4s -in out/records.json
//	vmpulse-load split -mysql-dsn 'root@tcp(127.0.0.1:3307)/vmpulse' -in out/records.json
//
// Every flag falls back to an environment variable (named in -h). Progress goes to
// stderr every -progress; the summary goes to stdout.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

const usage = `vmpulse-load drives the vmpulse pipeline the way the assignment's Locust scripts do.

usage:
  vmpulse-load collect [flags]   phase 1: poll the agent's GET /sample, keep unique records, write the records file
  vmpulse-load send [flags]      phase 2: POST every record of the file to the ingress exactly once
  vmpulse-load split [flags]     read back from MySQL which route stored each record; chi-square vs 50/50

Run "vmpulse-load <command> -h" for the flags of a command. Every flag can also be
given as the environment variable shown in brackets.
`

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
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprintf(os.Stderr, "vmpulse-load: unknown command %q\n\n%s", cmd, usage)
		code = 2
	}
	os.Exit(code)
}

// flags wraps a FlagSet whose defaults come from environment variables.
type flags struct {
	*flag.FlagSet
	errs []error
}

func newFlags(name, synopsis string, stderr io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vmpulse-load %s [flags]\n\n%s\n\nflags [environment variable]:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return &flags{FlagSet: fs}
}

func (f *flags) env(env, def string) string {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return v
	}
	return def
}

func (f *flags) String(name, env, def, help string) *string {
	return f.FlagSet.String(name, f.env(env, def), help+" ["+env+"]")
}

func (f *flags) Int(name, env string, def int, help string) *int {
	v := def
	if s := f.env(env, ""); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not an integer", env, s))
		}
		v = n
	}
	return f.FlagSet.Int(name, v, help+" ["+env+"]")
}

func (f *flags) Float(name, env string, def float64, help string) *float64 {
	v := def
	if s := f.env(env, ""); s != "" {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a number", env, s))
		}
		v = n
	}
	return f.FlagSet.Float64(name, v, help+" ["+env+"]")
}

func (f *flags) Duration(name, env string, def time.Duration, help string) *time.Duration {
	v := def
	if s := f.env(env, ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: %v", env, s, err))
		}
		v = d
	}
	return f.FlagSet.Duration(name, v, help+" ["+env+"]")
}

// parse parses args and reports problems; ok is false when the command should exit
// with code (0 after -h).
func (f *flags) parse(args []string, stderr io.Writer) (code int, ok bool) {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if f.NArg() > 0 {
		fmt.Fprintf(stderr, "vmpulse-load %s: unexpected argument %q\n", f.Name(), f.Arg(0))
		return 2, false
	}
	if len(f.errs) > 0 {
		fmt.Fprintf(stderr, "vmpulse-load %s: %v\n", f.Name(), errors.Join(f.errs...))
		return 2, false
	}
	return 0, true
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

// add counts msg under kind and prints line while fewer than limit lines were printed.
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
	return func(p driver.Progress) {
		if !p.Final {
			fmt.Fprintln(w, p)
		}
	}
}

func collect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("collect", "Phase 1: simulated users poll the agent's GET /sample; records are de-duplicated by id\n"+
		"(by content when they have none); stops at -records unique records or after -duration,\n"+
		"then writes them atomically to -out as a JSON array.", stderr)
	agent := f.String("agent", "AGENT_URL", "http://127.0.0.1:8090", "base URL of the agent (GET <agent>/sample)")
	users := f.Int("users", "COLLECT_USERS", 300, "simulated users")
	rate := f.Float("spawn-rate", "COLLECT_SPAWN_RATE", 5, "users started per second (300 users at 5/s are all running after 60 s of the 3 min)")
	wait := f.String("wait", "COLLECT_WAIT", "1s-2s", "each user waits a random time in this range after each request")
	records := f.Int("records", "RECORDS", 2000, "stop at this many unique records (0: only the time limit)")
	duration := f.Duration("duration", "DURATION", 3*time.Minute, "time limit (0: only the record count)")
	out := f.String("out", "OUT", "out/records.json", "records file to write")
	timeout := f.Duration("timeout", "TIMEOUT", 10*time.Second, "per-request timeout")
	every := f.Duration("progress", "PROGRESS", 2*time.Second, "progress line interval on stderr")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	w, err := driver.ParseWait(*wait)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load collect:", err)
		return 2
	}
	fmt.Fprintf(stderr, "collect: %s/sample users=%d spawn-rate=%g/s wait=%s records=%d duration=%s -> %s\n",
		strings.TrimRight(*agent, "/"), *users, *rate, w, *records, *duration, *out)
	fails := newMessages(stderr, 20)
	res, err := driver.Collect(ctx, driver.CollectConfig{
		AgentURL: *agent, Load: driver.Load{Users: *users, SpawnRate: *rate, Wait: w},
		Records: *records, Duration: *duration, Timeout: *timeout,
		Progress: progressTo(stderr), ProgressEvery: *every,
		Failure: func(reason string) { fails.add(reason, "request failed: "+reason) },
	})
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load collect:", err)
		return 2
	}
	code := 0
	if len(res.Records) > 0 {
		if err := driver.WriteFile(*out, res.Records); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load collect: writing the records:", err)
			return 1
		}
	} else {
		fmt.Fprintln(stderr, "vmpulse-load collect: no records collected; nothing written")
		code = 1
	}
	secs := res.Elapsed.Seconds()
	fmt.Fprintf(stdout, "collect: %d unique records in %.1fs (stopped by %s): %.1f records/s\n",
		len(res.Records), secs, res.Stop, float64(len(res.Records))/secs)
	fmt.Fprintf(stdout, "  %d requests (%.1f req/s) from %d users, %d failed; %d duplicate records; unique ratio %.3f\n",
		res.Requests, float64(res.Requests)/secs, res.Users, res.Failures, res.Duplicates, res.UniqueRatio())
	if len(res.Records) > 0 {
		fmt.Fprintf(stdout, "  written to %s\n", *out)
	}
	if *records > 0 && len(res.Records) < *records && res.Stop == "duration" && res.Duplicates > 0 {
		fmt.Fprintf(stdout, "  note: fewer than %d records: the agent produces one record per sampling interval; "+
			"%d records in %s need an interval of %s or less\n", *records, *records, *duration,
			(*duration / time.Duration(*records)).Round(time.Millisecond))
	}
	fails.summary(stdout, "  failures by reason:")
	if res.Stop == "canceled" {
		code = 1
	}
	return code
}

func send(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("send", "Phase 2: simulated users take records from one shared queue and POST each to the\n"+
		"ingress exactly once; failures (5xx, 408, 429, connection errors) are retried with\n"+
		"backoff; 4xx are rejections. Records never acknowledged are written to <in>.unsent.json.", stderr)
	ingress := f.String("ingress", "INGRESS_URL", "http://127.0.0.1:8000", "base URL of the ingress / traffic split (POST <ingress>/ingest)")
	users := f.Int("users", "SEND_USERS", 150, "simulated users")
	rate := f.Float("spawn-rate", "SEND_SPAWN_RATE", 5, "users started per second")
	wait := f.String("wait", "SEND_WAIT", "1s-4s", "each user waits a random time in this range after each request")
	in := f.String("in", "IN", "out/records.json", "records file to send")
	duration := f.Duration("duration", "SEND_DURATION", 0, "time limit (0: until every record is sent)")
	attempts := f.Int("max-attempts", "MAX_ATTEMPTS", 10, "attempts per record before giving up on it")
	timeout := f.Duration("timeout", "TIMEOUT", 30*time.Second, "per-request timeout")
	every := f.Duration("progress", "PROGRESS", 2*time.Second, "progress line interval on stderr")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	w, err := driver.ParseWait(*wait)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 2
	}
	items, err := driver.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 1
	}
	invalid := 0
	for _, it := range items {
		if it.Err != nil {
			invalid++
		}
	}
	fmt.Fprintf(stderr, "send: %d records from %s (%d invalid by the contract, sent anyway) -> %s users=%d spawn-rate=%g/s wait=%s\n",
		len(items), *in, invalid, strings.TrimRight(*ingress, "/"), *users, *rate, w)
	failures := newMessages(stderr, 20)
	rejections := newMessages(stderr, 50)
	res, err := driver.Send(ctx, driver.SendConfig{
		IngressURL: *ingress, Load: driver.Load{Users: *users, SpawnRate: *rate, Wait: w},
		Records: items, MaxAttempts: *attempts, Duration: *duration, Timeout: *timeout,
		Progress: progressTo(stderr), ProgressEvery: *every,
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
	})
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load send:", err)
		return 2
	}
	secs := res.Elapsed.Seconds()
	fmt.Fprintf(stdout, "send: %d/%d records committed in %.1fs (stopped: %s)\n", res.Committed, len(items), secs, res.Stop)
	fmt.Fprintf(stdout, "  %d requests (%.1f req/s) from %d users; %d failed and were retried (%d resends); %d rejected; %d gave up; %d unsent\n",
		res.Requests, float64(res.Requests)/secs, res.Users, res.Failures, res.Retries, len(res.Rejected), len(res.GaveUp), len(res.Unsent))
	failures.summary(stdout, "  failed attempts by reason:")
	rejections.summary(stdout, "  rejections by reason:")
	if len(res.Unsent) > 0 {
		path := strings.TrimSuffix(*in, ".json") + ".unsent.json"
		if err := driver.WriteFile(path, driver.Raws(res.Unsent)); err != nil {
			fmt.Fprintln(stderr, "vmpulse-load send: writing the unsent records:", err)
		} else {
			fmt.Fprintf(stdout, "  the %d unsent records are in %s (send them with -in %s)\n", len(res.Unsent), path, path)
		}
	}
	if !res.Complete() {
		return 1
	}
	return 0
}

func splitReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newFlags("split", "Reads back from the records table which route stored each record of -in and tests the\n"+
		"split against 50/50 (Pearson's chi-square). Exits 1 when a record is missing or stored\n"+
		"twice, or when p < -alpha.", stderr)
	dsn := f.String("mysql-dsn", "MYSQL_DSN", "root@tcp(127.0.0.1:3307)/vmpulse", "MySQL DSN (go-sql-driver form) of the database the routes write to")
	in := f.String("in", "IN", "out/records.json", "records file whose records to look for")
	alpha := f.Float("alpha", "ALPHA", 0.001, "significance level: p below it means the split is not 50/50")
	if code, ok := f.parse(args, stderr); !ok {
		return code
	}
	items, err := driver.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split:", err)
		return 1
	}
	cfg, err := mysql.ParseDSN(*dsn)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split: -mysql-dsn:", err)
		return 2
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "vmpulse-load split:", err)
		return 2
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep, err := driver.Split(qctx, db, items, *alpha)
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
