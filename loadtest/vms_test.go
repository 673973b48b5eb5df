package loadtest_test

// Three named agents under the same load, end to end: the Go driver collects from
// all three at once, sends their samples through the local stack's split, and the
// report of the run has three VM sections whose numbers are MySQL's rows for each VM.
// (The report's rendering in Chromium is tested in loadtest/report, on three VMs.)

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/vmpulse/vmpulse/loadtest/driver"
	"github.com/vmpulse/vmpulse/loadtest/report"
)

func TestThreeVMsReport(t *testing.T) {
	st := inProcessStack(t, false, 3)
	var agents []string
	for _, a := range st.Addrs.Agents {
		agents = append(agents, "http://"+a)
	}
	bin := goBinary(t, "loadtest/cmd/vmpulse-load")
	dir := t.TempDir()
	records, runFile, html := filepath.Join(dir, "records.json"), filepath.Join(dir, "run.json"), filepath.Join(dir, "report.html")
	env := []string{"RUN_FILE=" + runFile, "INGEST_TOKEN=" + testToken, "AGENT_URLS=" + strings.Join(agents, ","), "INGRESS_URL=http://" + st.Addrs.Split,
		"MYSQL_DSN=" + st.Addrs.MySQLDSN, "IN=" + records, "OUT=" + records}

	logs, code := run(t, time.Minute, env, bin, "collect", "-users", "15", "-spawn-rate", "30", "-wait", "5ms-15ms",
		"-records", "80", "-duration", "30s")
	if code != 0 {
		t.Fatalf("collect: exit %d (%s):\n%s", code, gist(logs), tail(logs, 30))
	}
	f, err := driver.ReadRecordsFile(records, driver.UnitAuto)
	if err != nil {
		t.Fatal(err)
	}
	groups := driver.GroupByVM(f.Items)
	if len(groups) != 3 || len(f.Items) != 240 {
		t.Fatalf("%d records from %d VMs, want 80 from each of 3", len(f.Items), len(groups))
	}
	logs, code = run(t, time.Minute, env, bin, "send", "-users", "10", "-spawn-rate", "0", "-wait", "0-5ms")
	if code != 0 || !strings.Contains(logs, "all 240 records committed") {
		t.Fatalf("send: exit %d (%s):\n%s", code, gist(logs), tail(logs, 30))
	}
	logs, code = run(t, time.Minute, env, bin, "report", "-out", html)
	if code != 0 {
		t.Fatalf("report: exit %d (%s):\n%s", code, gist(logs), tail(logs, 30))
	}
	t.Logf("report:\n%s", logs)

	b, err := os.ReadFile(strings.TrimSuffix(html, ".html") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.VMs) != 3 {
		t.Fatalf("%d VM sections, want 3", len(rep.VMs))
	}
	db, err := sql.Open("mysql", st.Addrs.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i, vm := range rep.VMs {
		if want := st.Addrs.VMs[i]; vm.VM != want || groups[i].VM != want {
			t.Errorf("section %d is %s, want %s", i, vm.VM, want)
		}
		from, to := vm.WindowStart.Truncate(time.Second).Format("2006-01-02 15:04:05"), vm.WindowEnd.Truncate(time.Second).Format("2006-01-02 15:04:05")
		var n int
		var ramMax, cpuSum, cpuMax float64
		var running, zombieMax int64
		err := db.QueryRow(`SELECT COUNT(*), MAX(porcentaje_ram), SUM(porcentaje_cpu_uso), MAX(porcentaje_cpu_uso), MAX(procesos_corriendo), MAX(procesos_zombie)
			FROM records WHERE vm = ? AND hora >= ? AND hora <= ?`, vm.VM, from, to).Scan(&n, &ramMax, &cpuSum, &cpuMax, &running, &zombieMax)
		if err != nil {
			t.Fatal(err)
		}
		if n < 40 || vm.Samples != n || vm.Judgement.RAMPeak != report.Round1(ramMax) || vm.CPUMean != report.Round1(cpuSum/float64(n)) ||
			vm.Processes[0].Max != running || vm.Processes[2].Max != zombieMax || vm.Judgement.CPUP95 > report.Round1(cpuMax) {
			t.Errorf("%s: report %d samples, RAM peak %v, CPU mean %v, running max %d; MySQL %d rows, %v, %v, %d",
				vm.VM, vm.Samples, vm.Judgement.RAMPeak, vm.CPUMean, vm.Processes[0].Max, n, ramMax, report.Round1(cpuSum/float64(n)), running)
		}
		if vm.Judgement.Verdict != report.Insufficient { // a few seconds of samples: too few to judge
			t.Errorf("%s: verdict %s after a run of seconds", vm.VM, vm.Judgement.Verdict)
		}
	}
	if s := rep.Split; s == nil || s.Source != "mysql" || s.Total != 240 || s.Missing != 0 || len(rep.Race) != 2 {
		t.Errorf("split %+v, race %+v", rep.Split, rep.Race)
	}
	page, err := os.ReadFile(html)
	if err != nil || strings.Count(string(page), `data-section="vm"`) != 3 || strings.Contains(string(page), "<script") {
		t.Errorf("report.html: %v, %d VM sections", err, strings.Count(string(page), `data-section="vm"`))
	}
}
