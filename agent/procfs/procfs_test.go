package procfs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
			got, err := parseCPU([]byte(c.in))
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
	a, err := parseCPU([]byte("cpu 100 0 100 700 50 0 0 50 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parseCPU([]byte("cpu 130 0 120 740 50 0 0 60 0 0\n"))
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
		got, err := parseMem([]byte(c.in))
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v, err=%v", c.name, got, err, c.want, c.wantErr)
		}
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("40 (my (weird) proc) R 1 40 40 0 -1 4194304 100 0 0 0 50 10 0 0 20 0 3 0 100 10000000 262144 18446744073709551615\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.pid != 40 || string(st.comm) != "my (weird) proc" || st.state != 'R' || st.rssPages != 262144 ||
		st.utime != 50 || st.stime != 10 || st.threads != 3 || st.start != 100 {
		t.Fatalf("%+v", st)
	}
	// A kernel that prints fewer fields: the missing ones read as 0.
	if st, err := parseStat([]byte("7 (old) S 1 7 7")); err != nil || st.state != 'S' || st.rssPages != 0 || st.threads != 0 {
		t.Fatalf("short line: %+v, %v", st, err)
	}
	for _, bad := range []string{"", "40 noparen R", "x (a) R", "40 (a)", "40 (a) RS 1", "0 (a) R"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestReadFixtureTree(t *testing.T) {
	s := New("testdata/proc", 3)
	s.pageSize = 4096 // the fixture comes from an x86-64 machine
	r, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 50 (java) has a sleeping leader and a runnable thread: running. 60 has two
	// sleeping threads: sleeping.
	want := source.Procs{Total: 11, Running: 2, Sleeping: 5, Zombie: 1, Stopped: 2, Other: 1}
	if r.Procs != want {
		t.Fatalf("procs = %+v, want %+v", r.Procs, want)
	}
	p := r.Procs
	if p.Running+p.Sleeping+p.Zombie+p.Stopped+p.Other != p.Total {
		t.Fatal("states do not add up to the total")
	}
	if r.Source != source.Procfs || r.Fallback != "" {
		t.Fatalf("source %q, fallback %q", r.Source, r.Fallback)
	}
	if r.Mem != (source.Mem{TotalMiB: 2048, AvailableMiB: 1100}) {
		t.Fatalf("mem = %+v", r.Mem)
	}
	if r.CPU.User != 10132153 || r.CPU.Steal != 0 {
		t.Fatalf("cpu = %+v", r.CPU)
	}
	if len(r.Top) != 3 || r.Top[0].PID != 40 || r.Top[0].RSSMiB != 1024 || r.Top[1].PID != 1 || r.Top[1].RSSMiB != 12 ||
		r.Top[2].PID != 50 || r.Top[2].State != "R" {
		t.Fatalf("top = %+v", r.Top)
	}
	if r.Top[0].Name != "my (weird) proc" || r.Top[0].State != "R" {
		t.Fatalf("top[0] = %+v", r.Top[0])
	}
}

// TestThreadsCheckedOnlyWhenTheyRan: the second read skips the threads of a
// process whose CPU time did not move (the fixture is frozen, so java's runnable
// thread is not looked at: the rule's documented blind spot), and looks again
// once the process used CPU.
func TestThreadsCheckedOnlyWhenTheyRan(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/proc")); err != nil {
		t.Fatal(err)
	}
	s := New(root, 0)
	running := func() int64 {
		t.Helper()
		r, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return r.Procs.Running
	}
	if n := running(); n != 2 {
		t.Fatalf("first read: %d running, want 2 (pid 40, and pid 50 through its thread)", n)
	}
	if n := running(); n != 1 {
		t.Fatalf("second read, no CPU time used: %d running, want 1", n)
	}
	stat := filepath.Join(root, "50", "stat")
	b, _ := os.ReadFile(stat)
	b = []byte(strings.Replace(string(b), " 300 40 ", " 301 40 ", 1)) // utime moved by one tick
	if err := os.WriteFile(stat, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := running(); n != 2 {
		t.Fatalf("after pid 50 used CPU: %d running, want 2", n)
	}
	// A new process behind a reused pid (another start time) is checked at once.
	if n := running(); n != 1 {
		t.Fatalf("fourth read: %d running, want 1", n)
	}
	b = []byte(strings.Replace(string(b), " 3 0 200 ", " 3 0 999 ", 1))
	os.WriteFile(stat, b, 0o644)
	if n := running(); n != 2 {
		t.Fatalf("pid 50 reused: %d running, want 2", n)
	}
}

// TestPageSize64KiB reads a snapshot of a 64 KiB-page kernel: RSS pages times the
// page size must give /proc/[pid]/status's VmRSS, not a sixteenth of it.
func TestPageSize64KiB(t *testing.T) {
	if New("x", 0).pageSize != int64(os.Getpagesize()) {
		t.Fatal("New does not take the page size from the system")
	}
	s := New("testdata/proc64k", 2)
	s.pageSize = 65536
	r, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Top) != 2 {
		t.Fatalf("top = %+v", r.Top)
	}
	for _, p := range r.Top {
		b, err := os.ReadFile(filepath.Join("testdata/proc64k", strconv.FormatInt(p.PID, 10), "status"))
		if err != nil {
			t.Fatal(err)
		}
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
		if kb == 0 || p.RSSMiB != kb>>10 {
			t.Errorf("pid %d: rss %d MiB, VmRSS %d kB", p.PID, p.RSSMiB, kb)
		}
	}
	if r.Top[0].PID != 2000 || r.Top[0].RSSMiB != 100 {
		t.Fatalf("top[0] = %+v, want postgres with 100 MiB", r.Top[0])
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
	// The test's own process has a runnable thread: the one reading.
	if p.Running < 1 || p.Total == 0 || p.Running+p.Sleeping+p.Zombie+p.Stopped+p.Other != p.Total {
		t.Fatalf("procs = %+v", p)
	}
	if r.Mem.TotalMiB <= 0 || r.Mem.AvailableMiB > r.Mem.TotalMiB {
		t.Fatalf("mem = %+v", r.Mem)
	}
}

// busyChildEnv makes the test binary a busy multi-threaded process whose leader
// thread sleeps (see TestMain).
const busyChildEnv = "VMPULSE_PROCFS_TEST_BUSY_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(busyChildEnv) != "" {
		// The main goroutine stays on the leader thread and blocks there, so the
		// leader sleeps while another thread spins.
		runtime.LockOSThread()
		go func() {
			runtime.LockOSThread()
			for x := 0; ; x++ {
			}
		}()
		select {}
	}
	os.Exit(m.Run())
}

// TestBusyThreadLeaderSleeps: on this machine, a process whose leader sleeps
// while another of its threads spins counts as running, on the first read and on
// the following ones.
func TestBusyThreadLeaderSleeps(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc here")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), busyChildEnv+"=1", "GOMAXPROCS=2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := int64(cmd.Process.Pid)
	leader := fmt.Sprintf("/proc/%d/stat", pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(leader)
		if st, err := parseStat(b); err == nil && st.state == 'S' && st.threads > 1 && st.utime > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's leader did not settle to sleeping with a busy thread: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := New("/proc", 1<<20) // every process in the top list, to see the child's state
	for i := range 3 {
		if i > 0 {
			// Long enough for the busy thread to gain clock ticks of CPU even on a
			// crowded machine: threads are only read for processes that used CPU
			// since the previous read.
			time.Sleep(time.Second)
		}
		r, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		state := ""
		for _, p := range r.Top {
			if p.PID == pid {
				state = p.State
			}
		}
		b, _ := os.ReadFile(leader)
		st, _ := parseStat(b)
		if state != "R" {
			t.Errorf("read %d: the child (leader %c) has state %q, want R", i+1, st.state, state)
		}
	}
}

// BenchmarkReadThisMachine is one sample's cost on this machine (after the first
// read, which checks every multi-threaded process).
func BenchmarkReadThisMachine(b *testing.B) {
	s := New("/proc", 10)
	if _, err := s.Read(context.Background()); err != nil {
		b.Skip(err)
	}
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	n := 0
	for b.Loop() {
		if _, err := s.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
		n++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/op")
}
