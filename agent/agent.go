// Package agent samples one machine on a ticker and serves the latest sample over
// HTTP. Sampling never happens on a request: GET /sample returns the snapshot the
// ticker last produced, so a load test hammering the agent measures the VM, not
// the agent's own /proc reads.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmpulse/vmpulse/agent/kmod"
	"github.com/vmpulse/vmpulse/agent/procfs"
	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/internal/metrics"
	"github.com/vmpulse/vmpulse/record"
)

// Source modes for OpenSource.
const (
	SourceAuto   = "auto"
	SourceKmod   = "kmod"
	SourceProcfs = "procfs"
)

// OpenSource picks where samples come from: "kmod" (the vmpulse kernel modules'
// /proc files, which must exist), "procfs" (/proc/stat, /proc/meminfo,
// /proc/[pid]/stat), or "auto" (the modules when all three files exist, otherwise
// procfs). suffix is the modules' build-time name suffix (e.g. "_202201524").
func OpenSource(mode, procRoot, suffix string, topN int) (source.Source, error) {
	switch mode {
	case SourceKmod:
		if !kmod.Available(procRoot, suffix) {
			c, r, p := kmod.Paths(procRoot, suffix)
			return nil, fmt.Errorf("source kmod: the module files %s, %s, %s are not all present (load them with `make -C kernel load`)", c, r, p)
		}
		return kmod.New(procRoot, suffix), nil
	case SourceProcfs:
		return procfs.New(procRoot, topN), nil
	case SourceAuto, "":
		if kmod.Available(procRoot, suffix) {
			return kmod.New(procRoot, suffix), nil
		}
		return procfs.New(procRoot, topN), nil
	}
	return nil, fmt.Errorf("source %q: want auto, kmod or procfs", mode)
}

// Options configure a Sampler.
type Options struct {
	// VM names the machine in every record; it must be a valid record vm (see
	// VMName for turning a hostname into one).
	VM       string
	Interval time.Duration
	// Top bounds the top processes listed per record (0: none).
	Top int
	Log *slog.Logger
}

// VMName turns a hostname into a valid record vm: characters outside letters,
// digits and - _ . : become "-", it is cut to record.MaxVMLen, and an empty or
// unset hostname ("(none)" in a bare initramfs) becomes "vm".
func VMName(host string) string {
	b := []byte(host)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-")
	if len(name) > record.MaxVMLen {
		name = name[:record.MaxVMLen]
	}
	if name == "" || name == "none" {
		return "vm"
	}
	return name
}

// Sampler turns readings of a Source into records.
type Sampler struct {
	src      source.Source
	vm       string
	interval time.Duration
	top      int
	log      *slog.Logger
	ids      record.IDSource

	latest atomic.Pointer[snapshot]

	reg       *metrics.Registry
	samples   *metrics.Counter
	errors    *metrics.Counter
	readSecs  *metrics.Histogram
	requests  *metrics.CounterVec
	cpuPct    *metrics.Gauge
	ramPct    *metrics.Gauge
	procState *metrics.GaugeVec
}

// snapshot is an immutable sample and its pre-encoded JSON.
type snapshot struct {
	rec  record.Record
	json []byte
	at   time.Time
}

// New returns a Sampler reading src.
func New(src source.Source, o Options) *Sampler {
	s := &Sampler{src: src, vm: o.VM, interval: o.Interval, top: o.Top, log: o.Log, reg: metrics.NewRegistry()}
	s.samples = s.reg.NewCounter("vmpulse_agent_samples_total", "Samples taken.").With()
	s.errors = s.reg.NewCounter("vmpulse_agent_sample_errors_total", "Readings of the source that failed.").With()
	s.readSecs = s.reg.NewHistogram("vmpulse_agent_read_seconds", "Time to read the source once.",
		metrics.ExpBuckets(0.0001, 2, 14)).With()
	s.requests = s.reg.NewCounter("vmpulse_agent_http_requests_total", "HTTP requests served, by path and status code.", "path", "code")
	s.reg.NewGauge("vmpulse_agent_source_info", "The live sample source (procfs or kmod) has value 1.", "source").With(src.Name()).Set(1)
	s.cpuPct = s.reg.NewGauge("vmpulse_agent_cpu_percent", "CPU use over the last interval, 0..100.").With()
	s.ramPct = s.reg.NewGauge("vmpulse_agent_ram_percent", "RAM in use (total - available), 0..100.").With()
	s.procState = s.reg.NewGauge("vmpulse_agent_processes", "Processes by state in the latest sample.", "state")
	s.reg.NewGaugeFunc("vmpulse_agent_last_sample_age_seconds", "Seconds since the latest sample.", func() float64 {
		if sn := s.latest.Load(); sn != nil {
			return time.Since(sn.at).Seconds()
		}
		return math.Inf(1)
	})
	return s
}

// Latest returns the latest record and whether there is one yet.
func (s *Sampler) Latest() (record.Record, bool) {
	sn := s.latest.Load()
	if sn == nil {
		return record.Record{}, false
	}
	return sn.rec, true
}

// Run samples until ctx ends. The first sample appears after a short priming read
// (CPU use needs two readings), then one per interval.
func (s *Sampler) Run(ctx context.Context) error {
	prev, err := s.read(ctx)
	if err != nil {
		return fmt.Errorf("first reading of %s: %w", s.src.Name(), err)
	}
	prime := min(s.interval, 200*time.Millisecond)
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(prime):
	}
	s.step(ctx, &prev)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.step(ctx, &prev)
		}
	}
}

// Samples takes n records one interval apart without serving them, calling fn for
// each; the agent's -count mode and tests use it.
func (s *Sampler) Samples(ctx context.Context, n int, fn func(record.Record) error) error {
	prev, err := s.read(ctx)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.src.Name(), err)
	}
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.interval):
		}
		cur, err := s.read(ctx)
		if err != nil {
			return fmt.Errorf("reading %s for sample %d: %w", s.src.Name(), i+1, err)
		}
		if err := fn(s.build(prev, cur, time.Now())); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

func (s *Sampler) read(ctx context.Context) (source.Reading, error) {
	start := time.Now()
	r, err := s.src.Read(ctx)
	s.readSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		s.errors.Inc()
	}
	return r, err
}

func (s *Sampler) step(ctx context.Context, prev *source.Reading) {
	cur, err := s.read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sample failed; serving the previous one", "source", s.src.Name(), "err", err)
		}
		return
	}
	rec := s.build(*prev, cur, time.Now())
	*prev = cur
	b, err := json.Marshal(rec)
	if err != nil { // cannot happen for a Record
		s.log.Error("encode sample", "err", err)
		return
	}
	s.latest.Store(&snapshot{rec: rec, json: b, at: time.Now()})
	s.samples.Inc()
	s.cpuPct.Set(rec.PorcentajeCPUUso)
	s.ramPct.Set(rec.PorcentajeRAM)
	s.procState.With("running").Set(float64(rec.ProcesosCorriendo))
	s.procState.With("sleeping").Set(float64(rec.ProcesosDurmiendo))
	s.procState.With("zombie").Set(float64(rec.ProcesosZombie))
	s.procState.With("stopped").Set(float64(rec.ProcesosParados))
	s.procState.With("total").Set(float64(rec.TotalProcesos))
}

// build makes a record from two consecutive readings.
func (s *Sampler) build(prev, cur source.Reading, now time.Time) record.Record {
	cpu, ok := source.BusyPercent(prev.CPU, cur.CPU)
	if !ok {
		cpu = 0
	}
	cpu = round2(cpu)
	total, avail := cur.Mem.TotalMiB, cur.Mem.AvailableMiB
	used := total - avail
	top := cur.Top
	if len(top) > s.top {
		top = top[:s.top]
	}
	var ramPct float64
	if total > 0 {
		ramPct = round2(100 * float64(used) / float64(total))
	}
	return record.Record{
		ID:                 s.ids.New(now),
		VM:                 s.vm,
		TotalRAM:           total,
		RAMLibre:           avail,
		UsoRAM:             used,
		PorcentajeRAM:      ramPct,
		PorcentajeCPUUso:   cpu,
		PorcentajeCPULibre: round2(100 - cpu),
		ProcesosCorriendo:  cur.Procs.Running,
		TotalProcesos:      cur.Procs.Total,
		ProcesosDurmiendo:  cur.Procs.Sleeping,
		ProcesosZombie:     cur.Procs.Zombie,
		ProcesosParados:    cur.Procs.Stopped,
		Hora:               record.NewHora(now),
		TopProcesos:        top,
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
