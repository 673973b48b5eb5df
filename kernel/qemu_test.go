// Package kernel_test proves the vmpulse kernel modules inside a real Linux kernel:
// it builds them against Debian's packaged headers (without and with a name suffix,
// failing on any compiler or modpost warning), packs them with busybox, a small
// static helper and the agent into an initramfs, boots the packaged kernel under
// qemu (TCG, 2 vCPUs) and checks what the guest printed on its serial console.
//
// Needs linux-headers-amd64, linux-image-amd64 (same version), qemu-system-x86,
// busybox-static, gcc, make and libc6-dev. When one is missing the test is skipped,
// or fails when CI=true. See README.md.
package kernel_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/vmpulse/vmpulse/agent/kmod"
	"github.com/vmpulse/vmpulse/agent/source"
	"github.com/vmpulse/vmpulse/record"
)

const (
	testSuffix      = "_202201524" // the suffixed build, as in the assignment's <name>_<carnet>
	guestMemMiB     = 512
	guestCPUs       = 2
	bootTimeout     = 300 * time.Second    // about 15 s on a quiet host, 105 s seen at host load 30
	minBusyPct      = 35.0                 // one busy loop on 2 vCPUs reads about 50 %
	minAgentBusyPct = 25.0                 // the same, seen by the agent (see checkAgent)
	hogMiB          = 16                   // vmp_helper hog's resident memory
	hogName         = "vmp\"q\\\t??"       // its comm after the module's escaping: é becomes ??
	hogNameJSON     = `"vmp\"q\\\u0009??"` // and as the module prints it
	mtName          = "vmp-mt"             // vmp_helper mt: leader sleeps, one thread spins
	agentPackage    = "./agent/cmd/vmpulse-agent"
)

var bases = []string{"cpu_so1", "ram_so1", "procesos_so1"}

// requireOrSkip skips the test with an install hint, or fails it on CI.
func requireOrSkip(t *testing.T, what, pkgs string) {
	t.Helper()
	msg := fmt.Sprintf("%s; install with: apt-get install -y --no-install-recommends %s", what, pkgs)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true and a prerequisite is missing: " + msg)
	}
	t.Skip(msg)
}

type kernelPair struct {
	version, vmlinuz, headers string
}

// findKernel returns the newest /boot/vmlinuz-<v> with /usr/src/linux-headers-<v>:
// the packaged image and headers of the same version, not the running kernel.
func findKernel(t *testing.T) kernelPair {
	t.Helper()
	images, _ := filepath.Glob("/boot/vmlinuz-*")
	var pairs []kernelPair
	for _, img := range images {
		v := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		hdr := "/usr/src/linux-headers-" + v
		if _, err := os.Stat(filepath.Join(hdr, "Module.symvers")); err == nil {
			pairs = append(pairs, kernelPair{v, img, hdr})
		}
	}
	if len(pairs) == 0 {
		requireOrSkip(t, fmt.Sprintf("no kernel image /boot/vmlinuz-<v> with matching headers /usr/src/linux-headers-<v> (images: %v)", images),
			"linux-image-amd64 linux-headers-amd64")
	}
	sort.Slice(pairs, func(i, j int) bool { return versionLess(pairs[i].version, pairs[j].version) })
	k := pairs[len(pairs)-1]
	if f, err := os.Open(k.vmlinuz); err != nil {
		requireOrSkip(t, fmt.Sprintf("cannot read %s (%v); run as root or make it readable", k.vmlinuz, err), "linux-image-amd64")
	} else {
		f.Close()
	}
	return k
}

// versionLess compares version strings numerically where both have digits.
func versionLess(a, b string) bool {
	re := regexp.MustCompile(`\d+|\D+`)
	pa, pb := re.FindAllString(a, -1), re.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		requireOrSkip(t, name+" not found", pkg)
	}
	return p
}

// staticBusybox returns a statically linked busybox (package busybox-static).
func staticBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	requireOrSkip(t, "no statically linked busybox", "busybox-static")
	return ""
}

// cleanEnv drops variables that would change the kernel build: an outer make's
// jobserver flags (make test) and this Makefile's own knobs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SUFFIX", "KDIR", "KVER", "KERNELRELEASE", "ARCH", "CROSS_COMPILE":
			continue
		}
		env = append(env, kv)
	}
	return env
}

type buildResult struct {
	name   string
	output string
	dur    time.Duration
	err    error
}

// buildModules copies kernel/'s sources into dir and runs make there.
func buildModules(hdr, dir, suffix string) buildResult {
	start := time.Now()
	res := buildResult{name: "modules SUFFIX=" + suffix}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.err = err
		return res
	}
	srcs, _ := filepath.Glob("*.c")
	for _, f := range append(srcs, "Makefile") {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		if err != nil {
			res.err = err
			return res
		}
	}
	args := []string{"-C", dir, "KDIR=" + hdr}
	if suffix != "" {
		args = append(args, "SUFFIX="+suffix)
	}
	cmd := exec.Command("make", args...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	res.output, res.err, res.dur = string(out), err, time.Since(start)
	return res
}

func runBuild(name string, dir string, env []string, args ...string) buildResult {
	start := time.Now()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return buildResult{name: name, output: string(out), err: err, dur: time.Since(start)}
}

func warningLines(out string) []string {
	var w []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(strings.ToLower(l), "warning:") {
			w = append(w, l)
		}
	}
	return w
}

func TestModulesInQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel under qemu (about 20 s); skipped with -short")
	}
	k := findKernel(t)
	lookTool(t, "make", "make")
	lookTool(t, "gcc", "gcc libc6-dev")
	qemu := lookTool(t, "qemu-system-x86_64", "qemu-system-x86")
	busybox := staticBusybox(t)
	goTool := lookTool(t, "go", "golang (or put Go on PATH)")
	t.Logf("kernel %s: image %s, headers %s", k.version, k.vmlinuz, k.headers)

	tmp := t.TempDir()
	plainDir, suffixDir := filepath.Join(tmp, "plain"), filepath.Join(tmp, "suffixed")
	helper, agentBin := filepath.Join(tmp, "vmp_helper"), filepath.Join(tmp, "vmpulse-agent")

	// Build everything in parallel: the two module sets, the helper, the agent.
	agentSrc := filepath.Join("..", filepath.FromSlash(agentPackage))
	_, agentErr := os.Stat(agentSrc)
	builds := []func() buildResult{
		func() buildResult { return buildModules(k.headers, plainDir, "") },
		func() buildResult { return buildModules(k.headers, suffixDir, testSuffix) },
		func() buildResult {
			return runBuild("vmp_helper", ".", os.Environ(),
				"gcc", "-static", "-pthread", "-O2", "-Wall", "-Wextra", "-o", helper, "testdata/vmp_helper.c")
		},
	}
	if agentErr == nil {
		builds = append(builds, func() buildResult {
			return runBuild("agent", "..", append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"),
				goTool, "build", "-o", agentBin, agentPackage)
		})
	} else {
		t.Errorf("the agent %s is missing (%v): its part of the test cannot run", agentPackage, agentErr)
	}
	results := make([]buildResult, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = b() }()
	}
	wg.Wait()
	for _, r := range results {
		t.Logf("build %s: %v", r.name, r.dur.Round(time.Millisecond))
		if r.err != nil {
			if r.name == "vmp_helper" && strings.Contains(r.output, "cannot find -lc") {
				requireOrSkip(t, "gcc -static cannot find libc.a", "libc6-dev")
			}
			t.Fatalf("build %s: %v\n%s", r.name, r.err, r.output)
		}
		if w := warningLines(r.output); len(w) > 0 {
			t.Errorf("build %s printed warnings:\n%s", r.name, strings.Join(w, "\n"))
		}
	}

	// The naming rule: <base><SUFFIX>.ko, and the module name inside is the same.
	var plainMods, suffixMods []string
	for _, b := range bases {
		plainMods = append(plainMods, b)
		suffixMods = append(suffixMods, b+testSuffix)
	}
	kos := map[string]string{}
	for dir, mods := range map[string][]string{plainDir: plainMods, suffixDir: suffixMods} {
		got, _ := filepath.Glob(filepath.Join(dir, "*.ko"))
		if len(got) != len(mods) {
			t.Fatalf("%s: built %v, want %d modules %v", dir, got, len(mods), mods)
		}
		for _, m := range mods {
			ko := filepath.Join(dir, m+".ko")
			if name := modinfoName(t, ko); name != m {
				t.Fatalf("%s: module name %q, want %q", ko, name, m)
			}
			kos[m] = ko
		}
	}

	// `make install` of the unsuffixed set into a staging root that becomes the
	// guest's /: the guest loads that set with modprobe from the list in
	// /etc/modules-load.d, as systemd-modules-load would at boot.
	stage := filepath.Join(tmp, "stage")
	// KVER is left out on purpose: the Makefile must derive it from KDIR.
	inst := exec.Command("make", "-C", plainDir, "install", "DESTDIR="+stage, "KDIR="+k.headers)
	inst.Env = cleanEnv()
	if out, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(stage, "lib/modules", k.version, "modules.dep")); err != nil {
		t.Fatalf("make install did not run depmod for %s: %v", k.version, err)
	}

	// The initramfs.
	initScript := renderInit(t, suffixMods)
	var cp cpioWriter
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "lib", "lib/vmp"} {
		cp.dir(d)
	}
	cp.tree(t, stage)
	cp.node("dev/console", 0o020600, 5, 1)
	cp.file("init", 0o755, initScript)
	cp.file("bin/busybox", 0o755, mustRead(t, busybox))
	cp.file("bin/vmp_helper", 0o755, mustRead(t, helper))
	if agentErr == nil {
		cp.file("bin/vmpulse-agent", 0o755, mustRead(t, agentBin))
	}
	for _, m := range suffixMods {
		cp.file("lib/vmp/"+m+".ko", 0o644, mustRead(t, kos[m]))
	}
	initrd := filepath.Join(tmp, "initrd.gz")
	if err := os.WriteFile(initrd, cp.gzip(t), 0o644); err != nil {
		t.Fatal(err)
	}

	// Boot.
	serial := filepath.Join(tmp, "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "pc,accel=tcg", "-smp", strconv.Itoa(guestCPUs), "-m", strconv.Itoa(guestMemMiB),
		"-kernel", k.vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
		"-nic", "none", "-display", "none", "-monitor", "none",
		"-serial", "file:"+serial, "-no-reboot")
	var qout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qout, &qout
	start := time.Now()
	firstResult := make(chan time.Duration, 1)
	stopWatch := make(chan struct{})
	go watchSerial(serial, "==VMP stat-after 1==", start, firstResult, stopWatch)
	err := cmd.Run()
	wall := time.Since(start)
	close(stopWatch)
	log := strings.ReplaceAll(string(mustRead(t, serial)), "\r", "")
	if keep := os.Getenv("VMPULSE_SERIAL_LOG"); keep != "" {
		if err := os.WriteFile(keep, []byte(log), 0o644); err != nil {
			t.Error(err)
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("qemu did not power off within %v; serial log tail:\n%s", bootTimeout, tail(log, 60))
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s\nserial log tail:\n%s", err, qout.String(), tail(log, 60))
	}
	select {
	case d := <-firstResult:
		t.Logf("boot to first module result: %v (qemu launch to the first /proc/cpu_so1 read, TCG)", d.Round(time.Millisecond))
	default:
	}
	t.Logf("qemu wall time, launch to poweroff: %v", wall.Round(time.Millisecond))

	g := parseSerial(log)
	if _, ok := g.sections["done"]; !ok {
		t.Fatalf("the guest did not reach the end of /init; serial log tail:\n%s", tail(log, 80))
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "VMP-FAIL") {
			t.Errorf("guest: %s", l)
		}
	}
	t.Logf("guest uptime at /init start %s, at the end %s", firstField(g.get("start")), firstField(g.get("done")))

	if got := strings.Join(g.get("modprobe"), ","); got != "modprobe cpu_so1,modprobe ram_so1,modprobe procesos_so1" {
		t.Errorf("modprobe of the installed set from /etc/modules-load.d: %q", got)
	}
	checkCPU(t, g)
	checkRAM(t, g)
	checkProcs(t, g)
	checkSuffixed(t, g)
	checkBench(t, g)
	checkStress(t, g)
	checkRmmod(t, g)
	checkThreads(t, g)
	if agentErr == nil {
		checkAgree(t, g)
		checkAgent(t, g)
	}
	for _, l := range g.get("dmesg") {
		if strings.Contains(l, "BUG") || strings.Contains(l, "WARNING") || strings.Contains(l, "Call Trace") {
			t.Errorf("kernel log: %s", l)
		}
	}
	var ex []string
	for _, s := range []string{"cpu 1", "ram 1", "procesos 1", "bench", "mt-procesos 1", "agree-kmod 1", "agree-procfs 1", "agent"} {
		ex = append(ex, "==VMP "+s+"==")
		ex = append(ex, g.get(s)...)
	}
	t.Logf("serial excerpt:\n%s", strings.Join(ex, "\n"))
}

func modinfoName(t *testing.T, ko string) string {
	t.Helper()
	f, err := elf.Open(ko)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		t.Fatalf("%s: no .modinfo", ko)
	}
	b, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("name=")); ok {
			return string(v)
		}
	}
	t.Fatalf("%s: no name= in .modinfo", ko)
	return ""
}

func renderInit(t *testing.T, modules []string) []byte {
	t.Helper()
	tmpl := template.Must(template.ParseFiles("testdata/init.sh.tmpl"))
	var b bytes.Buffer
	err := tmpl.Execute(&b, map[string]any{
		"Modules": modules, "Suffix": testSuffix,
		"CPU": "cpu_so1", "RAM": "ram_so1", "Procs": "procesos_so1",
		"SuffixedCPU": "cpu_so1" + testSuffix, "SuffixedRAM": "ram_so1" + testSuffix,
		"SuffixedProcs": "procesos_so1" + testSuffix,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// watchSerial reports when marker first appears in the serial log.
func watchSerial(path, marker string, start time.Time, found chan<- time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(marker)) {
				found <- time.Since(start)
				return
			}
		}
	}
}

// guest is the serial log split into "==VMP <name>==" sections.
type guest struct{ sections map[string][]string }

func parseSerial(log string) guest {
	g := guest{sections: map[string][]string{}}
	cur := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "==VMP ") && strings.HasSuffix(l, "==") {
			cur = strings.TrimSuffix(strings.TrimPrefix(l, "==VMP "), "==")
			g.sections[cur] = []string{}
			continue
		}
		if cur != "" {
			g.sections[cur] = append(g.sections[cur], l)
		}
	}
	return g
}

func (g guest) get(name string) []string { return g.sections[name] }

// json returns the one JSON object line of a section.
func (g guest) json(t *testing.T, name string) []byte {
	t.Helper()
	for _, l := range g.sections[name] {
		if strings.HasPrefix(l, "{") {
			if !json.Valid([]byte(l)) {
				t.Fatalf("section %q: invalid JSON: %s", name, l)
			}
			return []byte(l)
		}
	}
	t.Fatalf("section %q has no JSON line: %q", name, g.sections[name])
	return nil
}

func firstField(lines []string) string {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 {
			return f[0] + " s"
		}
	}
	return "?"
}

// statCPU parses the "cpu" line of /proc/stat into ticks.
func statCPU(t *testing.T, lines []string) source.CPUTimes {
	t.Helper()
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		v := make([]uint64, 8)
		for i := range v {
			n, err := strconv.ParseUint(f[i+1], 10, 64)
			if err != nil {
				t.Fatalf("/proc/stat line %q: %v", l, err)
			}
			v[i] = n
		}
		return source.CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
	}
	t.Fatalf("no cpu line in %q", lines)
	return source.CPUTimes{}
}

func cpuStates(c source.CPUTimes) map[string]uint64 {
	return map[string]uint64{"user": c.User, "nice": c.Nice, "system": c.System, "idle": c.Idle,
		"iowait": c.IOWait, "irq": c.IRQ, "softirq": c.SoftIRQ, "steal": c.Steal}
}

func checkCPU(t *testing.T, g guest) {
	const nsPerTick = 10_000_000 // USER_HZ = 100 on x86
	var reads []source.CPUTimes
	for r := 1; r <= 3; r++ {
		raw := g.json(t, fmt.Sprintf("cpu %d", r))
		c, err := kmod.ParseCPU(raw)
		if err != nil {
			t.Fatalf("cpu %d: %v: %s", r, err, raw)
		}
		var j kmod.CPUJSON
		json.Unmarshal(raw, &j)
		if j.Unit != "ns" || j.CPUs == nil || *j.CPUs != guestCPUs {
			t.Errorf("cpu %d: unit %q, cpus %v: want ns and %d online CPUs summed", r, j.Unit, j.CPUs, guestCPUs)
		}
		// The module agrees with the kernel's own /proc/stat read just before and after
		// (1 tick of slack for the kernel's rounding of each sum).
		before, after := statCPU(t, g.get(fmt.Sprintf("stat-before %d", r))), statCPU(t, g.get(fmt.Sprintf("stat-after %d", r)))
		sb, sa := cpuStates(before), cpuStates(after)
		for name, ns := range cpuStates(c) {
			ticks := ns / nsPerTick
			if ticks+1 < sb[name] || ticks > sa[name]+1 {
				t.Errorf("cpu %d: %s = %d ticks, /proc/stat says %d before and %d after", r, name, ticks, sb[name], sa[name])
			}
		}
		reads = append(reads, c)
	}
	for i := 1; i < len(reads); i++ {
		prev, cur := cpuStates(reads[i-1]), cpuStates(reads[i])
		for name := range cur {
			if cur[name] < prev[name] {
				t.Errorf("cpu read %d: %s went backwards: %d -> %d ns", i+1, name, prev[name], cur[name])
			}
		}
		if reads[i].Total() <= reads[i-1].Total() {
			t.Errorf("cpu read %d: total did not advance", i+1)
		}
	}
	pct, ok := source.BusyPercent(reads[0], reads[2])
	wallNs := float64(reads[2].Total()-reads[0].Total()) / guestCPUs
	t.Logf("CPU busy between module reads 1 and 3 (%.1f s of wall time): %.1f %% (one busy loop on %d vCPUs)", wallNs/1e9, pct, guestCPUs)
	if !ok || pct < minBusyPct {
		t.Errorf("CPU busy %.1f %% (ok=%v) while a busy loop runs, want >= %.0f %%", pct, ok, minBusyPct)
	}
}

func meminfo(t *testing.T, lines []string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				m[strings.TrimSuffix(f[0], ":")] = n
			}
		}
	}
	return m
}

// ramJSON is /proc/ram_so1 with the exact KiB values, which the agent does not read.
type ramJSON struct {
	UsoRAM        *int64   `json:"uso_ram"`
	PorcentajeRAM *float64 `json:"porcentaje_ram"`
	TotalKiB      int64    `json:"total_kib"`
	LibreKiB      int64    `json:"libre_kib"`
	UsoKiB        int64    `json:"uso_kib"`
}

// procsJSON is /proc/procesos_so1's top list with the exact rss_kib.
type procsJSON struct {
	TopProcesos []struct {
		PID    int64  `json:"pid"`
		Name   string `json:"name"`
		State  string `json:"state"`
		RSSKiB int64  `json:"rss_kib"`
	} `json:"top_procesos"`
}

func checkRAM(t *testing.T, g guest) {
	for r := 1; r <= 3; r++ {
		raw := g.json(t, fmt.Sprintf("ram %d", r))
		m, err := kmod.ParseRAM(raw)
		if err != nil {
			t.Fatalf("ram %d: %v: %s", r, err, raw)
		}
		var j ramJSON
		json.Unmarshal(raw, &j)
		// 512 MiB of guest memory: the kernel keeps its image, page tables and
		// reservations, so MemTotal is somewhat less.
		if m.TotalMiB > guestMemMiB || m.TotalMiB < guestMemMiB*3/4 {
			t.Errorf("ram %d: total_ram %d MiB, want %d..%d with qemu -m %d", r, m.TotalMiB, guestMemMiB*3/4, guestMemMiB, guestMemMiB)
		}
		if m.AvailableMiB > m.TotalMiB || m.AvailableMiB <= 0 {
			t.Errorf("ram %d: ram_libre %d MiB, total %d", r, m.AvailableMiB, m.TotalMiB)
		}
		if *j.UsoRAM != m.TotalMiB-m.AvailableMiB {
			t.Errorf("ram %d: uso_ram %d != total_ram - ram_libre = %d", r, *j.UsoRAM, m.TotalMiB-m.AvailableMiB)
		}
		if j.UsoKiB != j.TotalKiB-j.LibreKiB || j.TotalKiB>>10 != m.TotalMiB {
			t.Errorf("ram %d: KiB fields inconsistent: %s", r, raw)
		}
		if want := 100 * float64(j.UsoKiB) / float64(j.TotalKiB); math.Abs(*j.PorcentajeRAM-want) > 0.006 {
			t.Errorf("ram %d: porcentaje_ram %.2f, want %.3f", r, *j.PorcentajeRAM, want)
		}
		mi := meminfo(t, g.get(fmt.Sprintf("meminfo %d", r)))
		if mi["MemTotal"] != j.TotalKiB {
			t.Errorf("ram %d: total_kib %d, /proc/meminfo MemTotal %d kB", r, j.TotalKiB, mi["MemTotal"])
		}
		if d := mi["MemAvailable"] - j.LibreKiB; d > 16<<10 || d < -16<<10 {
			t.Errorf("ram %d: libre_kib %d, /proc/meminfo MemAvailable %d kB (read just after)", r, j.LibreKiB, mi["MemAvailable"])
		}
	}
}

func checkProcs(t *testing.T, g guest) {
	for r := 1; r <= 3; r++ {
		raw := g.json(t, fmt.Sprintf("procesos %d", r))
		p, top, err := kmod.ParseProcs(raw) // also checks that the counts add up
		if err != nil {
			t.Fatalf("procesos %d: %v: %s", r, err, raw)
		}
		if sum := p.Running + p.Sleeping + p.Zombie + p.Stopped + p.Other; sum != p.Total {
			t.Errorf("procesos %d: states add up to %d, total %d", r, sum, p.Total)
		}
		if p.Zombie < 1 || p.Stopped < 1 || p.Running < 1 {
			t.Errorf("procesos %d: zombie %d, stopped %d, running %d: want each >= 1", r, p.Zombie, p.Stopped, p.Running)
		}
		// Against the state letters of /proc/<pid>/stat read right after: the
		// long-lived zombie and stopped processes match exactly; the total differs
		// only by the short-lived processes of the shell pipelines.
		truth := source.Procs{}
		for _, l := range g.get(fmt.Sprintf("truth %d", r)) {
			if l = strings.TrimSpace(l); len(l) == 1 {
				truth.Classify(l[0])
			}
		}
		if truth.Zombie != p.Zombie || truth.Stopped != p.Stopped {
			t.Errorf("procesos %d: zombie %d stopped %d, /proc/<pid>/stat says zombie %d stopped %d", r, p.Zombie, p.Stopped, truth.Zombie, truth.Stopped)
		}
		if d := truth.Total - p.Total; d > 6 || d < -6 {
			t.Errorf("procesos %d: total %d, /proc/<pid>/stat counts %d", r, p.Total, truth.Total)
		}
		if r == 1 {
			t.Logf("procesos 1: %+v; /proc/<pid>/stat: %+v", p, truth)
		}
		// Top by RSS: at most 10, sorted, the 16 MiB hog first with its escaped name.
		var j procsJSON
		json.Unmarshal(raw, &j)
		if len(top) == 0 || len(top) > 10 {
			t.Fatalf("procesos %d: %d top entries", r, len(top))
		}
		for i := 1; i < len(j.TopProcesos); i++ {
			if j.TopProcesos[i].RSSKiB > j.TopProcesos[i-1].RSSKiB {
				t.Errorf("procesos %d: top not sorted by rss: %s", r, raw)
			}
		}
		if top[0].Name != hogName || top[0].RSSMiB < hogMiB || top[0].State != "S" {
			t.Errorf("procesos %d: top[0] = %+v, want the hog %q with >= %d MiB, state S", r, top[0], hogName, hogMiB)
		}
		if !bytes.Contains(raw, []byte(hogNameJSON)) {
			t.Errorf("procesos %d: the hog's name is not escaped as %s: %s", r, hogNameJSON, raw)
		}
		// RSS agrees with VmRSS of /proc/<pid>/status (the same mm counters) for the
		// processes that sleep or are stopped; pid 1 forks and so keeps changing.
		vmrss := vmRSS(g.get(fmt.Sprintf("vmrss %d", r)))
		compared := 0
		for _, e := range j.TopProcesos {
			kb, ok := vmrss[e.PID]
			if !ok || e.PID == 1 || (e.State != "S" && e.State != "T") {
				continue
			}
			compared++
			if kb != e.RSSKiB {
				t.Errorf("procesos %d: pid %d (%s) rss_kib %d, /proc/%d/status VmRSS %d kB", r, e.PID, e.Name, e.RSSKiB, e.PID, kb)
			}
		}
		if compared < 3 {
			t.Errorf("procesos %d: only %d top entries could be compared with VmRSS", r, compared)
		}
	}
}

func checkSuffixed(t *testing.T, g guest) {
	var objs []string
	for _, l := range g.get("suffixed") {
		if strings.HasPrefix(l, "{") {
			objs = append(objs, l)
		}
	}
	if len(objs) != 3 {
		t.Fatalf("suffixed: want 3 JSON objects from /proc/*%s, got %q", testSuffix, g.get("suffixed"))
	}
	if _, err := kmod.ParseCPU([]byte(objs[0])); err != nil {
		t.Errorf("/proc/cpu_so1%s: %v", testSuffix, err)
	}
	if _, err := kmod.ParseRAM([]byte(objs[1])); err != nil {
		t.Errorf("/proc/ram_so1%s: %v", testSuffix, err)
	}
	if _, _, err := kmod.ParseProcs([]byte(objs[2])); err != nil {
		t.Errorf("/proc/procesos_so1%s: %v", testSuffix, err)
	}
}

var benchRE = regexp.MustCompile(`^bench (\S+) (\d+) reads (\d+) ns (\d+) bytes/read$`)

func checkBench(t *testing.T, g guest) {
	lines := g.get("bench")
	nproc := "?"
	if len(lines) > 0 {
		nproc = strings.TrimSpace(lines[0])
	}
	n := 0
	for _, l := range lines {
		m := benchRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		n++
		reads, _ := strconv.Atoi(m[2])
		ns, _ := strconv.ParseInt(m[3], 10, 64)
		total := time.Duration(ns)
		t.Logf("read cost: %d reads of %s (%s bytes each) took %v, %v per read, with %s processes (TCG guest, no KVM)",
			reads, m[1], m[4], total.Round(time.Microsecond), (total / time.Duration(reads)).Round(100*time.Nanosecond), nproc)
		if total > 20*time.Second {
			t.Errorf("%d reads of %s took %v", reads, m[1], total)
		}
	}
	if n != 3 {
		t.Errorf("bench: want 3 results, got %q", lines)
	}
}

// checkStress: reads while other processes fork, fault in memory and exit.
func checkStress(t *testing.T, g guest) {
	lines := g.get("stress")
	done := false
	var lastPids []int
	for _, l := range lines {
		if m := benchRE.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			ns, _ := strconv.ParseInt(m[3], 10, 64)
			t.Logf("stress: %s reads of %s took %v", m[2], m[1], time.Duration(ns).Round(time.Millisecond))
		}
		// /proc/loadavg: "0.00 0.00 0.00 3/61 123", the last field is the last pid.
		if f := strings.Fields(l); len(f) == 5 && strings.Contains(f[3], "/") {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				lastPids = append(lastPids, pid)
			}
		}
		done = done || strings.TrimSpace(l) == "stress done"
	}
	if !done || len(lastPids) != 2 {
		t.Fatalf("stress phase did not finish: %q", lines)
	}
	forks := lastPids[1] - lastPids[0]
	t.Logf("stress: %d processes forked, faulted 1 MiB in and exited meanwhile", forks)
	if forks < 10 {
		t.Errorf("stress: only %d forks during the reads", forks)
	}
}

func checkRmmod(t *testing.T, g guest) {
	var left []string
	for _, l := range g.get("rmmod") {
		if l = strings.TrimSpace(l); l != "" {
			left = append(left, l)
		}
	}
	sort.Strings(left)
	want := []string{"cpu_so1" + testSuffix, "procesos_so1" + testSuffix, "ram_so1" + testSuffix}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("after rmmod of the unsuffixed set /proc has %q, want %q", left, want)
	}
}

// checkThreads: a process whose leader sleeps while one of its threads spins
// counts as running in the module, and the counts still add up.
func checkThreads(t *testing.T, g guest) {
	mt := int64(0)
	for _, l := range g.get("threads") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "mt-pid "); ok {
			mt, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if mt == 0 {
		t.Fatalf("threads: no pid of vmp_helper mt: %q", g.get("threads"))
	}
	for r := 1; r <= 3; r++ {
		// The guest's own view: the leader sleeps, a thread runs.
		var letters []string
		for _, l := range g.get(fmt.Sprintf("mt-truth %d", r)) {
			if l = strings.TrimSpace(l); len(l) == 1 {
				letters = append(letters, l)
			}
		}
		if len(letters) != 5 || letters[0] != "S" || !slices.Contains(letters[1:], "R") {
			t.Errorf("mt-truth %d: leader then threads %q, want the leader S, 4 threads and one of them R", r, letters)
		}
		raw := g.json(t, fmt.Sprintf("mt-procesos %d", r))
		p, top, err := kmod.ParseProcs(raw) // also checks that the counts add up
		if err != nil {
			t.Fatalf("mt-procesos %d: %v: %s", r, err, raw)
		}
		i := slices.IndexFunc(top, func(p record.Process) bool { return p.PID == mt })
		if i < 0 || top[i].Name != mtName || top[i].State != "R" {
			t.Errorf("mt-procesos %d: pid %d not listed as a running %s: %s", r, mt, mtName, raw)
		}
		// The reader (cat) and vmp-mt run.
		if p.Running < 2 {
			t.Errorf("mt-procesos %d: %d running, want >= 2 (the reader and %s): %s", r, p.Running, mtName, raw)
		}
		if r == 1 && i >= 0 {
			t.Logf("mt-procesos 1: %+v, %s: %+v", p, mtName, top[i])
		}
	}
}

// agentRecords parses the records an agent printed in a section.
func agentRecords(t *testing.T, g guest, section string) []record.Record {
	t.Helper()
	var recs []record.Record
	for _, l := range g.get(section) {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var r record.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Errorf("%s: invalid JSON: %v: %s", section, err, l)
			continue
		}
		if err := r.Validate(); err != nil {
			t.Errorf("%s: invalid record: %v: %s", section, err, l)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkAgree: the agent reading the kernel modules and the agent reading /proc,
// one right after the other on the same machine, count the same processes in
// the same states, vmp-mt running in both.
func checkAgree(t *testing.T, g guest) {
	counts := func(r record.Record) [5]int64 {
		return [5]int64{r.TotalProcesos, r.ProcesosCorriendo, r.ProcesosDurmiendo, r.ProcesosZombie, r.ProcesosParados}
	}
	exact := 0
	var sumK, sumP [5]int64
	for i := 1; i <= 3; i++ {
		k, p := agentRecords(t, g, fmt.Sprintf("agree-kmod %d", i)), agentRecords(t, g, fmt.Sprintf("agree-procfs %d", i))
		if len(k) != 1 || len(p) != 1 {
			t.Fatalf("agree %d: %d kmod and %d procfs records, want 1 each; stderr:\n%s", i, len(k), len(p), strings.Join(g.get("agree-stderr"), "\n"))
		}
		if k[0].Source != "kmod" || p[0].Source != "procfs" {
			t.Errorf("agree %d: sources %q and %q", i, k[0].Source, p[0].Source)
		}
		ck, cp := counts(k[0]), counts(p[0])
		for j := range ck {
			sumK[j] += ck[j]
			sumP[j] += cp[j]
		}
		t.Logf("agree %d: total, running, sleeping, zombie, stopped: kmod %v, procfs %v", i, ck, cp)
		checkSameStates(t, i, k[0], p[0])
		if ck == cp {
			exact++
		}
		// Zombie and stopped are long-lived; running and the total may differ by a
		// kernel worker that woke between the two reads.
		if ck[3] != cp[3] || ck[4] != cp[4] || abs(ck[0]-cp[0]) > 1 || abs(ck[1]-cp[1]) > 1 {
			t.Errorf("agree %d: kmod %v and procfs %v (total, running, sleeping, zombie, stopped) disagree", i, ck, cp)
		}
		for _, r := range []record.Record{k[0], p[0]} {
			i := slices.IndexFunc(r.TopProcesos, func(p record.Process) bool { return p.Name == mtName })
			// The module reads every task under the RCU lock, so it always sees the
			// agent's reading thread running as well (>= 2). The procfs source reads
			// one /proc/<pid>/task/<tid>/stat at a time while the Go runtime moves
			// its goroutine between threads, so it can find every agent thread
			// asleep (CI, 2026-12-02: procfs running 1, kmod 2): there only
			// vmp-mt's state is checked (the count comes from the same
			// classification, so it cannot be below 1 when vmp-mt is R).
			if i < 0 || r.TopProcesos[i].State != "R" || r.Source == "kmod" && r.ProcesosCorriendo < 2 {
				t.Errorf("agree: the %s agent does not count %s as running (running %d): %+v", r.Source, mtName, r.ProcesosCorriendo, r.TopProcesos)
			}
		}
	}
	// A transient kernel worker may be caught running by one read and not the
	// other (seen on a host at load 30). The procfs read is the wider window (one
	// file per process, while the module's walk is atomic; one read of a /proc
	// file costs 30–55 µs in this guest, see the "read cost" lines), so it
	// catches such a worker more often: procfs running 3, 3, 2
	// against kmod 2, 2, 2 in a CI simulation of 2026-12-02. So the running
	// counts may lean by one per pair (checked above), and what must agree
	// exactly is how both classify the same long-lived processes (below); over
	// the three pairs the totals differ by at most 1.
	t.Logf("agree: the two sources gave the same counts in %d of 3 pairs", exact)
	t.Logf("agree: over 3 pairs kmod counted total %d, running %d; procfs total %d, running %d", sumK[0], sumK[1], sumP[0], sumP[1])
	if abs(sumK[0]-sumP[0]) > 1 {
		t.Errorf("agree: over 3 pairs the totals differ by more than 1: kmod %d, procfs %d", sumK[0], sumP[0])
	}
}

// checkSameStates: a process both sources list in their top (same pid and
// name: the long-lived ones, vmp-mt, the helpers, init, sleep) has the same
// state in both, except the agents themselves (a different process each time)
// and processes that come and go (cat, timeout).
func checkSameStates(t *testing.T, pair int, k, p record.Record) {
	type id struct {
		pid  int64
		name string
	}
	states := map[id]string{}
	for _, pr := range k.TopProcesos {
		states[id{pr.PID, pr.Name}] = pr.State
	}
	shared := 0
	for _, pr := range p.TopProcesos {
		ks, ok := states[id{pr.PID, pr.Name}]
		if !ok || pr.Name == "vmpulse-agent" || pr.Name == "cat" || pr.Name == "timeout" {
			continue
		}
		shared++
		if ks != pr.State {
			t.Errorf("agree %d: %s (pid %d) is %s to the module and %s to procfs", pair, pr.Name, pr.PID, ks, pr.State)
		}
	}
	if shared < 3 {
		t.Errorf("agree %d: only %d long-lived processes in both top lists, want at least 3: kmod %+v, procfs %+v", pair, shared, k.TopProcesos, p.TopProcesos)
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func checkAgent(t *testing.T, g guest) {
	var recs []record.Record
	exit := ""
	for _, l := range g.get("agent") {
		if strings.HasPrefix(l, "agent exit ") {
			exit = strings.TrimPrefix(l, "agent exit ")
		}
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var r record.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Errorf("agent printed invalid JSON: %v: %s", err, l)
			continue
		}
		if err := r.Validate(); err != nil {
			t.Errorf("agent record invalid: %v: %s", err, l)
		}
		recs = append(recs, r)
	}
	if exit != "0" || len(recs) != 3 {
		t.Fatalf("agent: exit %q, %d records, want 0 and 3; stderr:\n%s", exit, len(recs), strings.Join(g.get("agent-stderr"), "\n"))
	}
	// The mean of the three samples against the kernel's own /proc/stat over the
	// agent's run. On a crowded host a TCG vCPU that qemu cannot run loses the
	// guest's timer ticks, so the busy thread reads below its 50 % (down to about
	// 35 % at a host load of 30 on 2 cores), in both; and the first sample covers
	// only the agent's 200 ms priming interval.
	mean := (recs[0].PorcentajeCPUUso + recs[1].PorcentajeCPUUso + recs[2].PorcentajeCPUUso) / 3
	kernelPct, ok := source.BusyPercent(statCPU(t, g.get("agent-stat-before")), statCPU(t, g.get("agent-stat-after")))
	t.Logf("agent: CPU %.1f %% on average, /proc/stat %.1f %% over its run", mean, kernelPct)
	if !ok || mean < minAgentBusyPct || math.Abs(mean-kernelPct) > 15 {
		t.Errorf("agent: porcentaje_cpu_uso %.2f on average while a busy thread runs, /proc/stat says %.1f %% (ok=%v): want >= %.0f and within 15 points",
			mean, kernelPct, ok, minAgentBusyPct)
	}
	for i, r := range recs {
		if r.TotalRAM > guestMemMiB || r.TotalRAM < guestMemMiB*3/4 || r.ProcesosZombie < 1 || r.ProcesosParados < 1 {
			t.Errorf("agent record %d: %+v", i, r)
		}
		if len(r.TopProcesos) == 0 || r.TopProcesos[0].Name != hogName {
			t.Errorf("agent record %d: top_procesos %+v, want the hog first", i, r.TopProcesos)
		}
		if r.Source != "kmod" || r.ProcesosCorriendo < 2 {
			t.Errorf("agent record %d: source %q, %d running, want kmod and >= 2 (the agent and %s)", i, r.Source, r.ProcesosCorriendo, mtName)
		}
	}
	t.Logf("agent CPU %% over its 3 samples: %.2f, %.2f, %.2f", recs[0].PorcentajeCPUUso, recs[1].PorcentajeCPUUso, recs[2].PorcentajeCPUUso)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cpioWriter writes a "newc" cpio archive, the initramfs format.
type cpioWriter struct {
	buf  bytes.Buffer
	ino  int
	dirs map[string]bool
}

func (c *cpioWriter) entry(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) {
	c.ino++
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string) {
	if c.dirs == nil {
		c.dirs = map[string]bool{}
	}
	if !c.dirs[name] {
		c.dirs[name] = true
		c.entry(name, 0o040755, 0, 0, nil)
	}
}

// tree adds the directories and regular files below root, as paths relative to it.
func (c *cpioWriter) tree(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			c.dir(rel)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			c.file(rel, 0o644, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
func (c *cpioWriter) file(name string, perm uint32, data []byte) {
	c.entry(name, 0o100000|perm, 0, 0, data)
}
func (c *cpioWriter) node(name string, mode uint32, major, minor int) {
	c.entry(name, mode, major, minor, nil)
}

func (c *cpioWriter) gzip(t *testing.T) []byte {
	t.Helper()
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(c.buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// vmRSS parses `grep -H VmRSS /proc/[0-9]*/status` into pid -> kB.
func vmRSS(lines []string) map[int64]int64 {
	m := map[int64]int64{}
	for _, l := range lines {
		// /proc/123/status:VmRSS:	    1812 kB
		rest, ok := strings.CutPrefix(l, "/proc/")
		if !ok {
			continue
		}
		pidStr, rest, _ := strings.Cut(rest, "/")
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.ParseInt(pidStr, 10, 64)
		kb, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			m[pid] = kb
		}
	}
	return m
}
