// Package record is the vmpulse domain: the sample a monitored VM produces, its JSON
// form (the contract shared by the agent, the load generator, the ingest routes, the
// relay and the dashboard), and its validation. It depends on nothing but the
// standard library.
//
// Units: every RAM figure is MiB, every percentage is 0..100, and hora is UTC in the
// assignment's "2006-01-02 15:04:05" layout.
package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HoraLayout is the wire layout of Record.Hora (always UTC).
const HoraLayout = "2006-01-02 15:04:05"

// Record is one sample of one VM. Field names follow the assignment so that its JSON
// files interoperate with other implementations.
type Record struct {
	// ID is unique per sample, set by the agent; it is the idempotency key of the
	// ingest routes. Records from other implementations may omit it.
	ID string `json:"id,omitempty"`
	// VM names the machine the sample comes from (see VMName).
	VM string `json:"vm,omitempty"`
	// Source says where the agent read the sample: SourceKmod (the kernel modules)
	// or SourceProcfs (the /proc fallback). Records of other implementations carry
	// none.
	Source string `json:"source,omitempty"`

	TotalRAM      int64   `json:"total_ram"`      // MiB
	RAMLibre      int64   `json:"ram_libre"`      // MiB available (MemAvailable semantics)
	UsoRAM        int64   `json:"uso_ram"`        // MiB = total_ram - ram_libre
	PorcentajeRAM float64 `json:"porcentaje_ram"` // 0..100

	PorcentajeCPUUso   float64 `json:"porcentaje_cpu_uso"`   // 0..100
	PorcentajeCPULibre float64 `json:"porcentaje_cpu_libre"` // 0..100

	ProcesosCorriendo int64 `json:"procesos_corriendo"`
	TotalProcesos     int64 `json:"total_procesos"`
	ProcesosDurmiendo int64 `json:"procesos_durmiendo"`
	ProcesosZombie    int64 `json:"procesos_zombie"`
	ProcesosParados   int64 `json:"procesos_parados"`

	Hora Hora `json:"hora"`

	// TopProcesos optionally lists the largest processes by resident memory.
	TopProcesos []Process `json:"top_procesos,omitempty"`
}

// Values of Record.Source.
const (
	SourceKmod   = "kmod"
	SourceProcfs = "procfs"
)

// Process is one entry of Record.TopProcesos.
type Process struct {
	PID    int64  `json:"pid"`
	Name   string `json:"name"`
	State  string `json:"state"`   // one letter as in /proc/[pid]/stat: R S D I Z T t X
	RSSMiB int64  `json:"rss_mib"` // resident set size, MiB
}

// Hora is a UTC timestamp with one-second resolution that marshals as
// "2006-01-02 15:04:05". It also accepts RFC 3339 on input.
type Hora struct{ time.Time }

// NewHora truncates t to the second in UTC.
func NewHora(t time.Time) Hora { return Hora{t.UTC().Truncate(time.Second)} }

// String formats h in HoraLayout.
func (h Hora) String() string { return h.UTC().Format(HoraLayout) }

// MarshalJSON implements json.Marshaler.
func (h Hora) MarshalJSON() ([]byte, error) {
	return []byte(`"` + h.String() + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hora) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &horaError{fmt.Sprintf("got %s, want a string like %q", Quote(string(b)), HoraLayout)}
	}
	t, err := ParseHora(s)
	if err != nil {
		return &horaError{err.Error()}
	}
	*h = t
	return nil
}

// ParseHora parses the assignment's layout (UTC) or RFC 3339.
func ParseHora(s string) (Hora, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(HoraLayout, s); err == nil {
		return NewHora(t), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return NewHora(t), nil
	}
	// Python's datetime.isoformat() without a zone, read as UTC.
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return NewHora(t), nil
	}
	return Hora{}, fmt.Errorf("cannot parse %s: want %q (UTC) or RFC 3339", Quote(s), HoraLayout)
}

// horaError marks a decoding error as being about the hora field: encoding/json
// returns errors from UnmarshalJSON without the field name.
type horaError struct{ msg string }

func (e *horaError) Error() string { return e.msg }

// VMName turns a host name into a valid vm name: characters outside the allowed set
// become '-', the result is cut to MaxVMLen, and an empty name or a bare
// initramfs's "(none)" becomes "vm".
func VMName(host string) string {
	b := []byte(host)
	for i, c := range b {
		if !nameByte(c) {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-")
	if len(name) > MaxVMLen {
		name = name[:MaxVMLen]
	}
	if name == "" || name == "none" {
		return "vm"
	}
	return name
}

// maxQuote bounds how much of an offending input an error message repeats.
const maxQuote = 64

// Quote quotes s for an error message, cut to its first 64 bytes: an error never
// echoes a large input back.
func Quote(s string) string {
	if len(s) <= maxQuote {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuote]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// Equal reports whether a and b are the same sample: every field alike, an absent
// and an empty process list alike (MySQL stores both as NULL).
func Equal(a, b Record) bool {
	if len(a.TopProcesos) != len(b.TopProcesos) {
		return false
	}
	for i := range a.TopProcesos {
		if a.TopProcesos[i] != b.TopProcesos[i] {
			return false
		}
	}
	return a.ID == b.ID && a.VM == b.VM && a.Source == b.Source && a.Hora.Equal(b.Hora.Time) &&
		a.TotalRAM == b.TotalRAM && a.RAMLibre == b.RAMLibre && a.UsoRAM == b.UsoRAM &&
		a.PorcentajeRAM == b.PorcentajeRAM && a.PorcentajeCPUUso == b.PorcentajeCPUUso &&
		a.PorcentajeCPULibre == b.PorcentajeCPULibre && a.ProcesosCorriendo == b.ProcesosCorriendo &&
		a.TotalProcesos == b.TotalProcesos && a.ProcesosDurmiendo == b.ProcesosDurmiendo &&
		a.ProcesosZombie == b.ProcesosZombie && a.ProcesosParados == b.ProcesosParados
}
