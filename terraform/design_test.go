package terraform

// The design's invariants, asserted on the parsed configuration. Each check is
// a function of the configuration, so that TestDesignChecksCatchBreakage can
// run it on a copy broken in the one way it exists to catch.

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// ---- Cloud SQL ----------------------------------------------------------------------------

func checkCloudSQL(t reporter, c *config) {
	t.Helper()
	insts := c.ofType("google_sql_database_instance")
	if len(insts) != 1 {
		t.Errorf("want one Cloud SQL instance, have %d", len(insts))
		return
	}
	sql := insts[0]
	if v, _ := literalString(sql.Body.Attributes["database_version"]); v != "MYSQL_8_4" {
		t.Errorf("database_version %q, want MYSQL_8_4 (8.0 is in paid extended support)", v)
	}
	if v, ok := literalBool(blockAttr(sql, "settings", "ip_configuration", "ipv4_enabled")); !ok || v {
		t.Errorf("settings.ip_configuration.ipv4_enabled must be the literal false (private IP only)")
	}
	if pn := blockAttr(sql, "settings", "ip_configuration", "private_network"); pn == nil || len(pn.Expr.Variables()) == 0 {
		t.Errorf("settings.ip_configuration.private_network must reference the VPC")
	}
	if !isVar(sql.Body.Attributes["deletion_protection"], "deletion_protection") || !isVar(blockAttr(sql, "settings", "deletion_protection_enabled"), "deletion_protection") {
		t.Errorf("the instance's deletion protection (both) must be var.deletion_protection")
	}
	if v, ok := literalBool(blockAttr(sql, "settings", "backup_configuration", "enabled")); !ok || !v {
		t.Errorf("backups must be enabled")
	}
	if !isRef(blockAttr(sql, "settings", "tier"), "local.capacity.sql_tier") {
		t.Errorf("the tier must be local.capacity.sql_tier (chosen with the routes' scale)")
	}
	flags := map[string]string{}
	for _, s := range blocksOf(sql.Body, "settings") {
		for _, f := range blocksOf(s.Body, "database_flags") {
			n, _ := literalString(f.Body.Attributes["name"])
			if v, ok := literalString(f.Body.Attributes["value"]); ok {
				flags[n] = v
			} else {
				flags[n] = c.text(f.Body.Attributes["value"])
			}
		}
	}
	for k, v := range map[string]string{"cloudsql_iam_authentication": "on", "local_infile": "off", "max_connections": "tostring(local.capacity.max_connections)"} {
		if flags[k] != v {
			t.Errorf("database flag %s=%q, want %q", k, flags[k], v)
		}
	}
	// The connection budget is checked where the instance is made.
	budget := false
	if lc := blocksOf(sql.Body, "lifecycle"); len(lc) == 1 {
		for _, p := range blocksOf(lc[0].Body, "precondition") {
			r := refs(p.Body.Attributes["condition"])
			budget = budget || (slices.Contains(r, "local.db_connection_budget") && slices.Contains(r, "local.capacity.max_connections"))
		}
	}
	if !budget {
		t.Errorf("no precondition that local.db_connection_budget <= local.capacity.max_connections")
	}
	if l := c.locals["db_connection_budget"]; l == nil || !strings.Contains(c.text(l), "local.capacity.route_max_pods + 1") || !strings.Contains(c.text(l), "local.capacity.db_conns") {
		t.Errorf("local.db_connection_budget must count 2 routes × (route_max_pods + 1) × db_conns + the reserve")
	}
	// The routes' IAM database user, of the route service account.
	user := c.resource("google_sql_user.route")
	if user == nil {
		t.Errorf("no google_sql_user.route")
	} else {
		if v, _ := literalString(user.Body.Attributes["type"]); v != "CLOUD_IAM_SERVICE_ACCOUNT" {
			t.Errorf("google_sql_user.route type %q, want CLOUD_IAM_SERVICE_ACCOUNT", v)
		}
		if _, has := user.Body.Attributes["password"]; has {
			t.Errorf("the IAM user must not have a password")
		}
		if !isRef(user.Body.Attributes["name"], "google_service_account.route.email") {
			t.Errorf("google_sql_user.route name must be google_service_account.route.email (MySQL keeps the part before @)")
		}
	}
	// The administrator: a write-only password, from the ephemeral read of its
	// secret, versioned on that secret version.
	admin := c.resource("google_sql_user.admin")
	if admin == nil {
		t.Errorf("no google_sql_user.admin")
		return
	}
	if _, has := admin.Body.Attributes["password"]; has {
		t.Errorf("google_sql_user.admin uses password, which terraform keeps in its state; use password_wo")
	}
	if !isRef(admin.Body.Attributes["password_wo"], "ephemeral.google_secret_manager_secret_version.db_admin.secret_data") {
		t.Errorf("google_sql_user.admin password_wo must be the ephemeral read of the secret (got %s)", c.text(admin.Body.Attributes["password_wo"]))
	}
	if !slices.Contains(refs(admin.Body.Attributes["password_wo_version"]), "google_secret_manager_secret_version.db_admin.version") {
		t.Errorf("google_sql_user.admin password_wo_version must follow the secret version's number")
	}
}

// ---- secrets ---------------------------------------------------------------------------------

func checkSecrets(t reporter, c *config) {
	t.Helper()
	// A random_password resource keeps its result in the state; only the
	// ephemeral one may exist.
	for _, k := range sortedKeys(c.resources) {
		if strings.HasPrefix(k, "random_password.") || strings.HasPrefix(k, "random_string.") {
			t.Errorf("%s keeps its value in the state; use an ephemeral random_password with a write-only argument", k)
		}
	}
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		r := refs(a)
		secretRef := slices.ContainsFunc(r, func(s string) bool {
			return strings.HasPrefix(s, "ephemeral.") || strings.HasPrefix(s, "random_password.")
		})
		switch {
		case strings.HasSuffix(a.Name, "_wo"):
			if !secretRef {
				t.Errorf("%s: %s is write-only but not fed from an ephemeral value", at(a.SrcRange), a.Name)
			}
		case secretRef:
			t.Errorf("%s: %s takes a secret into an argument terraform keeps (only *_wo arguments may)", at(a.SrcRange), a.Name)
		}
		if a.Name == "sensitive" && block.Type == "output" {
			t.Errorf("%s: output %s is sensitive: no secret leaves through outputs", at(a.SrcRange), block.Labels[0])
		}
	})
	// The ingest token: terraform makes the secret and never a version of it;
	// the first version comes from scripts/seed-secret.sh, only the routes read it.
	ingest := c.resource("google_secret_manager_secret.ingest_token")
	if ingest == nil {
		t.Errorf("no google_secret_manager_secret.ingest_token")
		return
	}
	for _, v := range c.ofType("google_secret_manager_secret_version") {
		if slices.Contains(refs(v.Body.Attributes["secret"]), "google_secret_manager_secret.ingest_token.id") {
			t.Errorf("%s: terraform must not hold a version of the ingest token (its value would be in the state, and a rotation would fight it)", at(v.TypeRange))
		}
		if _, plain := v.Body.Attributes["secret_data"]; plain && !slices.Contains(refs(v.Body.Attributes["secret"]), "google_secret_manager_secret.relay_metrics_config.id") {
			t.Errorf("%s: secret_data is kept in the state; only the (non-secret) metrics config may use it", at(v.TypeRange))
		}
	}
	seed := c.resource("terraform_data.ingest_token_seed")
	if seed == nil {
		t.Errorf("no terraform_data.ingest_token_seed")
	} else {
		var cmd, secret string
		for _, p := range blocksOf(seed.Body, "provisioner") {
			cmd = c.text(p.Body.Attributes["command"])
			if env := p.Body.Attributes["environment"]; env != nil {
				secret = c.text(env)
			}
		}
		if !strings.Contains(cmd, "scripts/seed-secret.sh") || !strings.Contains(secret, "google_secret_manager_secret.ingest_token.secret_id") {
			t.Errorf("terraform_data.ingest_token_seed must run scripts/seed-secret.sh for the ingest token's secret")
		}
	}
	readers := map[string][]string{}
	for _, m := range c.ofType("google_secret_manager_secret_iam_member") {
		secret := strings.Join(refs(m.Body.Attributes["secret_id"]), "")
		readers[secret] = append(readers[secret], c.text(m.Body.Attributes["member"]))
	}
	want := map[string][]string{
		"google_secret_manager_secret.ingest_token.secret_id":         {`"serviceAccount:${google_service_account.route.email}"`},
		"google_secret_manager_secret.db_admin.secret_id":             {"local.grant_principal"},
		"google_secret_manager_secret.relay_metrics_config.secret_id": {`"serviceAccount:${google_service_account.relay.email}"`},
	}
	for s, w := range want {
		if !slices.Equal(readers[s], w) {
			t.Errorf("%s is readable by %v, want only %v", s, readers[s], w)
		}
	}
	if len(readers) != len(want) {
		t.Errorf("secret readers %v, want only %v", readers, want)
	}
	if gp := c.text(c.locals["grant_principal"]); !strings.Contains(gp, "/subject/ns/${local.k8s_namespace}/sa/${local.grant_ksa}") {
		t.Errorf("local.grant_principal must be the GRANT Job's Kubernetes service account: %s", gp)
	}
}

// ---- GKE and Cloud Run ------------------------------------------------------------------------

// gcloudWritten is what `gcloud run deploy` writes on a service besides the image.
var gcloudWritten = []string{"template[0].containers[0].image", "client", "client_version", "annotations", "labels", "template[0].annotations", "template[0].labels"}

func envOf(svc *hclsyntax.Block) map[string]*hclsyntax.Attribute {
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

func containersOf(svc *hclsyntax.Block) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, tb := range blocksOf(svc.Body, "template") {
		out = append(out, blocksOf(tb.Body, "containers")...)
	}
	return out
}

func checkClusterAndCloudRun(t reporter, c *config) {
	t.Helper()
	gkes := c.ofType("google_container_cluster")
	if len(gkes) != 1 {
		t.Errorf("want one cluster")
		return
	}
	gke := gkes[0]
	if v, ok := literalBool(gke.Body.Attributes["enable_autopilot"]); !ok || !v {
		t.Errorf("the cluster must be Autopilot")
	}
	if v, _ := literalString(blockAttr(gke, "gateway_api_config", "channel")); v != "CHANNEL_STANDARD" {
		t.Errorf("gateway_api_config.channel %q, want CHANNEL_STANDARD", v)
	}
	if blockAttr(gke, "workload_identity_config", "workload_pool") == nil {
		t.Errorf("no workload_identity_config.workload_pool")
	}
	if v, ok := literalBool(gke.Body.Attributes["deletion_protection"]); !ok || v {
		t.Errorf("the cluster holds no state: deletion_protection must be the literal false (a protected, tainted cluster blocks the next apply)")
	}
	if v, ok := literalBool(blockAttr(gke, "secret_manager_config", "enabled")); !ok || !v {
		t.Errorf("the Secret Manager add-on must be enabled (the ingest token is mounted through it)")
	}
	if v, ok := literalBool(blockAttr(gke, "secret_manager_config", "rotation_config", "enabled")); !ok || !v {
		t.Errorf("Secret Manager rotation must be enabled (a new token version reaches running pods)")
	}

	relay, web := c.resource("google_cloud_run_v2_service.relay"), c.resource("google_cloud_run_v2_service.web")
	if relay == nil || web == nil {
		t.Errorf("want google_cloud_run_v2_service.relay and .web")
		return
	}
	for name, svc := range map[string]*hclsyntax.Block{"relay": relay, "web": web} {
		if v, ok := literalBool(svc.Body.Attributes["deletion_protection"]); !ok || v {
			t.Errorf("%s: deletion_protection must be the literal false (stateless; a protected, tainted service blocks the next apply)", name)
		}
		if !isVar(svc.Body.Attributes["invoker_iam_disabled"], "public_access") {
			t.Errorf("%s: invoker_iam_disabled must be var.public_access (no allUsers binding)", name)
		}
		// The list's items, whitespace removed: [a, b[0].c, …] -> a, b[0].c, …
		items := strings.Split(strings.Trim(strings.Join(strings.Fields(c.text(blockAttr(svc, "lifecycle", "ignore_changes"))), ""), "[],"), ",")
		for _, w := range gcloudWritten {
			if !slices.Contains(items, w) {
				t.Errorf("%s: lifecycle.ignore_changes lacks %s, which gcloud run deploy writes", name, w)
			}
		}
	}
	if v, _ := literalString(blockAttr(relay, "template", "timeout")); v != "3600s" {
		t.Errorf("relay timeout %q, want 3600s (websockets)", v)
	}
	if v, ok := literalBool(blockAttr(relay, "template", "session_affinity")); !ok || !v {
		t.Errorf("relay needs session_affinity = true")
	}
	// One variable for Cloud Run's concurrency and the relay's own cap.
	if !isVar(blockAttr(relay, "template", "max_instance_request_concurrency"), "relay_concurrency") {
		t.Errorf("relay max_instance_request_concurrency must be var.relay_concurrency")
	}
	if e := envOf(relay)["MAX_CLIENTS"]; !slices.Contains(refs(e), "local.relay_max_clients") || !isVar(c.locals["relay_max_clients"], "relay_concurrency") {
		t.Errorf("relay MAX_CLIENTS must come from var.relay_concurrency (through local.relay_max_clients), as the concurrency does")
	}
	if !isVar(blockAttr(relay, "template", "scaling", "min_instance_count"), "relay_min_instances") {
		t.Errorf("relay min_instance_count must be var.relay_min_instances")
	}
	for _, k := range []string{"PUBSUB_PROJECT", "PUBSUB_TOPIC", "ALLOWED_ORIGINS", "MAX_PER_IP", "EXPOSE_PROCESSES"} {
		if envOf(relay)[k] == nil {
			t.Errorf("relay has no %s", k)
		}
	}
	if !isRef(envOf(relay)["SUBSCRIPTION_PREFIX"], "local.relay_subscription_prefix") {
		t.Errorf("relay SUBSCRIPTION_PREFIX must be local.relay_subscription_prefix (the IAM condition's prefix)")
	}
	cs := containersOf(relay)
	if len(cs) != 2 {
		t.Errorf("relay: want the relay and the metrics sidecar, have %d containers", len(cs))
		return
	}
	if n, _ := literalString(cs[0].Body.Attributes["name"]); n != "relay" {
		t.Errorf("relay: the first container must be the relay (ignore_changes names containers[0])")
	}
	if v, ok := literalBool(blockAttr(cs[0], "resources", "cpu_idle")); !ok || v {
		t.Errorf("relay needs cpu_idle = false (CPU always allocated)")
	}
	// Probes: /health (paths ending in z never reach a Cloud Run container), a
	// startup window long enough to retry the subscription while IAM propagates.
	sp := blocksOf(cs[0].Body, "startup_probe")
	lp := blocksOf(cs[0].Body, "liveness_probe")
	if len(sp) != 1 || len(lp) != 1 {
		t.Errorf("relay needs a startup and a liveness probe")
	} else {
		for name, p := range map[string]*hclsyntax.Block{"startup": sp[0], "liveness": lp[0]} {
			if v, _ := literalString(blockAttr(p, "http_get", "path")); v != "/health" {
				t.Errorf("relay %s probe path %q, want /health", name, v)
			}
		}
		num := func(a string) int64 {
			v, ok := literal(sp[0].Body.Attributes[a].Expr)
			if !ok {
				return 0
			}
			n, _ := v.AsBigFloat().Int64()
			return n
		}
		if w := num("initial_delay_seconds") + num("period_seconds")*num("failure_threshold"); w < 240 {
			t.Errorf("relay startup window %d s: want at least 240 s for the subscription setup to retry through IAM propagation", w)
		}
	}
	// The relay's metrics: 127.0.0.1 only, scraped by the sidecar with the
	// config from Secret Manager, on the same port.
	if e := c.text(envOf(relay)["METRICS_ADDR"]); !strings.Contains(e, "127.0.0.1:${local.relay_metrics_port}") {
		t.Errorf("relay METRICS_ADDR %s, want 127.0.0.1:${local.relay_metrics_port}", e)
	}
	if v := c.resource("google_secret_manager_secret_version.relay_metrics_config"); v == nil || !strings.Contains(c.text(v.Body.Attributes["secret_data"]), "port = local.relay_metrics_port") {
		t.Errorf("the sidecar's config must scrape local.relay_metrics_port")
	}
	side := cs[1]
	if !strings.Contains(c.text(side.Body.Attributes["depends_on"]), `"relay"`) || !isVar(side.Body.Attributes["image"], "prometheus_sidecar_image") {
		t.Errorf("the metrics sidecar must be var.prometheus_sidecar_image and start after the relay")
	}
	if vm := blocksOf(side.Body, "volume_mounts"); len(vm) != 1 || c.text(vm[0].Body.Attributes["mount_path"]) != `"/etc/rungmp"` {
		t.Errorf("the metrics sidecar must mount its config at /etc/rungmp")
	}
	vols := blocksOf(blocksOf(relay.Body, "template")[0].Body, "volumes")
	if len(vols) != 1 || !isRef(blockAttr(vols[0], "secret", "secret"), "google_secret_manager_secret.relay_metrics_config.secret_id") ||
		c.text(blockAttr(vols[0], "secret", "items", "path")) != `"config.yaml"` {
		t.Errorf("the sidecar's config volume must be the relay_metrics_config secret as config.yaml")
	}
	if e := envOf(web)["RELAY_URL"]; !isRef(e, "local.relay_ws_url") {
		t.Errorf("the dashboard's RELAY_URL must be local.relay_ws_url")
	}
	if l := c.locals["relay_ws_url"]; !slices.Contains(refs(l), "google_cloud_run_v2_service.relay.uri") {
		t.Errorf("local.relay_ws_url must come from the relay service's uri")
	}
	// Nobody is granted to everyone; invoker_iam_disabled serves.
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if a.Name == "member" || a.Name == "members" {
			if tx := c.text(a); strings.Contains(tx, "allUsers") || strings.Contains(tx, "allAuthenticatedUsers") {
				t.Errorf("%s: a grant to %s (Domain Restricted Sharing refuses it; invoker_iam_disabled serves)", at(a.SrcRange), tx)
			}
		}
	})
	if len(c.ofType("google_cloud_run_v2_service_iam_member")) > 0 {
		t.Errorf("no run.invoker bindings: the services are public through invoker_iam_disabled")
	}
}

// ---- least privilege --------------------------------------------------------------------------

func checkLeastPrivilege(t reporter, c *config) {
	t.Helper()
	broad := map[string]bool{"roles/owner": true, "roles/editor": true, "roles/viewer": true, "roles/pubsub.admin": true,
		"roles/pubsub.editor": true, "roles/cloudsql.admin": true, "roles/cloudsql.editor": true, "roles/storage.admin": true,
		"roles/iam.serviceAccountUser": true, "roles/iam.serviceAccountTokenCreator": true, "roles/run.admin": true,
		"roles/secretmanager.admin": true, "roles/artifactregistry.admin": true, "roles/cloudbuild.builds.editor": true}
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
			r = "custom:" + strings.Join(refs(role), ",")
		}
		typ := strings.SplitN(key, ".", 2)[0]
		// for_each over local.pullers: the node account is one of its values.
		if isRef(member, "each.value") && strings.Contains(c.text(c.locals["pullers"]), "google_service_account.gke_nodes.email") {
			grants["gke_nodes"] = append(grants["gke_nodes"], typ+" "+r)
		}
		for _, s := range refs(member) {
			if strings.HasPrefix(s, "google_service_account.") {
				sa := strings.Split(s, ".")[1]
				grants[sa] = append(grants[sa], typ+" "+r)
			}
		}
	}
	want := map[string][]string{
		"route": {"google_project_iam_member roles/cloudsql.client", "google_project_iam_member roles/cloudsql.instanceUser",
			"google_project_iam_member roles/monitoring.metricWriter",
			"google_pubsub_topic_iam_member roles/pubsub.publisher", "google_pubsub_topic_iam_member roles/pubsub.viewer",
			"google_secret_manager_secret_iam_member roles/secretmanager.secretAccessor"},
		"relay": {"google_project_iam_member custom:google_project_iam_custom_role.relay_subscriptions.id",
			"google_project_iam_member roles/monitoring.metricWriter",
			"google_pubsub_topic_iam_member roles/pubsub.subscriber", "google_pubsub_topic_iam_member roles/pubsub.viewer",
			"google_secret_manager_secret_iam_member roles/secretmanager.secretAccessor"},
		"vm": {"google_project_iam_member roles/logging.logWriter", "google_project_iam_member roles/monitoring.metricWriter",
			"google_storage_bucket_iam_member roles/storage.objectViewer"},
		"gke_nodes": {"google_artifact_registry_repository_iam_member roles/artifactregistry.reader",
			"google_artifact_registry_repository_iam_member roles/artifactregistry.reader",
			"google_project_iam_member roles/container.defaultNodeServiceAccount"},
		"build": {"google_artifact_registry_repository_iam_member roles/artifactregistry.writer", "google_project_iam_member roles/logging.logWriter",
			"google_storage_bucket_iam_member roles/storage.objectAdmin", "google_storage_bucket_iam_member roles/storage.objectViewer"},
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
	role := c.resource("google_project_iam_custom_role.relay_subscriptions")
	if role == nil {
		t.Errorf("no relay custom role")
		return
	}
	perms, ok := literal(role.Body.Attributes["permissions"].Expr)
	if !ok {
		t.Errorf("custom role permissions must be literal")
		return
	}
	var ps []string
	for _, p := range perms.AsValueSlice() {
		ps = append(ps, p.AsString())
	}
	sort.Strings(ps)
	if w := []string{"pubsub.subscriptions.consume", "pubsub.subscriptions.create", "pubsub.subscriptions.delete", "pubsub.subscriptions.get"}; !slices.Equal(ps, w) {
		t.Errorf("relay custom role %v, want %v", ps, w)
	}
	// ...on the relay's own subscriptions only.
	grant := c.resource("google_project_iam_member.relay_subscriptions")
	expr := c.text(blockAttr(grant, "condition", "expression"))
	for _, w := range []string{`resource.type == \"pubsub.googleapis.com/Subscription\"`,
		`resource.name.startsWith(\"projects/${var.project_id}/subscriptions/${local.relay_subscription_prefix}\")`} {
		if !strings.Contains(expr, w) {
			t.Errorf("the relay's subscription role needs an IAM condition with %s; has %s", w, expr)
		}
	}
}

// ---- order of creation, waits, re-runs --------------------------------------------------------

// requiredAPIs are the services the configuration's resources need.
var requiredAPIs = []string{"artifactregistry.googleapis.com", "billingbudgets.googleapis.com", "cloudbuild.googleapis.com",
	"compute.googleapis.com", "container.googleapis.com", "iam.googleapis.com", "iamcredentials.googleapis.com",
	"monitoring.googleapis.com", "pubsub.googleapis.com", "run.googleapis.com", "secretmanager.googleapis.com",
	"servicenetworking.googleapis.com", "sqladmin.googleapis.com", "storage.googleapis.com", "logging.googleapis.com"}

// rootTypes are the resource types that use an API and reference nothing that
// would already wait for it: each must wait for the APIs itself.
var rootTypes = []string{"google_compute_network", "google_compute_global_address.gateway", "google_compute_address", "google_service_account",
	"google_artifact_registry_repository", "google_secret_manager_secret", "google_pubsub_topic", "google_storage_bucket",
	"google_compute_security_policy", "google_compute_managed_ssl_certificate", "google_monitoring_notification_channel",
	"google_monitoring_alert_policy.prometheus", "google_billing_budget"}

func checkOrdering(t reporter, c *config) {
	t.Helper()
	apis := c.resource("google_project_service.apis")
	if apis == nil || !isRef(apis.Body.Attributes["for_each"], "local.apis") {
		t.Errorf("the APIs must be enabled in terraform: google_project_service.apis for_each = local.apis")
	} else if v, ok := literalBool(apis.Body.Attributes["disable_on_destroy"]); !ok || v {
		t.Errorf("google_project_service.apis: disable_on_destroy must be false (other users of the project)")
	}
	list := c.text(c.locals["apis"])
	for _, a := range requiredAPIs {
		if !strings.Contains(list, `"`+a+`"`) {
			t.Errorf("local.apis lacks %s", a)
		}
	}
	if s := c.resource("time_sleep.apis"); s == nil || !slices.Contains(dependsOn(s), "google_project_service.apis") {
		t.Errorf("time_sleep.apis must wait after google_project_service.apis")
	}
	for _, rt := range rootTypes {
		var blocks []*hclsyntax.Block
		if strings.Contains(rt, ".") && strings.Count(rt, ".") == 1 && c.resources[rt] != nil {
			blocks = []*hclsyntax.Block{c.resources[rt]}
		} else {
			blocks = c.ofType(rt)
		}
		for _, b := range blocks {
			if !slices.Contains(dependsOn(b), "time_sleep.apis") {
				t.Errorf("%s %s.%s does not wait for the APIs (depends_on time_sleep.apis)", at(b.TypeRange), b.Labels[0], b.Labels[1])
			}
		}
	}
	// IAM propagation: one wait after every grant, before what runs as them.
	iam := c.resource("time_sleep.iam")
	if iam == nil {
		t.Errorf("no time_sleep.iam")
		return
	}
	if d, _ := literalString(iam.Body.Attributes["create_duration"]); !atLeast(d, 60*time.Second) {
		t.Errorf("time_sleep.iam create_duration %q: want at least 60s (grants take a minute or two to hold)", d)
	}
	deps := dependsOn(iam)
	if ic := c.resource("time_sleep.iam_cluster"); ic != nil {
		deps = append(deps, dependsOn(ic)...)
	}
	for _, k := range sortedKeys(c.resources) {
		typ := strings.SplitN(k, ".", 2)[0]
		if strings.HasSuffix(typ, "_iam_member") && !slices.Contains(deps, k) {
			t.Errorf("no IAM wait (time_sleep.iam, time_sleep.iam_cluster) waits for %s", k)
		}
	}
	for _, k := range []string{"google_cloud_run_v2_service.relay", "google_cloud_run_v2_service.web", "terraform_data.k8s"} {
		b := c.resource(k)
		if b == nil || !slices.Contains(dependsOn(b), "time_sleep.iam") {
			t.Errorf("%s must depend on time_sleep.iam", k)
		}
		if b != nil && !slices.Contains(dependsOn(b), "terraform_data.build") {
			t.Errorf("%s must wait for the images (terraform_data.build)", k)
		}
	}
	build := c.resource("terraform_data.build")
	if build == nil || !slices.Contains(dependsOn(build), "time_sleep.iam") || !slices.Contains(refs(build.Body.Attributes["triggers_replace"]), "local.image_tag") {
		t.Errorf("terraform_data.build must wait for IAM and rebuild when local.image_tag changes")
	}
	// The Kubernetes side: applied (and waited for) whenever the overlay or the
	// manifests change; its teardown never runs on a redeploy.
	k8s := c.resource("terraform_data.k8s")
	if k8s == nil {
		t.Errorf("no terraform_data.k8s")
		return
	}
	tr := refs(k8s.Body.Attributes["triggers_replace"])
	if !slices.Contains(tr, "local.k8s_overlay") || !slices.Contains(tr, "module.sources.k8s_hash") {
		t.Errorf("terraform_data.k8s must be replaced when the overlay or the manifests change, has %v", tr)
	}
	for _, d := range []string{"terraform_data.ingest_token_seed", "google_sql_user.route", "google_sql_user.admin", "terraform_data.k8s_teardown", "time_sleep.iam_cluster"} {
		if !slices.Contains(dependsOn(k8s), d) {
			t.Errorf("terraform_data.k8s must depend on %s", d)
		}
	}
	for _, p := range blocksOf(k8s.Body, "provisioner") {
		if _, ok := p.Body.Attributes["when"]; ok {
			t.Errorf("terraform_data.k8s has a destroy-time provisioner: a replacement would run it and take the load balancer down on every redeploy")
		}
		if !strings.Contains(c.text(p.Body.Attributes["command"]), "k8s/deploy.sh apply") {
			t.Errorf("terraform_data.k8s must run k8s/deploy.sh apply")
		}
	}
	td := c.resource("terraform_data.k8s_teardown")
	if td == nil {
		t.Errorf("no terraform_data.k8s_teardown")
		return
	}
	if _, ok := td.Body.Attributes["triggers_replace"]; ok {
		t.Errorf("terraform_data.k8s_teardown must never be replaced (no triggers_replace)")
	}
	destroy := false
	for _, p := range blocksOf(td.Body, "provisioner") {
		destroy = destroy || (c.text(p.Body.Attributes["when"]) == "destroy" && strings.Contains(c.text(p.Body.Attributes["command"]), "k8s/deploy.sh delete"))
	}
	if !destroy {
		t.Errorf("terraform_data.k8s_teardown must run k8s/deploy.sh delete at destroy")
	}
	in := c.text(td.Body.Attributes["input"])
	for _, w := range []string{"google_container_cluster.autopilot.name", "google_compute_network.vpc.name", "google_compute_global_address.gateway.address"} {
		if !strings.Contains(in, w) {
			t.Errorf("terraform_data.k8s_teardown's input must name %s (so it is destroyed before it)", w)
		}
	}
}

// ---- images -----------------------------------------------------------------------------------

func checkImages(t reporter, c *config) {
	t.Helper()
	imgs := c.text(c.locals["images"])
	for _, n := range []string{"relay", "web", "route"} {
		if !strings.Contains(imgs, n+" = \"${local.image_registry}/vmpulse-"+n+":${local.image_tag}\"") &&
			!strings.Contains(strings.Join(strings.Fields(imgs), " "), n+" = \"${local.image_registry}/vmpulse-"+n+":${local.image_tag}\"") {
			t.Errorf("local.images.%s must be ${local.image_registry}/vmpulse-%s:${local.image_tag}", n, n)
		}
	}
	if reg := c.text(c.locals["image_registry"]); !strings.Contains(reg, "local.build_images ? local.images_repo") {
		t.Errorf("local.image_registry must be the Terraform-created repository when terraform builds: %s", reg)
	}
	if !slices.Contains(refs(c.locals["images_repo"]), "google_artifact_registry_repository.images.repository_id") {
		t.Errorf("local.images_repo must be the images repository terraform creates")
	}
	if !slices.Contains(refs(c.locals["dockerhub_repo"]), "google_artifact_registry_repository.dockerhub.repository_id") ||
		!slices.Contains(refs(c.locals["mysql_image"]), "local.dockerhub_repo") {
		t.Errorf("Docker Hub images (mysql, a user's) must come through the remote repository")
	}
	if tag := c.text(c.locals["image_tag"]); !strings.Contains(tag, "module.sources.images_hash") {
		t.Errorf("the default image tag must be the sources' hash: %s", tag)
	}
	dh := c.resource("google_artifact_registry_repository.dockerhub")
	if dh == nil || c.text(dh.Body.Attributes["mode"]) != `"REMOTE_REPOSITORY"` || c.text(blockAttr(dh, "remote_repository_config", "docker_repository", "public_repository")) != `"DOCKER_HUB"` {
		t.Errorf("google_artifact_registry_repository.dockerhub must be a remote repository of Docker Hub")
	}
	if im := c.resource("google_artifact_registry_repository.images"); im == nil || c.text(im.Body.Attributes["format"]) != `"DOCKER"` {
		t.Errorf("no DOCKER images repository")
	}
	for k, want := range map[string]string{"google_cloud_run_v2_service.relay": "local.images.relay", "google_cloud_run_v2_service.web": "local.images.web"} {
		if b := c.resource(k); b == nil || !isRef(containersOf(b)[0].Body.Attributes["image"], want) {
			t.Errorf("%s's image must be %s", k, want)
		}
	}
	ov := c.text(c.locals["k8s_overlay"])
	for _, w := range []string{`route_image_name     = "${local.image_registry}/vmpulse-route"`, "route_image_tag      = local.image_tag", "mysql_image_name     = local.mysql_image"} {
		if !strings.Contains(ov, w) {
			t.Errorf("the overlay does not get %s", w)
		}
	}
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if a.Name != "description" && strings.Contains(c.text(a), "docker.io/") {
			t.Errorf("%s: %s pulls from docker.io directly", at(a.SrcRange), a.Name)
		}
	})
}

// ---- the edge: firewall, Cloud Armor, HTTPS -------------------------------------------------

func checkEdge(t reporter, c *config) {
	t.Helper()
	// No literal "everyone" range anywhere outside the variables' validation.
	c.allAttributes(func(block *hclsyntax.Block, path []string, a *hclsyntax.Attribute) {
		if block.Type == "variable" {
			return
		}
		if tx := c.text(a); strings.Contains(tx, "0.0.0.0/0") || strings.Contains(tx, "::/0") {
			t.Errorf("%s: %s opens to the whole internet", at(a.SrcRange), a.Name)
		}
	})
	agentFirewall := false
	for _, fw := range c.ofType("google_compute_firewall") {
		opensAgent := false
		for _, al := range blocksOf(fw.Body, "allow") {
			opensAgent = opensAgent || strings.Contains(c.text(al.Body.Attributes["ports"]), "local.agent_port")
		}
		if !opensAgent {
			continue
		}
		agentFirewall = true
		if !isVar(fw.Body.Attributes["source_ranges"], "loadgen_source_ranges") {
			t.Errorf("%s: the agents' firewall must take its sources from var.loadgen_source_ranges", at(fw.TypeRange))
		}
		if c.text(fw.Body.Attributes["target_tags"]) != "[local.agent_net_tag]" {
			t.Errorf("%s: the agents' firewall must target local.agent_net_tag (every VM has it)", at(fw.TypeRange))
		}
	}
	if !agentFirewall {
		t.Errorf("no firewall rule opens the agent port")
	}
	if v := c.variables["loadgen_source_ranges"]; v != nil {
		if _, hasDefault := v.Body.Attributes["default"]; hasDefault {
			t.Errorf("var.loadgen_source_ranges must have no default (the operator names their load generator)")
		}
		refuses := false
		for _, val := range blocksOf(v.Body, "validation") {
			refuses = refuses || strings.Contains(c.text(val.Body.Attributes["condition"]), `"0.0.0.0/0"`)
		}
		if !refuses {
			t.Errorf("var.loadgen_source_ranges needs a validation that refuses 0.0.0.0/0")
		}
	}
	// Cloud Armor: the load generator's ranges, rate-limited and banned when
	// abusive; everyone else denied.
	sp := c.resource("google_compute_security_policy.ingest")
	if sp == nil {
		t.Errorf("no Cloud Armor policy google_compute_security_policy.ingest")
		return
	}
	allowLoadgen, denyRest := false, false
	for _, r := range blocksOf(sp.Body, "rule") {
		action := c.text(r.Body.Attributes["action"])
		src := blockAttr(r, "match", "config", "src_ip_ranges")
		switch {
		case isVar(src, "loadgen_source_ranges"):
			allowLoadgen = action == `"rate_based_ban"` &&
				isVar(blockAttr(r, "rate_limit_options", "rate_limit_threshold", "count"), "ingest_requests_per_minute") &&
				blockAttr(r, "rate_limit_options", "ban_threshold", "count") != nil &&
				c.text(blockAttr(r, "rate_limit_options", "conform_action")) == `"allow"`
		case c.text(src) == `["*"]`:
			denyRest = strings.HasPrefix(action, `"deny(`) && c.text(r.Body.Attributes["priority"]) == "2147483647"
		}
	}
	if !allowLoadgen {
		t.Errorf("Cloud Armor: no rate_based_ban rule that admits var.loadgen_source_ranges within var.ingest_requests_per_minute")
	}
	if !denyRest {
		t.Errorf("Cloud Armor: the default rule must deny everyone else")
	}
	ov := c.text(c.locals["k8s_overlay"])
	if !strings.Contains(ov, "security_policy      = google_compute_security_policy.ingest.name") {
		t.Errorf("the overlay must attach google_compute_security_policy.ingest (GCPBackendPolicy)")
	}
	if !strings.Contains(ov, `https                = var.ingest_domain != ""`) {
		t.Errorf("the overlay must add HTTPS exactly when var.ingest_domain is set")
	}
	cert := c.resource("google_compute_managed_ssl_certificate.ingest")
	if cert == nil || !strings.Contains(c.text(cert.Body.Attributes["count"]), "var.ingest_domain") || c.text(blockAttr(cert, "managed", "domains")) != "[var.ingest_domain]" {
		t.Errorf("google_compute_managed_ssl_certificate.ingest must exist for var.ingest_domain only, with it as its domain")
	}
	if !strings.Contains(ov, "certificate_name     = local.ingest_certificate") || !strings.Contains(c.text(cert.Body.Attributes["name"]), "local.ingest_certificate") {
		t.Errorf("the overlay's certificate must be the managed certificate's name")
	}
}

// ---- the VMs ----------------------------------------------------------------------------------

func checkVMs(t reporter, c *config) {
	t.Helper()
	vm := c.resource("google_compute_instance.vm")
	if vm == nil {
		t.Errorf("no google_compute_instance.vm")
		return
	}
	for attr, want := range map[string]string{"for_each": "local.vms", "name": "each.value.name", "machine_type": "each.value.machine_type"} {
		if !isRef(vm.Body.Attributes[attr], want) {
			t.Errorf("google_compute_instance.vm %s must be %s", attr, want)
		}
	}
	if c.text(vm.Body.Attributes["tags"]) != "[local.agent_net_tag]" {
		t.Errorf("every VM must carry local.agent_net_tag (the firewall's target)")
	}
	if v, ok := literalBool(blockAttr(vm, "shielded_instance_config", "enable_secure_boot")); !ok || v {
		t.Errorf("the VMs load unsigned modules: enable_secure_boot must be false")
	}
	if !isRef(blockAttr(vm, "network_interface", "access_config", "nat_ip"), "google_compute_address.agent[each.key].address") &&
		c.text(blockAttr(vm, "network_interface", "access_config", "nat_ip")) != "google_compute_address.agent[each.key].address" {
		t.Errorf("each VM's external address must be its static google_compute_address.agent[each.key]")
	}
	if a := c.resource("google_compute_address.agent"); a == nil || !isRef(a.Body.Attributes["for_each"], "local.vms") {
		t.Errorf("google_compute_address.agent must be for_each = local.vms")
	}
	md := c.text(vm.Body.Attributes["metadata"])
	if !strings.Contains(md, "vm_name      = each.value.name") {
		t.Errorf("the startup script must get vm_name = each.value.name (the records' vm is the instance name)")
	}
	if !strings.Contains(md, `enable-guest-attributes = "TRUE"`) {
		t.Errorf("guest attributes must be on (the startup script reports the modules there)")
	}
	if l := c.text(c.locals["vms"]); !strings.Contains(l, "var.vms") || !strings.Contains(l, `name         = "${var.prefix}-${k}"`) {
		t.Errorf("local.vms must name each VM ${var.prefix}-KEY from var.vms: %s", l)
	}
}

// ---- observability and cost ------------------------------------------------------------------

func checkObservability(t reporter, c *config) {
	t.Helper()
	alerts := c.text(c.locals["prometheus_alerts"])
	for _, w := range []string{`vmpulse_ingest_requests_total{code=~\"5..\"}`, "vmpulse_outbox_backlog_records", "vmpulse_relay_last_message_age_seconds"} {
		if !strings.Contains(alerts, w) {
			t.Errorf("no alert on %s", w)
		}
	}
	prom := c.resource("google_monitoring_alert_policy.prometheus")
	if prom == nil || !isRef(prom.Body.Attributes["for_each"], "local.prometheus_alerts") ||
		c.text(blockAttr(prom, "conditions", "condition_prometheus_query_language", "disable_metric_validation")) != "true" {
		t.Errorf("the Prometheus alerts must be PromQL conditions over local.prometheus_alerts, with metric validation off (the metrics appear at the first scrape)")
	}
	for k, metric := range map[string]string{"google_monitoring_alert_policy.sql_cpu": "cloudsql.googleapis.com/database/cpu/utilization", "google_monitoring_alert_policy.sql_connections": "cloudsql.googleapis.com/database/network/connections"} {
		b := c.resource(k)
		if b == nil || !strings.Contains(c.text(blockAttr(b, "conditions", "condition_threshold", "filter")), metric) {
			t.Errorf("%s must watch %s", k, metric)
		}
	}
	if b := c.resource("google_monitoring_alert_policy.sql_connections"); b != nil && !strings.Contains(c.text(blockAttr(b, "conditions", "condition_threshold", "threshold_value")), "local.capacity.max_connections") {
		t.Errorf("the connections alert must follow local.capacity.max_connections")
	}
	up := c.resource("google_monitoring_uptime_check_config.dashboard")
	if up == nil || !strings.Contains(c.text(blockAttr(up, "monitored_resource", "labels")), "host       = local.dashboard_host") || c.text(blockAttr(up, "http_check", "use_ssl")) != "true" {
		t.Errorf("the uptime check must fetch the dashboard (local.dashboard_host) over HTTPS")
	}
	b := c.resource("google_billing_budget.project")
	if b == nil {
		t.Errorf("no budget")
		return
	}
	if !strings.Contains(c.text(blockAttr(b, "amount", "specified_amount", "units")), "var.budget_amount") || !strings.Contains(c.text(b.Body.Attributes["count"]), "var.budget_amount") {
		t.Errorf("the budget's amount must be var.budget_amount (0: none)")
	}
	if c.text(b.Body.Attributes["provider"]) != "google.billing" {
		t.Errorf("the budget needs the provider with a quota project (google.billing)")
	}
	if len(blocksOf(b.Body, "threshold_rules")) == 0 {
		t.Errorf("the budget has no threshold rules")
	}
}

// ---- the tests --------------------------------------------------------------------------------

var designChecks = map[string]func(reporter, *config){
	"cloudsql": checkCloudSQL, "secrets": checkSecrets, "cluster+run": checkClusterAndCloudRun,
	"privilege": checkLeastPrivilege, "ordering": checkOrdering, "images": checkImages,
	"edge": checkEdge, "vms": checkVMs, "observability": checkObservability,
}

func TestDesign(t *testing.T) {
	c := load(t)
	for _, name := range sortedKeys(designChecks) {
		t.Run(name, func(t *testing.T) { designChecks[name](t, c) })
	}
}

// Every check must fail on a copy of the configuration broken the way it exists
// to catch.
func TestDesignChecksCatchBreakage(t *testing.T) {
	breakages := []struct {
		name, check, file, old, new string
	}{
		{"MySQL 8.0", "cloudsql", "sql.tf", `"MYSQL_8_4"`, `"MYSQL_8_0"`},
		{"public IP", "cloudsql", "sql.tf", "ipv4_enabled    = false", "ipv4_enabled    = true"},
		{"tier apart from the budget", "cloudsql", "sql.tf", "tier                        = local.capacity.sql_tier", `tier                        = "db-f1-micro"`},
		{"no max_connections", "cloudsql", "sql.tf", `"max_connections"`, `"max_connexions"`},
		{"no budget precondition", "cloudsql", "sql.tf", "local.db_connection_budget <= local.capacity.max_connections", "true"},
		{"admin password in the state", "cloudsql", "sql.tf", "password_wo         = ephemeral.google_secret_manager_secret_version.db_admin.secret_data\n  password_wo_version = tonumber(google_secret_manager_secret_version.db_admin.version)", "password = ephemeral.google_secret_manager_secret_version.db_admin.secret_data"},
		{"random_password resource", "secrets", "secrets.tf", `ephemeral "random_password" "db_admin"`, `resource "random_password" "db_admin"`},
		{"secret_data from random", "secrets", "secrets.tf", "secret_data_wo         = ephemeral.random_password.db_admin.result", "secret_data = ephemeral.random_password.db_admin.result"},
		{"token version in terraform", "secrets", "secrets.tf", "secret                 = google_secret_manager_secret.db_admin.id", "secret                 = google_secret_manager_secret.ingest_token.id"},
		{"relay reads the token", "secrets", "secrets.tf", `member    = "serviceAccount:${google_service_account.route.email}"`, `member    = "serviceAccount:${google_service_account.relay.email}"`},
		{"no seed", "secrets", "secrets.tf", `command = "bash ${path.module}/scripts/seed-secret.sh"`, `command = "true"`},
		{"protected relay", "cluster+run", "run.tf", "deletion_protection  = false\n  invoker_iam_disabled = var.public_access\n\n  template {\n    service_account = google_service_account.relay.email", "deletion_protection  = true\n  invoker_iam_disabled = var.public_access\n\n  template {\n    service_account = google_service_account.relay.email"},
		{"protected cluster", "cluster+run", "gke.tf", "deletion_protection = false", "deletion_protection = true"},
		{"gcloud annotations not ignored", "cluster+run", "run.tf", "      template[0].annotations,\n", ""},
		{"client not ignored", "cluster+run", "run.tf", "      client,\n", ""},
		{"short IAM wait", "ordering", "iam.tf", `create_duration = "120s"`, `create_duration = "5s"`},
		{"allUsers", "cluster+run", "run.tf", "invoker_iam_disabled = var.public_access\n\n  template {\n    service_account                  = google_service_account.web.email", "invoker_iam_disabled = false\n\n  template {\n    service_account                  = google_service_account.web.email"},
		{"max-clients apart from concurrency", "cluster+run", "run.tf", "value = tostring(local.relay_max_clients)", "value = \"5000\""},
		{"health on a z path", "cluster+run", "run.tf", `path = "/health"`, `path = "/healthz"`},
		{"short startup window", "cluster+run", "run.tf", "failure_threshold     = 48", "failure_threshold     = 5"},
		{"metrics on the public port", "cluster+run", "run.tf", `value = "127.0.0.1:${local.relay_metrics_port}"`, `value = ":8080"`},
		{"no Secret Manager add-on", "cluster+run", "gke.tf", "secret_manager_config {\n    enabled = true", "secret_manager_config {\n    enabled = false"},
		{"relay role without condition", "privilege", "iam.tf", `resource.name.startsWith(\"projects/${var.project_id}/subscriptions/${local.relay_subscription_prefix}\")`, `true`},
		{"broad role", "privilege", "iam.tf", `role    = "roles/cloudsql.client"`, `role    = "roles/cloudsql.admin"`},
		{"route without metric writer", "privilege", "iam.tf", `role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.route.email}"`, `role    = "roles/monitoring.viewer"
  member  = "serviceAccount:${google_service_account.route.email}"`},
		{"API missing", "ordering", "apis.tf", `"artifactregistry.googleapis.com",`, ``},
		{"no IAM wait for the relay", "ordering", "run.tf", "    time_sleep.iam,\n    terraform_data.build,\n    google_secret_manager_secret_version.relay_metrics_config,", "    terraform_data.build,\n    google_secret_manager_secret_version.relay_metrics_config,"},
		{"grant not waited for", "ordering", "iam.tf", "    google_secret_manager_secret_iam_member.route_reads_ingest_token,\n", ""},
		{"network before the APIs", "ordering", "network.tf", "routing_mode            = \"REGIONAL\"\n\n  depends_on = [time_sleep.apis]", "routing_mode            = \"REGIONAL\""},
		{"teardown on every redeploy", "ordering", "k8s.tf", "  depends_on = [\n    terraform_data.k8s_teardown,", "  provisioner \"local-exec\" {\n    when    = destroy\n    command = \"true\"\n  }\n\n  depends_on = [\n    terraform_data.k8s_teardown,"},
		{"k8s not redeployed on change", "ordering", "k8s.tf", "    sha256(local.k8s_overlay),\n", ""},
		{"images from Docker Hub", "images", "main.tf", "image_registry = local.build_images ? local.images_repo", "image_registry = local.build_images ? \"docker.io/someone\""},
		{"remote repo of something else", "images", "registry.tf", `public_repository = "DOCKER_HUB"`, `public_repository = "NPMJS"`},
		{"fixed tag", "images", "main.tf", `"src-${module.sources.images_hash}"`, `"v1"`},
		{"agent open to all", "edge", "network.tf", "source_ranges = var.loadgen_source_ranges\n  target_tags   = [local.agent_net_tag]", "source_ranges = [\"0.0.0.0/0\"]\n  target_tags   = [local.agent_net_tag]"},
		{"Armor allows all", "edge", "network.tf", "action      = \"deny(403)\"", "action      = \"allow\""},
		{"Armor without rate limit", "edge", "network.tf", "action      = \"rate_based_ban\"", "action      = \"allow\""},
		{"Armor not attached", "edge", "k8s.tf", "security_policy      = google_compute_security_policy.ingest.name", "security_policy      = \"default\""},
		{"HTTPS always off", "edge", "k8s.tf", `https                = var.ingest_domain != ""`, `https                = false`},
		{"one VM only", "vms", "vm.tf", "for_each = local.vms\n\n  name                      = each.value.name", "name                      = \"${var.prefix}-vm\""},
		{"ephemeral address", "vms", "vm.tf", "nat_ip = google_compute_address.agent[each.key].address", ""},
		{"vm name not the instance", "vms", "vm.tf", "vm_name      = each.value.name", "vm_name      = \"vm\""},
		{"no 5xx alert", "observability", "monitoring.tf", `vmpulse_ingest_requests_total{code=~\"5..\"}`, `vmpulse_ingest_requests_total{code=~\"4..\"}`},
		{"no stall alert", "observability", "monitoring.tf", "max(vmpulse_relay_last_message_age_seconds) > 90", "up == 0"},
		{"fixed budget", "observability", "monitoring.tf", "units = tostring(var.budget_amount)", "units = \"100\""},
		{"uptime check elsewhere", "observability", "monitoring.tf", "host       = local.dashboard_host", "host       = \"example.com\""},
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			c := brokenCopy(t, b.file, b.old, b.new)
			var col collector
			designChecks[b.check](&col, c)
			if len(col.errs) == 0 {
				t.Errorf("check %s did not notice", b.check)
			} else {
				t.Logf("%s", col.errs[0])
			}
		})
	}
}

func atLeast(d string, min time.Duration) bool {
	v, err := time.ParseDuration(d)
	return err == nil && v >= min
}
