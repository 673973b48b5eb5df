// Package procfs reads a machine's CPU, memory and process states from the files
// the kernel exports under /proc, for machines without the vmpulse kernel modules.
// One collector per file: stat.go (/proc/stat), meminfo.go (/proc/meminfo),
// procs.go (/proc/[pid]/stat, and /proc/[pid]/task/[tid]/stat for processes whose
// leader thread is not running).
package procfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmpulse/vmpulse/agent/source"
)

// Source reads a procfs mounted at Root. Read is not safe for concurrent use.
type Source struct {
	Root string // normally "/proc"
	// TopN is how many of the largest processes by RSS to report (0: none).
	TopN int

	// pageSize converts RSS pages to bytes: the system's (os.Getpagesize), 4 KiB on
	// x86-64 but 16 or 64 KiB on some arm64 and ppc64le kernels.
	pageSize int64
	buf      []byte // reused across reads
	// marks holds, per multi-threaded process, its CPU time at the previous read:
	// a process whose threads used no CPU since then has no thread worth checking
	// for the running state (see procs.go). spare is the map the next read fills.
	marks, spare map[int64]mark
}

// New returns a Source for root reporting the top n processes by RSS.
func New(root string, topN int) *Source {
	return &Source{Root: root, TopN: topN, pageSize: int64(os.Getpagesize())}
}

// Name implements source.Source.
func (s *Source) Name() string { return source.Procfs }

// Read implements source.Source.
func (s *Source) Read(ctx context.Context) (source.Reading, error) {
	r := source.Reading{Source: source.Procfs}
	var err error
	if r.CPU, err = readFile(s.Root, "stat", parseCPU); err != nil {
		return r, err
	}
	if r.Mem, err = readFile(s.Root, "meminfo", parseMem); err != nil {
		return r, err
	}
	if r.Procs, r.Top, err = s.readProcs(ctx); err != nil {
		return r, fmt.Errorf("procfs: %w", err)
	}
	return r, nil
}

// readFile reads root/name and parses it, naming the file in any error.
func readFile[T any](root, name string, parse func([]byte) (T, error)) (T, error) {
	path := filepath.Join(root, name)
	b, err := os.ReadFile(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := parse(b)
	if err != nil {
		return v, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}
