package report

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/record"
)

// Report is everything the HTML shows; it is also written as JSON.
type Report struct {
	Generated time.Time `json:"generated"`
	RunFile   string    `json:"run_file"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	// Params are the run's parameters, one line each ("collect: 300 users, …").
	Params []string       `json:"params"`
	VMs    []VMReport     `json:"vms"`
	Phases []PhaseFigures `json:"phases"`
	Split  *SplitFigures  `json:"split,omitempty"`
	Race   []RouteRace    `json:"route_race,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
}

// VMReport is one VM's section.
type VMReport struct {
	VM          string      `json:"vm"`
	WindowStart time.Time   `json:"window_start"`
	WindowEnd   time.Time   `json:"window_end"`
	WindowFrom  string      `json:"window_from"` // "collect phase" or "records sent"
	Judgement   Judgement   `json:"judgement"`
	Samples     int         `json:"samples"` // MySQL rows of the VM in the window
	FirstHora   string      `json:"first_hora,omitempty"`
	LastHora    string      `json:"last_hora,omitempty"`
	CPUMean     float64     `json:"cpu_mean"`
	RAMMean     float64     `json:"ram_mean"`
	Processes   []ProcState `json:"processes"`
	PeakUsers   int         `json:"peak_users"`
	// Series are the one-second means the charts draw, with the users then.
	Series []SeriesPoint `json:"series"`
}

// SeriesPoint is one second of a VM's samples.
type SeriesPoint struct {
	T     int     `json:"t"` // seconds since the window's start
	CPU   float64 `json:"cpu"`
	RAM   float64 `json:"ram"`
	Users int     `json:"users"` // -1: no load timeline
}

// ProcState is one process state's count over the window.
type ProcState struct {
	State string  `json:"state"` // running, sleeping, zombie, stopped, total
	Mean  float64 `json:"mean"`
	Max   int64   `json:"max"`
}

// PhaseFigures are one phase's load figures.
type PhaseFigures struct {
	Phase     string         `json:"phase"`
	Tool      string         `json:"tool"`
	URL       string         `json:"url"`
	VM        string         `json:"vm"`
	Started   time.Time      `json:"started"`
	Seconds   float64        `json:"seconds"`
	Users     int            `json:"users"`
	Requests  int64          `json:"requests"`
	Failures  int64          `json:"failures"`
	ReqPerSec float64        `json:"req_per_s"`
	Latency   driver.Latency `json:"latency"`
	Done      int            `json:"done"`   // unique records (collect), committed (send)
	Target    int            `json:"target"` // goal (collect), records (send)
	Outcome   string         `json:"outcome"`
	Message   string         `json:"message,omitempty"`
}

// SplitFigures is the 50/50 split of the records sent.
type SplitFigures struct {
	Source     string         `json:"source"` // "mysql" (rows of the records sent) or "201 bodies"
	PerRoute   map[string]int `json:"per_route"`
	Total      int            `json:"total"`
	Missing    int            `json:"missing"` // records sent but not found (mysql)
	ChiSquare  float64        `json:"chi_square"`
	P          float64        `json:"p"`
	Alpha      float64        `json:"alpha"`
	Consistent bool           `json:"consistent"`
}

// RouteRace is one route's side of the race.
type RouteRace struct {
	Route       string    `json:"route"`
	Rows        int       `json:"rows"` // records of the run it stored (MySQL)
	FirstStored time.Time `json:"first_stored"`
	LastStored  time.Time `json:"last_stored"`
	RowsPerSec  float64   `json:"rows_per_s"`      // rows over the span first..last stored
	PeakPerSec  int       `json:"peak_rows_per_s"` // busiest second
	Acks        int       `json:"acks"`            // 201 bodies that named it
	CommitP50MS float64   `json:"commit_p50_ms"`
	CommitP95MS float64   `json:"commit_p95_ms"`
	// PerSecond counts the rows stored in each second from the first send phase's start.
	PerSecond []int `json:"per_second"`
}

// Options tune Build.
type Options struct {
	RunFile string  // shown in the report
	Alpha   float64 // of the split test; default 0.001
}

const horaLayout = record.HoraLayout

// Build joins the run with MySQL's rows. db is the database the routes write to.
func Build(ctx context.Context, db *sql.DB, run *Run, opt Options) (*Report, error) {
	if opt.Alpha <= 0 {
		opt.Alpha = 0.001
	}
	rep := &Report{Generated: time.Now().UTC(), RunFile: opt.RunFile, Started: run.Started, Ended: run.Ended}
	rep.Params = params(run)
	for _, p := range run.Phases {
		rep.Phases = append(rep.Phases, figures(p))
	}

	// The VMs, in order of first appearance, and each one's window and load.
	type vmInfo struct {
		start, end time.Time
		from       string
		load       *Load
	}
	var order []string
	vms := map[string]*vmInfo{}
	get := func(vm string) *vmInfo {
		if vm == "" {
			vm = record.DefaultVMName
		}
		if vms[vm] == nil {
			vms[vm] = &vmInfo{}
			order = append(order, vm)
		}
		return vms[vm]
	}
	for _, p := range run.Phases {
		if p.Phase != "collect" || p.VM == "" {
			continue
		}
		v := get(p.VM)
		if v.from != "collect phase" || p.Started.Before(v.start) {
			v.start = p.Started
		}
		if p.Ended.After(v.end) {
			v.end = p.Ended
		}
		v.from = "collect phase"
		if v.load == nil {
			v.load = &Load{Start: p.Started}
		}
		for _, s := range p.Timeline {
			v.load.Points = append(v.load.Points, LoadPoint{At: p.Started.Add(time.Duration(s.T) * time.Second), Users: s.Users})
		}
	}
	for _, p := range run.Phases {
		if p.Phase != "send" || p.FirstHora == "" {
			continue
		}
		v := get(p.VM)
		if v.from == "collect phase" {
			continue
		}
		first, err1 := record.ParseHora(p.FirstHora)
		last, err2 := record.ParseHora(p.LastHora)
		if err1 != nil || err2 != nil {
			continue
		}
		if v.from == "" || first.Before(v.start) {
			v.start = first.Time
		}
		if last.After(v.end) {
			v.end = last.Time
		}
		v.from = "records sent"
	}
	for _, vm := range order {
		v := vms[vm]
		if v.from == "" {
			continue
		}
		vr, err := vmSection(ctx, db, vm, v.start, v.end, v.load)
		if err != nil {
			return nil, err
		}
		vr.WindowFrom = v.from
		rep.VMs = append(rep.VMs, *vr)
	}
	if len(rep.VMs) == 0 {
		rep.Notes = append(rep.Notes, "the run names no VM (no collect phase, no records with a sample time): no VM sections")
	}

	if err := splitAndRace(ctx, db, run, rep, opt.Alpha); err != nil {
		return nil, err
	}
	return rep, nil
}

func params(run *Run) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range run.Phases {
		var s string
		switch p.Phase {
		case "collect":
			s = fmt.Sprintf("collect (%s): %d users per agent, %g new users/s, wait %s, until %d unique samples or %s; agents %s",
				p.Tool, p.Users, p.SpawnRate, p.Wait, p.Goal, p.Duration, p.Order)
		case "send":
			s = fmt.Sprintf("send (%s): %d users per VM, %g new users/s, wait %s, to %s; VMs %s; records file %s (RAM in %s)",
				p.Tool, p.Users, p.SpawnRate, p.Wait, p.URL, p.Order, p.RecordsFile, driver.UnitName(p.RAMUnit))
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func figures(p Phase) PhaseFigures {
	secs := p.Ended.Sub(p.Started).Seconds()
	f := PhaseFigures{Phase: p.Phase, Tool: p.Tool, URL: p.URL, VM: p.VM, Started: p.Started, Seconds: round3(secs),
		Users: p.Users, Requests: p.Requests, Failures: p.Failures, Latency: p.Latency, Outcome: p.Outcome, Message: p.Message}
	if secs > 0 {
		f.ReqPerSec = round3(float64(p.Requests) / secs)
	}
	if p.Phase == "collect" {
		f.Done, f.Target = p.Unique, p.Goal
	} else {
		f.Done, f.Target = p.Committed, p.Records
	}
	return f
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// scanTime reads a DATETIME column whether the driver parses times or not.
func scanTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t.UTC(), nil
	case []byte:
		return parseDBTime(string(t))
	case string:
		return parseDBTime(t)
	}
	return time.Time{}, fmt.Errorf("unexpected time value %T", v)
}

func parseDBTime(s string) (time.Time, error) {
	for _, l := range []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read time %q", s)
}

func vmSection(ctx context.Context, db *sql.DB, vm string, start, end time.Time, load *Load) (*VMReport, error) {
	from, to := start.UTC().Truncate(time.Second), end.UTC().Truncate(time.Second)
	rows, err := db.QueryContext(ctx, `SELECT hora, porcentaje_cpu_uso, porcentaje_ram, procesos_corriendo, total_procesos,
		procesos_durmiendo, procesos_zombie, procesos_parados FROM records WHERE vm = ? AND hora >= ? AND hora <= ?`,
		vm, from.Format(horaLayout), to.Format(horaLayout))
	if err != nil {
		return nil, fmt.Errorf("report: reading the samples of %s: %w", vm, err)
	}
	defer rows.Close()
	var samples []Sample
	var counts [5][]int64 // running, sleeping, zombie, stopped, total
	var cpuSum, ramSum float64
	for rows.Next() {
		var h any
		var s Sample
		var run, total, sleep, zombie, stopped int64
		if err := rows.Scan(&h, &s.CPU, &s.RAM, &run, &total, &sleep, &zombie, &stopped); err != nil {
			return nil, fmt.Errorf("report: reading the samples of %s: %w", vm, err)
		}
		if s.Hora, err = scanTime(h); err != nil {
			return nil, fmt.Errorf("report: samples of %s: %w", vm, err)
		}
		samples = append(samples, s)
		cpuSum += s.CPU
		ramSum += s.RAM
		for i, v := range []int64{run, sleep, zombie, stopped, total} {
			counts[i] = append(counts[i], v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report: reading the samples of %s: %w", vm, err)
	}
	vr := &VMReport{VM: vm, WindowStart: start.UTC(), WindowEnd: end.UTC(), Samples: len(samples), Judgement: Judge(samples, load)}
	if len(samples) > 0 {
		slices.SortStableFunc(samples, func(a, b Sample) int { return a.Hora.Compare(b.Hora) })
		vr.FirstHora = samples[0].Hora.Format(horaLayout)
		vr.LastHora = samples[len(samples)-1].Hora.Format(horaLayout)
		vr.CPUMean = Round1(cpuSum / float64(len(samples)))
		vr.RAMMean = Round1(ramSum / float64(len(samples)))
	}
	for i, name := range []string{"running", "sleeping", "zombie", "stopped", "total"} {
		ps := ProcState{State: name}
		var sum int64
		for _, v := range counts[i] {
			sum += v
			ps.Max = max(ps.Max, v)
		}
		if len(counts[i]) > 0 {
			ps.Mean = Round1(float64(sum) / float64(len(counts[i])))
		}
		vr.Processes = append(vr.Processes, ps)
	}
	origin := start.UTC().Truncate(time.Second)
	if load != nil {
		for _, p := range load.Points {
			vr.PeakUsers = max(vr.PeakUsers, p.Users)
		}
	}
	for _, m := range SecondMeans(samples) {
		users := -1
		if load != nil && len(load.Points) > 0 {
			users = 0
			for _, p := range load.Points {
				if !p.At.After(m.At.Add(time.Second - 1)) {
					users = p.Users
				}
			}
		}
		vr.Series = append(vr.Series, SeriesPoint{T: int(m.At.Sub(origin) / time.Second), CPU: Round1(m.CPU), RAM: Round1(m.RAM), Users: users})
	}
	return vr, nil
}

// splitAndRace reads back where the run's records went: the 50/50 split and each
// route's throughput from MySQL (the records of the send phases' records files), and
// the commit latencies from the 201 bodies.
func splitAndRace(ctx context.Context, db *sql.DB, run *Run, rep *Report, alpha float64) error {
	acks := map[string]*RouteAcks{}
	var sendStart time.Time
	files := map[string]string{} // records file -> RAM unit
	var fileOrder []string
	for _, p := range run.Phases {
		if p.Phase != "send" {
			continue
		}
		if sendStart.IsZero() || p.Started.Before(sendStart) {
			sendStart = p.Started
		}
		for route, a := range p.Routes {
			if acks[route] == nil {
				acks[route] = &RouteAcks{}
			}
			acks[route].Records += a.Records
			acks[route].CommitMS = append(acks[route].CommitMS, a.CommitMS...)
		}
		if p.RecordsFile != "" {
			if _, ok := files[p.RecordsFile]; !ok {
				fileOrder = append(fileOrder, p.RecordsFile)
			}
			files[p.RecordsFile] = p.RAMUnit
		}
	}
	if sendStart.IsZero() {
		rep.Notes = append(rep.Notes, "no send phase in the run: no split and no route race")
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, path := range fileOrder {
		unit := files[path]
		if unit == "" {
			unit = driver.UnitAuto
		}
		f, err := driver.ReadRecordsFile(path, unit)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("records file %s: %v: split and throughput from the 201 bodies only", path, err))
			keys = nil
			break
		}
		for _, it := range f.Items {
			if it.Err == nil && it.Key != "" && !seen[it.Key] {
				seen[it.Key] = true
				keys = append(keys, it.Key)
			}
		}
	}
	type row struct {
		route  string
		stored time.Time
	}
	var found []row
	for i := 0; i < len(keys); i += 500 {
		part := keys[i:min(i+500, len(keys))]
		args := make([]any, len(part))
		for k, id := range part {
			args[k] = id
		}
		rows, err := db.QueryContext(ctx, "SELECT route, stored_at FROM records WHERE id IN (?"+strings.Repeat(",?", len(part)-1)+")", args...)
		if err != nil {
			return fmt.Errorf("report: reading the routes of the records sent: %w", err)
		}
		for rows.Next() {
			var r row
			var st any
			if err := rows.Scan(&r.route, &st); err != nil {
				rows.Close()
				return fmt.Errorf("report: reading the routes of the records sent: %w", err)
			}
			if r.stored, err = scanTime(st); err != nil {
				rows.Close()
				return fmt.Errorf("report: stored_at: %w", err)
			}
			found = append(found, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("report: reading the routes of the records sent: %w", err)
		}
	}

	split := &SplitFigures{PerRoute: map[string]int{}, Alpha: alpha}
	if len(keys) > 0 {
		split.Source = "mysql"
		for _, r := range found {
			split.PerRoute[r.route]++
		}
		split.Missing = len(keys) - len(found)
	} else {
		split.Source = "201 bodies"
		for route, a := range acks {
			split.PerRoute[route] = a.Records
		}
	}
	obs := make([]int64, len(driver.Routes))
	w := make([]float64, len(driver.Routes))
	for i, r := range driver.Routes {
		obs[i] = int64(split.PerRoute[r])
		w[i] = 1
	}
	for _, n := range split.PerRoute {
		split.Total += n
	}
	split.ChiSquare, split.P = driver.ChiSquare(obs, w)
	split.ChiSquare = round3(split.ChiSquare)
	split.Consistent = split.P >= alpha && split.Total > 0
	rep.Split = split

	routes := slices.Sorted(maps.Keys(split.PerRoute))
	for r := range acks {
		if !slices.Contains(routes, r) {
			routes = append(routes, r)
		}
	}
	for _, route := range routes {
		rr := RouteRace{Route: route}
		for _, r := range found {
			if r.route != route {
				continue
			}
			rr.Rows++
			if rr.FirstStored.IsZero() || r.stored.Before(rr.FirstStored) {
				rr.FirstStored = r.stored
			}
			if r.stored.After(rr.LastStored) {
				rr.LastStored = r.stored
			}
			sec := max(int(r.stored.Sub(sendStart)/time.Second), 0)
			for len(rr.PerSecond) <= sec {
				rr.PerSecond = append(rr.PerSecond, 0)
			}
			rr.PerSecond[sec]++
		}
		for _, n := range rr.PerSecond {
			rr.PeakPerSec = max(rr.PeakPerSec, n)
		}
		if span := rr.LastStored.Sub(rr.FirstStored).Seconds(); span > 0 {
			rr.RowsPerSec = round3(float64(rr.Rows) / span)
		}
		if a := acks[route]; a != nil {
			rr.Acks = a.Records
			cm := slices.Clone(a.CommitMS)
			rr.CommitP50MS = round3(driver.Percentile(cm, 0.50))
			rr.CommitP95MS = round3(driver.Percentile(cm, 0.95))
		}
		rep.Race = append(rep.Race, rr)
	}
	return nil
}

// pct is n of total in percent.
func pct(n, total int) string {
	if total == 0 {
		return "0"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64)
}
