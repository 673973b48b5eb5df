// Command vmpulse-agent samples this machine (CPU, RAM, processes) and serves the
// latest sample on GET /sample, with /healthz and /metrics. It reads the vmpulse
// kernel modules when they are loaded and /proc otherwise, and every record says
// which (its source field). With -expect-kmod, reading /proc is an error (logged,
// /healthz 503 "degraded", a metric) while samples keep flowing. With -count it
// prints that many samples as JSON lines and exits (no server), for scripts and
// the kernel module test.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmpulse/vmpulse/agent"
	"github.com/vmpulse/vmpulse/internal/flagenv"
	"github.com/vmpulse/vmpulse/internal/httpserve"
	"github.com/vmpulse/vmpulse/internal/logging"
	"github.com/vmpulse/vmpulse/record"
)

func main() {
	log := logging.New(os.Stderr, slog.LevelInfo)
	if err := run(os.Args[1:], log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		log.Error("vmpulse-agent failed", "err", err)
		os.Exit(1)
	}
}

func run(args []string, log *slog.Logger) error {
	host, _ := os.Hostname()
	var (
		addr, vm, src, procRoot, suffix string
		interval                        time.Duration
		count, top                      int
		expectKmod                      bool
	)
	fs := flagenv.New("vmpulse-agent", "vmpulse-agent samples this machine and serves the latest sample as JSON.")
	fs.String(&addr, "addr", "AGENT_ADDR", ":8090", "listen address")
	fs.String(&vm, "vm", "VM_NAME", record.VMName(host), "name of this machine in every record (letters, digits, - _ . :)")
	fs.Duration(&interval, "interval", "SAMPLE_INTERVAL", time.Second, "time between samples (CPU % is computed over it)")
	fs.String(&src, "source", "AGENT_SOURCE", agent.SourceAuto, "where samples come from: auto (the kernel modules whenever they are loaded and readable, else procfs with the reason, decided on every sample), kmod or procfs")
	fs.String(&procRoot, "proc", "PROC_ROOT", "/proc", "procfs mount point")
	fs.String(&suffix, "kmod-suffix", "KMOD_SUFFIX", "", "suffix of the kernel modules' /proc names, e.g. _202201524 for /proc/procesos_so1_202201524")
	fs.Bool(&expectKmod, "expect-kmod", "EXPECT_KMOD", false, "the kernel modules should be loaded: reading /proc instead is logged as an error, /healthz answers 503 \"degraded\" with the reason, and vmpulse_agent_degraded is 1 (samples keep flowing)")
	fs.Int(&top, "top", "AGENT_TOP", 10, "how many of the largest processes by RSS each sample lists (0: none)")
	fs.Int(&count, "count", "", 0, "print this many samples as JSON lines and exit instead of serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if interval < 10*time.Millisecond {
		return fmt.Errorf("-interval %v: must be at least 10ms", interval)
	}
	if vm != record.VMName(vm) {
		return fmt.Errorf("-vm %q: use letters, digits and - _ . : only (at most %d bytes)", vm, record.MaxVMLen)
	}
	if top < 0 || top > record.MaxTop {
		return fmt.Errorf("-top %d: must be within 0..%d", top, record.MaxTop)
	}
	if expectKmod && src == agent.SourceProcfs {
		return fmt.Errorf("-expect-kmod with -source procfs: the agent would never read the kernel modules; use -source auto or kmod")
	}
	s, err := agent.OpenSource(src, procRoot, suffix, top)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sampler := agent.New(s, agent.Options{VM: vm, Interval: interval, Top: top, ExpectKmod: expectKmod, Log: log})

	if count > 0 {
		enc := json.NewEncoder(os.Stdout)
		return sampler.Samples(ctx, count, func(r record.Record) error { return enc.Encode(r) })
	}

	log.Info("vmpulse-agent starting", "source", s.Name(), "expect_kmod", expectKmod, "vm", vm, "interval", interval.String())
	// The sampler only returns early when its first reading fails: then the agent
	// must exit (and systemd restart it) rather than serve "starting" forever.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sampled := make(chan error, 1)
	go func() { sampled <- sampler.Run(runCtx) }()
	served := make(chan error, 1)
	go func() { served <- httpserve.Run(runCtx, log, "agent", httpserve.New(addr, sampler.Handler())) }()
	select {
	case err := <-sampled:
		cancel()
		return errors.Join(err, <-served)
	case err := <-served:
		cancel()
		return errors.Join(err, <-sampled)
	}
}
