package k8s

// Offline checks of the Kubernetes side: `kubectl kustomize` renders k8s/ (and
// the overlay that `make k8s-overlay` writes from terraform's outputs), every
// document is decoded strictly into the real API types, and the invariants that
// a cluster would only reveal at apply time (or later, as an unhealthy load
// balancer) are asserted here.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

const (
	namespace     = "so1-fase2"
	gsaAnnotation = "iam.gke.io/gcp-service-account"
	ingressPath   = "/ingest"
)

// ---- the GKE HealthCheckPolicy -----------------------------------------------------

// healthCheckPolicy mirrors networking.gke.io/v1 HealthCheckPolicy from
// github.com/GoogleCloudPlatform/gke-gateway-api (apis/networking/v1/
// healthcheck_types.go). That module is not imported: it still builds on
// gateway-api's v1alpha2.PolicyTargetReference, which gateway-api v1.6 removed.
// The JSON names below are copied from it field by field.
type healthCheckPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              hcpSpec `json:"spec"`
}

type hcpSpec struct {
	TargetRef hcpTargetRef `json:"targetRef"`
	Default   *hcpConfig   `json:"default,omitempty"`
}

type hcpTargetRef struct {
	Group     string  `json:"group"`
	Kind      string  `json:"kind"`
	Name      string  `json:"name"`
	Namespace *string `json:"namespace,omitempty"`
}

type hcpConfig struct {
	CheckIntervalSec   *int64        `json:"checkIntervalSec,omitempty"`
	TimeoutSec         *int64        `json:"timeoutSec,omitempty"`
	UnhealthyThreshold *int64        `json:"unhealthyThreshold,omitempty"`
	HealthyThreshold   *int64        `json:"healthyThreshold,omitempty"`
	Config             *hcpHealthChk `json:"config,omitempty"`
	LogConfig          *struct {
		Enabled *bool `json:"enabled,omitempty"`
	} `json:"logConfig,omitempty"`
}

type hcpHealthChk struct {
	Type  string         `json:"type,omitempty"`
	TCP   *hcpTCP        `json:"tcpHealthCheck,omitempty"`
	HTTP  *hcpHTTPCommon `json:"httpHealthCheck,omitempty"`
	HTTPS *hcpHTTPCommon `json:"httpsHealthCheck,omitempty"`
	HTTP2 *hcpHTTPCommon `json:"http2HealthCheck,omitempty"`
	GRPC  *struct {
		hcpPort         `json:",inline"`
		GRPCServiceName *string `json:"grpcServiceName,omitempty"`
	} `json:"grpcHealthCheck,omitempty"`
}

type hcpPort struct {
	PortSpecification *string `json:"portSpecification,omitempty"`
	Port              *int64  `json:"port,omitempty"`
	PortName          *string `json:"portName,omitempty"`
}

type hcpTCP struct {
	hcpPort     `json:",inline"`
	Request     *string `json:"request,omitempty"`
	Response    *string `json:"response,omitempty"`
	ProxyHeader *string `json:"proxyHeader,omitempty"`
}

type hcpHTTPCommon struct {
	hcpPort     `json:",inline"`
	Host        *string `json:"host,omitempty"`
	RequestPath *string `json:"requestPath,omitempty"`
	ProxyHeader *string `json:"proxyHeader,omitempty"`
	Response    *string `json:"response,omitempty"`
}

// ---- strict decoding ---------------------------------------------------------------

// kinds is every apiVersion/kind the manifests may contain. Anything else fails:
// a new kind needs its real Go type here first.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"gateway.networking.k8s.io/v1/Gateway":   func() any { return &gwv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute": func() any { return &gwv1.HTTPRoute{} },
	"networking.gke.io/v1/HealthCheckPolicy": func() any { return &healthCheckPolicy{} },
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
	namespaceOf  map[string]string // kind/name -> metadata.namespace
}

func decodeAll(docs [][]byte) (*manifests, error) {
	m := &manifests{
		namespaces: map[string]*corev1.Namespace{}, accounts: map[string]*corev1.ServiceAccount{},
		configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, gateways: map[string]*gwv1.Gateway{},
		routes: map[string]*gwv1.HTTPRoute{}, healthChecks: map[string]*healthCheckPolicy{},
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

// ---- invariants ------------------------------------------------------------------------

// reporter is what the checks need of a *testing.T, so that a test can also run
// them against broken manifests and see them fail.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// expectations are what differs between the base and a deployment's overlay.
type expectations struct {
	images      map[string]bool   // full references every container must use one of
	config      map[string]string // ConfigMap values that must be exactly these
	gsa         string            // the Workload Identity annotation, "" = any GSA address
	gatewayAddr string            // the NamedAddress, "" = any
}

var secretish = regexp.MustCompile(`(?i)(passw|secret|token|api_?key|credential|private_?key|dsn)`)

func checkInvariants(t reporter, m *manifests, want expectations) {
	t.Helper()

	// Namespace: the one namespace, and everything in it.
	if _, ok := m.namespaces[namespace]; !ok {
		t.Errorf("no Namespace %s", namespace)
	}
	for _, key := range m.order {
		if strings.HasPrefix(key, "Namespace/") {
			continue
		}
		if ns := m.namespaceOf[key]; ns != namespace {
			t.Errorf("%s is in namespace %q, want %q", key, ns, namespace)
		}
	}

	// The two routes, one Deployment each, told apart by STRATEGY.
	strategies := map[string]string{}
	for name, d := range m.deployments {
		checkDeployment(t, m, name, d, want)
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.Name == "STRATEGY" {
					strategies[e.Value] = name
				}
			}
		}
	}
	for _, s := range []string{"route1", "route2"} {
		if strategies[s] != s {
			t.Errorf("want Deployment %s with STRATEGY=%s, have %v", s, s, strategies)
		}
	}

	for name, s := range m.services {
		checkService(t, m, name, s)
	}
	for name, h := range m.hpas {
		checkHPA(t, m, name, h)
	}
	for name, p := range m.pdbs {
		checkPDB(t, m, name, p)
	}
	for name, g := range m.gateways {
		checkGateway(t, name, g, want)
	}
	if len(m.routes) == 0 {
		t.Errorf("no HTTPRoute")
	}
	for name, r := range m.routes {
		checkHTTPRoute(t, m, name, r)
	}
	for name, h := range m.healthChecks {
		checkHealthCheckPolicy(t, m, name, h)
	}
	for name, cm := range m.configMaps {
		checkConfigMap(t, name, cm, want)
	}
	for name, sa := range m.accounts {
		gsa := sa.Annotations[gsaAnnotation]
		if !regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-zA-Z0-9_-]+\.iam\.gserviceaccount\.com$`).MatchString(gsa) {
			t.Errorf("ServiceAccount %s: annotation %s=%q is not a Google service account address", name, gsaAnnotation, gsa)
		}
		if want.gsa != "" && gsa != want.gsa {
			t.Errorf("ServiceAccount %s: %s=%q, want %q", name, gsaAnnotation, gsa, want.gsa)
		}
	}
}

func selects(sel *metav1.LabelSelector, podLabels map[string]string) (bool, error) {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false, errors.New("empty selector")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(podLabels)), nil
}

func checkDeployment(t reporter, m *manifests, name string, d *appsv1.Deployment, want expectations) {
	t.Helper()
	pod := d.Spec.Template
	ok, err := selects(d.Spec.Selector, pod.Labels)
	if err != nil || !ok {
		t.Errorf("Deployment %s: selector %v does not select its pod template labels %v (%v)", name, d.Spec.Selector, pod.Labels, err)
	}
	for hname, h := range m.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == name && d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas although HPA %s owns the count (a re-apply would reset it)", name, hname)
		}
	}
	ps := pod.Spec
	if ps.ServiceAccountName == "" {
		t.Errorf("Deployment %s: no serviceAccountName (Workload Identity needs the annotated one)", name)
	} else if _, ok := m.accounts[ps.ServiceAccountName]; !ok {
		t.Errorf("Deployment %s: ServiceAccount %s is not in the manifests", name, ps.ServiceAccountName)
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("Deployment %s: uses host namespaces", name)
	}
	podNonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
	if ps.SecurityContext == nil || ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("Deployment %s: pod seccompProfile must be RuntimeDefault (restricted Pod Security)", name)
	}
	volumes := map[string]bool{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = true
	}
	if len(ps.Containers) == 0 {
		t.Errorf("Deployment %s: no containers", name)
	}
	all := append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...)
	for i, c := range all {
		where := fmt.Sprintf("Deployment %s container %s", name, c.Name)
		isInit := i < len(ps.InitContainers)
		if !want.images[c.Image] {
			t.Errorf("%s: image %q is not one of the kustomization's images %v", where, c.Image, keys(want.images))
		}
		checkResources(t, where, c.Resources)
		if !isInit {
			if c.ReadinessProbe == nil {
				t.Errorf("%s: no readinessProbe", where)
			}
			if c.LivenessProbe == nil {
				t.Errorf("%s: no livenessProbe", where)
			}
			for pname, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
				checkProbePort(t, where+" "+pname, c, p)
			}
			// /healthz fails while Cloud SQL or Pub/Sub is unreachable: a liveness
			// probe on it would restart every pod at the first database blip
			// unless it is very patient.
			if lp := c.LivenessProbe; lp != nil && lp.HTTPGet != nil && lp.HTTPGet.Path == "/healthz" {
				if int(lp.PeriodSeconds)*int(lp.FailureThreshold) < 60 {
					t.Errorf("%s: liveness on /healthz (which depends on the database) must tolerate at least 60 s of failures", where)
				}
			}
		}
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", where)
			continue
		}
		if !(podNonRoot || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)) {
			t.Errorf("%s: runAsNonRoot is not set", where)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s: runs as UID 0", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", where)
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: mounts volume %s that the pod does not define", where, vm.Name)
			}
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			if seen[e.Name] {
				t.Errorf("%s: env %s set twice", where, e.Name)
			}
			seen[e.Name] = true
			if secretish.MatchString(e.Name) {
				t.Errorf("%s: env %s looks like a secret; the routes use IAM authentication", where, e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				if _, ok := m.configMaps[ef.ConfigMapRef.Name]; !ok {
					t.Errorf("%s: envFrom ConfigMap %s is not rendered (generator name and reference disagree?)", where, ef.ConfigMapRef.Name)
				}
			}
			if ef.SecretRef != nil {
				t.Errorf("%s: envFrom a Secret; the design has no passwords", where)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func checkResources(t reporter, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		lim, hasLim := r.Limits[res]
		req, hasReq := r.Requests[res]
		if !hasLim || lim.IsZero() {
			t.Errorf("%s: no %s limit", where, res)
		}
		if !hasReq || req.IsZero() {
			t.Errorf("%s: no %s request (the HPA and Autopilot need requests)", where, res)
		}
		if hasLim && hasReq && req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, res, req.String(), lim.String())
		}
	}
}

// containerPort resolves a probe's or Service's port against a container.
func containerPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return true
		}
	}
	return false
}

func checkProbePort(t reporter, where string, c corev1.Container, p *corev1.Probe) {
	t.Helper()
	if p == nil {
		return
	}
	switch {
	case p.HTTPGet != nil:
		if !containerPort(c, p.HTTPGet.Port) {
			t.Errorf("%s: httpGet port %s is not a port of the container", where, p.HTTPGet.Port.String())
		}
		if !strings.HasPrefix(p.HTTPGet.Path, "/") {
			t.Errorf("%s: httpGet path %q", where, p.HTTPGet.Path)
		}
	case p.TCPSocket != nil:
		if !containerPort(c, p.TCPSocket.Port) {
			t.Errorf("%s: tcpSocket port %s is not a port of the container", where, p.TCPSocket.Port.String())
		}
	case p.Exec != nil:
		t.Errorf("%s: exec probe, but the image is distroless (no shell)", where)
	default:
		t.Errorf("%s: probe without a handler", where)
	}
	if p.TimeoutSeconds > 0 && p.PeriodSeconds > 0 && p.TimeoutSeconds > p.PeriodSeconds {
		t.Errorf("%s: timeout above period", where)
	}
}

// selectedDeployments lists the Deployments whose pods a selector selects.
func selectedDeployments(m *manifests, sel *metav1.LabelSelector) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, name := range keys(m.deployments) {
		d := m.deployments[name]
		if ok, err := selects(sel, d.Spec.Template.Labels); err == nil && ok {
			out = append(out, d)
		}
	}
	return out
}

func checkService(t reporter, m *manifests, name string, s *corev1.Service) {
	t.Helper()
	if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s: type %s; only the Gateway is exposed", name, s.Spec.Type)
	}
	ds := selectedDeployments(m, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
	if len(ds) != 1 {
		t.Errorf("Service %s: selector %v selects %d Deployments, want exactly 1", name, s.Spec.Selector, len(ds))
	}
	if len(s.Spec.Ports) == 0 {
		t.Errorf("Service %s: no ports", name)
	}
	for _, p := range s.Spec.Ports {
		tp := p.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(p.Port)
		}
		for _, d := range ds {
			found := false
			for _, c := range d.Spec.Template.Spec.Containers {
				found = found || containerPort(c, tp)
			}
			if !found {
				t.Errorf("Service %s port %d: targetPort %s is not a container port of Deployment %s", name, p.Port, tp.String(), d.Name)
			}
		}
	}
}

func checkHPA(t reporter, m *manifests, name string, h *autoscalingv2.HorizontalPodAutoscaler) {
	t.Helper()
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" {
		t.Errorf("HPA %s: targets %s %s, want apps/v1 Deployment", name, ref.APIVersion, ref.Kind)
	}
	if _, ok := m.deployments[ref.Name]; !ok {
		t.Errorf("HPA %s: Deployment %s does not exist", name, ref.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA %s: want 2 <= minReplicas <= maxReplicas, have %v..%d", name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	cpu := false
	for _, mt := range h.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU &&
			mt.Resource.Target.Type == autoscalingv2.UtilizationMetricType && mt.Resource.Target.AverageUtilization != nil {
			u := *mt.Resource.Target.AverageUtilization
			cpu = u > 0 && u <= 100
		}
	}
	if !cpu {
		t.Errorf("HPA %s: no CPU utilization target in (0, 100]", name)
	}
}

func checkPDB(t reporter, m *manifests, name string, p *policyv1.PodDisruptionBudget) {
	t.Helper()
	ds := selectedDeployments(m, p.Spec.Selector)
	if len(ds) == 0 {
		t.Errorf("PodDisruptionBudget %s: selects no Deployment's pods", name)
	}
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget %s: set exactly one of minAvailable and maxUnavailable", name)
	}
	// A minAvailable as large as the smallest replica count would block every
	// node drain (and Autopilot's upgrades).
	if mv := p.Spec.MinAvailable; mv != nil && mv.Type == intstr.Int {
		for _, d := range ds {
			for _, h := range m.hpas {
				if h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil && mv.IntVal >= *h.Spec.MinReplicas {
					t.Errorf("PodDisruptionBudget %s: minAvailable %d >= HPA %s minReplicas %d", name, mv.IntVal, h.Name, *h.Spec.MinReplicas)
				}
			}
		}
	}
}

func checkGateway(t reporter, name string, g *gwv1.Gateway, want expectations) {
	t.Helper()
	if !strings.HasPrefix(string(g.Spec.GatewayClassName), "gke-l7-") || !strings.Contains(string(g.Spec.GatewayClassName), "external-managed") {
		t.Errorf("Gateway %s: class %s, want a GKE external managed class", name, g.Spec.GatewayClassName)
	}
	http := false
	for _, l := range g.Spec.Listeners {
		if l.Protocol == gwv1.HTTPProtocolType && l.Port == 80 {
			http = true
		}
	}
	if !http {
		t.Errorf("Gateway %s: no HTTP listener on port 80", name)
	}
	if len(g.Spec.Addresses) != 1 || g.Spec.Addresses[0].Type == nil || *g.Spec.Addresses[0].Type != gwv1.NamedAddressType || g.Spec.Addresses[0].Value == "" {
		t.Errorf("Gateway %s: want one NamedAddress (terraform's reserved address), have %+v", name, g.Spec.Addresses)
	} else if want.gatewayAddr != "" && g.Spec.Addresses[0].Value != want.gatewayAddr {
		t.Errorf("Gateway %s: address %s, want %s", name, g.Spec.Addresses[0].Value, want.gatewayAddr)
	}
}

// servicePort reports whether Service name has port p.
func servicePort(m *manifests, name string, p *gwv1.PortNumber) bool {
	s, ok := m.services[name]
	if !ok || p == nil {
		return false
	}
	for _, sp := range s.Spec.Ports {
		if sp.Port == *p {
			return true
		}
	}
	return false
}

func checkHTTPRoute(t reporter, m *manifests, name string, r *gwv1.HTTPRoute) {
	t.Helper()
	if len(r.Spec.ParentRefs) == 0 {
		t.Errorf("HTTPRoute %s: no parentRefs", name)
	}
	for _, p := range r.Spec.ParentRefs {
		if (p.Group != nil && *p.Group != gwv1.GroupName) || (p.Kind != nil && *p.Kind != "Gateway") {
			t.Errorf("HTTPRoute %s: parentRef %s is not a Gateway", name, p.Name)
			continue
		}
		g, ok := m.gateways[string(p.Name)]
		if !ok {
			t.Errorf("HTTPRoute %s: parent Gateway %s does not exist", name, p.Name)
			continue
		}
		if p.SectionName != nil && !slices.ContainsFunc(g.Spec.Listeners, func(l gwv1.Listener) bool { return l.Name == *p.SectionName }) {
			t.Errorf("HTTPRoute %s: Gateway %s has no listener %s", name, p.Name, *p.SectionName)
		}
	}
	split := false
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if (b.Group != nil && *b.Group != "") || (b.Kind != nil && *b.Kind != "Service") {
				t.Errorf("HTTPRoute %s: backend %s is not a core Service", name, b.Name)
			}
			if !servicePort(m, string(b.Name), b.Port) {
				t.Errorf("HTTPRoute %s: backend Service %s port %v does not exist", name, b.Name, b.Port)
			}
			if _, ok := m.healthChecks[string(b.Name)]; !ok {
				t.Errorf("HTTPRoute %s: backend %s has no HealthCheckPolicy; GKE would probe / and mark it unhealthy", name, b.Name)
			}
		}
		for _, mt := range rule.Matches {
			if mt.Path == nil || mt.Path.Value == nil || *mt.Path.Value != ingressPath {
				continue
			}
			if mt.Path.Type == nil || *mt.Path.Type != gwv1.PathMatchPathPrefix {
				t.Errorf("HTTPRoute %s: %s must match as a PathPrefix", name, ingressPath)
			}
			weights := map[string]int32{}
			for _, b := range rule.BackendRefs {
				w := int32(1) // the Gateway API default
				if b.Weight != nil {
					w = *b.Weight
				}
				weights[string(b.Name)] = w
			}
			if len(rule.BackendRefs) == 2 && weights["route1"] == 50 && weights["route2"] == 50 {
				split = true
			} else {
				t.Errorf("HTTPRoute %s: %s backends %v, want route1 and route2 at weight 50 each", name, ingressPath, weights)
			}
		}
	}
	if !split {
		t.Errorf("HTTPRoute %s: no 50/50 split of %s between route1 and route2", name, ingressPath)
	}
}

func checkHealthCheckPolicy(t reporter, m *manifests, name string, h *healthCheckPolicy) {
	t.Helper()
	ref := h.Spec.TargetRef
	if ref.Group != "" || ref.Kind != "Service" {
		t.Errorf("HealthCheckPolicy %s: targets %s/%s, want a core Service", name, ref.Group, ref.Kind)
		return
	}
	svc, ok := m.services[ref.Name]
	if !ok {
		t.Errorf("HealthCheckPolicy %s: Service %s does not exist", name, ref.Name)
		return
	}
	c := h.Spec.Default
	if c == nil || c.Config == nil {
		t.Errorf("HealthCheckPolicy %s: no default.config", name)
		return
	}
	if c.CheckIntervalSec != nil && c.TimeoutSec != nil && *c.TimeoutSec > *c.CheckIntervalSec {
		t.Errorf("HealthCheckPolicy %s: timeoutSec above checkIntervalSec (GKE rejects it)", name)
	}
	for field, v := range map[string]*int64{"checkIntervalSec": c.CheckIntervalSec, "timeoutSec": c.TimeoutSec} {
		if v != nil && (*v < 1 || *v > 300) {
			t.Errorf("HealthCheckPolicy %s: %s %d outside 1..300", name, field, *v)
		}
	}
	for field, v := range map[string]*int64{"healthyThreshold": c.HealthyThreshold, "unhealthyThreshold": c.UnhealthyThreshold} {
		if v != nil && (*v < 1 || *v > 10) {
			t.Errorf("HealthCheckPolicy %s: %s %d outside 1..10", name, field, *v)
		}
	}
	// The union: the type and exactly its matching block.
	set := 0
	for _, b := range []bool{c.Config.TCP != nil, c.Config.HTTP != nil, c.Config.HTTPS != nil, c.Config.HTTP2 != nil, c.Config.GRPC != nil} {
		if b {
			set++
		}
	}
	if c.Config.Type != "HTTP" || c.Config.HTTP == nil || set != 1 {
		t.Errorf("HealthCheckPolicy %s: want type HTTP with only httpHealthCheck", name)
		return
	}
	hc := c.Config.HTTP
	if hc.PortSpecification != nil && !slices.Contains([]string{"USE_FIXED_PORT", "USE_NAMED_PORT", "USE_SERVING_PORT"}, *hc.PortSpecification) {
		t.Errorf("HealthCheckPolicy %s: portSpecification %s", name, *hc.PortSpecification)
	}
	if hc.RequestPath == nil {
		t.Errorf("HealthCheckPolicy %s: no requestPath (the default / answers 404)", name)
		return
	}
	// The load balancer asks what readiness asks.
	for _, d := range selectedDeployments(m, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}) {
		for _, ct := range d.Spec.Template.Spec.Containers {
			if rp := ct.ReadinessProbe; rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != *hc.RequestPath {
				t.Errorf("HealthCheckPolicy %s: requestPath %s differs from Deployment %s's readiness probe", name, *hc.RequestPath, d.Name)
			}
		}
	}
}

func checkConfigMap(t reporter, name string, cm *corev1.ConfigMap, want expectations) {
	t.Helper()
	for k := range cm.Data {
		if secretish.MatchString(k) {
			t.Errorf("ConfigMap %s: key %s looks like a secret; configuration has no passwords", name, k)
		}
	}
	for _, k := range []string{"CLOUDSQL_INSTANCE", "DB_USER", "DB_NAME", "PUBSUB_PROJECT", "PUBSUB_TOPIC"} {
		if cm.Data[k] == "" {
			t.Errorf("ConfigMap %s: %s is empty", name, k)
		}
	}
	for k, v := range map[string]string{"CLOUDSQL_PRIVATE_IP": "true", "CLOUDSQL_IAM_AUTH": "true"} {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s: %s=%q, want %q", name, k, cm.Data[k], v)
		}
	}
	if !regexp.MustCompile(`^[^:]+:[^:]+:[^:]+$`).MatchString(cm.Data["CLOUDSQL_INSTANCE"]) {
		t.Errorf("ConfigMap %s: CLOUDSQL_INSTANCE=%q is not project:region:instance", name, cm.Data["CLOUDSQL_INSTANCE"])
	}
	for k, v := range want.config {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s: %s=%q, want %q", name, k, cm.Data[k], v)
		}
	}
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

// ---- tests ------------------------------------------------------------------------------

func TestBaseRendersStrictlyAndHoldsInvariants(t *testing.T) {
	root := repoRoot(t)
	dir := filepath.Join(root, "k8s")
	m := render(t, dir)
	want := expectations{images: kustomizeImages(t, filepath.Join(dir, "kustomization.yaml"))}
	checkInvariants(t, m, want)

	// Exactly the objects the design has, no more, no less.
	wantObjects := []string{
		"ConfigMap/" + keys(m.configMaps)[0], "Deployment/route1", "Deployment/route2",
		"Gateway/vmpulse", "HTTPRoute/vmpulse-ingest", "HealthCheckPolicy/route1", "HealthCheckPolicy/route2",
		"HorizontalPodAutoscaler/route1", "HorizontalPodAutoscaler/route2", "Namespace/" + namespace,
		"PodDisruptionBudget/route1", "PodDisruptionBudget/route2", "Service/route1", "Service/route2",
		"ServiceAccount/vmpulse-route",
	}
	got := slices.Clone(m.order)
	sort.Strings(got)
	sort.Strings(wantObjects)
	if !slices.Equal(got, wantObjects) {
		t.Errorf("rendered objects:\n got %v\nwant %v", got, wantObjects)
	}
	if len(m.configMaps) != 1 || !strings.HasPrefix(keys(m.configMaps)[0], "vmpulse-route-config-") {
		t.Errorf("want one hashed ConfigMap vmpulse-route-config-*, have %v", keys(m.configMaps))
	}
}

// route2 must be route1 with the name and STRATEGY changed, nothing else: the
// comparison of the two strategies is only fair if everything else is equal.
func TestRoutesDifferOnlyInNameAndStrategy(t *testing.T) {
	m := render(t, filepath.Join(repoRoot(t), "k8s"))
	pairs := map[string][2]any{
		"Deployment":              {m.deployments["route1"], m.deployments["route2"]},
		"Service":                 {m.services["route1"], m.services["route2"]},
		"HorizontalPodAutoscaler": {m.hpas["route1"], m.hpas["route2"]},
		"PodDisruptionBudget":     {m.pdbs["route1"], m.pdbs["route2"]},
		"HealthCheckPolicy":       {m.healthChecks["route1"], m.healthChecks["route2"]},
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
}

// renderTemplate evaluates a terraform template file (templatefile() uses this
// same HCL template engine) with string variables.
func renderTemplate(t *testing.T, file string, vars map[string]string) []byte {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	expr, diags := hclsyntax.ParseTemplate(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}}
	for k, v := range vars {
		ctx.Variables[k] = cty.StringVal(v)
	}
	val, diags := expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	return []byte(val.AsString())
}

// The deployed shape: terraform's k8s_overlay output (rendered from its template
// with a deployment's values) plus the images block `make k8s-overlay` appends,
// over a copy of k8s/. The same invariants hold, and the placeholders are gone.
func TestOverlayFromTerraformOutputs(t *testing.T) {
	root := repoRoot(t)
	kubectl := needTool(t, "kubectl", "kubectl renders the kustomizations")
	makeBin := needTool(t, "make", "make runs k8s/deploy.mk")
	tmp := t.TempDir()

	// The tree `make k8s-overlay` expects: <root>/k8s and <root>/out/k8s.
	copyFiles(t, filepath.Join(root, "k8s"), filepath.Join(tmp, "k8s"), "*.yaml", "*.env")

	vals := map[string]string{
		"cloudsql_instance":    "demo-project-42:us-central1:vmpulse-mysql-1a2b",
		"db_user":              "vmpulse-route",
		"db_name":              "vmpulse",
		"project_id":           "demo-project-42",
		"pubsub_topic":         "vmpulse-records",
		"route_gsa_email":      "vmpulse-route@demo-project-42.iam.gserviceaccount.com",
		"gateway_address_name": "vmpulse-gateway-ip",
	}
	overlay := renderTemplate(t, filepath.Join(root, "terraform", "templates", "k8s-overlay.yaml.tftpl"), vals)
	if err := os.WriteFile(filepath.Join(tmp, "k8s_overlay.out"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	// A terraform that only knows `output -raw k8s_overlay`.
	fakeTF := filepath.Join(tmp, "fake-terraform")
	script := "#!/bin/sh\nfor a; do last=$a; done\ncase \"$last\" in\n  k8s_overlay) cat '" + filepath.Join(tmp, "k8s_overlay.out") +
		"' ;;\n  *) echo \"fake terraform: unexpected $*\" >&2; exit 1 ;;\nesac\n"
	if err := os.WriteFile(fakeTF, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	const registry, tag = "docker.io/example", "0123456"
	run(t, root, nil, nil, makeBin, "--no-print-directory", "-f", filepath.Join(root, "k8s", "deploy.mk"), "k8s-overlay",
		"VMP_ROOT="+tmp, "TERRAFORM="+fakeTF, "KUBECTL="+kubectl, "REGISTRY="+registry, "TAG="+tag)

	dir := filepath.Join(tmp, "out", "k8s")
	m := render(t, dir)
	ref := registry + "/vmpulse-route:" + tag
	if imgs := kustomizeImages(t, filepath.Join(dir, "kustomization.yaml")); !imgs[ref] || len(imgs) != 1 {
		t.Errorf("overlay images %v, want only %s", keys(imgs), ref)
	}
	checkInvariants(t, m, expectations{
		images: map[string]bool{ref: true},
		config: map[string]string{
			"CLOUDSQL_INSTANCE": vals["cloudsql_instance"], "DB_USER": vals["db_user"], "DB_NAME": vals["db_name"],
			"PUBSUB_PROJECT": vals["project_id"], "PUBSUB_TOPIC": vals["pubsub_topic"],
		},
		gsa:         vals["route_gsa_email"],
		gatewayAddr: vals["gateway_address_name"],
	})
	if len(m.configMaps) != 1 {
		t.Errorf("the overlay must replace the base ConfigMap, not add one: %v", keys(m.configMaps))
	}
	// A placeholder that survives would deploy a broken route.
	all, err := json.Marshal([]any{m.configMaps, m.accounts, m.deployments, m.gateways})
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []string{"PROJECT_ID", "REGION", "registry.invalid"} {
		if bytes.Contains(all, []byte(ph)) {
			t.Errorf("placeholder %s survives the overlay", ph)
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
	}
	for name, doc := range cases {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// The invariant checks must fail on the mistakes they exist for.
func TestInvariantsCatchBrokenManifests(t *testing.T) {
	base := render(t, filepath.Join(repoRoot(t), "k8s"))
	want := expectations{images: kustomizeImages(t, filepath.Join(repoRoot(t), "k8s", "kustomization.yaml"))}
	var clean collector
	checkInvariants(&clean, cloneManifests(t, base), want)
	if len(clean.errs) > 0 {
		t.Fatalf("the unbroken manifests fail: %v", clean.errs)
	}

	breakages := map[string]func(m *manifests){
		"weights 60/40": func(m *manifests) {
			w := int32(60)
			m.routes["vmpulse-ingest"].Spec.Rules[0].BackendRefs[0].Weight = &w
		},
		"service targetPort": func(m *manifests) { m.services["route1"].Spec.Ports[0].TargetPort = intstr.FromString("web") },
		"selector mismatch": func(m *manifests) {
			m.deployments["route2"].Spec.Selector.MatchLabels["app.kubernetes.io/instance"] = "routeX"
		},
		"no liveness probe": func(m *manifests) { m.deployments["route1"].Spec.Template.Spec.Containers[0].LivenessProbe = nil },
		"no memory limit": func(m *manifests) {
			delete(m.deployments["route1"].Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
		},
		"foreign image":   func(m *manifests) { m.deployments["route1"].Spec.Template.Spec.Containers[0].Image = "nginx:latest" },
		"HPA target":      func(m *manifests) { m.hpas["route2"].Spec.ScaleTargetRef.Name = "route3" },
		"other namespace": func(m *manifests) { m.namespaceOf["Service/route1"] = "default" },
		"health path":     func(m *manifests) { p := "/"; m.healthChecks["route1"].Spec.Default.Config.HTTP.RequestPath = &p },
		"password in env": func(m *manifests) { addEnv(m.deployments["route1"], "DB_PASSWORD", "x") },
		"writable rootfs": func(m *manifests) {
			f := false
			m.deployments["route2"].Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		},
		"parent gateway":   func(m *manifests) { m.routes["vmpulse-ingest"].Spec.ParentRefs[0].Name = "other" },
		"PDB selects none": func(m *manifests) { m.pdbs["route1"].Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "nothing" },
	}
	for name, brk := range breakages {
		m := cloneManifests(t, base)
		brk(m)
		var c collector
		checkInvariants(&c, m, want)
		if len(c.errs) == 0 {
			t.Errorf("%s: the invariants did not notice", name)
		} else {
			t.Logf("%s: %s", name, c.errs[0])
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
