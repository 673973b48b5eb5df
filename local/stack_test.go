package local

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/internal/mariadbd"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/record"
)

func baseConfig(t *testing.T) Config {
	return Config{
		SplitAddr: "127.0.0.1:0", Route1Addr: "127.0.0.1:0", Route2Addr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0",
		RelayAddr: "127.0.0.1:0", PubsubAddr: "127.0.0.1:0", MySQLAddr: "127.0.0.1:0",
		Project: "vmpulse-test", Topic: testenv.Unique("e2e"), DBName: "vmpulse",
		VM: "e2e", AgentInterval: 50 * time.Millisecond, AgentSource: "procfs", ProcRoot: "/proc",
		Relay: true, Log: testLog(), IngestToken: testToken,
	}
}

const testToken = "local-test-token-0123456789"

// testLog discards the stack's logs unless VMPULSE_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("VMPULSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// TestEndToEnd sends 2 000 records through the split and checks: 2 000 rows, a
// split consistent with 50/50, and a dashboard client that receives every one —
// with what `make up` runs by default (a private MariaDB and the embedded
// broker), with the in-memory MySQL stand-in it falls back to without MariaDB,
// and against the shared MariaDB and the Pub/Sub emulator.
func TestEndToEnd(t *testing.T) {
	t.Run("make-up-default", func(t *testing.T) {
		if _, err := mariadbd.Find(); err != nil {
			testenv.Missing(t, "MariaDB", err.Error())
		}
		endToEnd(t, baseConfig(t))
	})
	t.Run("embedded", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.Database = DatabaseEmbedded
		endToEnd(t, cfg)
	})
	t.Run("mariadb+emulator", func(t *testing.T) {
		cfg := baseConfig(t)
		cfg.MySQLDSN = testenv.MySQL(t)
		cfg.PubsubEmulator = testenv.PubsubEmulator(t)
		endToEnd(t, cfg)
	})
}

func endToEnd(t *testing.T, cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want := map[string]string{"": DatabaseMariaDB, DatabaseEmbedded: DatabaseEmbedded}[cfg.Database]
	if cfg.MySQLDSN != "" {
		want = "external"
	}
	if st.Addrs.Database != want {
		t.Fatalf("the stack runs database %q, want %q", st.Addrs.Database, want)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+st.Addrs.Relay+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	received := make(chan string, 4096)
	go func() {
		for {
			var f struct {
				Type  string `json:"type"`
				Items []struct {
					Route  string          `json:"route"`
					Record json.RawMessage `json:"record"`
				} `json:"items"`
			}
			if err := ws.ReadJSON(&f); err != nil {
				close(received)
				return
			}
			for _, it := range f.Items {
				var r record.Record
				if err := json.Unmarshal(it.Record, &r); err != nil || (it.Route != "route1" && it.Route != "route2") {
					t.Errorf("bad item: %s %v", it.Record, err)
					continue
				}
				received <- r.ID
			}
		}
	}()

	const n = 2000
	ids := make([]string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	client := &http.Client{Timeout: 30 * time.Second}
	failures := make(chan error, n)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := record.Record{ID: ids[i], VM: "e2e", TotalRAM: 4096, RAMLibre: 2048, UsoRAM: 2048, PorcentajeRAM: 50,
					PorcentajeCPUUso: 10, PorcentajeCPULibre: 90, ProcesosCorriendo: 1, TotalProcesos: 10,
					ProcesosDurmiendo: 9, Hora: record.NewHora(time.Now())}
				b, _ := json.Marshal(r)
				// As a real sender does, retry what the routes could not store yet.
				for attempt := 1; ; attempt++ {
					req, _ := http.NewRequest(http.MethodPost, "http://"+st.Addrs.Split+"/ingest", bytes.NewReader(b))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+testToken)
					resp, err := client.Do(req)
					if err != nil {
						failures <- err
						break
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable && attempt < 5 {
						time.Sleep(time.Second)
						continue
					}
					if resp.StatusCode != http.StatusCreated {
						failures <- fmt.Errorf("record %d: %s", i, resp.Status)
					}
					break
				}
			}
		}()
	}
	var idSource record.IDSource
	for i := range ids {
		ids[i] = idSource.New(time.Now())
		work <- i
	}
	close(work)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}

	// Every record is a row, stored by one of the two routes.
	store, err := mysql.Open(ctx, mysql.Config{DSN: st.Addrs.MySQLDSN, Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	byRoute, err := store.CountByRoute(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if byRoute["route1"]+byRoute["route2"] != n || len(byRoute) != 2 {
		t.Fatalf("rows by route %v, want %d in all from route1 and route2", byRoute, n)
	}
	stat, p := driver.ChiSquare([]int64{byRoute["route1"], byRoute["route2"]}, []float64{50, 50})
	if p < 0.001 {
		t.Fatalf("split %v is not consistent with 50/50: chi² = %.2f, p = %.2g", byRoute, stat, p)
	}
	t.Logf("split route1=%d route2=%d chi²=%.3f p=%.3f", byRoute["route1"], byRoute["route2"], stat, p)

	// The dashboard client saw every record.
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case id, ok := <-received:
			if !ok {
				t.Fatalf("websocket closed after %d of %d records", len(seen), n)
			}
			seen[id] = true
		case <-timeout:
			t.Fatalf("websocket client received %d of %d records", len(seen), n)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("record %s never reached the websocket client", id)
		}
	}
}

// TestFeederAndAgent: with the feeder on, this machine's samples flow from the
// agent to MySQL without any external load.
func TestFeederAndAgent(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Feed = true
	cfg.FeedInterval = 50 * time.Millisecond
	cfg.Relay = false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	resp, err := http.Get("http://" + st.Addrs.Agent + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for st.Fed() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("feeder stored %d samples in 20 s", st.Fed())
		}
		time.Sleep(50 * time.Millisecond)
	}
	store, err := mysql.Open(ctx, mysql.Config{DSN: st.Addrs.MySQLDSN, Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var n int
	var vm string
	if err := store.DB().QueryRow("SELECT COUNT(*), MAX(vm) FROM records").Scan(&n, &vm); err != nil || n < 20 || vm != "e2e" {
		t.Fatalf("%d rows from vm %q: %v", n, vm, err)
	}
}

// TestSeveralAgents: -agents 3 runs three named agents on their own ports, each
// fed through the routes under its own vm name.
func TestSeveralAgents(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Agents, cfg.Feed, cfg.FeedInterval, cfg.Relay = 3, true, 50*time.Millisecond, false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fmt.Sprint(st.Addrs.VMs) != "[e2e-1 e2e-2 e2e-3]" || len(st.Addrs.Agents) != 3 {
		t.Fatalf("agents %v at %v", st.Addrs.VMs, st.Addrs.Agents)
	}
	for i, a := range st.Addrs.Agents {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var r record.Record
			resp, err := http.Get("http://" + a + "/sample")
			if err == nil {
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
			}
			if r.VM == st.Addrs.VMs[i] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %s serves vm %q (%v)", a, r.VM, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	store, err := mysql.Open(ctx, mysql.Config{DSN: st.Addrs.MySQLDSN, Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var vms int
		store.DB().QueryRow("SELECT COUNT(DISTINCT vm) FROM records").Scan(&vms)
		if vms == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows from %d vms, want 3", vms)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := agentAddrs("127.0.0.1:65535", 2); err == nil {
		t.Fatal("ports past 65535 accepted")
	}
	if got, _ := agentAddrs("127.0.0.1:8090", 3); fmt.Sprint(got) != "[127.0.0.1:8090 127.0.0.1:8091 127.0.0.1:8092]" {
		t.Fatalf("addresses %v", got)
	}
}

// TestPortInUseIsExplained: a taken port names itself and the flag to change it.
func TestPortInUseIsExplained(t *testing.T) {
	cfg := baseConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cfg2 := baseConfig(t)
	cfg2.SplitAddr = first.Addrs.Split
	_, err = Start(ctx, cfg2)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("-split-addr")) {
		t.Fatalf("err = %v", err)
	}
}

// TestEnsureToken: a missing token file is created with a fresh token readable by
// its owner only; an existing one is read, not replaced.
func TestEnsureToken(t *testing.T) {
	path := t.TempDir() + "/sub/ingest-token"
	tok, created, err := EnsureToken(path)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("%q %v %v", tok, created, err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	again, created, err := EnsureToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("second call: %q %v %v", again, created, err)
	}
	os.WriteFile(path, []byte("# empty\n"), 0o600)
	if _, _, err := EnsureToken(path); err == nil {
		t.Fatal("a file without a token was accepted")
	}
}

// TestOwnMariaDBGoesWithTheStack: the private MariaDB answers at the address
// the stack reports, and stopping the stack stops it and deletes its data; an
// unknown -database value is refused naming the flag.
func TestOwnMariaDBGoesWithTheStack(t *testing.T) {
	if _, err := mariadbd.Find(); err != nil {
		testenv.Missing(t, "MariaDB", err.Error())
	}
	cfg := baseConfig(t)
	cfg.Relay = false
	cfg.Database = DatabaseMariaDB
	st, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", mariadbd.DSN(st.Addrs.MySQL, cfg.DBName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version, datadir string
	if err := db.QueryRow("SELECT VERSION(), @@datadir").Scan(&version, &datadir); err != nil || !strings.Contains(version, "MariaDB") {
		t.Fatalf("the stack's MySQL at %s: version %q: %v", st.Addrs.MySQL, version, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err == nil {
		t.Fatal("MariaDB still answers after the stack stopped")
	}
	if _, err := os.Stat(datadir); !os.IsNotExist(err) {
		t.Fatalf("its data directory %s is still there: %v", datadir, err)
	}

	cfg.Database = "postgres"
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "-database") {
		t.Fatalf("-database postgres: %v", err)
	}
}

// TestStaleDataDirectoriesGo: a data directory left by a stack that was killed
// (no live server, a minute old) is removed on the next start; one whose server
// still runs, or that was just made, is kept.
func TestStaleDataDirectoriesGo(t *testing.T) {
	old := time.Now().Add(-2 * time.Minute)
	mk := func(pid int, mtime time.Time) string {
		d, err := os.MkdirTemp("", dataDirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if pid != 0 {
			os.WriteFile(filepath.Join(d, mariadbd.PIDFile), []byte(fmt.Sprintln(pid)), 0o644)
		}
		os.Chtimes(d, mtime, mtime)
		return d
	}
	dead := mk(0, old)
	live := mk(os.Getpid(), old)
	fresh := mk(0, time.Now())
	removeStale(testLog())
	for d, want := range map[string]bool{dead: false, live: true, fresh: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", d, err == nil, want)
		}
	}
}
