// Package memlimit gives the Go runtime a soft memory limit below the container's
// hard one, so that the garbage collector works harder as a pod nears its limit
// instead of the kernel killing it: a route holding 16 maximum-size requests
// briefly needs a few hundred MiB of heap, and the default GC pacing would let it
// grow to twice its live data.
package memlimit

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the container's limit given to the Go heap and runtime; the rest is
// left for stacks, buffers outside the heap and the kernel's accounting slack.
const Fraction = 0.85

// cgroup files holding the container's memory limit: v2, then v1.
var limitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Set applies Fraction of the container's memory limit as the runtime's soft limit,
// unless GOMEMLIMIT is set (the operator's choice wins) or no limit is found. It
// returns the limit set, 0 when none.
func Set() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := containerLimit(limitFiles)
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * Fraction)
	debug.SetMemoryLimit(soft)
	return soft
}

// containerLimit reads the first file that holds a real limit ("max" and the
// v1 "no limit" value, close to 2^63, mean none).
func containerLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			return 0
		}
		return n
	}
	return 0
}
