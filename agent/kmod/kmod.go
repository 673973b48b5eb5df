// Package kmod reads a machine through the vmpulse kernel modules (kernel/ in this
// repository): /proc/cpu_so1, /proc/ram_so1 and /proc/procesos_so1, each one JSON
// object. Module and file names carry an optional build-time suffix
// (make -C kernel SUFFIX=_202201524 gives /proc/cpu_so1_202201524 and so on).
//
// The package implements source.Source and depends only on the standard library
// and the repository's record and source packages.
package kmod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

// Base names of the three modules and of their /proc files (before the suffix).
const (
	CPUBase   = "cpu_so1"
	RAMBase   = "ram_so1"
	ProcsBase = "procesos_so1"
)

// Source reads the three module files below a proc root. It keeps no state between
// reads.
type Source struct {
	cpu, ram, procs string
}

var _ source.Source = (*Source)(nil)

// New returns a Source reading procRoot/cpu_so1<suffix>, procRoot/ram_so1<suffix>
// and procRoot/procesos_so1<suffix>. procRoot is normally "/proc".
func New(procRoot, suffix string) *Source {
	cpu, ram, procs := Paths(procRoot, suffix)
	return &Source{cpu: cpu, ram: ram, procs: procs}
}

// Paths returns the three files a Source with this procRoot and suffix reads.
func Paths(procRoot, suffix string) (cpu, ram, procs string) {
	return filepath.Join(procRoot, CPUBase+suffix),
		filepath.Join(procRoot, RAMBase+suffix),
		filepath.Join(procRoot, ProcsBase+suffix)
}

// Missing lists which of the three module files do not exist (or are not regular
// files); none missing means the modules with this suffix are loaded.
func Missing(procRoot, suffix string) []string {
	cpu, ram, procs := Paths(procRoot, suffix)
	var missing []string
	for _, p := range []string{cpu, ram, procs} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			missing = append(missing, p)
		}
	}
	return missing
}

// Name implements source.Source.
func (s *Source) Name() string { return source.Kmod }

// Read implements source.Source: it reads and parses the three files. Errors name
// the file that failed.
func (s *Source) Read(ctx context.Context) (source.Reading, error) {
	r := source.Reading{Source: source.Kmod}
	b, err := readFile(ctx, s.cpu)
	if err != nil {
		return r, err
	}
	if r.CPU, err = ParseCPU(b); err != nil {
		return r, fmt.Errorf("kmod: %s: %w", s.cpu, err)
	}
	if b, err = readFile(ctx, s.ram); err != nil {
		return r, err
	}
	if r.Mem, err = ParseRAM(b); err != nil {
		return r, fmt.Errorf("kmod: %s: %w", s.ram, err)
	}
	if b, err = readFile(ctx, s.procs); err != nil {
		return r, err
	}
	if r.Procs, r.Top, err = ParseProcs(b); err != nil {
		return r, fmt.Errorf("kmod: %s: %w", s.procs, err)
	}
	return r, nil
}

func readFile(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kmod: read %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kmod: read %s: %w", path, err)
	}
	return b, nil
}

// CPUJSON is what /proc/cpu_so1 prints: cumulative time per state summed over the
// online CPUs, in Unit ("ns"). Guest and GuestNice are already included in User and
// Nice (as in /proc/stat) and are informational.
type CPUJSON struct {
	Unit      string  `json:"unit"`
	CPUs      *uint64 `json:"cpus"`
	User      *uint64 `json:"user"`
	Nice      *uint64 `json:"nice"`
	System    *uint64 `json:"system"`
	Idle      *uint64 `json:"idle"`
	IOWait    *uint64 `json:"iowait"`
	IRQ       *uint64 `json:"irq"`
	SoftIRQ   *uint64 `json:"softirq"`
	Steal     *uint64 `json:"steal"`
	Guest     *uint64 `json:"guest"`
	GuestNice *uint64 `json:"guest_nice"`
}

// RAMJSON is what /proc/ram_so1 prints, as far as the agent reads it: RAM figures
// in MiB. The module also prints the exact values in KiB (total_kib, libre_kib,
// uso_kib; see kernel/README.md), which the agent does not need.
type RAMJSON struct {
	Unit          string   `json:"unit"`
	TotalRAM      *int64   `json:"total_ram"`
	RAMLibre      *int64   `json:"ram_libre"`
	UsoRAM        *int64   `json:"uso_ram"`
	PorcentajeRAM *float64 `json:"porcentaje_ram"`
}

// ProcsJSON is what /proc/procesos_so1 prints.
type ProcsJSON struct {
	TotalProcesos     *int64    `json:"total_procesos"`
	ProcesosCorriendo *int64    `json:"procesos_corriendo"`
	ProcesosDurmiendo *int64    `json:"procesos_durmiendo"`
	ProcesosZombie    *int64    `json:"procesos_zombie"`
	ProcesosParados   *int64    `json:"procesos_parados"`
	ProcesosOtros     *int64    `json:"procesos_otros"`
	TopProcesos       []TopJSON `json:"top_procesos"`
}

// TopJSON is one entry of ProcsJSON.TopProcesos (the module also prints the exact
// rss_kib, which the agent does not need).
type TopJSON struct {
	PID    int64  `json:"pid"`
	Name   string `json:"name"`
	State  string `json:"state"`
	RSSMiB int64  `json:"rss_mib"`
}

// field is a required JSON field and whether it was present.
type field struct {
	name string
	ok   bool
}

// missing returns an error naming the first absent field.
func missing(fields ...field) error {
	for _, f := range fields {
		if !f.ok {
			return fmt.Errorf("field %q is missing", f.name)
		}
	}
	return nil
}

func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// ParseCPU parses the content of /proc/cpu_so1.
func ParseCPU(b []byte) (source.CPUTimes, error) {
	var j CPUJSON
	if err := decode(b, &j); err != nil {
		return source.CPUTimes{}, err
	}
	if err := missing(
		field{"user", j.User != nil}, field{"nice", j.Nice != nil},
		field{"system", j.System != nil}, field{"idle", j.Idle != nil},
		field{"iowait", j.IOWait != nil}, field{"irq", j.IRQ != nil},
		field{"softirq", j.SoftIRQ != nil}, field{"steal", j.Steal != nil},
	); err != nil {
		return source.CPUTimes{}, err
	}
	if j.Unit == "" {
		return source.CPUTimes{}, errors.New(`field "unit" is missing`)
	}
	if j.CPUs != nil && *j.CPUs == 0 {
		return source.CPUTimes{}, errors.New(`field "cpus" is 0: no online CPU was summed`)
	}
	c := source.CPUTimes{
		User: *j.User, Nice: *j.Nice, System: *j.System, Idle: *j.Idle,
		IOWait: *j.IOWait, IRQ: *j.IRQ, SoftIRQ: *j.SoftIRQ, Steal: *j.Steal,
	}
	if c.Total() == 0 {
		return source.CPUTimes{}, errors.New("all CPU counters are 0")
	}
	return c, nil
}

// ParseRAM parses the content of /proc/ram_so1.
func ParseRAM(b []byte) (source.Mem, error) {
	var j RAMJSON
	if err := decode(b, &j); err != nil {
		return source.Mem{}, err
	}
	if err := missing(
		field{"total_ram", j.TotalRAM != nil}, field{"ram_libre", j.RAMLibre != nil},
	); err != nil {
		return source.Mem{}, err
	}
	if j.Unit != "" && j.Unit != "MiB" {
		return source.Mem{}, fmt.Errorf(`field "unit" is %q, want "MiB"`, j.Unit)
	}
	m := source.Mem{TotalMiB: *j.TotalRAM, AvailableMiB: *j.RAMLibre}
	switch {
	case m.TotalMiB <= 0:
		return source.Mem{}, fmt.Errorf(`field "total_ram" is %d MiB, want > 0`, m.TotalMiB)
	case m.AvailableMiB < 0 || m.AvailableMiB > m.TotalMiB:
		return source.Mem{}, fmt.Errorf(`field "ram_libre" is %d MiB, want 0..total_ram (%d)`,
			m.AvailableMiB, m.TotalMiB)
	}
	return m, nil
}

// ParseProcs parses the content of /proc/procesos_so1. It checks that the state
// counts add up to the total and returns the top list largest first, at most
// record.MaxTop entries.
func ParseProcs(b []byte) (source.Procs, []record.Process, error) {
	var j ProcsJSON
	if err := decode(b, &j); err != nil {
		return source.Procs{}, nil, err
	}
	if err := missing(
		field{"total_procesos", j.TotalProcesos != nil},
		field{"procesos_corriendo", j.ProcesosCorriendo != nil},
		field{"procesos_durmiendo", j.ProcesosDurmiendo != nil},
		field{"procesos_zombie", j.ProcesosZombie != nil},
		field{"procesos_parados", j.ProcesosParados != nil},
	); err != nil {
		return source.Procs{}, nil, err
	}
	p := source.Procs{
		Total: *j.TotalProcesos, Running: *j.ProcesosCorriendo, Sleeping: *j.ProcesosDurmiendo,
		Zombie: *j.ProcesosZombie, Stopped: *j.ProcesosParados,
	}
	if j.ProcesosOtros != nil {
		p.Other = *j.ProcesosOtros
	} else {
		// A module without the field: whatever the named states do not cover.
		p.Other = p.Total - p.Running - p.Sleeping - p.Zombie - p.Stopped
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"total_procesos", p.Total}, {"procesos_corriendo", p.Running},
		{"procesos_durmiendo", p.Sleeping}, {"procesos_zombie", p.Zombie},
		{"procesos_parados", p.Stopped}, {"procesos_otros", p.Other},
	} {
		if f.v < 0 {
			return source.Procs{}, nil, fmt.Errorf("field %q is negative (%d)", f.name, f.v)
		}
	}
	if sum := p.Running + p.Sleeping + p.Zombie + p.Stopped + p.Other; sum != p.Total {
		return source.Procs{}, nil, fmt.Errorf(
			"state counts add up to %d, total_procesos is %d", sum, p.Total)
	}
	top := make([]record.Process, 0, min(len(j.TopProcesos), record.MaxTop))
	for i, t := range j.TopProcesos {
		if i == record.MaxTop {
			break
		}
		if t.PID <= 0 || len(t.State) != 1 || t.RSSMiB < 0 {
			return source.Procs{}, nil, fmt.Errorf(
				"top_procesos[%d]: pid %d, state %q, rss_mib %d: not a process", i, t.PID, t.State, t.RSSMiB)
		}
		name := t.Name
		if len(name) > record.MaxProcName {
			name = name[:record.MaxProcName]
		}
		top = append(top, record.Process{PID: t.PID, Name: name, State: t.State, RSSMiB: t.RSSMiB})
	}
	return p, top, nil
}
