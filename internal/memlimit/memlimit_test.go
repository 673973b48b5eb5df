package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestContainerLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	v2 := write("memory.max", "536870912\n")
	none := write("none", "max\n")
	v1none := write("v1", "9223372036854771712\n")
	for _, c := range []struct {
		files []string
		want  int64
	}{
		{[]string{v2}, 512 << 20},
		{[]string{filepath.Join(dir, "missing"), v2}, 512 << 20},
		{[]string{none, v2}, 0},
		{[]string{v1none}, 0},
		{nil, 0},
	} {
		if got := containerLimit(c.files); got != c.want {
			t.Errorf("containerLimit(%v) = %d, want %d", c.files, got, c.want)
		}
	}
}

func TestGOMEMLIMITWins(t *testing.T) {
	// A container limit that Set would apply, so that only the GOMEMLIMIT check
	// can keep the runtime's limit unchanged (whatever the machine's cgroup says).
	f := filepath.Join(t.TempDir(), "memory.max")
	if err := os.WriteFile(f, []byte("536870912\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := limitFiles
	limitFiles = []string{f}
	t.Cleanup(func() { limitFiles = saved })
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := Set(); got != 0 || debug.SetMemoryLimit(-1) != before {
		t.Fatalf("an explicit GOMEMLIMIT was overridden: Set() = %d, limit %d, was %d", got, debug.SetMemoryLimit(-1), before)
	}
}
