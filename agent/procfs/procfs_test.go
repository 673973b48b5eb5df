package procfs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpulse/vmpulse/agent/source"
)

func TestParseCPU(t *testing.T) {
	cases := []struct {
		name, in string
		want     source.CPUTimes
		wantErr  string
	}{
		{"full", "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n",
			source.CPUTimes{User: 1, Nice: 2, System: 3, Idle: 4, IOWait: 5, IRQ: 6, SoftIRQ: 7, Steal: 8}, ""},
		{"old kernel, 4 columns", "cpu 10 0 5 85\n", source.CPUTimes{User: 10, System: 5, Idle: 85}, ""},
		{"no aggregate line", "cpu0 1 2 3 4\n", source.CPUTimes{}, "no aggregate"},
		{"too short", "cpu 1 2\n", source.CPUTimes{}, "columns"},
		{"garbage number", "cpu 1 x 3 4\n", source.CPUTimes{}, "column 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCPU([]byte(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestBusyPercentFromTwoFixtureReads(t *testing.T) {
	a, err := ParseCPU([]byte("cpu 100 0 100 700 50 0 0 50 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseCPU([]byte("cpu 130 0 120 740 50 0 0 60 0 0\n"))
	// Δtotal = 30+20+40+10 = 100, Δ(idle+iowait+steal) = 40+0+10 = 50 → 50 %.
	if pct, ok := source.BusyPercent(a, b); !ok || pct != 50 {
		t.Fatalf("BusyPercent = %v, %v; want 50", pct, ok)
	}
	if _, ok := source.BusyPercent(b, a); ok {
		t.Fatal("counters going backwards must not give a percentage")
	}
	if _, ok := source.BusyPercent(a, a); ok {
		t.Fatal("no elapsed time must not give a percentage")
	}
}

func TestParseMem(t *testing.T) {
	cases := []struct {
		name, in string
		want     source.Mem
		wantErr  bool
	}{
		{"available", "MemTotal: 2097152 kB\nMemFree: 1024 kB\nMemAvailable: 1048576 kB\n", source.Mem{TotalMiB: 2048, AvailableMiB: 1024}, false},
		{"pre-3.14 estimate", "MemTotal: 2097152 kB\nMemFree: 102400 kB\nBuffers: 102400 kB\nCached: 307200 kB\n", source.Mem{TotalMiB: 2048, AvailableMiB: 500}, false},
		{"no total", "MemFree: 1 kB\n", source.Mem{}, true},
		{"bad number", "MemTotal: lots kB\n", source.Mem{}, true},
	}
	for _, c := range cases {
		got, err := ParseMem([]byte(c.in))
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v, err=%v", c.name, got, err, c.want, c.wantErr)
		}
	}
}

func TestParseStat(t *testing.T) {
	st, err := ParseStat([]byte("40 (my (weird) proc) R 1 40 40 0 -1 4194304 100 0 0 0 50 10 0 0 20 0 1 0 100 10000000 262144 18446744073709551615\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.pid != 40 || st.comm != "my (weird) proc" || st.state != 'R' || st.rssPages != 262144 {
		t.Fatalf("%+v", st)
	}
	for _, bad := range []string{"", "40 noparen R", "x (a) R", "40 (a)"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): no error", bad)
		}
	}
}

func TestReadFixtureTree(t *testing.T) {
	s := New("testdata/proc", 3)
	r, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := source.Procs{Total: 9, Running: 1, Sleeping: 4, Zombie: 1, Stopped: 2, Other: 1}
	if r.Procs != want {
		t.Fatalf("procs = %+v, want %+v", r.Procs, want)
	}
	p := r.Procs
	if p.Running+p.Sleeping+p.Zombie+p.Stopped+p.Other != p.Total {
		t.Fatal("states do not add up to the total")
	}
	if r.Mem != (source.Mem{TotalMiB: 2048, AvailableMiB: 1100}) {
		t.Fatalf("mem = %+v", r.Mem)
	}
	if r.CPU.User != 10132153 || r.CPU.Steal != 0 {
		t.Fatalf("cpu = %+v", r.CPU)
	}
	if len(r.Top) != 3 || r.Top[0].PID != 40 || r.Top[0].RSSMiB != 1024 || r.Top[1].PID != 1 || r.Top[1].RSSMiB != 12 {
		t.Fatalf("top = %+v", r.Top)
	}
	if r.Top[0].Name != "my (weird) proc" || r.Top[0].State != "R" {
		t.Fatalf("top[0] = %+v", r.Top[0])
	}
}

func TestMissingRootNamesTheFile(t *testing.T) {
	_, err := New(filepath.Join(t.TempDir(), "nope"), 0).Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

// TestThisMachine reads the real /proc: the states must add up to the total.
func TestThisMachine(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc here")
	}
	r, err := New("/proc", 5).Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p := r.Procs
	// (Running may be 0: a multi-threaded process shows its main thread's state.)
	if p.Total == 0 || p.Running+p.Sleeping+p.Zombie+p.Stopped+p.Other != p.Total {
		t.Fatalf("procs = %+v", p)
	}
	if r.Mem.TotalMiB <= 0 || r.Mem.AvailableMiB > r.Mem.TotalMiB {
		t.Fatalf("mem = %+v", r.Mem)
	}
}
