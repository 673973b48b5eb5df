package agent

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkServeSample is the agent's cost per GET /sample, HTTP server aside;
// cpu-ns/op is the process's CPU time per request (steadier than wall time on a
// shared machine).
func BenchmarkServeSample(b *testing.B) {
	root := b.TempDir()
	src, _ := OpenSource(SourceProcfs, root, "", 0)
	s := New(src, Options{VM: "bench", Interval: time.Second, Top: 10, Log: slog.New(slog.DiscardHandler)})
	s.latest.Store(&snapshot{json: make([]byte, 900), at: time.Now()})
	h := s.Handler()
	req := httptest.NewRequest(http.MethodGet, "/sample", nil)
	b.ReportAllocs()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	n := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		n++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
}
