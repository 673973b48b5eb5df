package k8s

// k8s/deploy.sh against fakes of kubectl and gcloud (no cluster here): what it
// runs and in which order, that every wait has a timeout, that a GRANT Job that
// fails or never finishes ends the deploy with its logs, that a re-run starts by
// deleting the finished Job (never AlreadyExists), and that teardown waits until
// the load balancer's leftovers are gone. Also terraform/cloudbuild.yaml and
// terraform/scripts/build-images.sh, which build the images in the cloud.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// deployFakes writes fake kubectl and gcloud into a directory and returns it and
// the file they log their arguments to (one call per line).
//
// kubectl: `get job` prints $FAKE_JOB_STATE (Complete, Failed or nothing); the
// first $FAKE_APPLY_FAILS `apply` calls fail; everything else succeeds.
// gcloud: get-credentials writes $KUBECONFIG; each `compute … list` prints a
// leftover name while the counter file allows ($FAKE_LEFTOVER_ROUNDS rounds).
func deployFakes(t *testing.T) (dir, logFile string) {
	t.Helper()
	dir = t.TempDir()
	logFile = filepath.Join(dir, "calls.log")
	realKubectl, err := exec.LookPath("kubectl")
	if err != nil {
		realKubectl = "false"
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("kubectl", `#!/bin/bash
echo "kubectl $* [KUBECONFIG=$KUBECONFIG]" >> '`+logFile+`'
case "$*" in
  *"get job"*) printf '%s' "${FAKE_JOB_STATE:-}" ;;
  "apply "*)
    n=$(cat '`+dir+`/applies' 2>/dev/null || echo 0); echo $((n+1)) > '`+dir+`/applies'
    [ "$n" -ge "${FAKE_APPLY_FAILS:-0}" ] || { echo "no matches for kind PodMonitoring" >&2; exit 1; } ;;
  "kustomize "*) exec '`+realKubectl+`' "$@" ;;
  *"logs "*) echo "GRANT SELECT, INSERT ON vmpulse.* TO vmpulse-route" ;;
esac
exit 0
`)
	write("gcloud", `#!/bin/bash
echo "gcloud $*" >> '`+logFile+`'
case "$*" in
  "container clusters get-credentials"*) [ -n "${FAKE_NO_CLUSTER:-}" ] && exit 1; echo "apiVersion: v1" > "$KUBECONFIG" ;;
  "compute "*" list"*)
    n=$(cat '`+dir+`/rounds' 2>/dev/null || echo 0)
    case "$*" in *forwarding-rules*) echo $((n+1)) > '`+dir+`/rounds' ;; esac
    if [ "$n" -lt "${FAKE_LEFTOVER_ROUNDS:-0}" ]; then
      case "$*" in *forwarding-rules*) echo gkegw1-fr ;; *network-endpoint-groups*) echo k8s1-neg-route1 ;; esac
    fi ;;
esac
exit 0
`)
	return dir, logFile
}

func runDeploy(t *testing.T, fakes string, env []string, args ...string) (calls, out string, err error) {
	t.Helper()
	needTool(t, "bash", "deploy.sh is a bash script")
	root := repoRoot(t)
	base := []string{"PATH=" + fakes + ":" + os.Getenv("PATH"), "KUBECTL=" + filepath.Join(fakes, "kubectl"), "GCLOUD=" + filepath.Join(fakes, "gcloud"),
		"PROJECT=demo-project-42", "REGION=us-central1", "CLUSTER=vmpulse-gke", "POLL_SECONDS=0"}
	stdout, stderr, err := tryRun(root, append(base, env...), nil, "bash", append([]string{filepath.Join(root, "k8s", "deploy.sh")}, args...)...)
	b, _ := os.ReadFile(filepath.Join(fakes, "calls.log"))
	return string(b), string(stdout) + string(stderr), err
}

// order reports whether the calls contain each want in this order.
func inOrder(calls string, want ...string) bool {
	pos := 0
	for _, w := range want {
		i := strings.Index(calls[pos:], w)
		if i < 0 {
			return false
		}
		pos += i + len(w)
	}
	return true
}

func TestDeployScriptApply(t *testing.T) {
	needTool(t, "kubectl", "kubectl renders the overlay")
	root := repoRoot(t)
	vals := overlayVars(false, capacityProfiles(t)["medium"])
	overlay := string(renderTemplate(t, filepath.Join(root, "terraform", "templates", "k8s-overlay.yaml.tftpl"), vals))
	tree := deployTree(t, nil)
	outDir := filepath.Join(tree, "out", "k8s")
	script := filepath.Join(tree, "k8s", "deploy.sh")

	run := func(t *testing.T, env ...string) (string, string, error) {
		t.Helper()
		fakes, _ := deployFakes(t)
		base := []string{"PATH=" + fakes + ":" + os.Getenv("PATH"), "KUBECTL=" + filepath.Join(fakes, "kubectl"), "GCLOUD=" + filepath.Join(fakes, "gcloud"),
			"PROJECT=demo-project-42", "REGION=us-central1", "CLUSTER=vmpulse-gke", "POLL_SECONDS=0",
			"K8S_OVERLAY=" + overlay, "OUT_DIR=" + outDir}
		stdout, stderr, err := tryRun(tree, append(base, env...), nil, "bash", script, "apply")
		b, _ := os.ReadFile(filepath.Join(fakes, "calls.log"))
		return string(b), string(stdout) + string(stderr), err
	}

	t.Run("first deploy", func(t *testing.T) {
		calls, out, err := run(t, "FAKE_JOB_STATE=Complete", "FAKE_APPLY_FAILS=2")
		if err != nil {
			t.Fatalf("%v\n%s\n%s", err, out, calls)
		}
		written, err := os.ReadFile(filepath.Join(outDir, "kustomization.yaml"))
		if err != nil || strings.TrimSpace(string(written)) != strings.TrimSpace(overlay) {
			t.Errorf("the overlay was not written to %s", outDir)
		}
		if !inOrder(calls,
			"gcloud container clusters get-credentials vmpulse-gke --region us-central1 --project demo-project-42",
			"kubectl -n so1-fase2 delete job vmpulse-db-grant --ignore-not-found --wait=true",
			"kubectl apply -k "+outDir, "kubectl apply -k "+outDir, "kubectl apply -k "+outDir,
			"get job vmpulse-db-grant",
			"rollout status deployment/route1 --timeout=15m", "rollout status deployment/route2 --timeout=15m",
			"wait --for=condition=Programmed gateway/vmpulse --timeout=20m") {
			t.Errorf("calls out of order or missing:\n%s", calls)
		}
		// kubectl never used the operator's own kubeconfig.
		for _, l := range strings.Split(strings.TrimSpace(calls), "\n") {
			if strings.HasPrefix(l, "kubectl ") && !strings.HasPrefix(l, "kubectl kustomize") && !regexp.MustCompile(`\[KUBECONFIG=/tmp/[^\]]+/kubeconfig\]$`).MatchString(l) {
				t.Errorf("kubectl ran without the deploy's own kubeconfig: %s", l)
			}
		}
	})
	t.Run("GRANT fails", func(t *testing.T) {
		calls, out, err := run(t, "FAKE_JOB_STATE=Failed")
		if err == nil {
			t.Fatalf("succeeded:\n%s", out)
		}
		if !strings.Contains(out, "the GRANT Job failed") || !strings.Contains(calls, "logs job/vmpulse-db-grant") {
			t.Errorf("the failure does not show the Job's logs:\n%s\n%s", out, calls)
		}
		if strings.Contains(calls, "rollout status") {
			t.Error("went on to the routes after the GRANT failed")
		}
	})
	t.Run("GRANT never finishes", func(t *testing.T) {
		_, out, err := run(t, "FAKE_JOB_STATE=", "JOB_TIMEOUT_SECONDS=1", "POLL_SECONDS=1")
		if err == nil || !strings.Contains(out, "did not finish within 1 s") {
			t.Errorf("want a timeout naming the Job, got %v:\n%s", err, out)
		}
	})
	t.Run("apply keeps failing", func(t *testing.T) {
		_, out, err := run(t, "FAKE_JOB_STATE=Complete", "FAKE_APPLY_FAILS=99", "APPLY_ATTEMPTS=3")
		if err == nil || !strings.Contains(out, "kept failing") {
			t.Errorf("want a failure after 3 attempts, got %v:\n%s", err, out)
		}
	})
	t.Run("no overlay", func(t *testing.T) {
		fakes, _ := deployFakes(t)
		_, out, err := runDeploy(t, fakes, []string{"OUT_DIR=" + t.TempDir()}, "apply")
		if err == nil || !strings.Contains(out, "no overlay") {
			t.Errorf("want a refusal without an overlay, got %v:\n%s", err, out)
		}
	})
	// The default waits are the documented ones (a fresh Autopilot node takes
	// minutes; kubectl's own default of one minute is what issue 12 hit).
	src, err := os.ReadFile(filepath.Join(root, "k8s", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`JOB_TIMEOUT_SECONDS="${JOB_TIMEOUT_SECONDS:-900}"`, `ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-15m}"`, `GATEWAY_TIMEOUT="${GATEWAY_TIMEOUT:-20m}"`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("deploy.sh lacks the default %s", want)
		}
	}
}

func TestDeployScriptReleaseAndTeardown(t *testing.T) {
	t.Run("release", func(t *testing.T) {
		fakes, _ := deployFakes(t)
		img := "us-central1-docker.pkg.dev/demo-project-42/vmpulse-images/vmpulse-route:abc"
		calls, out, err := runDeploy(t, fakes, []string{"ROUTE_IMAGE=" + img}, "release")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !inOrder(calls, "set image deployment/route1 route="+img, "set image deployment/route2 route="+img,
			"rollout status deployment/route1", "rollout status deployment/route2") {
			t.Errorf("calls:\n%s", calls)
		}
	})
	env := []string{"NETWORK=vmpulse-vpc", "ADDRESS=34.1.2.3"}
	t.Run("teardown waits for the load balancer", func(t *testing.T) {
		fakes, _ := deployFakes(t)
		calls, out, err := runDeploy(t, fakes, append(env, "FAKE_LEFTOVER_ROUNDS=2"), "delete")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !inOrder(calls, "kubectl delete namespace so1-fase2 --ignore-not-found --wait=true --timeout=10m",
			"forwarding-rules list --project demo-project-42 --global --filter=IPAddress=34.1.2.3",
			"network-endpoint-groups list", "firewall-rules list") {
			t.Errorf("calls:\n%s", calls)
		}
		if n := strings.Count(calls, "forwarding-rules list"); n != 3 {
			t.Errorf("listed the leftovers %d times, want 3 (two rounds with leftovers, then none)", n)
		}
		if !strings.Contains(out, "waiting for GKE to remove: gkegw1-fr k8s1-neg-route1") || !strings.Contains(out, "are gone") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("teardown gives up with the names", func(t *testing.T) {
		fakes, _ := deployFakes(t)
		_, out, err := runDeploy(t, fakes, append(env, "FAKE_LEFTOVER_ROUNDS=99", "GONE_TIMEOUT_SECONDS=1", "POLL_SECONDS=1"), "delete")
		if err == nil || !strings.Contains(out, "still there after 1 s") || !strings.Contains(out, "k8s1-neg-route1") {
			t.Errorf("want a timeout naming the leftovers, got %v:\n%s", err, out)
		}
	})
	t.Run("teardown after the cluster is gone", func(t *testing.T) {
		fakes, _ := deployFakes(t)
		calls, out, err := runDeploy(t, fakes, append(env, "FAKE_NO_CLUSTER=1"), "delete")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if strings.Contains(calls, "kubectl delete") || !strings.Contains(calls, "forwarding-rules list") {
			t.Errorf("calls:\n%s", calls)
		}
	})
	t.Run("shellcheck", func(t *testing.T) {
		sc := needTool(t, "shellcheck", "apt-get install shellcheck")
		run(t, repoRoot(t), nil, nil, sc, "-s", "bash", filepath.Join(repoRoot(t), "k8s", "deploy.sh"))
	})
}

// cloudBuild is the part of a Cloud Build configuration this repository uses.
type cloudBuild struct {
	Steps []struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		Entrypoint string   `json:"entrypoint"`
		Args       []string `json:"args"`
		Env        []string `json:"env"`
		WaitFor    []string `json:"waitFor"`
	} `json:"steps"`
	Images    []string `json:"images"`
	Artifacts struct {
		Objects struct {
			Location string   `json:"location"`
			Paths    []string `json:"paths"`
		} `json:"objects"`
	} `json:"artifacts"`
	Options struct {
		Logging     string `json:"logging"`
		MachineType string `json:"machineType"`
	} `json:"options"`
	Timeout string `json:"timeout"`
}

// checkCloudBuild: every image is built from its Dockerfile with the repository
// root as the context (as `make images` does) with BuildKit, under
// ${_REGISTRY}/NAME:${_TAG}, and pushed; the agent bundle is made by the make
// target and uploaded; a build that runs as a chosen service account logs to
// Cloud Logging only.
func checkCloudBuild(t reporter, cb cloudBuild, goVersion string) {
	t.Helper()
	built := map[string]bool{}
	for _, im := range dockerImages {
		ref := "${_REGISTRY}/" + im.binary + ":${_TAG}"
		found := false
		for _, s := range cb.Steps {
			if s.Name != "gcr.io/cloud-builders/docker" || !slices.Contains(s.Args, ref) {
				continue
			}
			found = true
			want := []string{"build", "--platform", "linux/amd64", "-f", im.dockerfile, "-t", ref, "."}
			if !slices.Equal(s.Args, want) {
				t.Errorf("step %s: args %v, want %v", s.ID, s.Args, want)
			}
			if !slices.Contains(s.Env, "DOCKER_BUILDKIT=1") {
				t.Errorf("step %s: no DOCKER_BUILDKIT=1 (the Dockerfiles use cache mounts)", s.ID)
			}
		}
		if !found {
			t.Errorf("no step builds %s", ref)
		}
		built[ref] = true
	}
	var images []string
	for _, i := range cb.Images {
		images = append(images, i)
		if !built[i] {
			t.Errorf("images lists %s, which no step builds", i)
		}
	}
	if len(images) != len(dockerImages) {
		t.Errorf("images %v: want the %d images pushed", images, len(dockerImages))
	}
	bundle := false
	for _, s := range cb.Steps {
		if slices.Contains(s.Args, "vm-bundle") {
			bundle = true
			if s.Name != "golang:"+goVersion+"-bookworm" || s.Entrypoint != "make" || !slices.Contains(s.Args, "k8s/deploy.mk") {
				t.Errorf("step %s: the agent bundle must come from `make -f k8s/deploy.mk vm-bundle` in golang:%s-bookworm", s.ID, goVersion)
			}
		}
	}
	if !bundle {
		t.Errorf("no step makes the agent bundle")
	}
	if !slices.Equal(cb.Artifacts.Objects.Paths, []string{"out/vmpulse-agent-bundle.tar.gz"}) || cb.Artifacts.Objects.Location != "${_BUNDLE_LOCATION}" {
		t.Errorf("artifacts %+v: want out/vmpulse-agent-bundle.tar.gz uploaded to ${_BUNDLE_LOCATION}", cb.Artifacts.Objects)
	}
	if cb.Options.Logging != "CLOUD_LOGGING_ONLY" {
		t.Errorf("options.logging %q: a build with a chosen service account needs CLOUD_LOGGING_ONLY", cb.Options.Logging)
	}
}

func TestCloudBuildConfig(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "terraform", "cloudbuild.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cb cloudBuild
	if err := yaml.UnmarshalStrict(b, &cb); err != nil {
		t.Fatalf("terraform/cloudbuild.yaml: %v", err)
	}
	goVersion := goModVersion(t, root)
	var clean collector
	checkCloudBuild(&clean, cb, goVersion)
	for _, e := range clean.errs {
		t.Error(e)
	}
	for name, brk := range map[string]func(c *cloudBuild){
		"no BuildKit":      func(c *cloudBuild) { c.Steps[0].Env = nil },
		"image not pushed": func(c *cloudBuild) { c.Images = c.Images[1:] },
		"wrong Dockerfile": func(c *cloudBuild) { c.Steps[1].Args[4] = "Dockerfile" },
		"no bundle":        func(c *cloudBuild) { c.Steps = c.Steps[:3] },
		"default logging":  func(c *cloudBuild) { c.Options.Logging = "" },
	} {
		var c cloudBuild
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		brk(&c)
		var col collector
		checkCloudBuild(&col, c, goVersion)
		if len(col.errs) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}

	// What the upload leaves out: the same secrets and bulk as .dockerignore.
	ignore, err := os.ReadFile(filepath.Join(root, "terraform", "build.gcloudignore"))
	if err != nil {
		t.Fatal(err)
	}
	dockerignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{".git", "**/node_modules", "**/*.tfstate", "terraform/terraform.tfvars", ".vmpulse"} {
		for file, body := range map[string][]byte{"terraform/build.gcloudignore": ignore, ".dockerignore": dockerignore} {
			if !slices.Contains(strings.Split(string(body), "\n"), must) {
				t.Errorf("%s does not leave out %s", file, must)
			}
		}
	}
}

// build-images.sh runs `gcloud builds submit` with the configuration, the ignore
// file, the build's own service account and the substitutions cloudbuild.yaml
// uses, and refuses to run with a value missing.
func TestBuildImagesScript(t *testing.T) {
	root := repoRoot(t)
	needTool(t, "bash", "build-images.sh is a bash script")
	dir := t.TempDir()
	logFile := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "gcloud")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > '"+logFile+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"GCLOUD=" + fake, "REPO_ROOT=" + root, "PROJECT=demo-project-42", "REGION=us-central1",
		"REGISTRY=us-central1-docker.pkg.dev/demo-project-42/vmpulse-images", "TAG=src-0123456789ab",
		"BUNDLE_LOCATION=gs://demo-project-42-vmpulse-agent/", "STAGING=gs://demo-project-42-vmpulse-build/source",
		"BUILD_SA=vmpulse-build@demo-project-42.iam.gserviceaccount.com"}
	script := filepath.Join(root, "terraform", "scripts", "build-images.sh")
	run(t, root, env, nil, "bash", script)
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"builds", "submit", root, "--project", "demo-project-42", "--region", "us-central1",
		"--config", root + "/terraform/cloudbuild.yaml", "--ignore-file", "terraform/build.gcloudignore",
		"--substitutions", "_REGISTRY=us-central1-docker.pkg.dev/demo-project-42/vmpulse-images,_TAG=src-0123456789ab,_BUNDLE_LOCATION=gs://demo-project-42-vmpulse-agent/",
		"--service-account", "projects/demo-project-42/serviceAccounts/vmpulse-build@demo-project-42.iam.gserviceaccount.com",
		"--gcs-source-staging-dir", "gs://demo-project-42-vmpulse-build/source"}
	if !slices.Equal(args, want) {
		t.Errorf("gcloud got\n  %q\nwant\n  %q", args, want)
	}
	// Every substitution the configuration uses is passed.
	cfg, _ := os.ReadFile(filepath.Join(root, "terraform", "cloudbuild.yaml"))
	for _, m := range regexp.MustCompile(`\$\{(_[A-Z_]+)\}`).FindAllStringSubmatch(string(cfg), -1) {
		if !strings.Contains(want[12], m[1]+"=") {
			t.Errorf("cloudbuild.yaml uses %s, which build-images.sh does not pass", m[1])
		}
	}
	if _, _, err := tryRun(root, env[:len(env)-1], nil, "bash", script); err == nil {
		t.Error("ran without BUILD_SA")
	}
	sc := needTool(t, "shellcheck", "apt-get install shellcheck")
	run(t, root, nil, nil, sc, "-s", "bash", script, filepath.Join(root, "terraform", "scripts", "seed-secret.sh"))
}
