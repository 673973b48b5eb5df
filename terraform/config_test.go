package terraform

// Offline checks of the Terraform configuration. The Google provider cannot be
// downloaded here, so `terraform validate` cannot run; instead:
//
//   - terraform fmt -check, with the real binary;
//   - every .tf is parsed with HCL and every reference (var., local., data.,
//     ephemeral., module., TYPE.NAME and the attribute read from it) must resolve;
//   - every argument and block must be in the provider's schema: for the google
//     resources, testdata/google-provider-schema.txt, generated from the
//     provider's source by testdata/gen-provider-schema.py; for the rest (IAM
//     members, random, time, terraform_data, data sources), the table below. A
//     misspelled argument fails here instead of at `terraform plan`;
//   - the design's invariants are asserted on the parsed files (design_test.go),
//     and each check is shown to catch a broken copy of the configuration;
//   - templatefile() calls pass exactly the variables their templates use, and the
//     templates and the variables' validation rules run in terraform itself (a
//     module with no providers runs offline; templates_test.go);
//   - the VM's startup script runs against fakes, under bash -n and shellcheck
//     (startup_test.go).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// ---- helpers ---------------------------------------------------------------------------

func dir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Dir(file)
}

// needTool: missing fails in CI (CI=true), skips elsewhere.
func needTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed and CI=true: %s", name, hint)
	}
	t.Skipf("%s is not installed (%s); skipping outside CI", name, hint)
	return ""
}

// terraform runs the terraform binary offline (no checkpoint call home). It
// returns standard output; on failure, standard error follows it.
func terraform(t *testing.T, bin, wd string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// An empty CLI configuration: no ~/.terraformrc warning, no plugin cache or
	// credentials from the developer's machine.
	cliConfig := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(cliConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0", "NO_COLOR=1",
		"TF_CLI_CONFIG_FILE="+cliConfig)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// ---- the parsed configuration ------------------------------------------------------------

type config struct {
	files      map[string]*hclsyntax.Body
	src        map[string][]byte
	variables  map[string]*hclsyntax.Block
	locals     map[string]*hclsyntax.Attribute
	resources  map[string]*hclsyntax.Block // TYPE.NAME
	data       map[string]*hclsyntax.Block // TYPE.NAME
	ephemerals map[string]*hclsyntax.Block // TYPE.NAME
	modules    map[string]*hclsyntax.Block
	outputs    map[string]*hclsyntax.Block
}

// sources reads the configuration's .tf files.
func sources(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir(t), "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func load(t *testing.T) *config {
	t.Helper()
	c, err := parse(sources(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// parse builds the config from file name -> contents (a test can hand it a
// broken copy).
func parse(files map[string][]byte) (*config, error) {
	p := hclparse.NewParser()
	c := &config{
		files: map[string]*hclsyntax.Body{}, src: files, variables: map[string]*hclsyntax.Block{},
		locals: map[string]*hclsyntax.Attribute{}, resources: map[string]*hclsyntax.Block{},
		data: map[string]*hclsyntax.Block{}, ephemerals: map[string]*hclsyntax.Block{},
		modules: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
	}
	var errs []string
	for _, name := range sortedKeys(files) {
		f, diags := p.ParseHCL(files[name], name)
		if diags.HasErrors() {
			return nil, diags
		}
		body := f.Body.(*hclsyntax.Body)
		c.files[name] = body
		for _, b := range body.Blocks {
			add := func(m map[string]*hclsyntax.Block, key string) {
				if _, dup := m[key]; dup {
					errs = append(errs, fmt.Sprintf("%s: %s %s declared twice", name, b.Type, key))
				}
				m[key] = b
			}
			switch b.Type {
			case "variable":
				add(c.variables, b.Labels[0])
			case "resource":
				add(c.resources, b.Labels[0]+"."+b.Labels[1])
			case "data":
				add(c.data, b.Labels[0]+"."+b.Labels[1])
			case "ephemeral":
				add(c.ephemerals, b.Labels[0]+"."+b.Labels[1])
			case "module":
				add(c.modules, b.Labels[0])
			case "output":
				add(c.outputs, b.Labels[0])
			case "locals":
				for n, a := range b.Body.Attributes {
					if _, dup := c.locals[n]; dup {
						errs = append(errs, fmt.Sprintf("%s: local %s declared twice", name, n))
					}
					c.locals[n] = a
				}
			case "terraform", "provider":
			default:
				errs = append(errs, fmt.Sprintf("%s:%d: unexpected top-level block %s", name, b.TypeRange.Start.Line, b.Type))
			}
		}
		if len(body.Attributes) > 0 {
			errs = append(errs, fmt.Sprintf("%s: top-level attributes in a .tf file", name))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return c, nil
}

// text is the source text of an attribute's expression.
func (c *config) text(a *hclsyntax.Attribute) string {
	if a == nil {
		return ""
	}
	r := a.Expr.Range()
	return string(c.src[r.Filename][r.Start.Byte:r.End.Byte])
}

// resource returns TYPE.NAME or nil.
func (c *config) resource(key string) *hclsyntax.Block { return c.resources[key] }

// ofType lists the resources of a type.
func (c *config) ofType(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, k := range sortedKeys(c.resources) {
		if strings.HasPrefix(k, typ+".") {
			out = append(out, c.resources[k])
		}
	}
	return out
}

func at(r hcl.Range) string { return fmt.Sprintf("%s:%d", filepath.Base(r.Filename), r.Start.Line) }

// walk calls fn for every attribute under body, with the path of block types
// leading to it (lifecycle's ignore_changes holds attribute paths, not
// references, and is skipped).
func walk(body *hclsyntax.Body, path []string, fn func(path []string, a *hclsyntax.Attribute)) {
	for _, name := range sortedAttrs(body) {
		a := body.Attributes[name]
		if len(path) > 0 && path[len(path)-1] == "lifecycle" && name == "ignore_changes" {
			continue
		}
		fn(path, a)
	}
	for _, b := range body.Blocks {
		walk(b.Body, append(slices.Clone(path), b.Type), fn)
	}
}

func sortedAttrs(body *hclsyntax.Body) []string {
	var names []string
	for n := range body.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// allAttributes walks every top-level block of every file.
func (c *config) allAttributes(fn func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute)) {
	for _, f := range sortedKeys(c.files) {
		for _, b := range c.files[f].Blocks {
			walk(b.Body, nil, func(path []string, a *hclsyntax.Attribute) { fn(b, path, a) })
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// literal evaluates an expression that must be a constant.
func literal(e hclsyntax.Expression) (cty.Value, bool) {
	if len(e.Variables()) > 0 {
		return cty.NilVal, false
	}
	v, diags := e.Value(nil)
	return v, !diags.HasErrors()
}

// traversalString renders var.x / google_x.y.z for messages and comparisons.
func traversalString(tr hcl.Traversal) string {
	var parts []string
	for _, s := range tr {
		switch st := s.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, st.Name)
		case hcl.TraverseAttr:
			parts = append(parts, st.Name)
		case hcl.TraverseIndex:
			parts = append(parts, "[]")
		}
	}
	return strings.Join(parts, ".")
}

// blockAttr finds an attribute by a path of nested block types (first block of
// each type) and attribute name: blockAttr(b, "settings", "ip_configuration", "ipv4_enabled").
func blockAttr(b *hclsyntax.Block, path ...string) *hclsyntax.Attribute {
	body := b.Body
	for _, p := range path[:len(path)-1] {
		var next *hclsyntax.Body
		for _, nb := range body.Blocks {
			if nb.Type == p {
				next = nb.Body
				break
			}
		}
		if next == nil {
			return nil
		}
		body = next
	}
	return body.Attributes[path[len(path)-1]]
}

func blocksOf(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
	}
	return out
}

// ---- the provider schemas -----------------------------------------------------------------

// handSchema lists, for the types that testdata/google-provider-schema.txt does
// not cover, the arguments and nested blocks the configuration may use (dotted
// paths) and the computed attributes it may read:
//   - IAM member resources, whose schema the google provider builds in code
//     (tpgiamresource.IamMemberBaseSchema plus each parent's fields:
//     iam_pubsub_topic.go, iam_secret_manager_secret.go, …);
//   - data sources and the ephemeral google_secret_manager_secret_version
//     (ephemeral_google_secret_manager_secret_version.go);
//   - hashicorp/random, hashicorp/time and the built-in terraform_data.
var handSchema = map[string]struct{ args, computed string }{
	"google_pubsub_topic_iam_member":                 {args: "project topic role member condition condition.title condition.description condition.expression", computed: "etag"},
	"google_project_iam_member":                      {args: "project role member condition condition.title condition.description condition.expression", computed: "etag id"},
	"google_service_account_iam_member":              {args: "service_account_id role member condition condition.title condition.description condition.expression", computed: "etag"},
	"google_storage_bucket_iam_member":               {args: "bucket role member condition condition.title condition.description condition.expression", computed: "etag id"},
	"google_secret_manager_secret_iam_member":        {args: "project secret_id role member condition condition.title condition.description condition.expression", computed: "etag"},
	"google_artifact_registry_repository_iam_member": {args: "project location repository role member condition condition.title condition.description condition.expression", computed: "etag id"},
	"random_id":       {args: "byte_length keepers prefix", computed: "hex dec id b64_url b64_std"},
	"random_password": {args: "length special upper lower numeric override_special min_special min_upper min_lower min_numeric", computed: "result id bcrypt_hash"},
	"time_sleep":      {args: "create_duration destroy_duration triggers", computed: "id"},
	"terraform_data":  {args: "input triggers_replace", computed: "id output"},
	// data sources
	"data.google_project":       {args: "project_id", computed: "number name id billing_account"},
	"data.google_compute_image": {args: "family project", computed: "self_link name id"},
	// ephemeral resources
	"ephemeral.random_password":                      {args: "length special upper lower numeric override_special min_special min_upper min_lower min_numeric", computed: "result bcrypt_hash"},
	"ephemeral.google_secret_manager_secret_version": {args: "project secret version is_secret_data_base64", computed: "secret_data name create_time destroy_time enabled"},
}

// generatedSchema is testdata/google-provider-schema.txt: "TYPE PATH" lines.
var generatedSchema = func() map[string]map[string]bool {
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "testdata", "google-provider-schema.txt"))
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		typ, path, _ := strings.Cut(line, " ")
		if out[typ] == nil {
			out[typ] = map[string]bool{}
		}
		out[typ][path] = true
	}
	return out
}()

// allowed returns the set of argument/block paths of a type, and whether the
// type is known at all.
func allowed(kind string) (map[string]bool, bool) {
	if g, ok := generatedSchema[kind]; ok {
		return g, true
	}
	s, ok := handSchema[kind]
	if !ok {
		return nil, false
	}
	m := map[string]bool{}
	for _, a := range strings.Fields(s.args) {
		m[a] = true
	}
	return m, true
}

var metaArgs = map[string]bool{"count": true, "for_each": true, "depends_on": true, "provider": true, "lifecycle": true}

// reporter is what the checks need of a *testing.T (a test feeds them broken
// input and a collector).
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type collector struct{ errs []string }

func (c *collector) Helper() {}

func (c *collector) Errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// checkSchema checks the arguments and blocks of one resource, data or ephemeral
// block.
func checkSchema(t reporter, kind string, b *hclsyntax.Block) {
	t.Helper()
	ok := map[string]bool{}
	known := false
	if ok, known = allowed(kind); !known {
		t.Errorf("%s: %s is not in the provider schema table; check its arguments and add it (testdata/gen-provider-schema.py or handSchema)", at(b.TypeRange), kind)
		return
	}
	var check func(body *hclsyntax.Body, prefix string)
	check = func(body *hclsyntax.Body, prefix string) {
		for name, a := range body.Attributes {
			if prefix == "" && metaArgs[name] {
				continue
			}
			if !ok[prefix+name] {
				t.Errorf("%s: %s has no argument %s%s", at(a.SrcRange), kind, prefix, name)
			}
		}
		for _, nb := range body.Blocks {
			if prefix == "" && (nb.Type == "lifecycle" || nb.Type == "provisioner" || nb.Type == "connection") {
				continue
			}
			if !ok[prefix+nb.Type] {
				t.Errorf("%s: %s has no block %s%s", at(nb.TypeRange), kind, prefix, nb.Type)
				continue
			}
			check(nb.Body, prefix+nb.Type+".")
		}
	}
	check(b.Body, "")
}

// readable reports whether attribute attr of a resource of this kind may be read.
func readable(kind, attr string) bool {
	if attr == "id" {
		return true // every resource has one
	}
	if g, ok := generatedSchema[kind]; ok {
		return g[attr]
	}
	s := handSchema[kind]
	return slices.Contains(strings.Fields(s.args+" "+s.computed), attr)
}

// moduleOutputs lists the outputs of a local module (source "./…").
func moduleOutputs(t reporter, c *config, name string) map[string]bool {
	t.Helper()
	m := c.modules[name]
	src, _ := literalString(m.Body.Attributes["source"])
	if !strings.HasPrefix(src, "./") {
		return nil
	}
	out := map[string]bool{}
	paths, _ := filepath.Glob(filepath.Join(dirOf(), src, "*.tf"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		f, diags := hclsyntax.ParseConfig(b, p, hcl.InitialPos)
		if diags.HasErrors() {
			t.Errorf("%v", diags)
			continue
		}
		for _, blk := range f.Body.(*hclsyntax.Body).Blocks {
			if blk.Type == "output" {
				out[blk.Labels[0]] = true
			}
		}
	}
	return out
}

func dirOf() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// checkReferences: every reference resolves, to an attribute its type has.
func checkReferences(t reporter, c *config) {
	t.Helper()
	usedVars := map[string]bool{}
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if block.Type == "variable" && len(path) == 0 && a.Name == "type" {
			return // a type constraint, not an expression
		}
		if (len(path) == 0 && a.Name == "provider") || (len(path) > 0 && path[len(path)-1] == "provisioner" && a.Name == "when") {
			return // a provider address or destroy, not a reference
		}
		for _, tr := range a.Expr.Variables() {
			root := tr.RootName()
			where := at(tr.SourceRange())
			attrName := func(i int) (string, bool) {
				if len(tr) <= i {
					return "", false
				}
				st, ok := tr[i].(hcl.TraverseAttr)
				return st.Name, ok
			}
			switch root {
			case "var":
				n, _ := attrName(1)
				if _, ok := c.variables[n]; !ok {
					t.Errorf("%s: var.%s is not declared", where, n)
				}
				if block.Type != "variable" {
					usedVars[n] = true
				}
			case "local":
				n, _ := attrName(1)
				if _, ok := c.locals[n]; !ok {
					t.Errorf("%s: local.%s is not declared", where, n)
				}
			case "data", "ephemeral":
				typ, _ := attrName(1)
				name, _ := attrName(2)
				m := c.data
				if root == "ephemeral" {
					m = c.ephemerals
				}
				if _, ok := m[typ+"."+name]; !ok {
					t.Errorf("%s: %s.%s.%s is not declared", where, root, typ, name)
				} else if attr, ok := attrName(3); ok && !readable(root+"."+typ, attr) {
					t.Errorf("%s: %s.%s.%s has no attribute %s", where, root, typ, name, attr)
				}
			case "module":
				n, _ := attrName(1)
				if _, ok := c.modules[n]; !ok {
					t.Errorf("%s: module.%s is not declared", where, n)
				} else if out, ok := attrName(2); ok {
					if outs := moduleOutputs(t, c, n); outs != nil && !outs[out] {
						t.Errorf("%s: module.%s has no output %s", where, n, out)
					}
				}
			case "path", "terraform", "self", "count", "each":
			default:
				if !strings.Contains(root, "_") {
					t.Errorf("%s: unknown reference %s", where, traversalString(tr))
					continue
				}
				name, _ := attrName(1)
				if _, ok := c.resources[root+"."+name]; !ok {
					t.Errorf("%s: resource %s.%s is not declared", where, root, name)
					continue
				}
				attr, ok := attrName(2)
				if !ok && len(tr) > 2 {
					// TYPE.NAME[key].attr (count, for_each)
					attr, ok = attrName(3)
				}
				if ok && !readable(root, attr) {
					t.Errorf("%s: %s.%s has no attribute %s", where, root, name, attr)
				}
			}
		}
	})
	for _, name := range sortedKeys(c.variables) {
		if !usedVars[name] {
			t.Errorf("variable %s is declared but never used", name)
		}
	}
}

// ---- tests -----------------------------------------------------------------------------

func TestFmt(t *testing.T) {
	tf := needTool(t, "terraform", "terraform fmt checks the formatting")
	out, err := terraform(t, tf, dir(t), "fmt", "-check", "-recursive", "-diff", ".")
	if err != nil {
		t.Errorf("terraform fmt -check -recursive: %v (run `terraform fmt -recursive terraform/`)\n%s", err, out)
	}
}

func TestReferencesResolve(t *testing.T) {
	checkReferences(t, load(t))
}

func TestSchema(t *testing.T) {
	if len(generatedSchema) < 20 {
		t.Fatalf("testdata/google-provider-schema.txt has %d types; regenerate it with testdata/gen-provider-schema.py", len(generatedSchema))
	}
	c := load(t)
	for _, key := range sortedKeys(c.resources) {
		checkSchema(t, strings.SplitN(key, ".", 2)[0], c.resources[key])
	}
	for _, key := range sortedKeys(c.data) {
		checkSchema(t, "data."+strings.SplitN(key, ".", 2)[0], c.data[key])
	}
	for _, key := range sortedKeys(c.ephemerals) {
		checkSchema(t, "ephemeral."+strings.SplitN(key, ".", 2)[0], c.ephemerals[key])
	}
	// The checker itself must refuse misspellings, unknown blocks and unknown
	// types, and accept the meta-arguments and blocks every resource has.
	for src, wantErrs := range map[string]int{
		"resource \"google_cloud_run_v2_service\" \"x\" {\n  template {\n    sesion_affinity = true\n  }\n}\n":            1,
		"resource \"google_cloud_run_v2_service\" \"x\" {\n  invoker_iam_disabled = true\n}\n":                            0,
		"resource \"google_sql_database_instance\" \"x\" {\n  settings {\n    ip_config {\n    }\n  }\n}\n":               1,
		"resource \"google_sql_user\" \"x\" {\n  password_wo = \"x\"\n  password_wo_version = 1\n}\n":                     0,
		"resource \"google_sql_user\" \"x\" {\n  password_write_only = \"x\"\n}\n":                                        1,
		"resource \"google_secret_manager_secret_version\" \"x\" {\n  secret_data_wo = \"x\"\n}\n":                        0,
		"resource \"google_compute_firewall\" \"x\" {\n  source_range = []\n  count = 1\n}\n":                             1,
		"resource \"google_compute_firewal\" \"x\" {\n}\n":                                                                1,
		"resource \"google_compute_firewall\" \"x\" {\n  source_ranges = []\n  lifecycle {\n  }\n}\n":                     0,
		"resource \"terraform_data\" \"x\" {\n  input = 1\n  provisioner \"local-exec\" {\n    command = \"x\"\n  }\n}\n": 0,
		"resource \"time_sleep\" \"x\" {\n  create_duraton = \"1s\"\n}\n":                                                 1,
		"resource \"google_project_iam_member\" \"x\" {\n  condition {\n    expresion = \"x\"\n  }\n}\n":                  1,
	} {
		f, diags := hclsyntax.ParseConfig([]byte(src), "fixture.tf", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		b := f.Body.(*hclsyntax.Body).Blocks[0]
		var col collector
		checkSchema(&col, b.Labels[0], b)
		if len(col.errs) != wantErrs {
			t.Errorf("schema check of %q: %d errors %v, want %d", src, len(col.errs), col.errs, wantErrs)
		}
	}
}

// The reference check must notice what it is for.
func TestReferencesCatchBreakage(t *testing.T) {
	for name, brk := range map[string][3]string{
		"undeclared var":        {"run.tf", "var.relay_concurrency", "var.relay_concurency"},
		"undeclared local":      {"run.tf", "local.relay_subscription_prefix", "local.relay_sub_prefix"},
		"missing attribute":     {"run.tf", "google_pubsub_topic.records.name", "google_pubsub_topic.records.title"},
		"missing module output": {"main.tf", "module.sources.images_hash", "module.sources.image_hash"},
		"missing ephemeral":     {"sql.tf", "ephemeral.google_secret_manager_secret_version.db_admin.secret_data", "ephemeral.google_secret_manager_secret_version.admin.secret_data"},
	} {
		c := brokenCopy(t, brk[0], brk[1], brk[2])
		var col collector
		checkReferences(&col, c)
		if len(col.errs) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}
}

// brokenCopy parses the configuration with one replacement made in one file.
func brokenCopy(t *testing.T, file, old, new string) *config {
	t.Helper()
	files := sources(t)
	src, ok := files[file]
	if !ok || !strings.Contains(string(src), old) {
		t.Fatalf("%s does not contain %q (the breakage is stale)", file, old)
	}
	files[file] = []byte(strings.Replace(string(src), old, new, 1))
	c, err := parse(files)
	if err != nil {
		t.Fatalf("the broken copy does not parse: %v", err)
	}
	return c
}

func TestVariablesAndOutputsAreDocumented(t *testing.T) {
	c := load(t)
	for _, name := range sortedKeys(c.variables) {
		b := c.variables[name]
		d, ok := b.Body.Attributes["description"]
		if v, lit := literalString(d); !ok || !lit || len(v) < 10 {
			t.Errorf("%s: variable %s needs a description", at(b.TypeRange), name)
		}
		if _, ok := b.Body.Attributes["type"]; !ok {
			t.Errorf("%s: variable %s needs a type", at(b.TypeRange), name)
		}
		// Terraform before 1.9 lets a validation refer only to its own variable.
		for _, v := range blocksOf(b.Body, "validation") {
			cond := v.Body.Attributes["condition"]
			if cond == nil || v.Body.Attributes["error_message"] == nil {
				t.Errorf("%s: validation of %s needs condition and error_message", at(v.TypeRange), name)
				continue
			}
			for _, tr := range cond.Expr.Variables() {
				if s := traversalString(tr); s != "var."+name && !strings.HasPrefix(s, "var."+name+".") {
					t.Errorf("%s: validation of %s refers to %s", at(tr.SourceRange()), name, s)
				}
			}
		}
	}
	for _, name := range sortedKeys(c.outputs) {
		b := c.outputs[name]
		if v, lit := literalString(b.Body.Attributes["description"]); !lit || len(v) < 10 {
			t.Errorf("%s: output %s needs a description", at(b.TypeRange), name)
		}
		if _, ok := b.Body.Attributes["value"]; !ok {
			t.Errorf("%s: output %s has no value", at(b.TypeRange), name)
		}
	}
	// What a person needs at the end of `terraform apply`.
	for _, name := range []string{"dashboard_url", "ingress_url", "agent_urls", "vms", "load_commands", "smoke_command",
		"ingest_token_command", "relay_url", "relay_ws_url", "k8s_overlay", "k8s_config_env", "gke_get_credentials",
		"cloudsql_instance_connection_name", "db_user", "db_name", "pubsub_topic", "route_gsa_email", "kmod_status_commands"} {
		if _, ok := c.outputs[name]; !ok {
			t.Errorf("no output %s", name)
		}
	}
}

func literalString(a *hclsyntax.Attribute) (string, bool) {
	if a == nil {
		return "", false
	}
	v, ok := literal(a.Expr)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

func literalBool(a *hclsyntax.Attribute) (bool, bool) {
	if a == nil {
		return false, false
	}
	v, ok := literal(a.Expr)
	if !ok || v.Type() != cty.Bool {
		return false, false
	}
	return v.True(), true
}

// isRef reports whether an attribute is exactly the reference ref (var.x,
// local.y, TYPE.NAME.attr).
func isRef(a *hclsyntax.Attribute, ref string) bool {
	if a == nil {
		return false
	}
	st, ok := a.Expr.(*hclsyntax.ScopeTraversalExpr)
	return ok && traversalString(st.Traversal) == ref
}

func isVar(a *hclsyntax.Attribute, name string) bool { return isRef(a, "var."+name) }

// refs lists the references an attribute's expression makes.
func refs(a *hclsyntax.Attribute) []string {
	if a == nil {
		return nil
	}
	var out []string
	for _, tr := range a.Expr.Variables() {
		out = append(out, traversalString(tr))
	}
	return out
}

// dependsOn lists what a block's depends_on names.
func dependsOn(b *hclsyntax.Block) []string {
	return refs(b.Body.Attributes["depends_on"])
}
