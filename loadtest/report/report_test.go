package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpulse/vmpulse/functions/mysql"
	"github.com/vmpulse/vmpulse/internal/testenv"
	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/record"
)

// scenario stores three VMs' samples in MySQL the way a run would leave them and
// writes the matching run and records files: "alpha" is pushed past 70 % CPU as its
// users grow, "beta" never notices the load, "gamma" fills its memory. Every record is
// sent (route1 and route2 alternating), and samples of each VM lie outside its collect
// window.
func scenario(t *testing.T) (*mysql.Store, *Run, string) {
	t.Helper()
	ctx := context.Background()
	store, err := mysql.Open(ctx, mysql.Config{DSN: testenv.MySQL(t), Wait: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	dir := t.TempDir()
	recordsFile := filepath.Join(dir, "records.json")
	t0 := time.Date(2025, 7, 2, 3, 0, 0, 0, time.UTC)
	run := &Run{}
	var raws []json.RawMessage
	sendStart := t0.Add(100 * time.Second)
	acks := map[string]*RouteAcks{"route1": {}, "route2": {}}
	n := 0
	for _, vm := range []string{"alpha", "beta", "gamma"} {
		p := Phase{Phase: "collect", Tool: "vmpulse-load", URL: "http://" + vm + ":8090", VM: vm, Started: t0.Add(200 * time.Millisecond),
			Ended: t0.Add(90 * time.Second), Users: 100, SpawnRate: 2, Wait: "1s-2s", Order: "parallel", RecordsFile: recordsFile,
			Goal: 180, Duration: "1m30s", Outcome: "ok"}
		for s := -5; s < 95; s++ { // samples from 5 s before the window to 5 s after it
			users := min(2*(s+1), 100)
			cpu := 8 + 0.8*float64(users)
			used := int64(1600)
			switch vm {
			case "beta":
				cpu = 5 + 0.05*float64(users)
			case "gamma":
				cpu = 30 + 0.1*float64(users)
				used = int64(2000 + 16*max(s, 0)) // 50 % + 0.4 %/s: 80 % at 75 s
			}
			for k := range 2 {
				r := record.Record{ID: fmt.Sprintf("%s-%03d-%d", vm, s+5, k), VM: vm, TotalRAM: 4000, RAMLibre: 4000 - used, UsoRAM: used,
					PorcentajeRAM: float64(used) / 40, PorcentajeCPUUso: cpu + float64(k), PorcentajeCPULibre: 100 - cpu - float64(k),
					ProcesosCorriendo: 2 + int64(k), TotalProcesos: 200, ProcesosDurmiendo: 190, ProcesosZombie: int64(k), ProcesosParados: 1,
					Hora: record.NewHora(t0.Add(time.Duration(s) * time.Second))}
				b, _ := json.Marshal(r)
				raws = append(raws, b)
				route := driver.Routes[n%2]
				stored := sendStart.Add(time.Duration(n) * 20 * time.Millisecond)
				if _, err := store.Writer(route).InsertEach(ctx, mysql.Batch{ID: int64(n + 1), StoredAt: stored}, []record.Record{r}); err != nil {
					t.Fatal(err)
				}
				acks[route].Records++
				acks[route].CommitMS = append(acks[route].CommitMS, float64(1+n%2*4))
				n++
			}
			if s >= 0 && s < 90 {
				p.Timeline = append(p.Timeline, driver.Second{T: s, Users: users, Requests: int64(users / 2)})
				p.Requests += int64(users / 2)
			}
		}
		p.Unique = 180
		run.Phases = append(run.Phases, p)
	}
	if err := driver.WriteFile(recordsFile, raws); err != nil {
		t.Fatal(err)
	}
	run.Phases = append(run.Phases, Phase{Phase: "send", Tool: "vmpulse-load", URL: "http://ingress", VM: "alpha", Started: sendStart,
		Ended: sendStart.Add(10 * time.Second), Users: 150, Wait: "1s-4s", Order: "parallel", RecordsFile: recordsFile, RAMUnit: "mib",
		Records: n, Committed: n, Requests: int64(n), Routes: map[string]RouteAcks{"route1": *acks["route1"], "route2": *acks["route2"]},
		Outcome: "ok"})
	runFile := filepath.Join(dir, "run.json")
	if err := run.Save(runFile); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadRun(runFile)
	if err != nil {
		t.Fatal(err)
	}
	return store, loaded, dir
}

func TestReportMatchesMySQL(t *testing.T) {
	store, run, _ := scenario(t)
	rep, err := Build(context.Background(), store.DB(), run, Options{RunFile: "run.json"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.VMs) != 3 {
		t.Fatalf("%d VM sections", len(rep.VMs))
	}
	for _, vm := range rep.VMs {
		var count int
		var maxRAM, sumCPU float64
		if err := store.DB().QueryRow(`SELECT COUNT(*), MAX(porcentaje_ram), SUM(porcentaje_cpu_uso) FROM records
			WHERE vm = ? AND hora BETWEEN '2025-07-02 03:00:00' AND '2025-07-02 03:01:30'`, vm.VM).Scan(&count, &maxRAM, &sumCPU); err != nil {
			t.Fatal(err)
		}
		if vm.Samples != count || vm.Judgement.RAMPeak != Round1(maxRAM) || vm.CPUMean != Round1(sumCPU/float64(count)) {
			t.Errorf("%s: %d samples, RAM peak %v, CPU mean %v; MySQL: %d, %v, %v", vm.VM, vm.Samples, vm.Judgement.RAMPeak, vm.CPUMean, count, maxRAM, sumCPU/float64(count))
		}
		if len(vm.Series) != 91 || vm.Processes[2].State != "zombie" || vm.Processes[2].Max != 1 || vm.Processes[2].Mean != 0.5 {
			t.Errorf("%s: %d seconds, processes %+v", vm.VM, len(vm.Series), vm.Processes)
		}
	}
	a, b, c := rep.VMs[0].Judgement, rep.VMs[1].Judgement, rep.VMs[2].Judgement
	// alpha: the trailing 30 s of one-second means (8.5 + 0.8·users) reach 70 % in
	// the second 39 s after t0, 38.8 s after the phase began, when 80 users ran.
	if a.Verdict != Tight || a.Explanation != "CPU p95 crossed 70 % at 80 users (38 s in)" {
		t.Errorf("alpha: %s: %s", a.Verdict, a.Explanation)
	}
	if b.Verdict != Unstressed || !strings.HasPrefix(b.Explanation, "never stressed: ") || !strings.Contains(b.Explanation, "at up to 100 users") {
		t.Errorf("beta: %s: %s", b.Verdict, b.Explanation)
	}
	// gamma: RAM reaches 80 % with the sample of 75 s (the window began 0.2 s in).
	if c.Verdict != Tight || c.Explanation != "RAM crossed 80 % at 100 users (1 min 14 s in)" || c.RAMPeak != 86 {
		t.Errorf("gamma: %s: %s (RAM peak %v)", c.Verdict, c.Explanation, c.RAMPeak)
	}
	if s := rep.Split; s == nil || s.Source != "mysql" || s.PerRoute["route1"] != 300 || s.PerRoute["route2"] != 300 || s.Missing != 0 || !s.Consistent || s.P != 1 {
		t.Errorf("split %+v", rep.Split)
	}
	if len(rep.Race) != 2 || rep.Race[0].Rows != 300 || rep.Race[0].CommitP50MS != 1 || rep.Race[1].CommitP95MS != 5 || rep.Race[0].PeakPerSec != 25 {
		t.Errorf("race %+v", rep.Race)
	}
	if rep.Phases[0].Done != 180 || rep.Phases[3].Done != 600 {
		t.Errorf("phases %+v", rep.Phases)
	}

	var html, js bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, html.String())
	for _, want := range []string{`data-section="run"`, `data-vm="alpha"`, `data-vm="beta"`, `data-vm="gamma"`, `data-section="load"`, `data-section="split"`,
		`data-section="race"`, "CPU p95 crossed 70 % at 80 users (38 s in)", "consistent with 50/50", "<svg"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.VMs) != 3 || back.VMs[0].Judgement.Explanation != a.Explanation {
		t.Errorf("JSON: %v %+v", err, back.VMs)
	}
}

// checkSelfContained fails when the page would load anything or run a script.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", "src=", "url(", "@import", "<link", "http://", "https://", "<iframe", "<object", "<img"} {
		if i := strings.Index(low, bad); i >= 0 && !allowedURL(low, i) {
			t.Errorf("the report is not self-contained: %q at %d: …%s…", bad, i, page[max(i-60, 0):min(i+60, len(page))])
		}
	}
}

// allowedURL: URLs shown as text (the agent's and the ingress's) are fine, as long
// as no attribute loads them.
func allowedURL(low string, i int) bool {
	if !strings.HasPrefix(low[i:], "http") {
		return false
	}
	before := low[max(i-8, 0):i]
	return !strings.Contains(before, "=\"") && !strings.Contains(before, "='") && !strings.Contains(before, "(")
}

func TestReportWithoutSendPhase(t *testing.T) {
	store, run, _ := scenario(t)
	run.Phases = run.Phases[:1]
	rep, err := Build(context.Background(), store.DB(), run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.VMs) != 1 || rep.Split != nil || len(rep.Notes) == 0 {
		t.Fatalf("%+v", rep)
	}
	if err := rep.WriteHTML(io.Discard); err != nil {
		t.Fatal(err)
	}
}
