package terraform

// The VM's startup script (templates/vm-startup.sh.tftpl), run for real against
// fakes of what only a VM has (apt, dpkg, the metadata server and GCS behind
// curl, make, modprobe, systemctl, uname) in temporary directories; checked by
// bash -n and shellcheck; and the secret seeding script.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmFakes is a fake VM for the startup script.
type vmFakes struct {
	t                           *testing.T
	tmp, fakes, bin, units, log string
	headers, src                string
}

// newVMFakes writes the fakes. With fakeSleep, sleep returns at once (the bundle
// wait); without it, the real sleep runs (the dpkg lock wait is timed).
func newVMFakes(t *testing.T, fakeSleep bool) *vmFakes {
	t.Helper()
	needTool(t, "bash", "bash runs the startup script")
	needTool(t, "python3", "the startup script reads the metadata token and probes the dpkg locks with python3")
	needTool(t, "tar", "the startup script unpacks the bundle with tar")
	f := &vmFakes{t: t, tmp: t.TempDir()}
	sub := func(p string) string {
		d := filepath.Join(f.tmp, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	f.fakes, f.bin, f.units, f.headers = sub("fakes"), sub("bin"), sub("units"), sub("headers")
	f.log = filepath.Join(f.tmp, "calls.log")
	f.src = filepath.Join(f.tmp, "opt-vmpulse")
	// Every fake appends its name, the time in ms and its arguments to calls.log.
	rec := "echo \"$(basename \"$0\") $*\" >> '" + f.log + "'\n"
	names := []string{"apt-get", "modprobe", "rmmod", "systemctl"}
	if fakeSleep {
		names = append(names, "sleep")
	}
	for _, name := range names {
		f.write(filepath.Join(f.fakes, name), "#!/bin/sh\n"+rec+
			"[ \"$(basename \"$0\")\" = apt-get ] && date +%s%3N > '"+filepath.Join(f.tmp, "apt-get.at")+"'\nexit 0\n", 0o755)
	}
	// make fails when $FAKE_MAKE_FAILS is set (a module build that breaks).
	f.write(filepath.Join(f.fakes, "make"), "#!/bin/sh\n"+rec+"[ -z \"$FAKE_MAKE_FAILS\" ]\n", 0o755)
	f.write(filepath.Join(f.fakes, "uname"), "#!/bin/sh\necho \"$FAKE_KVER\"\n", 0o755)
	// Everything is installed except the headers of the running kernel.
	f.write(filepath.Join(f.fakes, "dpkg-query"), "#!/bin/sh\nfor a; do last=$a; done\ncase \"$last\" in linux-headers-*) "+
		"[ -e \"$FAKE_HEADERS/$last\" ] && echo 'install ok installed' ;; *) echo 'install ok installed' ;; esac\n", 0o755)
	f.write(filepath.Join(f.fakes, "curl"), `#!/bin/sh
`+rec+`out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    -H|-X|--data) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
case "$url" in
  http://metadata.google.internal/computeMetadata/v1/instance/guest-attributes/*) exit 0 ;;
  http://metadata.google.internal/*) echo '{"access_token":"tok","expires_in":3599,"token_type":"Bearer"}' ;;
  https://storage.googleapis.com/storage/v1/b/demo-project-vmpulse-agent/o/vmpulse-agent-bundle.tar.gz\?alt=media)
    [ -f "$FAKE_BUNDLE" ] || exit 22
    cp "$FAKE_BUNDLE" "$out" ;;
  http://127.0.0.1:8090/healthz) exit 0 ;;
  *) echo "fake curl: unexpected $url" >&2; exit 2 ;;
esac
`, 0o755)
	return f
}

func (f *vmFakes) write(path, body string, mode os.FileMode) {
	f.t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		f.t.Fatal(err)
	}
}

// bundle makes a bundle as make vm-bundle lays it out.
func (f *vmFakes) bundle(name, agentBody string) string {
	f.t.Helper()
	d := filepath.Join(f.tmp, name)
	for _, p := range []string{"bin", "kernel"} {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			f.t.Fatal(err)
		}
	}
	f.write(filepath.Join(d, "bin", "vmpulse-agent"), agentBody, 0o755)
	f.write(filepath.Join(d, "kernel", "Makefile"), "# kernel/Makefile\n", 0o644)
	out := filepath.Join(f.tmp, name+".tar.gz")
	if b, err := exec.Command("tar", "-C", d, "-czf", out, "bin", "kernel").CombinedOutput(); err != nil {
		f.t.Fatalf("tar: %v %s", err, b)
	}
	return out
}

// script renders the startup script into a file.
func (f *vmFakes) script(name string, waitMinutes int64) string {
	f.t.Helper()
	p := filepath.Join(f.tmp, name)
	f.write(p, renderTemplate(f.t, filepath.Join(dir(f.t), "templates", "vm-startup.sh.tftpl"), startupVars("_202201524", waitMinutes)), 0o755)
	return p
}

// boot runs a script as the VM's boot would, with extra environment.
func (f *vmFakes) boot(script, stateDir, kver, bundle string, env ...string) (calls, out string, err error) {
	f.t.Helper()
	_ = os.Remove(f.log)
	// No dpkg lock held unless the test says otherwise: two unlocked files.
	locks := filepath.Join(f.tmp, "lock-frontend") + " " + filepath.Join(f.tmp, "lists-lock")
	for _, l := range strings.Fields(locks) {
		f.write(l, "", 0o644)
	}
	cmd := exec.Command("bash", script)
	cmd.Env = f.env(stateDir, locks, kver, bundle, env...)
	o, err := cmd.CombinedOutput()
	b, _ := os.ReadFile(f.log)
	return string(b), string(o), err
}

// env is the environment a boot runs the script in: the fakes first on PATH,
// the VMPULSE_* overrides pointing into the test's directories, what the fakes
// report, and extra variables last.
func (f *vmFakes) env(stateDir, locks, kver, bundle string, extra ...string) []string {
	return append(append(os.Environ(),
		"PATH="+f.fakes+":"+os.Getenv("PATH"),
		"VMPULSE_STATE_DIR="+stateDir, "VMPULSE_SRC_DIR="+f.src,
		"VMPULSE_BIN_DIR="+f.bin, "VMPULSE_UNIT_DIR="+f.units, "VMPULSE_DPKG_LOCKS="+locks,
		"FAKE_KVER="+kver, "FAKE_BUNDLE="+bundle, "FAKE_HEADERS="+f.headers), extra...)
}

func has(t *testing.T, calls, want string) {
	t.Helper()
	if !strings.Contains(calls, want) {
		t.Errorf("no %q in:\n%s", want, calls)
	}
}

func hasNot(t *testing.T, calls, unwanted string) {
	t.Helper()
	if strings.Contains(calls, unwanted) {
		t.Errorf("unexpected %q in:\n%s", unwanted, calls)
	}
}

const aptInstall = "apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "

// First boot, a reboot with nothing new, a kernel upgrade, a new bundle, and a
// bundle that never arrives.
func TestStartupScriptFlow(t *testing.T) {
	f := newVMFakes(t, true)
	bundle1 := f.bundle("bundle1", "#!/bin/sh\necho agent v1\n")
	bundle2 := f.bundle("bundle2", "#!/bin/sh\necho agent v2\n")
	script := f.script("startup.sh", 1)
	scriptNoWait := f.script("startup-nowait.sh", 0)
	state := filepath.Join(f.tmp, "state")
	mods := []string{"cpu_so1_202201524", "ram_so1_202201524", "procesos_so1_202201524"}

	t.Run("first boot", func(t *testing.T) {
		calls, out, err := f.boot(script, state, "6.8.0-1001-gcp", bundle1)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, aptInstall+"linux-headers-6.8.0-1001-gcp")
		has(t, calls, "make -C "+f.src+"/kernel SUFFIX=_202201524\n")
		has(t, calls, "make -C "+f.src+"/kernel SUFFIX=_202201524 install\n")
		for _, m := range mods {
			has(t, calls, "modprobe "+m+"\n")
		}
		has(t, calls, "systemctl daemon-reload")
		has(t, calls, "systemctl enable vmpulse-agent.service")
		has(t, calls, "systemctl restart vmpulse-agent.service")
		has(t, calls, "curl -fsS -H Authorization: Bearer tok -o ")
		// The modules' state, reported where the operator can read it.
		has(t, calls, "--data ok: "+strings.Join(mods, " ")+" loaded for 6.8.0-1001-gcp http://metadata.google.internal/computeMetadata/v1/instance/guest-attributes/vmpulse/kmod")
		b, err := os.ReadFile(filepath.Join(f.bin, "vmpulse-agent"))
		if err != nil || !strings.Contains(string(b), "agent v1") {
			t.Errorf("agent v1 not installed: %v %q", err, b)
		}
		unit, err := os.ReadFile(filepath.Join(f.units, "vmpulse-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ExecStart=" + f.bin + "/vmpulse-agent\n", "Environment=AGENT_ADDR=:8090\n",
			"Environment=AGENT_SOURCE=auto\n", "Environment=KMOD_SUFFIX=_202201524\n", "Environment=VM_NAME=vmpulse-small\n",
			"Environment=EXPECT_KMOD=true\n", "DynamicUser=yes\n",
			"After=network-online.target systemd-modules-load.service\n", "WantedBy=multi-user.target\n"} {
			if !strings.Contains(string(unit), want) {
				t.Errorf("unit lacks %q:\n%s", want, unit)
			}
		}
		if strings.Contains(string(unit), "ProtectProc") || strings.Contains(string(unit), "ProcSubset") {
			t.Error("the unit must not hide /proc from the agent")
		}
		if !strings.Contains(out, "agent healthy on :8090 as vmpulse-small") {
			t.Errorf("no health confirmation:\n%s", out)
		}
	})
	f.write(filepath.Join(f.headers, "linux-headers-6.8.0-1001-gcp"), "", 0o644)
	t.Run("reboot, nothing new", func(t *testing.T) {
		calls, out, err := f.boot(script, state, "6.8.0-1001-gcp", bundle1)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		hasNot(t, calls, "apt-get")
		hasNot(t, calls, "make ")
		hasNot(t, calls, "systemctl restart")
		has(t, calls, "systemctl start vmpulse-agent.service")
		for _, m := range mods {
			has(t, calls, "modprobe "+m+"\n")
		}
	})
	t.Run("kernel upgrade", func(t *testing.T) {
		calls, out, err := f.boot(script, state, "6.8.0-1002-gcp", bundle1)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, aptInstall+"linux-headers-6.8.0-1002-gcp")
		has(t, calls, "make -C "+f.src+"/kernel SUFFIX=_202201524 install\n")
		hasNot(t, calls, "rmmod")
	})
	f.write(filepath.Join(f.headers, "linux-headers-6.8.0-1002-gcp"), "", 0o644)
	t.Run("new bundle", func(t *testing.T) {
		calls, out, err := f.boot(script, state, "6.8.0-1002-gcp", bundle2)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, "systemctl stop vmpulse-agent.service")
		has(t, calls, "make -C "+f.src+"/kernel SUFFIX=_202201524 install\n")
		has(t, calls, "systemctl restart vmpulse-agent.service")
		b, _ := os.ReadFile(filepath.Join(f.bin, "vmpulse-agent"))
		if !strings.Contains(string(b), "agent v2") {
			t.Errorf("agent v2 not installed: %q", b)
		}
	})
	t.Run("bundle missing, agent installed", func(t *testing.T) {
		calls, out, err := f.boot(scriptNoWait, state, "6.8.0-1002-gcp", filepath.Join(f.tmp, "nowhere.tar.gz"))
		if err != nil {
			t.Fatalf("an installed agent must keep running: %v\n%s", err, out)
		}
		has(t, calls, "systemctl start vmpulse-agent.service")
		if !strings.Contains(out, "keeping the installed agent") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("bundle never arrives on a new VM", func(t *testing.T) {
		if err := os.Remove(filepath.Join(f.bin, "vmpulse-agent")); err != nil {
			t.Fatal(err)
		}
		calls, out, err := f.boot(scriptNoWait, filepath.Join(f.tmp, "state-fresh"), "6.8.0-1002-gcp", filepath.Join(f.tmp, "nowhere.tar.gz"))
		if err == nil {
			t.Fatalf("succeeded without an agent:\n%s", out)
		}
		if !strings.Contains(out, "run 'make vm-push'") {
			t.Errorf("the failure does not say what to do:\n%s", out)
		}
		has(t, calls, "--data no-bundle: ")
	})
}

// A module build that fails is reported loudly: an ERROR line in the journal,
// the guest attribute vmpulse/kmod saying so, and the agent still installed with
// EXPECT_KMOD=true (so its /healthz answers 503 and the dashboard shows /proc).
func TestStartupReportsAFailedModuleBuild(t *testing.T) {
	f := newVMFakes(t, true)
	bundle := f.bundle("bundle", "#!/bin/sh\necho agent\n")
	script := f.script("startup.sh", 1)
	calls, out, err := f.boot(script, filepath.Join(f.tmp, "state"), "6.8.0-1001-gcp", bundle, "FAKE_MAKE_FAILS=1")
	if err != nil {
		t.Fatalf("a failed module build must not stop the agent's install: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`ERROR: kernel modules not in use \(build-failed\)`).MatchString(out) {
		t.Errorf("no loud error for the failed build:\n%s", out)
	}
	has(t, calls, "--data build-failed: ")
	has(t, calls, "guest-attributes/vmpulse/kmod")
	hasNot(t, calls, "modprobe")
	has(t, calls, "systemctl restart vmpulse-agent.service")
	unit, _ := os.ReadFile(filepath.Join(f.units, "vmpulse-agent.service"))
	if !strings.Contains(string(unit), "Environment=EXPECT_KMOD=true\n") {
		t.Errorf("the agent is not told it should have kernel modules:\n%s", unit)
	}
}

// holdLock takes an fcntl (POSIX) lock on file, the kind dpkg and apt take, in a
// python3 process, and returns once the lock is held, with a function that
// releases it (and returns when it is released).
func holdLock(t *testing.T, file string) (release func()) {
	t.Helper()
	ready, done := file+".held", file+".release"
	_ = os.Remove(ready)
	_ = os.Remove(done)
	cmd := exec.Command("python3", "-c", `
import fcntl, os, sys, time, pathlib
f = open(sys.argv[1], "a")
fcntl.lockf(f, fcntl.LOCK_EX)
pathlib.Path(sys.argv[2]).touch()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
`, file, ready, done)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			t.Error(err)
		}
		_ = cmd.Wait()
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); release() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return release
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock holder did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// bootWatching boots like boot, and calls onLine with each line the script
// prints as it prints it.
func (f *vmFakes) bootWatching(script, stateDir, kver, bundle string, onLine func(string), env ...string) (calls, out string, err error) {
	f.t.Helper()
	_ = os.Remove(f.log)
	locks := filepath.Join(f.tmp, "lock-frontend") + " " + filepath.Join(f.tmp, "lists-lock")
	cmd := exec.Command("bash", script)
	cmd.Env = f.env(stateDir, locks, kver, bundle, env...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	var sb strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		sb.WriteString(sc.Text() + "\n")
		onLine(sc.Text())
	}
	err = cmd.Wait()
	b, _ := os.ReadFile(f.log)
	return string(b), sb.String(), err
}

// At a fresh VM's first boot, apt-daily or unattended-upgrades can hold the dpkg
// lock: the script must wait for it (and say so), then install; if it is held
// past the limit, say so loudly and go on (apt's own timeout then decides). The
// lock is held until the script reports that it waits (a broken copy that does
// not wait installs while it is still held).
func TestStartupScriptWaitsForTheDpkgLock(t *testing.T) {
	f := newVMFakes(t, false)
	bundle := f.bundle("bundle", "#!/bin/sh\necho agent\n")
	script := f.script("startup.sh", 0)
	lock := filepath.Join(f.tmp, "lock-frontend")
	if err := os.WriteFile(filepath.Join(f.tmp, "lists-lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// run boots with the lock held; releaseOnWait releases it when the script
	// says it waits. It returns when the lock was released and when apt-get ran.
	run := func(t *testing.T, script string, releaseOnWait bool, env ...string) (releasedAt, aptAt time.Time, out string) {
		t.Helper()
		_ = os.Remove(filepath.Join(f.tmp, "apt-get.at"))
		if err := os.WriteFile(lock, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		release := holdLock(t, lock)
		waited := false
		calls, out, err := f.bootWatching(script, t.TempDir(), "6.8.0-1001-gcp", bundle, func(line string) {
			if !waited && strings.Contains(line, "waiting for the dpkg/apt locks") {
				waited = true
				if releaseOnWait {
					time.Sleep(300 * time.Millisecond) // it keeps waiting meanwhile
					releasedAt = time.Now()
					release()
				}
			}
		}, append([]string{"VMPULSE_LOCK_POLL_SECONDS=0.1"}, env...)...)
		if releasedAt.IsZero() {
			releasedAt = time.Now()
			release()
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, aptInstall+"linux-headers-6.8.0-1001-gcp")
		b, err := os.ReadFile(filepath.Join(f.tmp, "apt-get.at"))
		if err != nil {
			t.Fatalf("apt-get never ran:\n%s", out)
		}
		ms, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return releasedAt, time.UnixMilli(ms), out
	}

	t.Run("waits until the lock is released", func(t *testing.T) {
		released, aptAt, out := run(t, script, true)
		if !strings.Contains(out, "waiting for the dpkg/apt locks") || !strings.Contains(out, lock) {
			t.Errorf("the wait is not reported:\n%s", out)
		}
		if aptAt.Before(released) {
			t.Errorf("apt-get ran %v before the lock was released", released.Sub(aptAt))
		}
	})
	t.Run("gives up loudly at the limit", func(t *testing.T) {
		_, _, out := run(t, script, false, "VMPULSE_LOCK_WAIT_SECONDS=1")
		if !strings.Contains(out, "ERROR: the dpkg/apt locks are still held after 1 s") {
			t.Errorf("no error at the limit:\n%s", out)
		}
	})
	t.Run("a script without the wait is caught", func(t *testing.T) {
		src, _ := os.ReadFile(script)
		broken := filepath.Join(f.tmp, "startup-nowait-lock.sh")
		if err := os.WriteFile(broken, []byte(strings.Replace(string(src), "  wait_for_dpkg || true\n", "", 1)), 0o755); err != nil {
			t.Fatal(err)
		}
		released, aptAt, out := run(t, broken, true)
		if strings.Contains(out, "waiting for the dpkg/apt locks") || !aptAt.Before(released) {
			t.Errorf("the broken copy still waited: the test would not catch a missing wait")
		}
	})
}

// The rendered script passes bash -n and shellcheck, and shellcheck is shown to
// catch the kind of mistake it is here for.
func TestStartupScriptShellcheck(t *testing.T) {
	bash := needTool(t, "bash", "bash -n checks the script")
	sc := needTool(t, "shellcheck", "apt-get install shellcheck (scripts/deps.sh installs it)")
	tmp := t.TempDir()
	script := filepath.Join(tmp, "startup.sh")
	src := renderTemplate(t, filepath.Join(dir(t), "templates", "vm-startup.sh.tftpl"), startupVars("_202201524", 60))
	if err := os.WriteFile(script, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
	if out, err := exec.Command(sc, "-s", "bash", script).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
	broken := filepath.Join(tmp, "broken.sh")
	if err := os.WriteFile(broken, []byte(strings.Replace(src, `rm -rf "$SRC" && mv "$SRC.new" "$SRC"`, `rm -rf $SRC && mv "$SRC.new" "$SRC"`, 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sc, "-s", "bash", broken).CombinedOutput(); err == nil {
		t.Errorf("shellcheck accepts an unquoted rm -rf $SRC:\n%s", out)
	}
}

// seed-secret.sh gives the ingest token's secret its first version only when it
// has none, from /dev/urandom through a pipe: never an argument, never printed.
func TestSeedSecretScript(t *testing.T) {
	needTool(t, "bash", "seed-secret.sh is a bash script")
	tmp := t.TempDir()
	logFile := filepath.Join(tmp, "calls")
	data := filepath.Join(tmp, "data")
	fake := filepath.Join(tmp, "gcloud")
	if err := os.WriteFile(fake, []byte(`#!/bin/sh
echo "gcloud $*" >> '`+logFile+`'
case "$*" in
  "secrets versions list"*) [ -n "$FAKE_EXISTING" ] && echo projects/p/secrets/s/versions/1 ;;
  "secrets versions add"*) cat > '`+data+`' ;;
esac
exit 0
`), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir(t), "scripts", "seed-secret.sh")
	run := func(env ...string) (string, string) {
		t.Helper()
		_ = os.Remove(logFile)
		cmd := exec.Command("bash", script)
		cmd.Env = append(append(os.Environ(), "GCLOUD="+fake, "PROJECT=demo-project-42", "SECRET=vmpulse-ingest-token"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		calls, _ := os.ReadFile(logFile)
		return string(calls), string(out)
	}
	calls, out := run()
	has(t, calls, "gcloud secrets versions list vmpulse-ingest-token --project demo-project-42 --filter=state=ENABLED")
	has(t, calls, "gcloud secrets versions add vmpulse-ingest-token --project demo-project-42 --data-file=-")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSuffix(string(b), "\n")
	if !regexp.MustCompile(`^[A-Za-z0-9]{32,}$`).MatchString(token) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("the first version is not one line of 32+ letters and digits: %q", b)
	}
	if strings.Contains(calls, token) || strings.Contains(out, token) {
		t.Error("the token appears in gcloud's arguments or the output")
	}
	// Again, with a version there: nothing is added (a rotation is never undone).
	_ = os.Remove(data)
	calls, out = run("FAKE_EXISTING=1")
	hasNot(t, calls, "versions add")
	if !strings.Contains(out, "already has an enabled version") {
		t.Errorf("output:\n%s", out)
	}
	// Two runs make two different tokens.
	_, _ = run()
	b2, _ := os.ReadFile(data)
	if strings.TrimSpace(string(b2)) == token {
		t.Error("two seeds made the same token")
	}
}
