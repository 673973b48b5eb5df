package terraform

// The templates and the variables, run by terraform itself on modules without
// providers (which plan and apply offline), and the VM map rendered as a
// deployment of several VMs would be.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// templatefile(path, vars): the variables given are exactly those the template
// uses (a missing one is an error at plan time; an extra one is a mistake).
func TestTemplateVariables(t *testing.T) {
	c := load(t)
	calls := 0
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		hclsyntax.VisitAll(a.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
			call, ok := n.(*hclsyntax.FunctionCallExpr)
			if !ok || call.Name != "templatefile" {
				return nil
			}
			calls++
			if len(call.Args) != 2 {
				t.Errorf("%s: templatefile with %d arguments", at(call.Range()), len(call.Args))
				return nil
			}
			tpl, ok := call.Args[0].(*hclsyntax.TemplateExpr)
			if !ok || len(tpl.Parts) != 2 {
				t.Errorf("%s: templatefile path must be \"${path.module}/templates/…\"", at(call.Range()))
				return nil
			}
			lit, _ := tpl.Parts[1].(*hclsyntax.LiteralValueExpr)
			file := filepath.Join(dir(t), lit.Val.AsString())
			src, err := os.ReadFile(file)
			if err != nil {
				t.Errorf("%s: %v", at(call.Range()), err)
				return nil
			}
			texpr, diags := hclsyntax.ParseTemplate(src, file, hcl.InitialPos)
			if diags.HasErrors() {
				t.Errorf("%s: %v", file, diags)
				return nil
			}
			used := map[string]bool{}
			for _, tr := range texpr.Variables() {
				used[tr.RootName()] = true
			}
			obj, ok := call.Args[1].(*hclsyntax.ObjectConsExpr)
			if !ok {
				t.Errorf("%s: templatefile variables must be an object literal", at(call.Range()))
				return nil
			}
			given := map[string]bool{}
			for _, item := range obj.Items {
				k, _ := item.KeyExpr.Value(nil)
				given[k.AsString()] = true
			}
			for k := range used {
				if !given[k] {
					t.Errorf("%s: %s uses ${%s}, which templatefile does not pass", at(call.Range()), filepath.Base(file), k)
				}
			}
			for k := range given {
				if !used[k] {
					t.Errorf("%s: templatefile passes %s, which %s never uses", at(call.Range()), k, filepath.Base(file))
				}
			}
			return nil
		})
	})
	if calls != 3 {
		t.Errorf("found %d templatefile calls, want 3 (VM startup script, k8s overlay, relay metrics config)", calls)
	}
}

// harness is a module without providers, which terraform plans and applies
// offline.
func harness(t *testing.T, tf string, files map[string]string) string {
	t.Helper()
	wd := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(wd, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := terraform(t, tf, wd, "init", "-backend=false", "-input=false"); err != nil {
		t.Fatalf("terraform init (no providers): %v\n%s", err, out)
	}
	return wd
}

// overlayVarsHCL is a deployment's templatefile() arguments for the overlay.
func overlayVarsHCL(https bool) string {
	return fmt.Sprintf(`{
    https                = %v
    cloudsql_instance    = "demo-project:us-central1:vmpulse-mysql-1a2b"
    db_user              = "vmpulse-route"
    db_name              = "vmpulse"
    db_conns             = 12
    db_host              = "10.99.0.3"
    db_admin             = "vmpulse-admin"
    project_id           = "demo-project"
    pubsub_topic         = "vmpulse-records"
    route_image_name     = "us-central1-docker.pkg.dev/demo-project/vmpulse-images/vmpulse-route"
    route_image_tag      = "src-0123456789ab"
    mysql_image_name     = "us-central1-docker.pkg.dev/demo-project/vmpulse-dockerhub/library/mysql"
    route_gsa_email      = "vmpulse-route@demo-project.iam.gserviceaccount.com"
    gateway_address_name = "vmpulse-gateway-ip"
    certificate_name     = "vmpulse-ingest"
    security_policy      = "vmpulse-ingest"
    route_max_pods       = 6
    ingest_token_secret  = "vmpulse-ingest-token"
    db_admin_secret      = "vmpulse-db-admin-password"
  }`, https)
}

func TestTemplatesRenderInTerraform(t *testing.T) {
	tf := needTool(t, "terraform", "terraform renders the templates")
	bash := needTool(t, "bash", "bash -n checks the rendered startup script")
	d := dir(t)
	wd := harness(t, tf, map[string]string{"main.tf": fmt.Sprintf(`
output "startup" {
  value = templatefile(%q, {
    bucket       = "demo-project-vmpulse-agent"
    object       = "vmpulse-agent-bundle.tar.gz"
    kmod_suffix  = "_202201524"
    agent_port   = 8090
    wait_minutes = 60
    vm_name      = "vmpulse-small"
  })
}
output "overlay_http" {
  value = templatefile(%q, %s)
}
output "overlay_https" {
  value = templatefile(%q, %s)
}
output "rungmp" {
  value = templatefile(%q, { name = "vmpulse-relay", port = 9090 })
}
`, filepath.Join(d, "templates", "vm-startup.sh.tftpl"),
		filepath.Join(d, "templates", "k8s-overlay.yaml.tftpl"), overlayVarsHCL(false),
		filepath.Join(d, "templates", "k8s-overlay.yaml.tftpl"), overlayVarsHCL(true),
		filepath.Join(d, "templates", "rungmp-config.yaml.tftpl"))})
	if out, err := terraform(t, tf, wd, "apply", "-auto-approve", "-input=false"); err != nil {
		t.Fatalf("terraform apply (outputs only): %v\n%s", err, out)
	}
	output := func(name string) string {
		s, err := terraform(t, tf, wd, "output", "-raw", name)
		if err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
		return s
	}
	script := output("startup")
	path := filepath.Join(wd, "startup.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Errorf("bash -n on the rendered startup script: %v\n%s", err, out)
	}
	for _, want := range []string{
		"#!/bin/bash\n", "BUCKET='demo-project-vmpulse-agent'", "KMOD_SUFFIX='_202201524'", "AGENT_PORT='8090'", "VM_NAME='vmpulse-small'",
		`dpkg-query -W -f='${Status}'`, "Environment=KMOD_SUFFIX=$KMOD_SUFFIX", "Environment=AGENT_ADDR=:$AGENT_PORT",
		"Environment=VM_NAME=$VM_NAME", "Environment=EXPECT_KMOD=true", "wait_for_dpkg", "DPkg::Lock::Timeout=600",
		`make -C "$SRC/kernel" SUFFIX="$KMOD_SUFFIX" install`, "linux-headers-$KVER", "guest-attributes/vmpulse/kmod",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("rendered startup script lacks %q", want)
		}
	}
	// The Go tests render templates with the HCL library (renderTemplate); that
	// must be what terraform renders.
	if got := renderTemplate(t, filepath.Join(d, "templates", "vm-startup.sh.tftpl"), startupVars("_202201524", 60)); got != script {
		t.Errorf("the HCL library and terraform render vm-startup.sh.tftpl differently:\n%s", firstDiff(got, script))
	}
	for _, https := range []bool{false, true} {
		overlay := output(map[bool]string{false: "overlay_http", true: "overlay_https"}[https])
		for _, want := range []string{"- ../../k8s\n", "CLOUDSQL_INSTANCE=demo-project:us-central1:vmpulse-mysql-1a2b\n", "DB_CONNS=12\n",
			"path: /metadata/annotations/iam.gke.io~1gcp-service-account\n", "value: vmpulse-route@demo-project.iam.gserviceaccount.com\n",
			"behavior: replace\n", "newTag: \"src-0123456789ab\"\n", "value: vmpulse-ingest\n", "value: 6\n",
			"resourceName: projects/demo-project/secrets/vmpulse-ingest-token/versions/latest\n"} {
			if !strings.Contains(overlay, want) {
				t.Errorf("rendered overlay (https=%v) lacks %q:\n%s", https, want, overlay)
			}
		}
		if has := strings.Contains(overlay, "- ../../k8s/https\n"); has != https {
			t.Errorf("overlay (https=%v) includes the https component: %v", https, has)
		}
		if has := strings.Contains(overlay, "pre-shared-certs"); has != https {
			t.Errorf("overlay (https=%v) sets the certificate: %v", https, has)
		}
	}
	if r := output("rungmp"); !strings.Contains(r, "kind: RunMonitoring") || !strings.Contains(r, "- port: 9090\n    path: /metrics\n") {
		t.Errorf("rendered sidecar config:\n%s", r)
	}
}

// The variables' validation rules, run by terraform itself on a module made of
// variables.tf alone.
func TestVariableValidation(t *testing.T) {
	tf := needTool(t, "terraform", "terraform evaluates the validation rules")
	src, err := os.ReadFile(filepath.Join(dir(t), "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	wd := harness(t, tf, map[string]string{"variables.tf": string(src)})
	// The smallest tfvars a first deploy needs.
	good := map[string]string{
		"project_id":            "demo-project-42",
		"loadgen_source_ranges": `["203.0.113.7/32"]`,
	}
	plan := func(over map[string]string) (string, error) {
		args := []string{"plan", "-input=false", "-lock=false"}
		vals := map[string]string{}
		for k, v := range good {
			vals[k] = v
		}
		for k, v := range over {
			vals[k] = v
		}
		for _, k := range sortedKeys(vals) {
			args = append(args, "-var", k+"="+vals[k])
		}
		return terraform(t, tf, wd, args...)
	}
	if out, err := plan(nil); err != nil {
		t.Fatalf("good values refused: %v\n%s", err, out)
	}
	for _, ok := range []map[string]string{
		{"loadgen_source_ranges": `["203.0.113.0/24", "198.51.100.9/32"]`},
		{"kmod_suffix": "_202201524"},
		{"extra_allowed_origins": `["https://dash.example.com"]`},
		{"vms": `{ small = "e2-small", medium = "e2-medium", std2 = "e2-standard-2" }`},
		{"capacity": "small"}, {"capacity": "large"},
		{"ingest_domain": "ingest.example.com"},
		{"image_tag": "0123abc"}, {"dockerhub_user": "someone", "image_tag": "v1"},
		{"budget_amount": "0"}, {"alert_email": "ops@example.com"},
	} {
		if out, err := plan(ok); err != nil {
			t.Errorf("%v refused: %v\n%s", ok, err, out)
		}
	}
	for _, bad := range []map[string]string{
		{"loadgen_source_ranges": `["0.0.0.0/0"]`},
		{"loadgen_source_ranges": `["10.0.0.0/4"]`},
		{"loadgen_source_ranges": `[]`},
		{"loadgen_source_ranges": `["my-laptop"]`},
		{"loadgen_source_ranges": `["1.0.0.1/32","1.0.0.2/32","1.0.0.3/32","1.0.0.4/32","1.0.0.5/32","1.0.0.6/32","1.0.0.7/32","1.0.0.8/32","1.0.0.9/32","1.0.0.10/32","1.0.0.11/32"]`},
		{"image_tag": "latest"},
		{"project_id": "My Project"},
		{"zone": "us-central1"},
		{"kmod_suffix": "-202201524"},
		{"sql_availability_type": "MULTI"},
		{"prefix": "VMPULSE"},
		{"extra_allowed_origins": `["https://dash.example.com/"]`},
		{"relay_min_instances": "0"},
		{"relay_concurrency": "5000"},
		{"vms": `{}`},
		{"vms": `{ "Big_VM" = "e2-small" }`},
		{"vms": `{ small = "tiny" }`},
		{"capacity": "huge"},
		{"ingest_domain": "https://ingest.example.com"},
		{"budget_amount": "-1"},
		{"alert_email": "not-an-address"},
		{"dockerhub_user": "Some User"},
		{"ingest_requests_per_minute": "10"},
	} {
		if out, err := plan(bad); err == nil {
			t.Errorf("%v accepted", bad)
		} else if !strings.Contains(out, "Invalid value for variable") {
			t.Errorf("%v: failed for another reason: %s", bad, out)
		}
	}
}

// renderTemplate evaluates a template file with the HCL template engine that
// terraform's templatefile() uses.
func renderTemplate(t *testing.T, file string, vars map[string]cty.Value) string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	expr, diags := hclsyntax.ParseTemplate(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	val, diags := expr.Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	return val.AsString()
}

func startupVars(suffix string, waitMinutes int64) map[string]cty.Value {
	return map[string]cty.Value{
		"bucket":       cty.StringVal("demo-project-vmpulse-agent"),
		"object":       cty.StringVal("vmpulse-agent-bundle.tar.gz"),
		"kmod_suffix":  cty.StringVal(suffix),
		"agent_port":   cty.NumberIntVal(8090),
		"wait_minutes": cty.NumberIntVal(waitMinutes),
		"vm_name":      cty.StringVal("vmpulse-small"),
	}
}

// firstDiff shows where two strings part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return fmt.Sprintf("at byte %d (lengths %d, %d):\n%q\nvs\n%q", i, len(a), len(b), a[lo:min(len(a), i+80)], b[lo:min(len(b), i+80)])
}

// ---- several VMs ---------------------------------------------------------------------------

// evalIn evaluates an attribute's expression with the given variables and
// terraform's join, concat, tostring and keys functions (go-cty's stdlib ones).
func evalIn(t *testing.T, e hclsyntax.Expression, vars map[string]cty.Value) cty.Value {
	t.Helper()
	v, diags := e.Value(&hcl.EvalContext{Variables: vars, Functions: map[string]function.Function{
		"join": stdlib.JoinFunc, "concat": stdlib.ConcatFunc, "tostring": stdlib.MakeToFunc(cty.String), "keys": stdlib.KeysFunc,
	}})
	if diags.HasErrors() {
		t.Fatalf("%s: %v", at(e.Range()), diags)
	}
	return v
}

// A deployment of N VMs (issue 14): the VM map renders N instances with distinct
// names, each with its own static address, its vm name equal to its instance
// name, the firewall's tag, and every output that lists VMs lists them all.
func TestVMMap(t *testing.T) {
	c := load(t)
	vms := map[string]string{"small": "e2-small", "medium": "e2-medium", "std2": "e2-standard-2"}
	vmsVal := map[string]cty.Value{}
	for k, v := range vms {
		vmsVal[k] = cty.StringVal(v)
	}
	vars := map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{
			"vms": cty.MapVal(vmsVal), "prefix": cty.StringVal("vmpulse"), "zone": cty.StringVal("us-central1-a"),
			"project_id": cty.StringVal("demo-project"),
		}),
	}
	localVMs := evalIn(t, c.locals["vms"].Expr, vars)
	if n := localVMs.LengthInt(); n != len(vms) {
		t.Fatalf("local.vms has %d entries, want %d", n, len(vms))
	}
	// Each instance, as for_each would make it.
	inst := c.resource("google_compute_instance.vm")
	addrs := map[string]cty.Value{}
	names := map[string]bool{}
	for k, v := range localVMs.AsValueMap() {
		each := cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(k), "value": v})
		ev := map[string]cty.Value{"each": each, "var": vars["var"]}
		name := evalIn(t, inst.Body.Attributes["name"].Expr, ev).AsString()
		if names[name] {
			t.Errorf("two VMs named %s", name)
		}
		names[name] = true
		if mt := evalIn(t, inst.Body.Attributes["machine_type"].Expr, ev).AsString(); mt != vms[k] {
			t.Errorf("VM %s: machine type %s, want %s", name, mt, vms[k])
		}
		if name != "vmpulse-"+k {
			t.Errorf("VM %s: want the instance name vmpulse-%s", name, k)
		}
		// The startup script's vm_name: the records' vm.
		md, ok := inst.Body.Attributes["metadata"].Expr.(*hclsyntax.ObjectConsExpr)
		if !ok {
			t.Fatal("metadata must be an object")
		}
		for _, item := range md.Items {
			call, ok := item.ValueExpr.(*hclsyntax.FunctionCallExpr)
			if !ok || call.Name != "templatefile" {
				continue
			}
			for _, arg := range call.Args[1].(*hclsyntax.ObjectConsExpr).Items {
				key, _ := arg.KeyExpr.Value(nil)
				if key.AsString() == "vm_name" {
					if got := evalIn(t, arg.ValueExpr, ev).AsString(); got != name {
						t.Errorf("VM %s: the agent's vm would be %q", name, got)
					}
				}
			}
		}
		addrs[k] = cty.ObjectVal(map[string]cty.Value{"address": cty.StringVal(fmt.Sprintf("34.0.0.%d", len(addrs)+1))})
	}
	if len(names) != len(vms) {
		t.Errorf("%d distinct names for %d VMs", len(names), len(vms))
	}
	// The outputs list them all.
	ov := map[string]cty.Value{
		"var": vars["var"],
		"local": cty.ObjectVal(map[string]cty.Value{
			"vms": localVMs, "agent_port": cty.NumberIntVal(8090), "ingest_url": cty.StringVal("https://ingest.example.com"),
			"relay_ws_url": cty.StringVal("wss://relay.example.run.app/ws"),
		}),
		"google_compute_address": cty.ObjectVal(map[string]cty.Value{"agent": cty.MapVal(addrs)}),
		"google_secret_manager_secret": cty.ObjectVal(map[string]cty.Value{
			"ingest_token": cty.ObjectVal(map[string]cty.Value{"secret_id": cty.StringVal("vmpulse-ingest-token")}),
		}),
	}
	for _, out := range []string{"agent_urls", "vms", "kmod_status_commands"} {
		v := evalIn(t, c.outputs[out].Body.Attributes["value"].Expr, ov)
		var got []string
		for k := range v.AsValueMap() {
			got = append(got, k)
		}
		sort.Strings(got)
		want := slices.Sorted(func(yield func(string) bool) {
			for n := range names {
				if !yield(n) {
					return
				}
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("output %s lists %v, want %v", out, got, want)
		}
	}
	if v := evalIn(t, c.outputs["vms"].Body.Attributes["value"].Expr, ov).AsValueMap(); v["vmpulse-std2"].AsString() != "e2-standard-2" {
		t.Errorf("output vms: %v", v)
	}
	for _, out := range []string{"load_commands", "smoke_command"} {
		s := evalIn(t, c.outputs[out].Body.Attributes["value"].Expr, ov).AsString()
		for k := range addrs {
			addr := addrs[k].GetAttr("address").AsString()
			if !strings.Contains(s, "http://"+addr+":8090") {
				t.Errorf("output %s lacks the agent of %s (%s):\n%s", out, k, addr, s)
			}
		}
		if !strings.Contains(s, "https://ingest.example.com") {
			t.Errorf("output %s lacks the ingress URL:\n%s", out, s)
		}
	}
	lc := evalIn(t, c.outputs["load_commands"].Body.Attributes["value"].Expr, ov).AsString()
	if n := strings.Count(lc, "make load "); n != len(vms) {
		t.Errorf("load_commands has %d load lines for %d VMs:\n%s", n, len(vms), lc)
	}
	if strings.Contains(lc, "INGEST_TOKEN=") && !strings.Contains(lc, "gcloud secrets versions access latest") {
		t.Errorf("load_commands must read the token from Secret Manager, never print it:\n%s", lc)
	}
}

// The image tag is a hash of what the images are built from (modules/sources).
// Every Go file of every package the four commands import must be among those
// inputs, or a change to it would not rebuild the images: terraform computes
// the list (a module without providers), go list -deps says what is needed.
func TestImageInputsCoverTheCommands(t *testing.T) {
	tf := needTool(t, "terraform", "terraform evaluates modules/sources")
	goBin := needTool(t, "go", "go list -deps names the commands' packages")
	root := filepath.Dir(dir(t))
	wd := harness(t, tf, map[string]string{"main.tf": fmt.Sprintf(`
module "sources" {
  source    = %q
  repo_root = %q
}
output "inputs" {
  value = join("\n", module.sources.image_inputs)
}
output "hash" {
  value = module.sources.images_hash
}
`, filepath.Join(dir(t), "modules", "sources"), root)})
	if out, err := terraform(t, tf, wd, "apply", "-auto-approve", "-input=false"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := terraform(t, tf, wd, "output", "-raw", "inputs")
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		inputs[l] = true
	}
	if h, _ := terraform(t, tf, wd, "output", "-raw", "hash"); len(h) != 12 {
		t.Errorf("images_hash %q: want 12 hex digits", h)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}|{{join .GoFiles \",\"}}|{{join .EmbedFiles \",\"}}{{end}}",
		"./agent/cmd/vmpulse-agent", "./functions/cmd/vmpulse-route", "./functions/cmd/vmpulse-relay", "./frontend/cmd/vmpulse-web")
	cmd.Dir = root
	lst, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, l := range strings.Split(strings.TrimSpace(string(lst)), "\n") {
		parts := strings.Split(l, "|")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], root+string(filepath.Separator)) {
			continue // a module dependency, pinned by go.sum
		}
		rel, _ := filepath.Rel(root, parts[0])
		for _, f := range append(strings.Split(parts[1], ","), strings.Split(parts[2], ",")...) {
			if f == "" {
				continue
			}
			checked++
			if p := filepath.ToSlash(filepath.Join(rel, f)); !inputs[p] {
				t.Errorf("%s is built into an image but is not among modules/sources' inputs: a change to it would not rebuild", p)
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d files; go list found too little", checked)
	}
	for _, must := range []string{"go.mod", "go.sum", "frontend/package-lock.json", "frontend/Dockerfile", "functions/cmd/vmpulse-route/Dockerfile", "terraform/cloudbuild.yaml", "kernel/Makefile"} {
		if !inputs[must] {
			t.Errorf("%s is not among the image inputs", must)
		}
	}
}
