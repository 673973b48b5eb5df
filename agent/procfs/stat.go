package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"

	"github.com/vmpulse/vmpulse/agent/source"
)

// parseCPU parses the aggregate "cpu" line of /proc/stat, cumulative times in
// USER_HZ ticks summed over all CPUs:
// "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
// Kernels before 2.6.11 print fewer columns; missing ones count as zero. Guest time
// is already included in user and nice, so it is not added again.
func parseCPU(b []byte) (source.CPUTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 5 {
			return source.CPUTimes{}, fmt.Errorf("cpu line has %d columns, want at least 4 counters", len(f)-1)
		}
		var v [8]uint64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return source.CPUTimes{}, fmt.Errorf("cpu column %d: %w", i+1, err)
			}
			v[i] = n
		}
		return source.CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3],
			IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}, nil
	}
	return source.CPUTimes{}, fmt.Errorf("no aggregate cpu line")
}
