// Package source defines what the agent reads from a machine, independent of where
// it comes from: procfs (/proc/stat, /proc/meminfo, /proc/[pid]/stat and, for
// multi-threaded processes, /proc/[pid]/task/[tid]/stat) or the vmpulse kernel
// modules (/proc/cpu_so1, /proc/ram_so1, /proc/procesos_so1). A Source returns raw
// cumulative CPU counters; the agent turns two readings of the same source into a
// percentage.
package source

import (
	"context"

	"github.com/vmpulse/vmpulse/record"
)

// Names of the two sources, as Reading.Source and the record's source field carry them.
const (
	Kmod   = record.SourceKmod
	Procfs = record.SourceProcfs
)

// Source reads one snapshot of a machine. The agent owns the previous reading (for
// CPU use); Read is never called concurrently.
type Source interface {
	// Name says which source this is ("procfs", "kmod", or "auto" for one that
	// picks between them on every read), for logs.
	Name() string
	Read(ctx context.Context) (Reading, error)
}

// Reading is one snapshot.
type Reading struct {
	// Source is where this reading came from: Kmod or Procfs.
	Source string
	// Fallback, set only on a Procfs reading, says why the kernel modules were
	// not read (not loaded, a file missing, a file that did not parse), when a
	// source that prefers them fell back to /proc.
	Fallback string

	CPU   CPUTimes
	Mem   Mem
	Procs Procs
	// Top optionally lists the largest processes by RSS, largest first.
	Top []record.Process
}

// CPUTimes are cumulative per-state CPU times summed over online CPUs, in any one unit
// (jiffies from /proc/stat, nanoseconds or microseconds from the module). Guest time
// is already part of User and Nice, as in /proc/stat, so it is not counted twice.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Total is the sum of all states.
func (c CPUTimes) Total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// NotBusy is the time the CPUs did no work for this machine: idle, waiting for I/O,
// and stolen by the hypervisor.
func (c CPUTimes) NotBusy() uint64 { return c.Idle + c.IOWait + c.Steal }

// BusyPercent is the CPU use between two readings, 0..100:
// 100 × (1 − Δ(idle+iowait+steal) / Δtotal). It returns ok=false when no time
// passed or a counter went backwards (CPU hot-unplug, counter reset).
func BusyPercent(prev, cur CPUTimes) (pct float64, ok bool) {
	t0, t1 := prev.Total(), cur.Total()
	n0, n1 := prev.NotBusy(), cur.NotBusy()
	if t1 <= t0 || n1 < n0 {
		return 0, false
	}
	dt, dn := float64(t1-t0), float64(n1-n0)
	if dn > dt {
		dn = dt
	}
	return 100 * (1 - dn/dt), true
}

// Mem is the machine's memory in MiB. Available has MemAvailable semantics: what can
// be given to new work without swapping (free + reclaimable cache), not MemFree.
type Mem struct {
	TotalMiB, AvailableMiB int64
}

// Procs counts processes (thread-group leaders, as ps -e lists them) by state.
// A process is running (R) when any of its threads is runnable, whatever its
// leader thread does: a busy multi-threaded program whose main thread waits is
// running. Otherwise it has its leader's state. Running, Sleeping, Zombie,
// Stopped and Other add up to Total: sleeping is S + D + I (interruptible,
// uninterruptible, idle kernel threads), stopped is T + t (stopped and traced),
// Other is any state the agent does not classify (e.g. X, dead) so that the sum
// always holds.
type Procs struct {
	Total, Running, Sleeping, Zombie, Stopped, Other int64
}

// Classify adds one process in the state letter s (as /proc/[pid]/stat prints
// it, after the any-thread-runnable rule above).
func (p *Procs) Classify(s byte) {
	p.Total++
	switch s {
	case 'R':
		p.Running++
	case 'S', 'D', 'I':
		p.Sleeping++
	case 'Z':
		p.Zombie++
	case 'T', 't':
		p.Stopped++
	default:
		p.Other++
	}
}
