package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"

	"github.com/vmpulse/vmpulse/agent/source"
)

// parseMem extracts MemTotal and MemAvailable (kB) and converts them to MiB.
// Kernels before 3.14 have no MemAvailable; there it is estimated as
// MemFree + Buffers + Cached, which is what MemAvailable approximates.
func parseMem(b []byte) (source.Mem, error) {
	kb := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 || len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
			continue
		}
		key := string(f[0][:len(f[0])-1])
		switch key {
		case "MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached":
			n, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return source.Mem{}, fmt.Errorf("%s: %w", key, err)
			}
			kb[key] = n
		}
	}
	total, ok := kb["MemTotal"]
	if !ok || total <= 0 {
		return source.Mem{}, fmt.Errorf("no MemTotal")
	}
	avail, ok := kb["MemAvailable"]
	if !ok {
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	if avail > total {
		avail = total
	}
	return source.Mem{TotalMiB: total / 1024, AvailableMiB: avail / 1024}, nil
}
