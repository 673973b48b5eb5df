package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the CPU this process has used so far, user and system, all
// threads: benchmarks report the difference over a run per item.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
