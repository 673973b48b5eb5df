package terraform

// Offline checks of the Terraform configuration. The Google provider cannot be
// downloaded here, so `terraform validate` cannot run; instead:
//
//   - terraform fmt -check, with the real binary;
//   - every .tf is parsed with HCL and every reference (var., local., data.,
//     module., TYPE.NAME and the attribute read from it) must resolve;
//   - every argument and block must be in the schema below, transcribed from the
//     google provider's source (resource *_meta.yaml and schema files): a
//     misspelled argument fails here instead of at `terraform plan`;
//   - the security invariants of the design are asserted on the parsed files;
//   - templatefile() calls pass exactly the variables their templates use, and the
//     templates are rendered by terraform itself (a module with no providers runs
//     offline); the VM's startup script passes `bash -n`;
//   - the variables' validation rules run in terraform against good and bad values.

import (
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
	files     map[string]*hclsyntax.Body
	variables map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	resources map[string]*hclsyntax.Block // TYPE.NAME
	data      map[string]*hclsyntax.Block // TYPE.NAME
	modules   map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
}

func load(t *testing.T) *config {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir(t), "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files: %v", err)
	}
	p := hclparse.NewParser()
	c := &config{
		files: map[string]*hclsyntax.Body{}, variables: map[string]*hclsyntax.Block{},
		locals: map[string]*hclsyntax.Attribute{}, resources: map[string]*hclsyntax.Block{},
		data: map[string]*hclsyntax.Block{}, modules: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
	}
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("%v", diags)
		}
		body := f.Body.(*hclsyntax.Body)
		c.files[filepath.Base(path)] = body
		for _, b := range body.Blocks {
			add := func(m map[string]*hclsyntax.Block, key string) {
				if _, dup := m[key]; dup {
					t.Errorf("%s: %s %s declared twice", path, b.Type, key)
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
			case "module":
				add(c.modules, b.Labels[0])
			case "output":
				add(c.outputs, b.Labels[0])
			case "locals":
				for name, a := range b.Body.Attributes {
					if _, dup := c.locals[name]; dup {
						t.Errorf("%s: local %s declared twice", path, name)
					}
					c.locals[name] = a
				}
			case "terraform", "provider":
			default:
				t.Errorf("%s:%d: unexpected top-level block %s", path, b.TypeRange.Start.Line, b.Type)
			}
		}
		if len(body.Attributes) > 0 {
			t.Errorf("%s: top-level attributes in a .tf file", path)
		}
	}
	return c
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

// ---- the provider schema (the part of it this configuration uses) ------------------------

// schema lists, per resource or data source type, the arguments and nested blocks
// that the configuration may use (dotted paths), and the computed attributes it
// may read. Transcribed from hashicorp/terraform-provider-google's sources:
// google/services/*/resource_*_meta.yaml and the resource schemas (checked for
// container_cluster, sql_database_instance, sql_user, cloud_run_v2_service,
// compute_instance and service_networking_connection), and from
// hashicorp/terraform-provider-random for random_id and random_password. A type
// that is not here fails the test: add it after checking its schema.
var schema = map[string]struct{ args, computed string }{
	"google_compute_network":    {args: "name auto_create_subnetworks routing_mode", computed: "id self_link"},
	"google_compute_subnetwork": {args: "name region network ip_cidr_range private_ip_google_access secondary_ip_range secondary_ip_range.range_name secondary_ip_range.ip_cidr_range", computed: "id self_link"},
	"google_compute_router":     {args: "name region network", computed: "id"},
	"google_compute_router_nat": {args: "name router region nat_ip_allocate_option source_subnetwork_ip_ranges_to_nat log_config log_config.enable log_config.filter", computed: "id"},
	"google_compute_global_address": {args: "name purpose address_type prefix_length network ip_version",
		computed: "id address self_link"},
	"google_service_networking_connection": {args: "network service reserved_peering_ranges deletion_policy update_on_creation_fail", computed: "id peering"},
	"google_compute_firewall": {args: "name network direction priority source_ranges target_tags allow allow.protocol allow.ports deny deny.protocol deny.ports log_config log_config.metadata",
		computed: "id"},
	"google_container_cluster": {args: "name location enable_autopilot deletion_protection network subnetwork " +
		"ip_allocation_policy ip_allocation_policy.cluster_secondary_range_name ip_allocation_policy.services_secondary_range_name " +
		"private_cluster_config private_cluster_config.enable_private_nodes private_cluster_config.enable_private_endpoint " +
		"release_channel release_channel.channel gateway_api_config gateway_api_config.channel " +
		"workload_identity_config workload_identity_config.workload_pool " +
		"cluster_autoscaling cluster_autoscaling.auto_provisioning_defaults " +
		"cluster_autoscaling.auto_provisioning_defaults.service_account cluster_autoscaling.auto_provisioning_defaults.oauth_scopes",
		computed: "id endpoint master_version"},
	"random_id":       {args: "byte_length keepers prefix", computed: "hex dec id b64_url b64_std"},
	"random_password": {args: "length special upper lower numeric override_special min_special", computed: "result id"},
	"google_sql_database_instance": {args: "name database_version region deletion_protection settings " +
		"settings.tier settings.edition settings.availability_type settings.disk_type settings.disk_size settings.disk_autoresize " +
		"settings.deletion_protection_enabled settings.user_labels " +
		"settings.ip_configuration settings.ip_configuration.ipv4_enabled settings.ip_configuration.private_network settings.ip_configuration.ssl_mode " +
		"settings.backup_configuration settings.backup_configuration.enabled settings.backup_configuration.binary_log_enabled " +
		"settings.backup_configuration.start_time settings.backup_configuration.transaction_log_retention_days " +
		"settings.backup_configuration.backup_retention_settings settings.backup_configuration.backup_retention_settings.retained_backups " +
		"settings.backup_configuration.backup_retention_settings.retention_unit " +
		"settings.database_flags settings.database_flags.name settings.database_flags.value " +
		"settings.insights_config settings.insights_config.query_insights_enabled " +
		"settings.maintenance_window settings.maintenance_window.day settings.maintenance_window.hour settings.maintenance_window.update_track",
		computed: "connection_name private_ip_address self_link id"},
	"google_sql_database":            {args: "name instance charset collation", computed: "id"},
	"google_sql_user":                {args: "name instance type host password", computed: "id"},
	"google_pubsub_topic":            {args: "name", computed: "id"},
	"google_pubsub_topic_iam_member": {args: "project topic role member", computed: "etag"},
	"google_service_account":         {args: "account_id display_name description", computed: "email name id unique_id member"},
	"google_project_iam_member":      {args: "project role member", computed: "etag"},
	"google_service_account_iam_member": {args: "service_account_id role member",
		computed: "etag"},
	"google_project_iam_custom_role": {args: "role_id title description permissions", computed: "id name"},
	"google_cloud_run_v2_service": {args: "name location ingress deletion_protection template " +
		"template.service_account template.timeout template.session_affinity template.max_instance_request_concurrency " +
		"template.scaling template.scaling.min_instance_count template.scaling.max_instance_count " +
		"template.containers template.containers.name template.containers.image " +
		"template.containers.ports template.containers.ports.container_port " +
		"template.containers.resources template.containers.resources.limits template.containers.resources.cpu_idle " +
		"template.containers.resources.startup_cpu_boost " +
		"template.containers.env template.containers.env.name template.containers.env.value " +
		"template.containers.startup_probe template.containers.startup_probe.period_seconds template.containers.startup_probe.timeout_seconds " +
		"template.containers.startup_probe.failure_threshold template.containers.startup_probe.initial_delay_seconds " +
		"template.containers.startup_probe.http_get template.containers.startup_probe.http_get.path",
		computed: "uri urls id"},
	"google_cloud_run_v2_service_iam_member": {args: "project location name role member", computed: "etag"},
	"google_storage_bucket":                  {args: "name location uniform_bucket_level_access public_access_prevention force_destroy", computed: "url self_link id"},
	"google_storage_bucket_iam_member":       {args: "bucket role member", computed: "etag"},
	"google_compute_instance": {args: "name zone machine_type tags allow_stopping_for_update metadata " +
		"boot_disk boot_disk.initialize_params boot_disk.initialize_params.image boot_disk.initialize_params.size boot_disk.initialize_params.type " +
		"network_interface network_interface.subnetwork network_interface.access_config " +
		"service_account service_account.email service_account.scopes " +
		"shielded_instance_config shielded_instance_config.enable_secure_boot shielded_instance_config.enable_vtpm " +
		"shielded_instance_config.enable_integrity_monitoring",
		computed: "id instance_id self_link"},
	// data sources
	"data.google_project":       {args: "project_id", computed: "number name id"},
	"data.google_compute_image": {args: "family project", computed: "self_link name id"},
}

var metaArgs = map[string]bool{"count": true, "for_each": true, "depends_on": true, "provider": true, "lifecycle": true}

// reporter is what checkSchema needs of a *testing.T (a test feeds it broken
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

// checkSchema checks the arguments and blocks of one resource or data block.
func checkSchema(t reporter, kind string, b *hclsyntax.Block) {
	t.Helper()
	s, ok := schema[kind]
	if !ok {
		t.Errorf("%s: %s is not in the test's schema table; check its arguments and add it", at(b.TypeRange), kind)
		return
	}
	allowed := map[string]bool{}
	for _, a := range strings.Fields(s.args) {
		allowed[a] = true
	}
	var check func(body *hclsyntax.Body, prefix string)
	check = func(body *hclsyntax.Body, prefix string) {
		for name, a := range body.Attributes {
			if prefix == "" && metaArgs[name] {
				continue
			}
			if !allowed[prefix+name] {
				t.Errorf("%s: %s has no argument %s%s", at(a.SrcRange), kind, prefix, name)
			}
		}
		for _, nb := range body.Blocks {
			if prefix == "" && nb.Type == "lifecycle" {
				continue
			}
			if !allowed[prefix+nb.Type] {
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
	s := schema[kind]
	for _, a := range strings.Fields(s.args + " " + s.computed) {
		if a == attr {
			return true
		}
	}
	return false
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
	c := load(t)
	usedVars := map[string]bool{}
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if block.Type == "variable" && len(path) == 0 && a.Name == "type" {
			return // a type constraint, not an expression
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
			case "data":
				typ, _ := attrName(1)
				name, _ := attrName(2)
				if _, ok := c.data[typ+"."+name]; !ok {
					t.Errorf("%s: data.%s.%s is not declared", where, typ, name)
				} else if attr, ok := attrName(3); ok && !readable("data."+typ, attr) {
					t.Errorf("%s: data.%s.%s has no attribute %s", where, typ, name, attr)
				}
			case "module":
				n, _ := attrName(1)
				if _, ok := c.modules[n]; !ok {
					t.Errorf("%s: module.%s is not declared", where, n)
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
				} else if attr, ok := attrName(2); ok && !readable(root, attr) {
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

func TestSchema(t *testing.T) {
	c := load(t)
	for _, key := range sortedKeys(c.resources) {
		checkSchema(t, strings.SplitN(key, ".", 2)[0], c.resources[key])
	}
	for _, key := range sortedKeys(c.data) {
		checkSchema(t, "data."+strings.SplitN(key, ".", 2)[0], c.data[key])
	}
	// The checker itself must refuse misspellings, unknown blocks and unknown types.
	for src, wantErrs := range map[string]int{
		"resource \"google_cloud_run_v2_service\" \"x\" {\n  template {\n    sesion_affinity = true\n  }\n}\n": 1,
		"resource \"google_sql_database_instance\" \"x\" {\n  settings {\n    ip_config {\n    }\n  }\n}\n":    1,
		"resource \"google_compute_firewall\" \"x\" {\n  source_range = []\n  count = 1\n}\n":                  1,
		"resource \"google_compute_firewal\" \"x\" {\n}\n":                                                     1,
		"resource \"google_compute_firewall\" \"x\" {\n  source_ranges = []\n  lifecycle {\n  }\n}\n":          0,
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
	for _, name := range []string{"dashboard_url", "relay_url", "ingress_url", "agent_url", "k8s_overlay", "k8s_config_env",
		"cloudsql_instance_connection_name", "db_user", "db_name", "pubsub_topic", "route_gsa_email", "gke_get_credentials"} {
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

func literalBool(t *testing.T, a *hclsyntax.Attribute) (bool, bool) {
	t.Helper()
	if a == nil {
		return false, false
	}
	v, ok := literal(a.Expr)
	if !ok || v.Type() != cty.Bool {
		return false, false
	}
	return v.True(), true
}

// isVar reports whether an attribute is exactly var.<name>.
func isVar(a *hclsyntax.Attribute, name string) bool {
	if a == nil {
		return false
	}
	st, ok := a.Expr.(*hclsyntax.ScopeTraversalExpr)
	return ok && traversalString(st.Traversal) == "var."+name
}

func one(t *testing.T, c *config, typ string) *hclsyntax.Block {
	t.Helper()
	var found []*hclsyntax.Block
	for _, k := range sortedKeys(c.resources) {
		if strings.HasPrefix(k, typ+".") {
			found = append(found, c.resources[k])
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, have %d", typ, len(found))
	}
	return found[0]
}

func TestCloudSQLIsPrivateAndIAM(t *testing.T) {
	c := load(t)
	sql := one(t, c, "google_sql_database_instance")
	if v, ok := literalString(sql.Body.Attributes["database_version"]); !ok || v != "MYSQL_8_0" {
		t.Errorf("database_version %q, want MYSQL_8_0", v)
	}
	if v, ok := literalBool(t, blockAttr(sql, "settings", "ip_configuration", "ipv4_enabled")); !ok || v {
		t.Error("settings.ip_configuration.ipv4_enabled must be the literal false (private IP only)")
	}
	if pn := blockAttr(sql, "settings", "ip_configuration", "private_network"); pn == nil || len(pn.Expr.Variables()) == 0 {
		t.Error("settings.ip_configuration.private_network must reference the VPC")
	}
	if !isVar(sql.Body.Attributes["deletion_protection"], "deletion_protection") {
		t.Error("the instance's deletion_protection must be var.deletion_protection")
	}
	if !isVar(blockAttr(sql, "settings", "deletion_protection_enabled"), "deletion_protection") {
		t.Error("settings.deletion_protection_enabled must be var.deletion_protection")
	}
	if v, ok := literalBool(t, blockAttr(sql, "settings", "backup_configuration", "enabled")); !ok || !v {
		t.Error("backups must be enabled")
	}
	flags := map[string]string{}
	var settings *hclsyntax.Block
	for _, b := range sql.Body.Blocks {
		if b.Type == "settings" {
			settings = b
		}
	}
	if settings == nil {
		t.Fatal("no settings block")
	}
	for _, f := range blocksOf(settings.Body, "database_flags") {
		n, _ := literalString(f.Body.Attributes["name"])
		v, _ := literalString(f.Body.Attributes["value"])
		flags[n] = v
	}
	for k, v := range map[string]string{"cloudsql_iam_authentication": "on", "local_infile": "off"} {
		if flags[k] != v {
			t.Errorf("database flag %s=%q, want %q", k, flags[k], v)
		}
	}
	// The routes' IAM database user, of the route service account.
	user := c.resources["google_sql_user.route"]
	if user == nil {
		t.Fatal("no google_sql_user.route")
	}
	if v, _ := literalString(user.Body.Attributes["type"]); v != "CLOUD_IAM_SERVICE_ACCOUNT" {
		t.Errorf("google_sql_user.route type %q, want CLOUD_IAM_SERVICE_ACCOUNT", v)
	}
	if _, has := user.Body.Attributes["password"]; has {
		t.Error("the IAM user must not have a password")
	}
	if s := traversalString(user.Body.Attributes["name"].Expr.Variables()[0]); s != "google_service_account.route.email" {
		t.Errorf("google_sql_user.route name is %s, want google_service_account.route.email (MySQL keeps the part before @)", s)
	}
}

func TestNetworkExposure(t *testing.T) {
	c := load(t)
	// No literal "everyone" range anywhere outside the variables' validation.
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if block.Type == "variable" {
			return
		}
		src := a.SrcRange
		b, err := os.ReadFile(src.Filename)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b[src.Start.Byte:src.End.Byte])
		if strings.Contains(text, "0.0.0.0/0") || strings.Contains(text, "::/0") {
			t.Errorf("%s: %s opens to the whole internet", at(src), a.Name)
		}
	})
	agentFirewall := false
	for _, key := range sortedKeys(c.resources) {
		if !strings.HasPrefix(key, "google_compute_firewall.") {
			continue
		}
		fw := c.resources[key]
		opensAgent := false
		for _, al := range blocksOf(fw.Body, "allow") {
			if p := al.Body.Attributes["ports"]; p != nil {
				for _, tr := range p.Expr.Variables() {
					opensAgent = opensAgent || traversalString(tr) == "local.agent_port"
				}
				if v, ok := literal(p.Expr); ok && v.Type().IsTupleType() {
					for _, e := range v.AsValueSlice() {
						opensAgent = opensAgent || (e.Type() == cty.String && e.AsString() == "8090")
					}
				}
			}
		}
		if !opensAgent {
			continue
		}
		agentFirewall = true
		sr := fw.Body.Attributes["source_ranges"]
		if !isVar(sr, "loadgen_source_ranges") {
			t.Errorf("%s: the agent's firewall must take its sources from var.loadgen_source_ranges", at(fw.TypeRange))
			continue
		}
		v := c.variables["loadgen_source_ranges"]
		if _, hasDefault := v.Body.Attributes["default"]; hasDefault {
			t.Error("var.loadgen_source_ranges must have no default (the operator names their load generator)")
		}
		refuses := false
		for _, val := range blocksOf(v.Body, "validation") {
			cond := val.Body.Attributes["condition"]
			b, _ := os.ReadFile(cond.SrcRange.Filename)
			refuses = refuses || strings.Contains(string(b[cond.SrcRange.Start.Byte:cond.SrcRange.End.Byte]), `"0.0.0.0/0"`)
		}
		if !refuses {
			t.Error("var.loadgen_source_ranges needs a validation that refuses 0.0.0.0/0")
		}
	}
	if !agentFirewall {
		t.Error("no firewall rule opens the agent port 8090")
	}
	vm := one(t, c, "google_compute_instance")
	if v, ok := literalBool(t, blockAttr(vm, "shielded_instance_config", "enable_secure_boot")); !ok || v {
		t.Error("the VM loads unsigned modules: enable_secure_boot must be false")
	}
}

func TestClusterAndCloudRun(t *testing.T) {
	c := load(t)
	gke := one(t, c, "google_container_cluster")
	if v, ok := literalBool(t, gke.Body.Attributes["enable_autopilot"]); !ok || !v {
		t.Error("the cluster must be Autopilot")
	}
	if v, _ := literalString(blockAttr(gke, "gateway_api_config", "channel")); v != "CHANNEL_STANDARD" {
		t.Errorf("gateway_api_config.channel %q, want CHANNEL_STANDARD", v)
	}
	if blockAttr(gke, "workload_identity_config", "workload_pool") == nil {
		t.Error("no workload_identity_config.workload_pool")
	}
	if !isVar(gke.Body.Attributes["deletion_protection"], "deletion_protection") {
		t.Error("the cluster's deletion_protection must be var.deletion_protection")
	}

	relay := c.resources["google_cloud_run_v2_service.relay"]
	web := c.resources["google_cloud_run_v2_service.web"]
	if relay == nil || web == nil {
		t.Fatal("want google_cloud_run_v2_service.relay and .web")
	}
	if v, _ := literalString(blockAttr(relay, "template", "timeout")); v != "3600s" {
		t.Errorf("relay timeout %q, want 3600s (websockets)", v)
	}
	if v, ok := literalBool(t, blockAttr(relay, "template", "session_affinity")); !ok || !v {
		t.Error("relay needs session_affinity = true")
	}
	if v, ok := literalBool(t, blockAttr(relay, "template", "containers", "resources", "cpu_idle")); !ok || v {
		t.Error("relay needs cpu_idle = false (CPU always allocated)")
	}
	if blockAttr(relay, "template", "max_instance_request_concurrency") == nil {
		t.Error("relay needs max_instance_request_concurrency")
	}
	if !isVar(blockAttr(relay, "template", "scaling", "min_instance_count"), "relay_min_instances") {
		t.Error("relay min_instance_count must be var.relay_min_instances")
	}
	envOf := func(svc *hclsyntax.Block) map[string]*hclsyntax.Attribute {
		env := map[string]*hclsyntax.Attribute{}
		for _, tb := range blocksOf(svc.Body, "template") {
			for _, cb := range blocksOf(tb.Body, "containers") {
				for _, e := range blocksOf(cb.Body, "env") {
					n, _ := literalString(e.Body.Attributes["name"])
					env[n] = e.Body.Attributes["value"]
				}
			}
		}
		return env
	}
	for _, k := range []string{"PUBSUB_PROJECT", "PUBSUB_TOPIC", "SUBSCRIPTION_PREFIX", "ALLOWED_ORIGINS"} {
		if envOf(relay)[k] == nil {
			t.Errorf("relay has no %s", k)
		}
	}
	if e := envOf(web)["RELAY_URL"]; e == nil || len(e.Expr.Variables()) != 1 || traversalString(e.Expr.Variables()[0]) != "local.relay_ws_url" {
		t.Error("the dashboard's RELAY_URL must be local.relay_ws_url")
	}
	if l := c.locals["relay_ws_url"]; l == nil || !slices.ContainsFunc(l.Expr.Variables(), func(tr hcl.Traversal) bool {
		return traversalString(tr) == "google_cloud_run_v2_service.relay.uri"
	}) {
		t.Error("local.relay_ws_url must come from the relay service's uri")
	}
	// gcloud run deploy changes the image; terraform must not undo it.
	for name, svc := range map[string]*hclsyntax.Block{"relay": relay, "web": web} {
		ic := blockAttr(svc, "lifecycle", "ignore_changes")
		if ic == nil {
			t.Errorf("%s: no lifecycle.ignore_changes", name)
			continue
		}
		b, _ := os.ReadFile(ic.SrcRange.Filename)
		if !strings.Contains(string(b[ic.SrcRange.Start.Byte:ic.SrcRange.End.Byte]), "template[0].containers[0].image") {
			t.Errorf("%s: ignore_changes must include template[0].containers[0].image", name)
		}
		if !isVar(svc.Body.Attributes["deletion_protection"], "deletion_protection") {
			t.Errorf("%s: deletion_protection must be var.deletion_protection", name)
		}
	}
	// Public invokers only when asked.
	for _, k := range []string{"google_cloud_run_v2_service_iam_member.relay_public", "google_cloud_run_v2_service_iam_member.web_public"} {
		b := c.resources[k]
		if b == nil {
			t.Errorf("no %s", k)
			continue
		}
		if cnt := b.Body.Attributes["count"]; cnt == nil || !slices.ContainsFunc(cnt.Expr.Variables(), func(tr hcl.Traversal) bool { return traversalString(tr) == "var.public_access" }) {
			t.Errorf("%s must depend on var.public_access", k)
		}
	}
}

func TestLeastPrivilege(t *testing.T) {
	c := load(t)
	broad := map[string]bool{"roles/owner": true, "roles/editor": true, "roles/viewer": true, "roles/pubsub.admin": true,
		"roles/pubsub.editor": true, "roles/cloudsql.admin": true, "roles/cloudsql.editor": true, "roles/storage.admin": true,
		"roles/iam.serviceAccountUser": true, "roles/iam.serviceAccountTokenCreator": true, "roles/run.admin": true}
	grants := map[string][]string{} // service account -> roles
	for _, key := range sortedKeys(c.resources) {
		b := c.resources[key]
		role := b.Body.Attributes["role"]
		member := b.Body.Attributes["member"]
		if role == nil || member == nil {
			continue
		}
		r, lit := literalString(role)
		if lit && broad[r] {
			t.Errorf("%s grants %s", key, r)
		}
		if !lit {
			r = "custom:" + traversalString(role.Expr.Variables()[0])
		}
		for _, tr := range member.Expr.Variables() {
			if s := traversalString(tr); strings.HasPrefix(s, "google_service_account.") {
				sa := strings.Split(s, ".")[1]
				grants[sa] = append(grants[sa], strings.SplitN(key, ".", 2)[0]+" "+r)
			}
		}
	}
	want := map[string][]string{
		"route": {"google_project_iam_member roles/cloudsql.client", "google_project_iam_member roles/cloudsql.instanceUser",
			"google_pubsub_topic_iam_member roles/pubsub.publisher", "google_pubsub_topic_iam_member roles/pubsub.viewer"},
		"relay": {"google_project_iam_member custom:google_project_iam_custom_role.relay_subscriptions.id",
			"google_pubsub_topic_iam_member roles/pubsub.subscriber", "google_pubsub_topic_iam_member roles/pubsub.viewer"},
		"vm": {"google_project_iam_member roles/logging.logWriter", "google_project_iam_member roles/monitoring.metricWriter",
			"google_storage_bucket_iam_member roles/storage.objectViewer"},
		"gke_nodes": {"google_project_iam_member roles/container.defaultNodeServiceAccount"},
	}
	for _, sa := range sortedKeys(c.resources) {
		if !strings.HasPrefix(sa, "google_service_account.") {
			continue
		}
		name := strings.TrimPrefix(sa, "google_service_account.")
		got := grants[name]
		sort.Strings(got)
		w := want[name]
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("service account %s holds\n  %v\nwant\n  %v", name, got, w)
		}
	}
	role := c.resources["google_project_iam_custom_role.relay_subscriptions"]
	perms, ok := literal(role.Body.Attributes["permissions"].Expr)
	if !ok {
		t.Fatal("custom role permissions must be literal")
	}
	var ps []string
	for _, p := range perms.AsValueSlice() {
		ps = append(ps, p.AsString())
	}
	sort.Strings(ps)
	if want := []string{"pubsub.subscriptions.consume", "pubsub.subscriptions.create", "pubsub.subscriptions.delete", "pubsub.subscriptions.get"}; !slices.Equal(ps, want) {
		t.Errorf("relay custom role %v, want %v", ps, want)
	}
}

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
	if calls != 2 {
		t.Errorf("found %d templatefile calls, want 2 (VM startup script, k8s overlay)", calls)
	}
}

// harness is a module without providers, which terraform plans and applies
// offline: it renders the templates through terraform's own templatefile().
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
  })
}
output "overlay" {
  value = templatefile(%q, {
    cloudsql_instance    = "demo-project:us-central1:vmpulse-mysql-1a2b"
    db_user              = "vmpulse-route"
    db_name              = "vmpulse"
    project_id           = "demo-project"
    pubsub_topic         = "vmpulse-records"
    route_gsa_email      = "vmpulse-route@demo-project.iam.gserviceaccount.com"
    gateway_address_name = "vmpulse-gateway-ip"
  })
}
`, filepath.Join(d, "templates", "vm-startup.sh.tftpl"), filepath.Join(d, "templates", "k8s-overlay.yaml.tftpl"))})
	if out, err := terraform(t, tf, wd, "apply", "-auto-approve", "-input=false"); err != nil {
		t.Fatalf("terraform apply (outputs only): %v\n%s", err, out)
	}
	script, err := terraform(t, tf, wd, "output", "-raw", "startup")
	if err != nil {
		t.Fatalf("%v\n%s", err, script)
	}
	path := filepath.Join(wd, "startup.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Errorf("bash -n on the rendered startup script: %v\n%s", err, out)
	}
	for _, want := range []string{
		"#!/bin/bash\n", "BUCKET='demo-project-vmpulse-agent'", "KMOD_SUFFIX='_202201524'", "AGENT_PORT='8090'",
		`dpkg-query -W -f='${Status}'`, "Environment=KMOD_SUFFIX=$KMOD_SUFFIX", "Environment=AGENT_ADDR=:$AGENT_PORT",
		`make -C "$SRC/kernel" SUFFIX="$KMOD_SUFFIX" install`, "linux-headers-$KVER",
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
	overlay, err := terraform(t, tf, wd, "output", "-raw", "overlay")
	if err != nil {
		t.Fatalf("%v\n%s", err, overlay)
	}
	for _, want := range []string{"- ../../k8s\n", "CLOUDSQL_INSTANCE=demo-project:us-central1:vmpulse-mysql-1a2b\n",
		"path: /metadata/annotations/iam.gke.io~1gcp-service-account\n", "value: vmpulse-route@demo-project.iam.gserviceaccount.com\n",
		"behavior: replace\n"} {
		if !strings.Contains(overlay, want) {
			t.Errorf("rendered overlay lacks %q:\n%s", want, overlay)
		}
	}
	if strings.Contains(overlay, "\nimages:") {
		t.Error("the overlay must not carry images: (make k8s-overlay appends them)")
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
	good := map[string]string{
		"project_id":            "demo-project-42",
		"registry":              "docker.io/example",
		"image_tag":             "0123abc",
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
		{"registry": "europe-west1-docker.pkg.dev/demo-project-42/vmpulse"},
		{"loadgen_source_ranges": `["203.0.113.0/24", "198.51.100.9/32"]`},
		{"kmod_suffix": "_202201524"},
		{"extra_allowed_origins": `["https://dash.example.com"]`},
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
		{"image_tag": "latest"},
		{"registry": "docker.io/example/"},
		{"registry": "https://docker.io/example"},
		{"project_id": "My Project"},
		{"zone": "us-central1"},
		{"kmod_suffix": "-202201524"},
		{"sql_availability_type": "MULTI"},
		{"prefix": "VMPULSE"},
		{"extra_allowed_origins": `["https://dash.example.com/"]`},
		{"relay_min_instances": "0"},
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
	}
}

// The VM's startup script, run for real against fakes of what only a VM has
// (apt, dpkg, the metadata server and GCS behind curl, make, modprobe, systemctl,
// uname), in temporary directories: first boot, a reboot with nothing new, a
// kernel upgrade, a new bundle, and a bundle that never arrives.
func TestStartupScriptFlow(t *testing.T) {
	bash := needTool(t, "bash", "bash runs the startup script")
	needTool(t, "python3", "the startup script reads the metadata token with python3")
	needTool(t, "tar", "the startup script unpacks the bundle with tar")
	tmp := t.TempDir()
	sub := func(p string) string {
		d := filepath.Join(tmp, p)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	fakes, bin, units, log := sub("fakes"), sub("bin"), sub("units"), filepath.Join(tmp, "calls.log")
	write := func(path, body string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Every fake appends its name and arguments to calls.log.
	rec := "echo \"$(basename \"$0\") $*\" >> '" + log + "'\n"
	for _, name := range []string{"apt-get", "make", "modprobe", "rmmod", "systemctl", "sleep"} {
		write(filepath.Join(fakes, name), "#!/bin/sh\n"+rec, 0o755)
	}
	write(filepath.Join(fakes, "uname"), "#!/bin/sh\necho \"$FAKE_KVER\"\n", 0o755)
	// Everything is installed except the headers of the running kernel.
	write(filepath.Join(fakes, "dpkg-query"), "#!/bin/sh\nfor a; do last=$a; done\ncase \"$last\" in linux-headers-*) "+
		"[ -e \"$FAKE_HEADERS/$last\" ] && echo 'install ok installed' ;; *) echo 'install ok installed' ;; esac\n", 0o755)
	write(filepath.Join(fakes, "curl"), `#!/bin/sh
`+rec+`out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    -H) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
case "$url" in
  http://metadata.google.internal/*) echo '{"access_token":"tok","expires_in":3599,"token_type":"Bearer"}' ;;
  https://storage.googleapis.com/storage/v1/b/demo-project-vmpulse-agent/o/vmpulse-agent-bundle.tar.gz\?alt=media)
    [ -f "$FAKE_BUNDLE" ] || exit 22
    cp "$FAKE_BUNDLE" "$out" ;;
  http://127.0.0.1:8090/healthz) exit 0 ;;
  *) echo "fake curl: unexpected $url" >&2; exit 2 ;;
esac
`, 0o755)

	// A bundle as make vm-bundle lays it out.
	mkBundle := func(name, agentBody string) string {
		d := filepath.Join(tmp, name)
		for _, p := range []string{"bin", "kernel"} {
			if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		write(filepath.Join(d, "bin", "vmpulse-agent"), agentBody, 0o755)
		write(filepath.Join(d, "kernel", "Makefile"), "# kernel/Makefile\n", 0o644)
		out := filepath.Join(tmp, name+".tar.gz")
		if b, err := exec.Command("tar", "-C", d, "-czf", out, "bin", "kernel").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, b)
		}
		return out
	}
	bundle1 := mkBundle("bundle1", "#!/bin/sh\necho agent v1\n")
	bundle2 := mkBundle("bundle2", "#!/bin/sh\necho agent v2\n")

	headers := sub("headers")
	script := filepath.Join(tmp, "startup.sh")
	write(script, renderTemplate(t, filepath.Join(dir(t), "templates", "vm-startup.sh.tftpl"), startupVars("_202201524", 1)), 0o755)
	scriptNoWait := filepath.Join(tmp, "startup-nowait.sh")
	write(scriptNoWait, renderTemplate(t, filepath.Join(dir(t), "templates", "vm-startup.sh.tftpl"), startupVars("_202201524", 0)), 0o755)

	boot := func(t *testing.T, script, stateDir, kver, bundle string) (calls string, out string, err error) {
		t.Helper()
		_ = os.Remove(log)
		cmd := exec.Command(bash, script)
		cmd.Env = append(os.Environ(),
			"PATH="+fakes+":"+os.Getenv("PATH"),
			"VMPULSE_STATE_DIR="+stateDir, "VMPULSE_SRC_DIR="+filepath.Join(tmp, "opt-vmpulse"),
			"VMPULSE_BIN_DIR="+bin, "VMPULSE_UNIT_DIR="+units,
			"FAKE_KVER="+kver, "FAKE_BUNDLE="+bundle, "FAKE_HEADERS="+headers)
		o, err := cmd.CombinedOutput()
		b, _ := os.ReadFile(log)
		return string(b), string(o), err
	}
	has := func(t *testing.T, calls, want string) {
		t.Helper()
		if !strings.Contains(calls, want) {
			t.Errorf("no %q in the calls:\n%s", want, calls)
		}
	}
	hasNot := func(t *testing.T, calls, unwanted string) {
		t.Helper()
		if strings.Contains(calls, unwanted) {
			t.Errorf("unexpected %q in the calls:\n%s", unwanted, calls)
		}
	}
	state := sub("state")
	src := filepath.Join(tmp, "opt-vmpulse")
	mods := []string{"cpu_so1_202201524", "ram_so1_202201524", "procesos_so1_202201524"}

	t.Run("first boot", func(t *testing.T) {
		calls, out, err := boot(t, script, state, "6.8.0-1001-gcp", bundle1)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, "apt-get install -y -q --no-install-recommends linux-headers-6.8.0-1001-gcp")
		has(t, calls, "make -C "+src+"/kernel SUFFIX=_202201524\n")
		has(t, calls, "make -C "+src+"/kernel SUFFIX=_202201524 install\n")
		for _, m := range mods {
			has(t, calls, "modprobe "+m+"\n")
		}
		has(t, calls, "systemctl daemon-reload")
		has(t, calls, "systemctl enable vmpulse-agent.service")
		has(t, calls, "systemctl restart vmpulse-agent.service")
		has(t, calls, "curl -fsS -H Authorization: Bearer tok -o ")
		b, err := os.ReadFile(filepath.Join(bin, "vmpulse-agent"))
		if err != nil || !strings.Contains(string(b), "agent v1") {
			t.Errorf("agent v1 not installed: %v %q", err, b)
		}
		unit, err := os.ReadFile(filepath.Join(units, "vmpulse-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ExecStart=" + bin + "/vmpulse-agent\n", "Environment=AGENT_ADDR=:8090\n",
			"Environment=AGENT_SOURCE=auto\n", "Environment=KMOD_SUFFIX=_202201524\n", "DynamicUser=yes\n",
			"After=network-online.target systemd-modules-load.service\n", "WantedBy=multi-user.target\n"} {
			if !strings.Contains(string(unit), want) {
				t.Errorf("unit lacks %q:\n%s", want, unit)
			}
		}
		if strings.Contains(string(unit), "ProtectProc") || strings.Contains(string(unit), "ProcSubset") {
			t.Error("the unit must not hide /proc from the agent")
		}
		if !strings.Contains(out, "agent healthy on :8090") {
			t.Errorf("no health confirmation:\n%s", out)
		}
	})
	// Headers are installed now.
	if err := os.WriteFile(filepath.Join(headers, "linux-headers-6.8.0-1001-gcp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("reboot, nothing new", func(t *testing.T) {
		calls, out, err := boot(t, script, state, "6.8.0-1001-gcp", bundle1)
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
		calls, out, err := boot(t, script, state, "6.8.0-1002-gcp", bundle1)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, "apt-get install -y -q --no-install-recommends linux-headers-6.8.0-1002-gcp")
		has(t, calls, "make -C "+src+"/kernel SUFFIX=_202201524 install\n")
		hasNot(t, calls, "rmmod")
	})
	if err := os.WriteFile(filepath.Join(headers, "linux-headers-6.8.0-1002-gcp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("new bundle", func(t *testing.T) {
		calls, out, err := boot(t, script, state, "6.8.0-1002-gcp", bundle2)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		has(t, calls, "systemctl stop vmpulse-agent.service")
		has(t, calls, "make -C "+src+"/kernel SUFFIX=_202201524 install\n")
		has(t, calls, "systemctl restart vmpulse-agent.service")
		b, _ := os.ReadFile(filepath.Join(bin, "vmpulse-agent"))
		if !strings.Contains(string(b), "agent v2") {
			t.Errorf("agent v2 not installed: %q", b)
		}
	})
	t.Run("bundle missing, agent installed", func(t *testing.T) {
		calls, out, err := boot(t, scriptNoWait, state, "6.8.0-1002-gcp", filepath.Join(tmp, "nowhere.tar.gz"))
		if err != nil {
			t.Fatalf("an installed agent must keep running: %v\n%s", err, out)
		}
		has(t, calls, "systemctl start vmpulse-agent.service")
		if !strings.Contains(out, "keeping the installed agent") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("bundle never arrives on a new VM", func(t *testing.T) {
		if err := os.Remove(filepath.Join(bin, "vmpulse-agent")); err != nil {
			t.Fatal(err)
		}
		_, out, err := boot(t, scriptNoWait, sub("state-fresh"), "6.8.0-1002-gcp", filepath.Join(tmp, "nowhere.tar.gz"))
		if err == nil {
			t.Fatalf("succeeded without an agent:\n%s", out)
		}
		if !strings.Contains(out, "run 'make vm-push'") {
			t.Errorf("the failure does not say what to do:\n%s", out)
		}
	})
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
