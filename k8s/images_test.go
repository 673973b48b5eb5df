package k8s

// Offline checks of the three Dockerfiles (no Docker engine here: they are parsed,
// and what they build is built with the local Go toolchain), of the Cloud Build
// configuration that builds them in the cloud, of the make targets in deploy.mk,
// and of deploy.sh (run against fakes of kubectl and gcloud).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerImage is one image of the deployment.
type dockerImage struct {
	dockerfile string // relative to the repository root
	binary     string // /out/<binary> in the build stage, /<binary> in the image
	pkg        string // the Go main package it builds
}

var dockerImages = []dockerImage{
	{"functions/cmd/vmpulse-route/Dockerfile", "vmpulse-route", "./functions/cmd/vmpulse-route"},
	{"functions/cmd/vmpulse-relay/Dockerfile", "vmpulse-relay", "./functions/cmd/vmpulse-relay"},
	{"frontend/Dockerfile", "vmpulse-web", "./frontend/cmd/vmpulse-web"},
}

// ---- a Dockerfile parser, enough for these files -------------------------------

type instruction struct {
	line int
	cmd  string // upper case
	args string // continuation lines joined
}

type stage struct {
	index int
	base  string // image reference or earlier stage name
	name  string // AS name, "" if none
	insts []instruction
}

func parseDockerfile(src string) ([]stage, error) {
	var insts []instruction
	sc := bufio.NewScanner(strings.NewReader(src))
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // comments and blank lines, also inside continuations
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		fields := strings.SplitN(cur.String(), " ", 2)
		in := instruction{line: start, cmd: strings.ToUpper(fields[0])}
		if len(fields) == 2 {
			in.args = strings.TrimSpace(fields[1])
		}
		insts = append(insts, in)
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: unterminated continuation", start)
	}
	var stages []stage
	for _, in := range insts {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			s := stage{index: len(stages)}
			switch {
			case len(f) == 1:
				s.base = f[0]
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				s.base, s.name = f[0], f[2]
			default:
				return nil, fmt.Errorf("line %d: FROM %s", in.line, in.args)
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("line %d: %s before FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].insts = append(stages[len(stages)-1].insts, in)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// pinned reports whether an image reference names a tag other than latest, or a
// digest.
func pinned(ref string) (bool, string) {
	if strings.Contains(ref, "@sha256:") {
		return true, "digest"
	}
	lastSlash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon <= lastSlash {
		return false, "no tag (means latest)"
	}
	tag := ref[colon+1:]
	if tag == "latest" || tag == "" {
		return false, "tag " + tag
	}
	return true, tag
}

// execArgs reads a JSON exec-form argument list (ENTRYPOINT ["..."]).
func execArgs(s string) ([]string, error) {
	var a []string
	err := json.Unmarshal([]byte(s), &a)
	return a, err
}

var (
	secretName  = regexp.MustCompile(`(?i)(passw|secret|token|api_?key|credential|private_?key|access_?key)`)
	secretValue = regexp.MustCompile(`(?i)(-----BEGIN|AKIA[0-9A-Z]{16}|ya29\.|ghp_[A-Za-z0-9]{20}|xox[bp]-)`)
)

// goModVersion is the go line of go.mod.
func goModVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

func TestDockerfiles(t *testing.T) {
	root := repoRoot(t)
	goVersion := goModVersion(t, root)
	goBin := needTool(t, "go", "the Go toolchain builds what the Dockerfiles build")

	for _, im := range dockerImages {
		t.Run(im.binary, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(root, im.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			stages, err := parseDockerfile(string(src))
			if err != nil {
				t.Fatalf("%s: %v", im.dockerfile, err)
			}
			names := map[string]*stage{}
			var goStage *stage
			for i := range stages {
				s := &stages[i]
				if _, isStage := names[s.base]; !isStage && s.base != "scratch" {
					if ok, why := pinned(s.base); !ok {
						t.Errorf("FROM %s is not pinned: %s", s.base, why)
					}
				}
				if s.name != "" {
					names[s.name] = s
				}
				for _, in := range s.insts {
					switch in.cmd {
					case "ENV", "ARG":
						for _, kv := range strings.Fields(in.args) {
							k, v, _ := strings.Cut(kv, "=")
							if secretName.MatchString(k) || secretValue.MatchString(v) {
								t.Errorf("line %d: %s %s looks like a secret; images carry none", in.line, in.cmd, kv)
							}
						}
					case "RUN":
						if strings.Contains(in.args, "go build") {
							goStage = s
						}
					case "COPY", "ADD":
						if in.cmd == "ADD" {
							t.Errorf("line %d: ADD; use COPY", in.line)
						}
						if !strings.Contains(in.args, "--from=") {
							f := strings.Fields(in.args)
							for _, p := range f[:len(f)-1] {
								if strings.HasPrefix(p, "--") {
									continue
								}
								if _, err := os.Stat(filepath.Join(root, p)); err != nil {
									t.Errorf("line %d: COPY source %s does not exist in the build context", in.line, p)
								}
							}
						}
					}
				}
			}

			// The Go stage: the toolchain of go.mod, the brief's build command.
			if goStage == nil {
				t.Fatal("no stage runs go build")
			}
			if want := "golang:" + goVersion + "-"; !strings.HasPrefix(goStage.base, want) {
				t.Errorf("Go stage FROM %s, want %s* (go.mod says go %s; the image sets GOTOOLCHAIN=local)", goStage.base, want, goVersion)
			}
			var build string
			for _, in := range goStage.insts {
				if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
					build = in.args
				}
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'", "-o /out/" + im.binary + " ", " " + im.pkg} {
				if !strings.Contains(build+" ", want) {
					t.Errorf("go build %q lacks %q", build, want)
				}
			}
			if !strings.HasSuffix(strings.TrimSpace(build), im.pkg) {
				t.Errorf("go build %q does not end with the package %s", build, im.pkg)
			}
			// What the image builds must build. A missing package fails here, in CI
			// too: an image of nothing is not an image.
			if _, err := os.Stat(filepath.Join(root, im.pkg)); err != nil {
				t.Fatalf("package %s does not exist (yet?): %v", im.pkg, err)
			}
			if out, stderr, err := tryRun(root, []string{"CGO_ENABLED=0"}, nil, goBin, "build", "-o", os.DevNull, im.pkg); err != nil {
				t.Errorf("go build %s: %v\n%s%s", im.pkg, err, out, stderr)
			}

			// The runtime stage: distroless (or scratch), non-root, running the binary.
			final := stages[len(stages)-1]
			if final.base != "scratch" && !strings.HasPrefix(final.base, "gcr.io/distroless/static") {
				t.Errorf("runtime FROM %s, want gcr.io/distroless/static* or scratch", final.base)
			}
			var user, entry string
			var copied []string
			for _, in := range final.insts {
				switch in.cmd {
				case "USER":
					user = in.args
				case "ENTRYPOINT", "CMD":
					if in.cmd == "ENTRYPOINT" {
						entry = in.args
					}
				case "COPY":
					f := strings.Fields(in.args)
					if strings.HasPrefix(f[0], "--from=") && len(f) == 3 {
						from := strings.TrimPrefix(f[0], "--from=")
						if _, ok := names[from]; !ok {
							t.Errorf("line %d: COPY --from=%s names no earlier stage", in.line, from)
						}
						copied = append(copied, f[1]+" -> "+f[2])
					}
				case "RUN":
					t.Errorf("line %d: RUN in the runtime stage (distroless has no shell)", in.line)
				}
			}
			uid, _, _ := strings.Cut(user, ":")
			if user == "" || uid == "root" || uid == "0" {
				t.Errorf("runtime stage USER %q: must be set and not root", user)
			} else if n, err := strconv.Atoi(uid); err != nil && uid != "nonroot" {
				t.Errorf("USER %q: use a numeric UID (or distroless's nonroot) so that runAsNonRoot can verify it", user)
			} else if err == nil && n < 1000 {
				t.Errorf("USER %q: pick a UID of 1000 or more", user)
			}
			if !slices.Contains(copied, "/out/"+im.binary+" -> /"+im.binary) {
				t.Errorf("runtime stage does not COPY --from the build stage /out/%s to /%s (has %v)", im.binary, im.binary, copied)
			}
			args, err := execArgs(entry)
			if err != nil || len(args) != 1 || args[0] != "/"+im.binary {
				t.Errorf("ENTRYPOINT %s, want [\"/%s\"] in exec form (signals reach the binary)", entry, im.binary)
			}
			if !slices.ContainsFunc(final.insts, func(in instruction) bool { return in.cmd == "EXPOSE" && in.args == "8080" }) {
				t.Errorf("runtime stage does not EXPOSE 8080 (the port of k8s/ and terraform/run.tf)")
			}
		})
	}
}

// The dashboard image: npm ci && npm run build in a Node stage of a maintained
// LTS line (22; 20 reached its end of life) that satisfies package.json and the
// locked packages' engines, the bundle where the server looks for it.
func TestFrontendDockerfileBuildsTheBundle(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "frontend", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages, err := parseDockerfile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	node := stages[0]
	var pkg struct {
		Engines struct {
			Node string `json:"node"`
		} `json:"engines"`
		Scripts map[string]string `json:"scripts"`
	}
	b, err := os.ReadFile(filepath.Join(root, "frontend", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Scripts["build"] == "" {
		t.Error("package.json has no build script")
	}
	engines := []string{pkg.Engines.Node}
	lock, err := os.ReadFile(filepath.Join(root, "frontend", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"node": "([^"]+)"`).FindAllStringSubmatch(string(lock), -1) {
		engines = append(engines, m[1])
	}
	if err := checkNodeStage(node.base, engines); err != nil {
		t.Error(err)
	}
	// The check refuses what it is for.
	for _, bad := range []string{"node:20.20-bookworm-slim", "node:22.11-bookworm-slim", "node:latest", "node:22-bookworm-slim"} {
		if err := checkNodeStage(bad, engines); err == nil {
			t.Errorf("checkNodeStage accepts %s", bad)
		}
	}
	var runs []string
	for _, in := range node.insts {
		if in.cmd == "RUN" {
			runs = append(runs, in.args)
		}
	}
	joined := strings.Join(runs, "\n")
	if !strings.Contains(joined, "npm ci") || !strings.Contains(joined, "npm run build") {
		t.Errorf("node stage runs %q, want npm ci and npm run build", runs)
	}
	final := stages[len(stages)-1]
	webDir := ""
	hasDist := false
	for _, in := range final.insts {
		if in.cmd == "ENV" && strings.HasPrefix(in.args, "WEB_DIR=") {
			webDir = strings.TrimPrefix(in.args, "WEB_DIR=")
		}
		if in.cmd == "COPY" && strings.Contains(in.args, "--from="+node.name+" ") && strings.Contains(in.args, "/dist ") {
			f := strings.Fields(in.args)
			hasDist = f[len(f)-1] == "/srv/dist"
		}
	}
	if !hasDist || webDir != "/srv/dist" {
		t.Errorf("runtime stage: want the bundle copied to /srv/dist and WEB_DIR=/srv/dist, have copy=%v WEB_DIR=%q", hasDist, webDir)
	}
}

// minNodeMajor is the oldest Node.js line that is still maintained.
const minNodeMajor = 22

// checkNodeStage: the base is node:MAJOR.MINOR-… of a maintained line, and every
// engines range ("^20.19.0 || >=22.12.0", ">=20.19") admits that version.
func checkNodeStage(base string, engines []string) error {
	m := regexp.MustCompile(`^node:(\d+)\.(\d+)(?:\.\d+)?-`).FindStringSubmatch(base)
	if m == nil {
		return fmt.Errorf("Node stage FROM %s, want node:MAJOR.MINOR-…", base)
	}
	have := [2]int{atoi(m[1]), atoi(m[2])}
	if have[0] < minNodeMajor {
		return fmt.Errorf("Node stage %s: Node %d is past its end of life; use %d or newer", base, have[0], minNodeMajor)
	}
	for _, e := range engines {
		ok := false
		for _, alt := range strings.Split(e, "||") {
			alt = strings.TrimSpace(alt)
			r := regexp.MustCompile(`^(\^|>=)\s*(\d+)(?:\.(\d+))?`).FindStringSubmatch(alt)
			if r == nil {
				ok = true // a form this check does not read
				break
			}
			want := [2]int{atoi(r[2]), atoi(r[3])}
			switch r[1] {
			case "^":
				ok = ok || (have[0] == want[0] && have[1] >= want[1])
			case ">=":
				ok = ok || have[0] > want[0] || (have[0] == want[0] && have[1] >= want[1])
			}
		}
		if !ok {
			return fmt.Errorf("Node stage %s does not satisfy engines %q", base, e)
		}
	}
	return nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestDockerfileParserAndPinning(t *testing.T) {
	stages, err := parseDockerfile("# c\nFROM golang:1.26 AS b\nRUN a \\\n  # inner comment\n  b\nFROM b\nUSER 1:1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 || stages[0].name != "b" || stages[0].insts[0].args != "a  b" || stages[1].base != "b" {
		t.Errorf("parsed %+v", stages)
	}
	for ref, want := range map[string]bool{
		"golang:1.26.8-bookworm": true, "gcr.io/distroless/static-debian12:nonroot": true,
		"node@sha256:abc": true, "node": false, "node:latest": false, "localhost:5000/x": false,
		"localhost:5000/x:1": true,
	} {
		if got, _ := pinned(ref); got != want {
			t.Errorf("pinned(%s) = %v, want %v", ref, got, want)
		}
	}
	if _, err := parseDockerfile("RUN x\n"); err == nil {
		t.Error("RUN before FROM accepted")
	}
}

// ---- deploy.mk -------------------------------------------------------------------------

func makeDryRun(t *testing.T, args ...string) string {
	t.Helper()
	root := repoRoot(t)
	makeBin := needTool(t, "make", "make runs k8s/deploy.mk")
	a := append([]string{"--no-print-directory", "-n", "-f", filepath.Join(root, "k8s", "deploy.mk")}, args...)
	return string(run(t, root, nil, nil, makeBin, a...))
}

// `make images` and `make push` build and push exactly the three images, each
// from its Dockerfile with the repository root as the context, under the names
// terraform and the kustomization expect.
func TestMakeImagesAndPush(t *testing.T) {
	root := repoRoot(t)
	out := makeDryRun(t, "images", "push", "REGISTRY=docker.io/example", "TAG=abc1234")
	builds := regexp.MustCompile(`docker build --platform linux/amd64 -f (\S+) -t (\S+) (\S+)`).FindAllStringSubmatch(out, -1)
	if len(builds) != len(dockerImages) {
		t.Fatalf("make images runs %d docker builds, want %d:\n%s", len(builds), len(dockerImages), out)
	}
	for i, b := range builds {
		im := dockerImages[i]
		if b[1] != filepath.Join(root, im.dockerfile) {
			t.Errorf("build %d: -f %s, want %s", i, b[1], im.dockerfile)
		}
		if want := "docker.io/example/" + im.binary + ":abc1234"; b[2] != want {
			t.Errorf("build %d: -t %s, want %s", i, b[2], want)
		}
		if b[3] != root {
			t.Errorf("build %d: context %s, want the repository root", i, b[3])
		}
		if !strings.Contains(out, "docker push docker.io/example/"+im.binary+":abc1234") {
			t.Errorf("make push does not push %s", im.binary)
		}
	}
	// The names the deployment pulls: terraform's images, and the overlay's
	// images entries, which must name the base's placeholders to replace them.
	tf, err := os.ReadFile(filepath.Join(root, "terraform", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vmpulse-relay", "vmpulse-web", "vmpulse-route"} {
		if !strings.Contains(string(tf), "${local.image_registry}/"+name+":${local.image_tag}") {
			t.Errorf("terraform/main.tf does not pull %s from local.image_registry", name)
		}
	}
	tpl, err := os.ReadFile(filepath.Join(root, "terraform", "templates", "k8s-overlay.yaml.tftpl"))
	if err != nil {
		t.Fatal(err)
	}
	imgs := kustomizeImages(t, filepath.Join(root, "k8s", "kustomization.yaml"))
	for _, placeholder := range []string{"registry.invalid/vmpulse/vmpulse-route:unset", "registry.invalid/dockerhub/library/mysql:8.4"} {
		if !imgs[placeholder] {
			t.Errorf("k8s/kustomization.yaml has no image placeholder %s (%v)", placeholder, keys(imgs))
		}
		name := placeholder[:strings.LastIndex(placeholder, ":")]
		if !strings.Contains(string(tpl), "- name: "+name+"\n") {
			t.Errorf("the overlay template does not replace %s", name)
		}
	}
}

func TestMakeRefusesUnsetRegistryAndLatest(t *testing.T) {
	root := repoRoot(t)
	makeBin := needTool(t, "make", "make runs k8s/deploy.mk")
	mk := filepath.Join(root, "k8s", "deploy.mk")
	for _, args := range [][]string{
		{"REGISTRY=docker.io/", "TAG=abc"},
		{"DOCKERHUB_USER=", "TAG=abc"},
		{"REGISTRY=docker.io/example", "TAG=latest"},
	} {
		a := append([]string{"--no-print-directory", "-f", mk, "vmp-check-registry"}, args...)
		if _, _, err := tryRun(root, nil, nil, makeBin, a...); err == nil {
			t.Errorf("make %v: accepted", args)
		}
	}
	a := []string{"--no-print-directory", "-f", mk, "vmp-check-registry", "DOCKERHUB_USER=example", "TAG=abc"}
	if _, stderr, err := tryRun(root, nil, nil, makeBin, a...); err != nil {
		t.Errorf("make %v: %v %s", a, err, stderr)
	}
}

func TestMakeTfCheckAndRunDeploy(t *testing.T) {
	root := repoRoot(t)
	out := makeDryRun(t, "tf-check")
	if !strings.Contains(out, "terraform fmt -check -recursive "+filepath.Join(root, "terraform")+"/") {
		t.Errorf("make tf-check runs:\n%s", out)
	}
	tfo := func(name string) string {
		return "$(terraform -chdir=" + filepath.Join(root, "terraform") + " output -raw " + name + ")"
	}
	out = makeDryRun(t, "run-deploy", "TAG=abc1234")
	for _, want := range []string{
		// The relay has a metrics sidecar: the image goes to the relay container.
		`gcloud run deploy "` + tfo("relay_service_name") + `" --container relay --image "` + tfo("image_registry") + `/vmpulse-relay:abc1234"`,
		`gcloud run deploy "` + tfo("web_service_name") + `" --image "` + tfo("image_registry") + `/vmpulse-web:abc1234"`,
		`--region "` + tfo("region") + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("make run-deploy lacks %q:\n%s", want, out)
		}
	}
	out = makeDryRun(t, "release", "TAG=abc1234")
	for _, want := range []string{"terraform/scripts/build-images.sh", "run-deploy TAG=abc1234", "k8s/deploy.sh release", "/vmpulse-route:abc1234"} {
		if !strings.Contains(out, want) {
			t.Errorf("make release lacks %q:\n%s", want, out)
		}
	}
	for target, want := range map[string]string{"k8s-apply": "k8s/deploy.sh apply", "db-grant": "k8s/deploy.sh grant", "teardown": " destroy", "deploy": " apply"} {
		if out := makeDryRun(t, target); !strings.Contains(out, want) {
			t.Errorf("make %s does not run %q:\n%s", target, want, out)
		}
	}
	// Every output the make targets read exists.
	outputs, err := os.ReadFile(filepath.Join(root, "terraform", "outputs.tf"))
	if err != nil {
		t.Fatal(err)
	}
	mk, _ := os.ReadFile(filepath.Join(root, "k8s", "deploy.mk"))
	used := regexp.MustCompile(`VMP_TFO,([a-z][a-z0-9_]*)\)`).FindAllStringSubmatch(string(mk), -1)
	if len(used) < 10 {
		t.Fatalf("found only %d terraform outputs used by deploy.mk", len(used))
	}
	for _, u := range used {
		if !strings.Contains(string(outputs), `output "`+u[1]+`"`) {
			t.Errorf("deploy.mk reads terraform output %s, which outputs.tf does not define", u[1])
		}
	}
}

// `make vm-bundle` packs what the VM's startup script expects: a static
// linux/amd64 agent at bin/vmpulse-agent and the kernel module sources (no build
// products) under kernel/.
func TestMakeVMBundle(t *testing.T) {
	root := repoRoot(t)
	makeBin := needTool(t, "make", "make runs k8s/deploy.mk")
	needTool(t, "tar", "the bundle is a tarball")
	out := t.TempDir()
	run(t, root, nil, nil, makeBin, "--no-print-directory", "-f", filepath.Join(root, "k8s", "deploy.mk"), "vm-bundle", "VMP_OUT="+out)
	list := string(run(t, root, nil, nil, "tar", "-tzf", filepath.Join(out, "vmpulse-agent-bundle.tar.gz")))
	for _, want := range []string{"bin/vmpulse-agent\n", "kernel/Makefile\n", "kernel/cpu_so1.c\n", "kernel/ram_so1.c\n", "kernel/procesos_so1.c\n"} {
		if !strings.Contains(list, want) {
			t.Errorf("bundle lacks %s:\n%s", strings.TrimSpace(want), list)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(list), "\n") {
		if regexp.MustCompile(`\.(ko|o|mod|mod\.c|cmd)$|Module\.symvers$|modules\.order$`).MatchString(l) {
			t.Errorf("bundle carries a build product: %s", l)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "vm-bundle", "bin", "vmpulse-agent"))
	if err != nil {
		t.Fatal(err)
	}
	// ELF, 64-bit, little-endian, x86-64, and statically linked (no PT_INTERP).
	if len(b) < 64 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 || b[18] != 0x3e {
		t.Fatal("the agent is not an x86-64 ELF binary")
	}
	if strings.Contains(string(b[:4096]), "/lib64/ld-linux") {
		t.Error("the agent is dynamically linked; the VM bundle needs CGO_ENABLED=0")
	}
}

// The top-level Makefile includes deploy.mk; that must not make one of its
// targets the default goal, whether the include comes first or last.
func TestDeployMkKeepsTheDefaultGoal(t *testing.T) {
	root := repoRoot(t)
	makeBin := needTool(t, "make", "make runs k8s/deploy.mk")
	mk := filepath.Join(root, "k8s", "deploy.mk")
	for name, body := range map[string]string{
		"include first": "include " + mk + "\nall:\n\t@echo DEFAULT\n",
		"include last":  "all:\n\t@echo DEFAULT\ninclude " + mk + "\n",
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, "Makefile"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := string(run(t, d, nil, nil, makeBin, "--no-print-directory")); strings.TrimSpace(out) != "DEFAULT" {
			t.Errorf("%s: make ran %q, want the includer's default goal", name, out)
		}
	}
}
