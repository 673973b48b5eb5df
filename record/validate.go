package record

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Limits on free-text fields, so that a record always fits its table row.
const (
	MaxIDLen      = 64
	MaxVMLen      = 64
	MaxTop        = 32
	MaxProcName   = 64
	maxCount      = 1<<31 - 1 // fits MySQL INT; far above any kernel's pid_max (≤ 2^22)
	maxRAMMiB     = 1 << 32   // 4 PiB
	DefaultVMName = "unknown"

	// MaxBatch is the most records one request may carry.
	MaxBatch = 5000
	// MaxClockSkew is how far in the future a sample's hora may lie: the sender's
	// clock may run ahead of ours, but not by more.
	MaxClockSkew = 5 * time.Minute
)

// Tolerances of the consistency checks: peers round to whole MiB and whole
// percentages, and RAM converted from KiB loses up to 1 MiB per figure.
const (
	ramSumSlackMiB = 2    // |ram_libre + uso_ram - total_ram|, or total_ram/1000 when larger
	cpuSumSlack    = 1.01 // |porcentaje_cpu_uso + porcentaje_cpu_libre - 100|
	ramPctSlack    = 1.5  // |porcentaje_ram - 100 uso_ram/total_ram|
)

// FieldError says which field of which record broke which rule.
type FieldError struct {
	Index int    // position in a batch, -1 for a single record
	Field string // JSON field name, e.g. "porcentaje_cpu_uso" or "top_procesos[2].pid"
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("record %d: %s: %s", e.Index, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Msg)
}

// Validate checks every invariant of the contract and returns the first violation as
// a *FieldError. Call Normalize first for records from other implementations.
func (r *Record) Validate() error { return r.validate(time.Now()) }

func (r *Record) validate(now time.Time) error {
	fe := func(field, format string, a ...any) error {
		return &FieldError{Index: -1, Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	if err := checkName(r.ID, MaxIDLen); err != nil {
		return fe("id", "%v", err)
	}
	if err := checkName(r.VM, MaxVMLen); err != nil {
		return fe("vm", "%v", err)
	}
	if r.Source != "" && r.Source != SourceKmod && r.Source != SourceProcfs {
		return fe("source", "%s: want %q, %q or none", Quote(r.Source), SourceKmod, SourceProcfs)
	}
	if r.TotalRAM <= 0 || r.TotalRAM > maxRAMMiB {
		return fe("total_ram", "%d MiB is outside 1..%d", r.TotalRAM, int64(maxRAMMiB))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"ram_libre", r.RAMLibre}, {"uso_ram", r.UsoRAM}} {
		if f.v < 0 {
			return fe(f.name, "%d MiB is negative", f.v)
		}
		if f.v > r.TotalRAM {
			return fe(f.name, "%d MiB is above total_ram (%d MiB)", f.v, r.TotalRAM)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"porcentaje_ram", r.PorcentajeRAM},
		{"porcentaje_cpu_uso", r.PorcentajeCPUUso},
		{"porcentaje_cpu_libre", r.PorcentajeCPULibre},
	} {
		if !(f.v >= 0 && f.v <= 100) { // also catches NaN
			return fe(f.name, "%v is outside 0..100", f.v)
		}
	}
	if d := r.RAMLibre + r.UsoRAM - r.TotalRAM; abs(d) > max(ramSumSlackMiB, r.TotalRAM/1000) {
		return fe("uso_ram", "ram_libre (%d) + uso_ram (%d) = %d MiB, but total_ram is %d MiB", r.RAMLibre, r.UsoRAM, r.RAMLibre+r.UsoRAM, r.TotalRAM)
	}
	if want := 100 * float64(r.UsoRAM) / float64(r.TotalRAM); math.Abs(r.PorcentajeRAM-want) > ramPctSlack {
		return fe("porcentaje_ram", "%v, but uso_ram/total_ram is %.1f %%", r.PorcentajeRAM, want)
	}
	if s := r.PorcentajeCPUUso + r.PorcentajeCPULibre; math.Abs(s-100) > cpuSumSlack {
		return fe("porcentaje_cpu_libre", "porcentaje_cpu_uso (%v) + porcentaje_cpu_libre (%v) = %v, want 100", r.PorcentajeCPUUso, r.PorcentajeCPULibre, s)
	}
	counts := []struct {
		name string
		v    int64
	}{
		{"total_procesos", r.TotalProcesos},
		{"procesos_corriendo", r.ProcesosCorriendo},
		{"procesos_durmiendo", r.ProcesosDurmiendo},
		{"procesos_zombie", r.ProcesosZombie},
		{"procesos_parados", r.ProcesosParados},
	}
	var states int64
	for i, c := range counts {
		if c.v < 0 {
			return fe(c.name, "%d is negative", c.v)
		}
		if c.v > maxCount {
			return fe(c.name, "%d is implausibly large", c.v)
		}
		if i > 0 {
			if c.v > r.TotalProcesos {
				return fe(c.name, "%d is above total_procesos (%d)", c.v, r.TotalProcesos)
			}
			states += c.v
		}
	}
	if states > r.TotalProcesos {
		return fe("total_procesos", "%d is below the sum of the state counts (%d)", r.TotalProcesos, states)
	}
	if r.Hora.IsZero() {
		return fe("hora", "missing: want %q (UTC)", HoraLayout)
	}
	if y := r.Hora.UTC().Year(); y < 1000 || y > 9999 {
		return fe("hora", "year %d is outside 1000..9999 (the DATETIME range)", y)
	}
	if lim := now.Add(MaxClockSkew); r.Hora.After(lim) {
		return fe("hora", "%s is %v ahead of this server's clock (at most %v of clock skew)", r.Hora, r.Hora.Sub(now).Round(time.Second), MaxClockSkew)
	}
	if len(r.TopProcesos) > MaxTop {
		return fe("top_procesos", "%d entries, at most %d", len(r.TopProcesos), MaxTop)
	}
	for i, p := range r.TopProcesos {
		field := fmt.Sprintf("top_procesos[%d]", i)
		switch {
		case p.PID <= 0:
			return fe(field+".pid", "%d is not a process id", p.PID)
		case len(p.Name) > MaxProcName:
			return fe(field+".name", "longer than %d bytes", MaxProcName)
		case len(p.State) != 1 || !strings.Contains("RSDIZTtXWPKL", p.State):
			return fe(field+".state", "%q is not a /proc state letter", p.State)
		case p.RSSMiB < 0 || p.RSSMiB > maxRAMMiB:
			return fe(field+".rss_mib", "%d is outside 0..%d", p.RSSMiB, int64(maxRAMMiB))
		}
	}
	return nil
}

func checkName(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return fmt.Errorf("%s: only letters, digits and - _ . : are allowed", Quote(s))
		}
	}
	return nil
}

// nameByte reports whether c may appear in an id or a vm name.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == ':'
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
