package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	loaddriver "github.com/vmpulse/vmpulse/loadtest/driver"

	"github.com/vmpulse/vmpulse/internal/mariadbd"
)

// TestSoak runs the pipeline at the assignment's phase-2 rate (150 users waiting
// 1–4 s, about 60 records/s, started 5 a second as `make load-send` does) for
// $SOAK_DURATION, and reports every $SOAK_EVERY (default 1m) each process's RSS
// and goroutines and the commit→websocket lag (p50, p99, max), then whether each
// process's memory is flat. The table goes to stdout and to $SOAK_OUT.
func TestSoak(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("SOAK_DURATION"))
	if err != nil || dur <= 0 {
		t.Skip("the soak runs for SOAK_DURATION: `make soak DURATION=30m`")
	}
	every := time.Minute
	if v, err := time.ParseDuration(os.Getenv("SOAK_EVERY")); err == nil && v > 0 {
		every = v
	}
	su := getSuite(t)
	db, err := mariadbd.New(context.Background(), su.tpl, filepath.Join(workDir, "soak", "mariadb"), "soak", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Kill9)
	st, err := NewStack(context.Background(), StackConfig{
		Name: "soak", Dir: filepath.Join(workDir, "soak"), Bins: su.bins, DB: db, Emulator: su.emulator,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)

	lc := LoadConfig{Users: 150, SpawnRate: 5, Wait: loaddriver.Wait{Min: time.Second, Max: 4 * time.Second}, Duration: dur}
	// Enough records never to run out: the expected rate with a margin.
	items, err := Items("faults-soak", int(1.3*float64(recordsFor(lc, dur)))+1000)
	if err != nil {
		t.Fatal(err)
	}
	procs := []string{"route1", "route2", "relay", "mariadbd"}
	start := time.Now()
	ld := st.StartLoad(items, lc)
	t.Logf("soak: %v at 150 users waiting 1–4 s, a sample every %v", dur, every)

	var samples []SoakSample
	lastSeen := map[string]bool{}
	sample := func(at time.Duration, interval time.Duration) {
		s := SoakSample{At: at, RSS: map[string]float64{}, Goroutine: map[string]float64{}}
		var lags []time.Duration
		for id, sg := range st.WS.Seen() {
			if lastSeen[id] {
				continue
			}
			lastSeen[id] = true
			lags = append(lags, sg.At.Sub(sg.StoredAt))
		}
		s.Records = len(lags)
		s.Rate = float64(len(lags)) / interval.Seconds()
		s.LagP50, s.LagP99, s.LagMax = lagStats(lags)
		for _, p := range st.Processes() {
			s.RSS[p.Name] = p.RSS()
			s.Goroutine[p.Name] = p.Goroutines()
		}
		if rss, _, err := procMemory(db.PID()); err == nil {
			s.RSS["mariadbd"] = rss
		}
		s.Goroutine["mariadbd"] = -1
		samples = append(samples, s)
		fmt.Printf("soak %v: %.1f records/s, lag p50 %s p99 %s max %s, RSS route1 %.1f route2 %.1f relay %.1f mariadbd %.1f MiB, goroutines route1 %.0f route2 %.0f relay %.0f\n",
			at.Round(time.Second), s.Rate, fmtDur(s.LagP50), fmtDur(s.LagP99), fmtDur(s.LagMax),
			s.RSS["route1"], s.RSS["route2"], s.RSS["relay"], s.RSS["mariadbd"],
			s.Goroutine["route1"], s.Goroutine["route2"], s.Goroutine["relay"])
	}
	tick := time.NewTicker(every)
	prev := start
	for now := range tick.C {
		sample(now.Sub(start), now.Sub(prev))
		prev = now
		if now.Sub(start) >= dur {
			break
		}
	}
	tick.Stop()
	ld.Wait(time.Minute) // Duration has stopped it already
	loadEnd := time.Now()

	// The verdict of the fault suite, with the end of the load as "the fault".
	row := st.Verdict(context.Background(), "soak", nil, ld.Acked(), loadEnd)
	// The first third is warm-up: the relay's ring and history fill to their
	// bounds (16 384 records take 4.5 minutes at 60 records/s), and memory held
	// by design is not a leak. Growth is judged over the rest.
	warmup := max(1, len(samples)/3)
	var trends []MemoryTrend
	for _, p := range procs {
		tr := Trend(p, samples, warmup)
		// MariaDB's RSS grows until its buffer pool and caches are warm: shown,
		// not judged.
		tr.Judged = p != "mariadbd"
		trends = append(trends, tr)
	}
	title := fmt.Sprintf("vmpulse soak, %s: %v at 150 users waiting 1–4 s; %d records acknowledged, %d in MySQL, %d seen on the websocket (%d late, %d never); %d records were still queued when the load's time was up",
		start.Format(time.RFC3339), dur, row.Acked, row.InMySQL, row.Seen, row.Late, row.Never, len(ld.Result.Unsent))
	out := SoakTable(title, procs, samples, trends)
	fmt.Print("\n" + out)
	if dir := os.Getenv("SOAK_OUT"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			path := filepath.Join(dir, "soak-"+start.Format("20060102-150405")+".md")
			if err := os.WriteFile(path, []byte(out), 0o644); err == nil {
				t.Logf("soak table written to %s", path)
			}
		}
	}
	for _, f := range row.Failed { // the unsent ones are not judged: Duration stops the load
		t.Error(f)
	}
	for _, tr := range trends {
		if tr.Judged && !tr.Flat {
			t.Errorf("%s memory grows: %+.1f MiB/h (%.1f → %.1f MiB)", tr.Process, tr.SlopePerH, tr.First, tr.Last)
		}
	}
}
