package faults

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
)

// SoakSample is one interval of a soak: per process memory and goroutines, and
// the commit→websocket lag of the records first seen in the interval.
type SoakSample struct {
	At        time.Duration // since the start of the load
	Records   int           // records first seen on the websocket in the interval
	Rate      float64       // of those, per second
	LagP50    time.Duration
	LagP99    time.Duration
	LagMax    time.Duration
	RSS       map[string]float64 // MiB, VmRSS at the end of the interval
	Goroutine map[string]float64 // -1: the process exposes no go_goroutines
}

// lagStats returns p50, p99 and max of lags.
func lagStats(lags []time.Duration) (p50, p99, mx time.Duration) {
	if len(lags) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(lags)
	p50 = driver.Percentile(s, 0.50) // sorts s
	return p50, driver.Percentile(s, 0.99), s[len(s)-1]
}

// Slope fits y = a + b·x by least squares and returns b.
func Slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// MemoryTrend is the verdict on one process's memory over a soak.
type MemoryTrend struct {
	Process     string
	First, Last float64 // MiB, after warm-up and at the end
	Mean        float64
	SlopePerH   float64 // MiB per hour, least squares over the samples after warm-up
	Growth      float64 // the fitted growth over the measured span, MiB
	Flat        bool
	Judged      bool // false: shown only
}

// Trend judges memory flat when the fitted growth over the span measured is
// under 10 % of the mean RSS and under 16 MiB (a leak of a few hundred bytes per
// record shows as tens of MiB over 30 minutes at 60 records/s).
func Trend(name string, samples []SoakSample, warmup int) MemoryTrend {
	var xs, ys []float64
	for i, s := range samples {
		if i < warmup {
			continue
		}
		if v, ok := s.RSS[name]; ok && v > 0 {
			xs = append(xs, s.At.Hours())
			ys = append(ys, v)
		}
	}
	tr := MemoryTrend{Process: name, Flat: true}
	if len(ys) == 0 {
		return tr
	}
	tr.First, tr.Last = ys[0], ys[len(ys)-1]
	for _, y := range ys {
		tr.Mean += y
	}
	tr.Mean /= float64(len(ys))
	tr.SlopePerH = Slope(xs, ys)
	tr.Growth = tr.SlopePerH * (xs[len(xs)-1] - xs[0])
	tr.Flat = tr.Growth < 16 && tr.Growth < 0.1*tr.Mean
	return tr
}

// SoakTable formats the samples and trends as markdown.
func SoakTable(title string, procs []string, samples []SoakSample, trends []MemoryTrend) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n| t | records/s | lag p50 | lag p99 | lag max |", title)
	for _, p := range procs {
		fmt.Fprintf(&b, " %s RSS MiB | %s goroutines |", p, p)
	}
	b.WriteString("\n|---|---|---|---|---|" + strings.Repeat("---|---|", len(procs)) + "\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "| %v | %.1f | %s | %s | %s |", s.At.Round(time.Second), s.Rate, fmtDur(s.LagP50), fmtDur(s.LagP99), fmtDur(s.LagMax))
		for _, p := range procs {
			g := "–"
			if v, ok := s.Goroutine[p]; ok && v >= 0 {
				g = fmt.Sprintf("%.0f", v)
			}
			fmt.Fprintf(&b, " %.1f | %s |", s.RSS[p], g)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n| process | RSS after warm-up MiB | at the end MiB | slope MiB/h | fitted growth MiB | memory |\n|---|---|---|---|---|---|\n")
	for _, tr := range trends {
		v := "flat"
		if !tr.Flat {
			v = "GROWING"
		}
		if !tr.Judged {
			v += " (not judged)"
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %+.1f | %+.1f | %s |\n", tr.Process, tr.First, tr.Last, tr.SlopePerH, tr.Growth, v)
	}
	return b.String()
}
