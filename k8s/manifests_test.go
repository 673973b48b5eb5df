package k8s

// Offline checks of the Kubernetes side: `kubectl kustomize` renders k8s/ (and
// the overlay terraform renders from templates/k8s-overlay.yaml.tftpl, with and
// without HTTPS), every document is decoded strictly into the real API types
// (k8s.io/api, sigs.k8s.io/gateway-api) or, for GKE's and the CSI driver's
// custom resources, into types transcribed from their CRDs (crds_test.go), and
// the invariants that a cluster would only reveal at apply time (or later, as an
// unhealthy load balancer or an open door) are asserted here.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

const (
	namespace     = "so1-fase2"
	gsaAnnotation = "iam.gke.io/gcp-service-account"
	ingressPath   = "/ingest"
	csiDriver     = "secrets-store-gke.csi.k8s.io"
	tokenFile     = "/var/run/secrets/vmpulse/ingest-token"
)

// grantPrivileges is what the routes' database user may do, on the vmpulse
// database only: exactly the statements the routes run (the contract).
var grantPrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX"}

// ---- strict decoding ---------------------------------------------------------------

// kinds is every apiVersion/kind the manifests may contain. Anything else fails:
// a new kind needs its real Go type here first.
var kinds = map[string]func() any{
	"v1/Namespace":                                      func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                                 func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                      func() any { return &corev1.ConfigMap{} },
	"v1/Service":                                        func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                                func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler":            func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":                     func() any { return &policyv1.PodDisruptionBudget{} },
	"gateway.networking.k8s.io/v1/Gateway":              func() any { return &gwv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":            func() any { return &gwv1.HTTPRoute{} },
	"networking.gke.io/v1/HealthCheckPolicy":            func() any { return &healthCheckPolicy{} },
	"networking.gke.io/v1/GCPBackendPolicy":             func() any { return &gcpBackendPolicy{} },
	"batch/v1/Job":                                      func() any { return &batchv1.Job{} },
	"monitoring.googleapis.com/v1/PodMonitoring":        func() any { return &podMonitoring{} },
	"secrets-store.csi.x-k8s.io/v1/SecretProviderClass": func() any { return &secretProviderClass{} },
}

// splitYAML splits a multi-document YAML stream, dropping empty documents.
func splitYAML(b []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(d)) > 0 && !isOnlyComments(d) {
			docs = append(docs, d)
		}
	}
}

func isOnlyComments(d []byte) bool {
	for _, l := range strings.Split(string(d), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

// decodeStrict decodes one document into the Go type of its kind. Unknown kinds,
// unknown fields, duplicate keys and fields spelled with the wrong case (which
// encoding/json would otherwise accept) are errors.
func decodeStrict(doc []byte) (any, metav1.TypeMeta, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, tm, fmt.Errorf("reading apiVersion/kind: %w", err)
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, tm, fmt.Errorf("unknown kind %s %s: add its Go type to kinds", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, tm, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	// encoding/json matches field names case-insensitively; Kubernetes does not.
	// Every key of the input must come back, spelled the same, when the decoded
	// object is encoded again (zero values may vanish through omitempty).
	in, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, tm, err
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, tm, err
	}
	var inV, outV any
	if err := json.Unmarshal(in, &inV); err != nil {
		return nil, tm, err
	}
	if err := json.Unmarshal(out, &outV); err != nil {
		return nil, tm, err
	}
	if err := sameKeys(inV, outV, ""); err != nil {
		return nil, tm, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, tm, nil
}

func sameKeys(in, out any, path string) error {
	switch iv := in.(type) {
	case map[string]any:
		om, _ := out.(map[string]any)
		keys := make([]string, 0, len(iv))
		for k := range iv {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ov, ok := om[k]
			if !ok {
				if isZero(iv[k]) {
					continue
				}
				return fmt.Errorf("field %s.%s is not known to the type (misspelled or wrong case?)", path, k)
			}
			if err := sameKeys(iv[k], ov, path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		ol, _ := out.([]any)
		if len(ol) != len(iv) {
			if isZero(iv) {
				return nil
			}
			return fmt.Errorf("list %s did not survive decoding (%d items in, %d out)", path, len(iv), len(ol))
		}
		for i := range iv {
			if err := sameKeys(iv[i], ol[i], fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func isZero(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// ---- the rendered set ----------------------------------------------------------------

type manifests struct {
	order        []string // kind/name, in rendering order
	namespaces   map[string]*corev1.Namespace
	accounts     map[string]*corev1.ServiceAccount
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	deployments  map[string]*appsv1.Deployment
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	gateways     map[string]*gwv1.Gateway
	routes       map[string]*gwv1.HTTPRoute
	healthChecks map[string]*healthCheckPolicy
	backends     map[string]*gcpBackendPolicy
	jobs         map[string]*batchv1.Job
	monitorings  map[string]*podMonitoring
	spcs         map[string]*secretProviderClass
	namespaceOf  map[string]string // kind/name -> metadata.namespace
}

func decodeAll(docs [][]byte) (*manifests, error) {
	m := &manifests{
		namespaces: map[string]*corev1.Namespace{}, accounts: map[string]*corev1.ServiceAccount{},
		configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, gateways: map[string]*gwv1.Gateway{},
		routes: map[string]*gwv1.HTTPRoute{}, healthChecks: map[string]*healthCheckPolicy{},
		backends: map[string]*gcpBackendPolicy{}, jobs: map[string]*batchv1.Job{},
		monitorings: map[string]*podMonitoring{}, spcs: map[string]*secretProviderClass{},
		namespaceOf: map[string]string{},
	}
	for i, d := range docs {
		obj, tm, err := decodeStrict(d)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var meta metav1.Object
		switch o := obj.(type) {
		case *corev1.Namespace:
			m.namespaces[o.Name], meta = o, o
		case *corev1.ServiceAccount:
			m.accounts[o.Name], meta = o, o
		case *corev1.ConfigMap:
			m.configMaps[o.Name], meta = o, o
		case *corev1.Service:
			m.services[o.Name], meta = o, o
		case *appsv1.Deployment:
			m.deployments[o.Name], meta = o, o
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas[o.Name], meta = o, o
		case *policyv1.PodDisruptionBudget:
			m.pdbs[o.Name], meta = o, o
		case *gwv1.Gateway:
			m.gateways[o.Name], meta = o, o
		case *gwv1.HTTPRoute:
			m.routes[o.Name], meta = o, o
		case *healthCheckPolicy:
			m.healthChecks[o.Name], meta = o, o
		case *gcpBackendPolicy:
			m.backends[o.Name], meta = o, o
		case *batchv1.Job:
			m.jobs[o.Name], meta = o, o
		case *podMonitoring:
			m.monitorings[o.Name], meta = o, o
		case *secretProviderClass:
			m.spcs[o.Name], meta = o, o
		default:
			return nil, fmt.Errorf("document %d: no bucket for %T", i+1, obj)
		}
		key := tm.Kind + "/" + meta.GetName()
		if _, dup := m.namespaceOf[key]; dup {
			return nil, fmt.Errorf("%s appears twice", key)
		}
		m.order = append(m.order, key)
		m.namespaceOf[key] = meta.GetNamespace()
	}
	return m, nil
}

// render runs `kubectl kustomize dir` and decodes the result strictly.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	kubectl := needTool(t, "kubectl", "kubectl renders the kustomizations (apt-get install kubectl, or the upstream binary)")
	out := run(t, dir, nil, nil, kubectl, "kustomize", dir)
	docs, err := splitYAML(out)
	if err != nil {
		t.Fatalf("splitting the rendered YAML: %v", err)
	}
	if len(docs) == 0 {
		t.Fatal("kubectl kustomize rendered nothing")
	}
	m, err := decodeAll(docs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ---- the kustomization's images ----------------------------------------------------------

type kustomizationImages struct {
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// kustomizeImages reads the images: block of a kustomization.yaml and returns the
// full references it produces.
func kustomizeImages(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var k kustomizationImages
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	refs := map[string]bool{}
	for _, im := range k.Images {
		ref := im.NewName
		if ref == "" {
			ref = im.Name
		}
		switch {
		case im.Digest != "":
			ref += "@" + im.Digest
		case im.NewTag != "":
			ref += ":" + im.NewTag
		}
		refs[ref] = true
	}
	if len(refs) == 0 {
		t.Fatalf("%s: no images: entries", file)
	}
	return refs
}

// ---- terraform's side of the contract ---------------------------------------------------

// capacityProfiles reads local.capacity_profiles from terraform/main.tf: the SQL
// tier's max_connections and the routes' scale that the overlay sets.
type capacityProfile struct {
	maxConnections, routeMaxPods, dbConns int
}

func capacityProfiles(t *testing.T) map[string]capacityProfile {
	t.Helper()
	out := map[string]capacityProfile{}
	for name, p := range terraformLocal(t, "capacity_profiles").AsValueMap() {
		num := func(k string) int {
			n, _ := p.GetAttr(k).AsBigFloat().Int64()
			return int(n)
		}
		out[name] = capacityProfile{num("max_connections"), num("route_max_pods"), num("db_conns")}
	}
	return out
}

// dbConnectionReserve reads local.db_connection_reserve from terraform/main.tf:
// the connections the budget leaves for the GRANT Job and an operator.
func dbConnectionReserve(t *testing.T) int {
	t.Helper()
	v := terraformLocal(t, "db_connection_reserve")
	if v.Type() != cty.Number {
		t.Fatalf("local.db_connection_reserve is %s, want a number", v.Type().FriendlyName())
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact || n < 1 {
		t.Fatalf("local.db_connection_reserve = %s, want a positive whole number", v.AsBigFloat().String())
	}
	return int(n)
}

// terraformLocal evaluates one local of terraform/main.tf, which must be a literal.
func terraformLocal(t *testing.T, name string) cty.Value {
	t.Helper()
	file := filepath.Join(repoRoot(t), "terraform", "main.tf")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		a, ok := b.Body.Attributes[name]
		if b.Type != "locals" || !ok {
			continue
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("local.%s must be a literal: %v", name, diags)
		}
		return v
	}
	t.Fatalf("terraform/main.tf has no local.%s", name)
	return cty.NilVal
}

// renderTemplate evaluates a terraform template file with the HCL template engine
// that templatefile() uses (TestTemplatesRenderInTerraform in
// terraform/templates_test.go checks that terraform renders it the same).
func renderTemplate(t *testing.T, file string, vars map[string]cty.Value) []byte {
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
	return []byte(val.AsString())
}

// overlayVars are a deployment's values for templates/k8s-overlay.yaml.tftpl.
func overlayVars(https bool, p capacityProfile) map[string]cty.Value {
	s := cty.StringVal
	return map[string]cty.Value{
		"https":                cty.BoolVal(https),
		"cloudsql_instance":    s("demo-project-42:us-central1:vmpulse-mysql-1a2b"),
		"db_user":              s("vmpulse-route"),
		"db_name":              s("vmpulse"),
		"db_conns":             cty.NumberIntVal(int64(p.dbConns)),
		"db_host":              s("10.99.0.3"),
		"db_admin":             s("vmpulse-admin"),
		"project_id":           s("demo-project-42"),
		"pubsub_topic":         s("vmpulse-records"),
		"route_image_name":     s("us-central1-docker.pkg.dev/demo-project-42/vmpulse-images/vmpulse-route"),
		"route_image_tag":      s("src-0123456789ab"),
		"mysql_image_name":     s("us-central1-docker.pkg.dev/demo-project-42/vmpulse-dockerhub/library/mysql"),
		"route_gsa_email":      s("vmpulse-route@demo-project-42.iam.gserviceaccount.com"),
		"gateway_address_name": s("vmpulse-gateway-ip"),
		"certificate_name":     s("vmpulse-ingest"),
		"security_policy":      s("vmpulse-ingest"),
		"route_max_pods":       cty.NumberIntVal(int64(p.routeMaxPods)),
		"ingest_token_secret":  s("vmpulse-ingest-token"),
		"db_admin_secret":      s("vmpulse-db-admin-password"),
	}
}

// deployTree lays out what k8s/deploy.sh works in: a copy of k8s/ at <tmp>/k8s
// and the overlay at <tmp>/out/k8s/kustomization.yaml (its resources entry is
// ../../k8s).
func deployTree(t *testing.T, overlay []byte) string {
	t.Helper()
	tmp := t.TempDir()
	copyTree(t, filepath.Join(repoRoot(t), "k8s"), filepath.Join(tmp, "k8s"))
	out := filepath.Join(tmp, "out", "k8s")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "kustomization.yaml"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// ---- tests ------------------------------------------------------------------------------

func TestBaseRendersStrictlyAndHoldsInvariants(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "k8s")
	m := render(t, dir)
	want := expectations{
		images: kustomizeImages(t, filepath.Join(dir, "kustomization.yaml")),
		// The base's values are those of the default capacity profile.
		maxConns:  capacityProfiles(t)["medium"].maxConnections,
		dbReserve: dbConnectionReserve(t),
	}
	checkInvariants(t, m, want)

	// Exactly the objects the design has, no more, no less.
	var cms []string
	for _, n := range keys(m.configMaps) {
		cms = append(cms, "ConfigMap/"+n)
	}
	wantObjects := append(cms, "Deployment/route1", "Deployment/route2",
		"GCPBackendPolicy/route1", "GCPBackendPolicy/route2",
		"Gateway/vmpulse", "HTTPRoute/vmpulse-ingest", "HealthCheckPolicy/route1", "HealthCheckPolicy/route2",
		"HorizontalPodAutoscaler/route1", "HorizontalPodAutoscaler/route2", "Job/vmpulse-db-grant", "Namespace/"+namespace,
		"PodDisruptionBudget/route1", "PodDisruptionBudget/route2", "PodMonitoring/vmpulse-route",
		"SecretProviderClass/vmpulse-db-admin", "SecretProviderClass/vmpulse-ingest-token",
		"Service/route1", "Service/route2", "ServiceAccount/vmpulse-db-grant", "ServiceAccount/vmpulse-route",
	)
	got := slices.Clone(m.order)
	sort.Strings(got)
	sort.Strings(wantObjects)
	if !slices.Equal(got, wantObjects) {
		t.Errorf("rendered objects:\n got %v\nwant %v", got, wantObjects)
	}
	if len(m.configMaps) != 2 {
		t.Errorf("want the two hashed ConfigMaps (route config, GRANT config), have %v", keys(m.configMaps))
	}
}

// route2 must be route1 with the name and STRATEGY changed, nothing else: the
// comparison of the two strategies is only fair if everything else is equal.
// The overlays make it so by construction; this proves the construction.
func TestRoutesDifferOnlyInNameAndStrategy(t *testing.T) {
	m := render(t, filepath.Join(repoRoot(t), "k8s"))
	pairs := map[string][2]any{
		"Deployment":              {m.deployments["route1"], m.deployments["route2"]},
		"Service":                 {m.services["route1"], m.services["route2"]},
		"HorizontalPodAutoscaler": {m.hpas["route1"], m.hpas["route2"]},
		"PodDisruptionBudget":     {m.pdbs["route1"], m.pdbs["route2"]},
		"HealthCheckPolicy":       {m.healthChecks["route1"], m.healthChecks["route2"]},
		"GCPBackendPolicy":        {m.backends["route1"], m.backends["route2"]},
	}
	for kind, p := range pairs {
		a, err := json.Marshal(p[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if string(a) == "null" || string(b) == "null" {
			t.Errorf("%s: route1 or route2 missing", kind)
			continue
		}
		if got := strings.ReplaceAll(string(b), "route2", "route1"); got != string(a) {
			t.Errorf("%s route2 differs from route1 beyond the name:\nroute1 %s\nroute2 %s", kind, a, got)
		}
	}
	// Each overlay is small: the base carries the route.
	for _, o := range []string{"route1", "route2"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "k8s", o, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > 40 {
			t.Errorf("k8s/%s/kustomization.yaml has %d lines; the route belongs in the base k8s/route", o, n)
		}
	}
}

// The deployed shape: the overlay terraform renders (templates/k8s-overlay.yaml.tftpl
// with a deployment's values, as output k8s_overlay and as k8s/deploy.sh's
// input) over a copy of k8s/, without and with a domain. The same invariants
// hold, the placeholders are gone, and the deployment's values are in place.
func TestOverlayFromTerraform(t *testing.T) {
	root := repoRoot(t)
	profiles := capacityProfiles(t)
	for _, https := range []bool{false, true} {
		for _, size := range []string{"small", "large"} {
			t.Run(fmt.Sprintf("https=%v,%s", https, size), func(t *testing.T) {
				p := profiles[size]
				vals := overlayVars(https, p)
				overlay := renderTemplate(t, filepath.Join(root, "terraform", "templates", "k8s-overlay.yaml.tftpl"), vals)
				tmp := deployTree(t, overlay)
				m := render(t, filepath.Join(tmp, "out", "k8s"))
				str := func(k string) string { return vals[k].AsString() }
				routeImage := str("route_image_name") + ":" + str("route_image_tag")
				checkInvariants(t, m, expectations{
					images: map[string]bool{routeImage: true, str("mysql_image_name") + ":8.4": true},
					config: map[string]string{
						"CLOUDSQL_INSTANCE": str("cloudsql_instance"), "DB_USER": str("db_user"), "DB_NAME": str("db_name"),
						"PUBSUB_PROJECT": str("project_id"), "PUBSUB_TOPIC": str("pubsub_topic"),
						"DB_CONNS": strconv.Itoa(p.dbConns), "DB_HOST": str("db_host"), "DB_ADMIN": str("db_admin"),
					},
					gsa:         str("route_gsa_email"),
					gatewayAddr: str("gateway_address_name"),
					https:       https,
					project:     str("project_id"),
					maxConns:    p.maxConnections,
					dbReserve:   dbConnectionReserve(t),
				})
				if len(m.configMaps) != 2 {
					t.Errorf("the overlay must replace the base ConfigMaps, not add some: %v", keys(m.configMaps))
				}
				for _, h := range m.hpas {
					if int(h.Spec.MaxReplicas) != p.routeMaxPods {
						t.Errorf("HPA %s: maxReplicas %d, want the %s profile's %d", h.Name, h.Spec.MaxReplicas, size, p.routeMaxPods)
					}
				}
				for _, b := range m.backends {
					if b.Spec.Default == nil || b.Spec.Default.SecurityPolicy == nil || *b.Spec.Default.SecurityPolicy != str("security_policy") {
						t.Errorf("GCPBackendPolicy %s: securityPolicy is not terraform's %s", b.Name, str("security_policy"))
					}
				}
				if https {
					for _, l := range m.gateways["vmpulse"].Spec.Listeners {
						if l.Name == "https" && string(l.TLS.Options["networking.gke.io/pre-shared-certs"]) != str("certificate_name") {
							t.Errorf("the HTTPS listener presents %q, not terraform's certificate %s", l.TLS.Options["networking.gke.io/pre-shared-certs"], str("certificate_name"))
						}
					}
				}
				// A placeholder that survives would deploy a broken route.
				all, err := json.Marshal([]any{m.configMaps, m.accounts, m.deployments, m.jobs, m.gateways, m.spcs, m.backends})
				if err != nil {
					t.Fatal(err)
				}
				for _, ph := range []string{"PROJECT_ID", "REGION", "registry.invalid", "10.0.0.0", "set-by-the-overlay"} {
					if bytes.Contains(all, []byte(ph)) {
						t.Errorf("placeholder %s survives the overlay", ph)
					}
				}
			})
		}
	}
}

// The strict decoder is what every other check stands on: prove that it refuses
// what kubectl apply (or a CRD's structural schema) would refuse.
func TestStrictDecoderRejects(t *testing.T) {
	const good = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
      - name: x
        image: x
        ports:
        - containerPort: 8080
`
	if _, _, err := decodeStrict([]byte(good)); err != nil {
		t.Fatalf("a valid Deployment is refused: %v", err)
	}
	goodCRDs := map[string]string{
		"GCPBackendPolicy": `apiVersion: networking.gke.io/v1
kind: GCPBackendPolicy
metadata: {name: x}
spec:
  targetRef: {group: "", kind: Service, name: x}
  default: {securityPolicy: p, timeoutSec: 30, logging: {enabled: true}}
`,
		"PodMonitoring": `apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata: {name: x}
spec:
  selector: {matchLabels: {app: x}}
  endpoints: [{port: http, interval: 30s}]
`,
		"SecretProviderClass": `apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: x}
spec:
  provider: gke
  parameters: {secrets: "- resourceName: projects/p/secrets/s/versions/latest\n  path: f\n"}
`,
	}
	for name, doc := range goodCRDs {
		if _, _, err := decodeStrict([]byte(doc)); err != nil {
			t.Errorf("a valid %s is refused: %v", name, err)
		}
	}
	cases := map[string]string{
		"unknown field":   strings.Replace(good, "        image: x\n", "        image: x\n        imagePullPolcy: Always\n", 1),
		"wrong case":      strings.Replace(good, "containerPort", "ContainerPort", 1),
		"duplicate key":   strings.Replace(good, "        image: x\n", "        image: x\n        image: y\n", 1),
		"wrong type":      strings.Replace(good, "containerPort: 8080", "containerPort: http", 1),
		"unknown kind":    strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"unknown version": strings.Replace(good, "apiVersion: apps/v1", "apiVersion: apps/v1beta1", 1),
		"unknown CRD field": `apiVersion: networking.gke.io/v1
kind: HealthCheckPolicy
metadata: {name: x}
spec:
  targetRef: {group: "", kind: Service, name: x}
  default:
    config:
      type: HTTP
      httpHealthCheck: {requestPath: /healthz, requestPort: 8080}
`,
		"unknown Gateway API field": `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: x}
spec:
  rules:
  - backendRefs:
    - {name: a, port: 80, wieght: 50}
`,
		"GCPBackendPolicy misspelled": strings.Replace(goodCRDs["GCPBackendPolicy"], "securityPolicy", "securityPolicyName", 1),
		"GCPBackendPolicy wrong case": strings.Replace(goodCRDs["GCPBackendPolicy"], "timeoutSec", "timeoutsec", 1),
		"PodMonitoring misspelled":    strings.Replace(goodCRDs["PodMonitoring"], "interval", "scrapeInterval", 1),
		"SecretProviderClass extra":   strings.Replace(goodCRDs["SecretProviderClass"], "provider: gke", "provider: gke\n  secretValue: hunter2", 1),
	}
	for name, doc := range cases {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// The invariant checks must fail on the mistakes they exist for. They run on the
// deployed shape with HTTPS, which has every kind of object.
func TestInvariantsCatchBrokenManifests(t *testing.T) {
	root := repoRoot(t)
	p := capacityProfiles(t)["medium"]
	vals := overlayVars(true, p)
	tmp := deployTree(t, renderTemplate(t, filepath.Join(root, "terraform", "templates", "k8s-overlay.yaml.tftpl"), vals))
	base := render(t, filepath.Join(tmp, "out", "k8s"))
	want := expectations{
		images:    map[string]bool{vals["route_image_name"].AsString() + ":" + vals["route_image_tag"].AsString(): true, vals["mysql_image_name"].AsString() + ":8.4": true},
		https:     true,
		project:   vals["project_id"].AsString(),
		maxConns:  p.maxConnections,
		dbReserve: dbConnectionReserve(t),
	}
	var clean collector
	checkInvariants(&clean, cloneManifests(t, base), want)
	if len(clean.errs) > 0 {
		t.Fatalf("the unbroken manifests fail: %v", clean.errs)
	}
	route := func(m *manifests, name string) *corev1.Container {
		return &m.deployments[name].Spec.Template.Spec.Containers[0]
	}
	grant := func(m *manifests) *corev1.Container {
		return &m.jobs["vmpulse-db-grant"].Spec.Template.Spec.Containers[0]
	}
	replaceInGrant := func(old, new string) func(m *manifests) {
		return func(m *manifests) {
			c := grant(m)
			for i := range c.Command {
				c.Command[i] = strings.Replace(c.Command[i], old, new, 1)
			}
		}
	}
	ingest := func(m *manifests) *gwv1.HTTPRoute { return m.routes["vmpulse-ingest"] }

	breakages := map[string]func(m *manifests){
		"weights 60/40": func(m *manifests) {
			w := int32(60)
			ingest(m).Spec.Rules[0].BackendRefs[0].Weight = &w
		},
		"service targetPort": func(m *manifests) { m.services["route1"].Spec.Ports[0].TargetPort = intstr.FromString("web") },
		"selector mismatch": func(m *manifests) {
			m.deployments["route2"].Spec.Selector.MatchLabels["app.kubernetes.io/instance"] = "routeX"
		},
		"no liveness probe": func(m *manifests) { route(m, "route1").LivenessProbe = nil },
		"readiness not /healthz": func(m *manifests) {
			route(m, "route1").ReadinessProbe.HTTPGet.Path = "/readyz"
		},
		"no memory limit": func(m *manifests) {
			delete(route(m, "route1").Resources.Limits, corev1.ResourceMemory)
		},
		"foreign image":   func(m *manifests) { route(m, "route1").Image = "nginx:latest" },
		"HPA target":      func(m *manifests) { m.hpas["route2"].Spec.ScaleTargetRef.Name = "route3" },
		"other namespace": func(m *manifests) { m.namespaceOf["Service/route1"] = "default" },
		"health path":     func(m *manifests) { p := "/"; m.healthChecks["route1"].Spec.Default.Config.HTTP.RequestPath = &p },
		"password in env": func(m *manifests) { addEnv(m.deployments["route1"], "DB_PASSWORD", "x") },
		"token in env":    func(m *manifests) { addEnv(m.deployments["route2"], "INGEST_TOKEN", "s3cr3t") },
		"writable rootfs": func(m *manifests) {
			f := false
			route(m, "route2").SecurityContext.ReadOnlyRootFilesystem = &f
		},
		"parent gateway":   func(m *manifests) { ingest(m).Spec.ParentRefs[0].Name = "other" },
		"PDB selects none": func(m *manifests) { m.pdbs["route1"].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "nothing" },
		// issue 11: the edge
		"no HTTPS listener": func(m *manifests) {
			g := m.gateways["vmpulse"]
			g.Spec.Listeners = g.Spec.Listeners[:1]
		},
		"ingest on http with HTTPS on": func(m *manifests) {
			s := gwv1.SectionName("http")
			ingest(m).Spec.ParentRefs[0].SectionName = &s
		},
		"no redirect": func(m *manifests) { delete(m.routes, "vmpulse-http-redirect") },
		"prefix match": func(m *manifests) {
			pt := gwv1.PathMatchPathPrefix
			ingest(m).Spec.Rules[0].Matches[0].Path.Type = &pt
		},
		"metrics exposed": func(m *manifests) {
			r := ingest(m)
			extra := r.Spec.Rules[0].DeepCopy()
			v := "/metrics"
			extra.Matches[0].Path.Value = &v
			r.Spec.Rules = append(r.Spec.Rules, *extra)
		},
		"no Cloud Armor on route2": func(m *manifests) { m.backends["route2"].Spec.Default.SecurityPolicy = nil },
		"backend policy targets nothing": func(m *manifests) {
			m.backends["route1"].Spec.TargetRef.Name = "route9"
		},
		"token not mounted": func(m *manifests) {
			c := route(m, "route1")
			c.VolumeMounts = c.VolumeMounts[:1]
		},
		"token from a Kubernetes Secret": func(m *manifests) {
			ps := &m.deployments["route1"].Spec.Template.Spec
			for i := range ps.Volumes {
				if ps.Volumes[i].CSI != nil {
					ps.Volumes[i].CSI = nil
					ps.Volumes[i].Secret = &corev1.SecretVolumeSource{SecretName: "ingest-token"}
				}
			}
		},
		"token secret pinned": func(m *manifests) {
			s := m.spcs["vmpulse-ingest-token"]
			s.Spec.Parameters["secrets"] = strings.Replace(s.Spec.Parameters["secrets"], "versions/latest", "versions/1", 1)
		},
		"wrong secret mounted": func(m *manifests) {
			s := m.spcs["vmpulse-ingest-token"]
			s.Spec.Parameters["secrets"] = strings.Replace(s.Spec.Parameters["secrets"], "vmpulse-ingest-token", "vmpulse-db-admin-password", 1)
		},
		"secret synced to k8s": func(m *manifests) {
			s := m.spcs["vmpulse-db-admin"]
			s.Spec.SecretObjects = make([]secretObject, 1)
		},
		"GRANT ALL":         replaceInGrant("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON", "GRANT ALL PRIVILEGES ON"),
		"GRANT DROP":        replaceInGrant("ALTER, INDEX ON", "ALTER, INDEX, DROP ON"),
		"GRANT on *.*":      replaceInGrant("ON \\`$DB_NAME\\`.* TO", "ON *.* TO"),
		"no REVOKE":         replaceInGrant("REVOKE IF EXISTS ALL PRIVILEGES", "SELECT 1; --"),
		"GRANT without TLS": replaceInGrant("--ssl-mode=REQUIRED", "--ssl-mode=PREFERRED"),
		"Job without deadline": func(m *manifests) {
			m.jobs["vmpulse-db-grant"].Spec.ActiveDeadlineSeconds = nil
		},
		"password in the Job's env": func(m *manifests) {
			c := grant(m)
			c.Env = append(c.Env, corev1.EnvVar{Name: "MYSQL_PWD", Value: "x"})
		},
		"GRANT account mapped to a GSA": func(m *manifests) {
			m.accounts["vmpulse-db-grant"].Annotations = map[string]string{gsaAnnotation: "x@p.iam.gserviceaccount.com"}
		},
		"metrics not scraped": func(m *manifests) {
			m.monitorings["vmpulse-route"].Spec.Endpoints[0].Port = intstr.FromString("metrics")
		},
		"series without route": func(m *manifests) { m.monitorings["vmpulse-route"].Spec.TargetLabels = nil },
		"over the connection budget": func(m *manifests) {
			m.hpas["route1"].Spec.MaxReplicas = 40
			m.hpas["route2"].Spec.MaxReplicas = 40
		},
		// route2 reads its own copy of the route ConfigMap with one connection
		// less: still within max_connections, so only the equality check fires.
		"unequal connection budgets": func(m *manifests) {
			c := route(m, "route2")
			for i, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					continue
				}
				cm, ok := m.configMaps[ef.ConfigMapRef.Name]
				if !ok || cm.Data["DB_CONNS"] == "" {
					continue
				}
				n, err := strconv.Atoi(cm.Data["DB_CONNS"])
				if err != nil {
					t.Fatalf("ConfigMap %s: DB_CONNS=%q", cm.Name, cm.Data["DB_CONNS"])
				}
				clone := cm.DeepCopy()
				clone.Name = cm.Name + "-route2"
				clone.Data["DB_CONNS"] = strconv.Itoa(n - 1)
				m.configMaps[clone.Name] = clone
				m.order = append(m.order, "ConfigMap/"+clone.Name)
				m.namespaceOf["ConfigMap/"+clone.Name] = m.namespaceOf["ConfigMap/"+cm.Name]
				c.EnvFrom[i].ConfigMapRef.Name = clone.Name
				return
			}
			t.Fatal("route2 reads no DB_CONNS through envFrom")
		},
	}
	// Where a breakage is caught by one particular check, that check must be
	// the one that reports it.
	wantErr := map[string]string{
		"over the connection budget": "more than max_connections",
		"unequal connection budgets": "different connection budgets",
	}
	for name, brk := range breakages {
		m := cloneManifests(t, base)
		brk(m)
		var c collector
		checkInvariants(&c, m, want)
		if len(c.errs) == 0 {
			t.Errorf("%s: the invariants did not notice", name)
			continue
		}
		t.Logf("%s: %s", name, c.errs[0])
		if sub, ok := wantErr[name]; ok && !slices.ContainsFunc(c.errs, func(e string) bool { return strings.Contains(e, sub) }) {
			t.Errorf("%s: no error says %q, got %v", name, sub, c.errs)
		}
	}
}

func addEnv(d *appsv1.Deployment, k, v string) {
	c := &d.Spec.Template.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
}

// cloneManifests deep-copies through JSON.
func cloneManifests(t *testing.T, m *manifests) *manifests {
	t.Helper()
	c := &manifests{order: slices.Clone(m.order), namespaceOf: map[string]string{}}
	for k, v := range m.namespaceOf {
		c.namespaceOf[k] = v
	}
	for _, pair := range []struct{ src, dst any }{
		{m.namespaces, &c.namespaces}, {m.accounts, &c.accounts}, {m.configMaps, &c.configMaps},
		{m.services, &c.services}, {m.deployments, &c.deployments}, {m.hpas, &c.hpas}, {m.pdbs, &c.pdbs},
		{m.gateways, &c.gateways}, {m.routes, &c.routes}, {m.healthChecks, &c.healthChecks},
		{m.backends, &c.backends}, {m.jobs, &c.jobs}, {m.monitorings, &c.monitorings}, {m.spcs, &c.spcs},
	} {
		b, err := json.Marshal(pair.src)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, pair.dst); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// collector gathers what the checks report, for the test of the checks.
type collector struct{ errs []string }

func (c *collector) Helper() {}

func (c *collector) Errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}
