package faults

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/internal/testenv"
)

// These tests check the harness's own tools quickly, on every `go test`: the
// suite's verdicts are only as good as its faults.

// TestCommitCutterCutsAfterTheServerCommitted: with the cutter armed, the
// client gets an error for COMMIT (explicit transaction) and for an INSERT in
// autocommit, yet the server has the rows.
func TestCommitCutterCutsAfterTheServerCommitted(t *testing.T) {
	dsn := testenv.MySQL(t)
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Exec("CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	cut, err := NewCommitCutter(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	viaCfg := cfg.Clone()
	viaCfg.Addr = cut.Addr()
	via, err := sql.Open("mysql", viaCfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer via.Close()
	ctx := context.Background()

	cut.Arm(1)
	tx, err := via.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("an INSERT inside a transaction is no commit point, yet: %v", err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("COMMIT succeeded through an armed cutter")
	}
	if _, err := via.Exec("INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("an autocommit INSERT succeeded through an armed cutter")
	}
	cut.Disarm()
	if _, err := via.Exec("INSERT INTO t VALUES (3)"); err != nil {
		t.Fatalf("disarmed: %v", err)
	}
	var n int
	if err := direct.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d rows on the server, want 3: the cut rows must be committed", n)
	}
	if cut.Cuts.Load() != 2 {
		t.Fatalf("%d cuts, want 2 (%s)", cut.Cuts.Load(), cut)
	}
}

// TestBlackholeHoldsBytesUntilHeal: a stalled proxy delivers nothing, then
// everything in order once healed (no byte dropped, as TCP through a partition).
func TestBlackholeHoldsBytesUntilHeal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := NewProxy("echo", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string, wait time.Duration) (string, error) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		return r.ReadString('\n')
	}
	if got, err := roundTrip("before\n", 2*time.Second); err != nil || got != "before\n" {
		t.Fatalf("before the fault: %q %v", got, err)
	}
	if err := p.Blackhole(); err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip("during\n", 500*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("through the blackhole: got %q, %v; want a timeout", got, err)
	}
	if err := p.Heal(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "during\n" {
		t.Fatalf("after healing, the held bytes: %q %v", got, err)
	}
	if got, err := roundTrip("after\n", 2*time.Second); err != nil || got != "after\n" {
		t.Fatalf("after the fault: %q %v", got, err)
	}
}

// TestSlotsOrderByRank: waiters released together start lowest rank first.
func TestSlotsOrderByRank(t *testing.T) {
	s := NewSlots(1)
	got := make(chan int, 3)
	for _, r := range []int{2, 0, 1} {
		go func() {
			s.Acquire(r)
			got <- r
			time.Sleep(20 * time.Millisecond)
			s.Release()
		}()
	}
	for want := 0; want < 3; want++ {
		if r := <-got; r != want {
			t.Fatalf("slot %d went to rank %d", want, r)
		}
	}
}

// TestGiveUpWindowCoversTheFaults: every fault that stops ingest is shorter than
// the sender's give-up window, so "nothing unsent" is a fair criterion.
func TestGiveUpWindowCoversTheFaults(t *testing.T) {
	if w := giveUpWindow(); w <= 45*time.Second {
		t.Fatalf("give-up window %v is not longer than the 45 s blackhole", w)
	}
}

// TestTrendTellsFlatFromGrowing: the soak's memory verdict.
func TestTrendTellsFlatFromGrowing(t *testing.T) {
	var flat, leak []SoakSample
	for m := 1; m <= 30; m++ {
		at := time.Duration(m) * time.Minute
		flat = append(flat, SoakSample{At: at, RSS: map[string]float64{"p": 30 + float64(m%3)*0.5}})
		leak = append(leak, SoakSample{At: at, RSS: map[string]float64{"p": 30 + float64(m)}})
	}
	if tr := Trend("p", flat, 2); !tr.Flat {
		t.Fatalf("noise judged a leak: %+v", tr)
	}
	tr := Trend("p", leak, 2)
	if tr.Flat || tr.SlopePerH < 59 || tr.SlopePerH > 61 {
		t.Fatalf("1 MiB a minute: %+v", tr)
	}
}

// TestScrapeGauge reads go_goroutines from Prometheus text, not a labelled
// sample or a longer name.
func TestScrapeGauge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines_total 5\ngo_goroutines{a=\"b\"} 7\ngo_goroutines 12\n")
	}))
	defer srv.Close()
	if v, ok := scrapeGauge(srv.URL, "go_goroutines"); !ok || v != 12 {
		t.Fatalf("got %v %v, want 12", v, ok)
	}
	if _, ok := scrapeGauge(srv.URL, "nope"); ok {
		t.Fatal("found a metric that is not there")
	}
}
