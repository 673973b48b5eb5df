// Package procfs reads a machine's CPU, memory and process states from the files
// the kernel exports under /proc, for machines without the vmpulse kernel modules.
// One collector per file: stat.go (/proc/stat), meminfo.go (/proc/meminfo),
// procs.go (/proc/[pid]/stat).
package procfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmpulse/vmpulse/agent/source"
)

// Source reads a procfs mounted at Root.
type Source struct {
	Root string // normally "/proc"
	// TopN is how many of the largest processes by RSS to report (0: none).
	TopN int
	// PageSize converts RSS pages to bytes; 0 means 4096.
	PageSize int64

	buf []byte // reused across Read calls; Read is not concurrent
}

// New returns a Source for root reporting the top n processes by RSS.
func New(root string, topN int) *Source { return &Source{Root: root, TopN: topN} }

// Name implements source.Source.
func (s *Source) Name() string { return "procfs" }

// Read implements source.Source.
func (s *Source) Read(ctx context.Context) (source.Reading, error) {
	var r source.Reading
	var err error
	if r.CPU, err = ReadCPU(s.Root); err != nil {
		return r, err
	}
	if r.Mem, err = ReadMem(s.Root); err != nil {
		return r, err
	}
	ps := s.PageSize
	if ps == 0 {
		ps = 4096
	}
	if r.Procs, r.Top, s.buf, err = readProcs(ctx, s.Root, s.TopN, ps, s.buf); err != nil {
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
