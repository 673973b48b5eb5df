// Package agent samples one machine on a ticker and serves the latest sample over
// HTTP. Sampling never happens on a request: GET /sample returns the snapshot the
// ticker last produced, so a load test hammering the agent measures the VM, not
// the agent's own /proc reads.
//
// Every record says where it was read (record.Record.Source): "kmod", the vmpulse
// kernel modules, or "procfs", the kernel's own /proc files. In auto mode the
// agent reads the modules whenever they are loaded and readable and falls back to
// /proc otherwise, on every sample, with the reason. When the modules are expected
// (Options.ExpectKmod, the VM's unit sets it), that fallback is an error: logged at
// error level, /healthz answers 503 "degraded" with the reason, and
// vmpulse_agent_degraded is 1; samples keep flowing from /proc.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vmpulse/vmpulse/agent/kmod"
	"github.com/vmpulse/vmpulse/agent/procfs"
	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

// Source modes for OpenSource.
const (
	SourceAuto   = "auto"
	SourceKmod   = source.Kmod
	SourceProcfs = source.Procfs
)

// OpenSource picks where samples come from: "kmod" (the vmpulse kernel modules'
// /proc files, which must exist now; a later failure to read them is a failed
// sample), "procfs" (/proc/stat, /proc/meminfo, /proc/[pid]/stat), or "auto" (the
// modules on every sample where all three files exist and parse, otherwise procfs
// with the reason in Reading.Fallback). suffix is the modules' build-time name
// suffix (e.g. "_202201524").
func OpenSource(mode, procRoot, suffix string, topN int) (source.Source, error) {
	switch mode {
	case SourceKmod:
		if missing := kmod.Missing(procRoot, suffix); len(missing) > 0 {
			return nil, fmt.Errorf("source kmod: %s (load them with `make -C kernel load`)", missingReason(missing))
		}
		return kmod.New(procRoot, suffix), nil
	case SourceProcfs:
		return procfs.New(procRoot, topN), nil
	case SourceAuto, "":
		return &autoSource{root: procRoot, suffix: suffix,
			kmod: kmod.New(procRoot, suffix), procfs: procfs.New(procRoot, topN)}, nil
	}
	return nil, fmt.Errorf("source %q: want auto, kmod or procfs", mode)
}

// autoSource reads the kernel modules when it can and /proc otherwise.
type autoSource struct {
	root, suffix string
	kmod         *kmod.Source
	procfs       *procfs.Source
}

func (a *autoSource) Name() string { return SourceAuto }

func (a *autoSource) Read(ctx context.Context) (source.Reading, error) {
	r, err := a.kmod.Read(ctx)
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return r, err
	}
	var why string
	if missing := kmod.Missing(a.root, a.suffix); errors.Is(err, fs.ErrNotExist) && len(missing) > 0 {
		why = missingReason(missing)
	} else {
		why = "kernel module file unreadable: " + err.Error()
	}
	pr, perr := a.procfs.Read(ctx)
	if perr != nil {
		return pr, fmt.Errorf("%s; /proc fallback: %w", why, perr)
	}
	pr.Fallback = why
	return pr, nil
}

// missingReason says which module files are absent: all of them (the modules are
// not loaded) or some (a module is missing).
func missingReason(missing []string) string {
	if len(missing) == 3 {
		return "kernel modules not loaded: no " + strings.Join(missing, ", ")
	}
	return "kernel module file missing: " + strings.Join(missing, ", ")
}

// Options configure a Sampler.
type Options struct {
	// VM names the machine in every record; it must be a valid record vm (see
	// record.VMName for turning a hostname into one).
	VM       string
	Interval time.Duration
	// Top bounds the top processes listed per record (0: none).
	Top int
	// ExpectKmod makes reading /proc instead of the kernel modules an error:
	// logged at error level, /healthz 503 "degraded", vmpulse_agent_degraded 1.
	// Samples keep flowing.
	ExpectKmod bool
	Log        *slog.Logger
}

// Sampler turns readings of a Source into records.
type Sampler struct {
	src        source.Source
	vm         string
	interval   time.Duration
	top        int
	expectKmod bool
	log        *slog.Logger
	ids        record.IDSource

	latest atomic.Pointer[snapshot]
	// live is where the last successful reading came from; the sampling
	// goroutine alone writes it.
	live origin

	reg        *prometheus.Registry
	samples    prometheus.Counter
	errors     prometheus.Counter
	readSecs   prometheus.Histogram
	requests   *prometheus.CounterVec
	sourceInfo *prometheus.GaugeVec
	degraded   prometheus.Gauge
	cpuPct     prometheus.Gauge
	ramPct     prometheus.Gauge
	procs      [5]prometheus.Gauge // running, sleeping, zombie, stopped, total
}

// origin is where a reading came from and, for /proc in auto mode, why.
type origin struct{ source, fallback string }

// snapshot is an immutable sample and its pre-encoded JSON.
type snapshot struct {
	rec  record.Record
	json []byte
	at   time.Time
	from origin
}

// New returns a Sampler reading src.
func New(src source.Source, o Options) *Sampler {
	s := &Sampler{src: src, vm: o.VM, interval: o.Interval, top: o.Top, expectKmod: o.ExpectKmod,
		log: o.Log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.samples = prometheus.NewCounter(prometheus.CounterOpts{Name: "vmpulse_agent_samples_total", Help: "Samples taken."})
	s.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "vmpulse_agent_sample_errors_total", Help: "Readings of the source that failed."})
	s.readSecs = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vmpulse_agent_read_seconds",
		Help: "Time to read the source once.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vmpulse_agent_http_requests_total",
		Help: "HTTP requests served, by path and status code."}, []string{"path", "code"})
	s.sourceInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmpulse_agent_source_info",
		Help: "1 for the source the latest sample was read from (kmod or procfs), and whether the kernel modules are expected (-expect-kmod)."},
		[]string{"source", "expect_kmod"})
	s.degraded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmpulse_agent_degraded",
		Help: "1 while the kernel modules are expected (-expect-kmod) but the agent reads /proc instead."})
	s.cpuPct = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmpulse_agent_cpu_percent", Help: "CPU use over the last interval, 0..100."})
	s.ramPct = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vmpulse_agent_ram_percent", Help: "RAM in use (total - available), 0..100."})
	procState := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vmpulse_agent_processes",
		Help: "Processes by state in the latest sample (running: any thread runnable)."}, []string{"state"})
	for i, state := range []string{"running", "sleeping", "zombie", "stopped", "total"} {
		s.procs[i] = procState.WithLabelValues(state)
	}
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vmpulse_agent_last_sample_age_seconds",
		Help: "Seconds since the latest sample."}, func() float64 {
		if sn := s.latest.Load(); sn != nil {
			return time.Since(sn.at).Seconds()
		}
		return math.Inf(1)
	})
	s.reg.MustRegister(s.samples, s.errors, s.readSecs, s.requests, s.sourceInfo, s.degraded,
		s.cpuPct, s.ramPct, procState, age)
	return s
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
	for i := 0; i < n; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.interval):
		}
		cur, err := s.read(ctx)
		if err != nil {
			return fmt.Errorf("reading %s for sample %d: %w", s.src.Name(), i+1, err)
		}
		rec, ok := s.build(prev, cur, time.Now())
		prev = cur
		if !ok {
			continue // the source changed: CPU use needs two readings of the new one
		}
		if err := fn(rec); err != nil {
			return err
		}
		i++
	}
	return nil
}

func (s *Sampler) read(ctx context.Context) (source.Reading, error) {
	start := time.Now()
	r, err := s.src.Read(ctx)
	s.readSecs.Observe(time.Since(start).Seconds())
	if err != nil {
		s.errors.Inc()
		return r, err
	}
	if from := (origin{r.Source, r.Fallback}); from != s.live {
		s.switched(s.live, from)
		s.live = from
	}
	return r, nil
}

// switched reports a change of source, or of the reason for reading /proc: loudly
// when the kernel modules are expected.
func (s *Sampler) switched(was, now origin) {
	s.sourceInfo.Reset()
	s.sourceInfo.WithLabelValues(now.source, strconv.FormatBool(s.expectKmod)).Set(1)
	degraded := s.expectKmod && now.source != source.Kmod
	s.degraded.Set(b2f(degraded))
	switch {
	case degraded:
		s.log.Error("kernel modules expected, reading /proc instead; samples keep flowing with source procfs",
			"reason", now.fallback, "source", now.source)
	case now.fallback != "":
		s.log.Info("reading /proc", "reason", now.fallback)
	default:
		s.log.Info("sample source", "source", now.source, "was", was.source)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (s *Sampler) step(ctx context.Context, prev *source.Reading) {
	cur, err := s.read(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sample failed; serving the previous one", "source", s.src.Name(), "err", err)
		}
		return
	}
	rec, ok := s.build(*prev, cur, time.Now())
	*prev = cur
	if !ok {
		return // the source changed: the next reading gives a sample
	}
	b, err := json.Marshal(rec)
	if err != nil { // cannot happen for a Record
		s.log.Error("encode sample", "err", err)
		return
	}
	s.latest.Store(&snapshot{rec: rec, json: b, at: time.Now(), from: origin{cur.Source, cur.Fallback}})
	s.samples.Inc()
	s.cpuPct.Set(rec.PorcentajeCPUUso)
	s.ramPct.Set(rec.PorcentajeRAM)
	for i, v := range []int64{rec.ProcesosCorriendo, rec.ProcesosDurmiendo, rec.ProcesosZombie, rec.ProcesosParados, rec.TotalProcesos} {
		s.procs[i].Set(float64(v))
	}
}

// build makes a record from two consecutive readings; ok is false when they come
// from different sources, whose CPU counters do not compare.
func (s *Sampler) build(prev, cur source.Reading, now time.Time) (rec record.Record, ok bool) {
	if prev.Source != cur.Source {
		return rec, false
	}
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
		Source:             cur.Source,
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
	}, true
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
