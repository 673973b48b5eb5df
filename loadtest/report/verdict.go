package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// The capacity verdict of one VM over a window, shared with the dashboard; both are
// tested on testdata/verdict-cases.json.
//
//   - insufficient: fewer than MinSamples samples, or under MinSpan between the first
//     and the last sample's hora;
//   - fail: CPU p95 ≥ 90 % or RAM peak ≥ 90 %;
//   - tight: CPU p95 ≥ 70 % or RAM peak ≥ 80 %;
//   - unstressed: otherwise, when CPU p95 < 25 % and RAM peak < 50 %: the load
//     never pushed the VM, so the run proves nothing;
//   - ok: otherwise.
//
// CPU is judged on one-second means: the samples of one second (their hora) are
// averaged, and CPU p95 is the nearest-rank 95th percentile of those means. RAM peak
// is the largest porcentaje_ram of any sample.
//
// The explanation of fail and tight names the resource that crossed its tight
// threshold first: CPU when the nearest-rank p95 of the one-second means of the
// trailing 30 s (the seconds in (s-30 s, s]) first reaches 70 % at second s; RAM
// when a sample first reaches 80 %. On a tie CPU is named. It gives the time since
// the window's start (the load's start when a load timeline is known, else the first
// sample) and, with a timeline, the users then: those of its last point before the
// end of that second (0 when the load had not started). Numbers are rounded to one decimal, halves up.
const (
	MinSamples = 30
	MinSpan    = 30 * time.Second

	FailCPU, FailRAM             = 90.0, 90.0
	TightCPU, TightRAM           = 70.0, 80.0
	UnstressedCPU, UnstressedRAM = 25.0, 50.0
	TrailingWindow               = 30 * time.Second
)

// Verdict names.
const (
	Insufficient = "insufficient"
	Fail         = "fail"
	Tight        = "tight"
	Unstressed   = "unstressed"
	OK           = "ok"
)

// Rules says each verdict's rule in words.
var Rules = map[string]string{
	Insufficient: "fewer than 30 samples, or under 30 s between the first and the last",
	Fail:         "CPU p95 ≥ 90 % or RAM peak ≥ 90 %",
	Tight:        "CPU p95 ≥ 70 % or RAM peak ≥ 80 %",
	Unstressed:   "CPU p95 < 25 % and RAM peak < 50 %: the load never pushed the VM, so the run proves nothing",
	OK:           "CPU p95 < 70 % and RAM peak < 80 %, with CPU p95 ≥ 25 % or RAM peak ≥ 50 %",
}

// Sample is what the verdict reads of a record.
type Sample struct {
	Hora time.Time // second resolution
	CPU  float64   // porcentaje_cpu_uso
	RAM  float64   // porcentaje_ram
}

// LoadPoint is the number of users from At on.
type LoadPoint struct {
	At    time.Time
	Users int
}

// Load is a load timeline: its start and its points in time order.
type Load struct {
	Start  time.Time
	Points []LoadPoint
}

// Judgement is a VM's verdict with the figures behind it.
type Judgement struct {
	Verdict     string  `json:"verdict"`
	Rule        string  `json:"rule"`
	Explanation string  `json:"explanation"`
	Samples     int     `json:"samples"`
	SpanS       int     `json:"span_s"`   // seconds between the first and the last sample
	CPUP95      float64 `json:"cpu_p95"`  // of one-second means, one decimal
	RAMPeak     float64 `json:"ram_peak"` // one decimal
	// Crossed is "cpu" or "ram" for fail and tight: the resource that crossed its
	// tight threshold first, at CrossedAt, CrossedInS seconds into the window, with
	// CrossedUsers users (-1: no load timeline).
	Crossed      string     `json:"crossed,omitempty"`
	CrossedAt    *time.Time `json:"crossed_at,omitempty"`
	CrossedInS   int        `json:"crossed_in_s,omitempty"`
	CrossedUsers int        `json:"crossed_users"` // -1: no load timeline
}

// Second is the mean of one second's samples.
type SecondMean struct {
	At       time.Time
	CPU, RAM float64
	N        int
}

// SecondMeans averages the samples of each second, in time order.
func SecondMeans(samples []Sample) []SecondMean {
	idx := map[int64]int{}
	var out []SecondMean
	for _, s := range samples {
		k := s.Hora.Unix()
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, SecondMean{At: time.Unix(k, 0).UTC()})
		}
		out[i].CPU += s.CPU
		out[i].RAM += s.RAM
		out[i].N++
	}
	for i := range out {
		out[i].CPU /= float64(out[i].N)
		out[i].RAM /= float64(out[i].N)
	}
	slices.SortFunc(out, func(a, b SecondMean) int { return a.At.Compare(b.At) })
	return out
}

// nearestRank is the nearest-rank q-quantile of xs (sorted in a copy).
func nearestRank(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Round1 rounds to one decimal, halves up (away from zero), as the explanations do.
func Round1(x float64) float64 { return math.Round(x*10) / 10 }

func f1(x float64) string { return strconv.FormatFloat(Round1(x), 'f', 1, 64) }

// Judge gives the verdict of samples (any order) under load (nil: unknown).
func Judge(samples []Sample, load *Load) Judgement {
	j := Judgement{Samples: len(samples), CrossedUsers: -1}
	if len(samples) == 0 {
		j.Verdict, j.Rule = Insufficient, Rules[Insufficient]
		j.Explanation = "no samples: a verdict needs at least 30 samples over at least 30 s"
		return j
	}
	sorted := slices.Clone(samples)
	slices.SortStableFunc(sorted, func(a, b Sample) int { return a.Hora.Compare(b.Hora) })
	span := sorted[len(sorted)-1].Hora.Sub(sorted[0].Hora)
	j.SpanS = int(span / time.Second)
	means := SecondMeans(sorted)
	cpus := make([]float64, len(means))
	for i, m := range means {
		cpus[i] = m.CPU
	}
	ramPeak := 0.0
	for _, s := range sorted {
		ramPeak = max(ramPeak, s.RAM)
	}
	cpuP95 := nearestRank(cpus, 0.95)
	j.CPUP95, j.RAMPeak = Round1(cpuP95), Round1(ramPeak)
	if len(samples) < MinSamples || span < MinSpan {
		j.Verdict, j.Rule = Insufficient, Rules[Insufficient]
		j.Explanation = fmt.Sprintf("only %d samples over %d s: a verdict needs at least %d samples over at least %d s",
			len(samples), j.SpanS, MinSamples, int(MinSpan/time.Second))
		return j
	}
	switch {
	case cpuP95 >= FailCPU || ramPeak >= FailRAM:
		j.Verdict = Fail
	case cpuP95 >= TightCPU || ramPeak >= TightRAM:
		j.Verdict = Tight
	case cpuP95 < UnstressedCPU && ramPeak < UnstressedRAM:
		j.Verdict = Unstressed
	default:
		j.Verdict = OK
	}
	j.Rule = Rules[j.Verdict]
	start := sorted[0].Hora
	if load != nil && !load.Start.IsZero() {
		start = load.Start
	}
	upTo := ""
	if load != nil && len(load.Points) > 0 {
		peak := 0
		for _, p := range load.Points {
			peak = max(peak, p.Users)
		}
		upTo = fmt.Sprintf(" at up to %d users", peak)
	}
	switch j.Verdict {
	case Unstressed:
		j.Explanation = fmt.Sprintf("never stressed: CPU p95 %s %% and RAM peak %s %% stayed under %g %% and %g %%%s: the run proves nothing about capacity",
			f1(cpuP95), f1(ramPeak), UnstressedCPU, UnstressedRAM, upTo)
		return j
	case OK:
		j.Explanation = fmt.Sprintf("CPU p95 %s %% and RAM peak %s %% stayed under %g %% and %g %%%s",
			f1(cpuP95), f1(ramPeak), TightCPU, TightRAM, upTo)
		return j
	}

	// Fail or tight: which resource crossed its tight threshold first, and when.
	var cpuAt, ramAt *time.Time
	for i, m := range means {
		var window []float64
		for k := i; k >= 0 && means[k].At.After(m.At.Add(-TrailingWindow)); k-- {
			window = append(window, means[k].CPU)
		}
		if nearestRank(window, 0.95) >= TightCPU {
			t := m.At
			cpuAt = &t
			break
		}
	}
	for _, s := range sorted {
		if s.RAM >= TightRAM {
			t := s.Hora
			ramAt = &t
			break
		}
	}
	what, threshold, at := "", 0.0, (*time.Time)(nil)
	switch {
	case cpuAt != nil && (ramAt == nil || !ramAt.Before(*cpuAt)):
		what, threshold, at, j.Crossed = "CPU p95", TightCPU, cpuAt, "cpu"
	case ramAt != nil:
		what, threshold, at, j.Crossed = "RAM", TightRAM, ramAt, "ram"
	default: // the whole window's p95 is high, no trailing 30 s were
		j.Explanation = fmt.Sprintf("CPU p95 %s %% over the window is at or above %g %%", f1(cpuP95), TightCPU)
		return j
	}
	j.CrossedAt = at
	in := max(int(at.Sub(start)/time.Second), 0)
	j.CrossedInS = in
	when := Elapsed(in) + " in"
	if load != nil && len(load.Points) > 0 {
		users := 0
		for _, p := range load.Points {
			if p.At.Before(at.Add(time.Second)) {
				users = p.Users
			}
		}
		j.CrossedUsers = users
		j.Explanation = fmt.Sprintf("%s crossed %g %% at %d users (%s)", what, threshold, users, when)
		return j
	}
	j.Explanation = fmt.Sprintf("%s crossed %g %% %s", what, threshold, when)
	return j
}

// Elapsed writes whole seconds as "45 s" or "2 min 05 s".
func Elapsed(s int) string {
	if s < 60 {
		return fmt.Sprintf("%d s", s)
	}
	return fmt.Sprintf("%d min %02d s", s/60, s%60)
}
