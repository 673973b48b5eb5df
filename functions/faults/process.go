package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process supervises one binary (a route or the relay): start, wait for health,
// SIGTERM, SIGKILL, restart with the same arguments, and a sampler of its memory
// and goroutines across restarts.
type Process struct {
	Name       string
	Bin        string
	Args       []string
	Env        []string
	Log        string   // stdout and stderr of every incarnation, appended
	HealthURLs []string // tried in order; the first that answers 2xx counts
	MetricsURL string   // Prometheus text; "" when the process has none
	LimitMiB   float64  // memory limit to judge PeakRSS against

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	exitErr   error
	starts    int
	peakRSS   float64 // MiB: max of VmHWM over incarnations
	rss       float64 // MiB: last VmRSS
	gor       float64 // last go_goroutines
	gorOK     bool    // the process exposes go_goroutines
	lastState string
}

// Start runs the binary and waits until a health URL answers 2xx (or ctx ends).
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running", p.Name)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.starts++
	fmt.Fprintf(f, "=== start %d at %s: %s %s\n", p.starts, time.Now().Format(time.RFC3339Nano), p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.exitErr = cmd, exited, nil
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		p.lastState = cmd.ProcessState.String()
		if p.cmd == cmd {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
	}()
	go p.sample(cmd.Process.Pid, exited)
	return p.waitHealthy(ctx, exited)
}

func (p *Process) waitHealthy(ctx context.Context, exited chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		for _, u := range p.HealthURLs {
			resp, err := client.Get(u)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return nil
				}
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was healthy (%v); log %s:\n%s", p.Name, p.exitErr, p.Log, p.LogTail(3000))
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %v within 60 s; log %s:\n%s", p.Name, p.HealthURLs, p.Log, p.LogTail(3000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Signal sends sig and waits up to wait for the exit; it returns how long the
// exit took. A process still alive after wait is killed (and an error says so).
func (p *Process) Signal(sig syscall.Signal, wait time.Duration) (time.Duration, error) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s: not running", p.Name)
	}
	p.readStatus(cmd.Process.Pid) // the last figures before it goes
	start := time.Now()
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return time.Since(start), nil
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
		return time.Since(start), fmt.Errorf("%s did not exit within %v of %v; killed", p.Name, wait, sig)
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 15 s); a no-op when stopped.
func (p *Process) Stop() {
	if p.Running() {
		_, _ = p.Signal(syscall.SIGTERM, 15*time.Second)
	}
}

// ExitState describes how the last incarnation ended.
func (p *Process) ExitState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastState
}

// PeakRSS is the highest resident set size of any incarnation, MiB (VmHWM).
func (p *Process) PeakRSS() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// RSS is the last sampled resident set size, MiB.
func (p *Process) RSS() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rss
}

// Goroutines is the last go_goroutines scraped from MetricsURL (-1: unknown).
func (p *Process) Goroutines() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.gorOK {
		return -1
	}
	return p.gor
}

func (p *Process) sample(pid int, exited chan struct{}) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-exited:
			return
		case <-t.C:
		}
		p.readStatus(pid)
		if n%4 == 0 && p.MetricsURL != "" {
			if g, ok := scrapeGauge(p.MetricsURL, "go_goroutines"); ok {
				p.mu.Lock()
				p.gor, p.gorOK = g, true
				p.mu.Unlock()
			}
		}
		n++
	}
}

// readStatus reads VmRSS and VmHWM (peak RSS) of pid from /proc.
func (p *Process) readStatus(pid int) {
	rss, hwm, err := procMemory(pid)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.rss = rss
	p.peakRSS = max(p.peakRSS, hwm, rss)
	p.mu.Unlock()
}

// procMemory returns VmRSS and VmHWM of pid in MiB.
func procMemory(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64) // kB
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			hwm = v / 1024
		}
	}
	if rss == 0 && hwm == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return rss, hwm, nil
}

// scrapeGauge reads one unlabelled sample from a Prometheus text endpoint.
func scrapeGauge(url, name string) (float64, bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// LogTail returns the last n bytes of the process log.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.Log)
	return tail(b, n)
}

// childEnv is the environment of the binaries: only what a process needs to run.
// Nothing is inherited that the binaries read as flag fallbacks (MYSQL_DSN,
// PUBSUB_EMULATOR_HOST, which the Pub/Sub client also honours by itself and
// which would bypass the fault proxy, tokens, …): every setting is a flag.
func childEnv(dir string) []string {
	env := []string{"HOME=" + dir, "TMPDIR=" + dir, "PATH=" + os.Getenv("PATH")}
	for _, k := range []string{"GOMAXPROCS", "GODEBUG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// logPath is where a process of a scenario logs.
func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }

// tail is the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
