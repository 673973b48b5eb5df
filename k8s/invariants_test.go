package k8s

// The invariants the rendered manifests must hold: what a cluster would only
// reveal at apply time, or later, as an unhealthy load balancer, a crash loop or
// an open door. TestInvariantsCatchBrokenManifests breaks a copy for each of them.

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

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
	https       bool              // the HTTPS listener and the redirect are expected
	project     string            // the project of the secrets' resource names, "" = any
	maxConns    int               // the SQL tier's max_connections the routes must fit in
	dbReserve   int               // connections the budget leaves for the GRANT Job and an operator (terraform/main.tf, local.db_connection_reserve)
}

var secretish = regexp.MustCompile(`(?i)(passw|pwd|secret|token|api_?key|credential|private_?key|dsn)`)

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
	for name, j := range m.jobs {
		checkJob(t, m, name, j, want)
	}
	if _, ok := m.jobs["vmpulse-db-grant"]; !ok {
		t.Errorf("no GRANT Job vmpulse-db-grant")
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
	if len(m.gateways) != 1 {
		t.Errorf("want one Gateway, have %v", keys(m.gateways))
	}
	for name, g := range m.gateways {
		checkGateway(t, name, g, want)
	}
	checkHTTPRoutes(t, m, want)
	for name, h := range m.healthChecks {
		checkHealthCheckPolicy(t, m, name, h)
	}
	checkBackendPolicies(t, m)
	checkPodMonitoring(t, m)
	for name, spc := range m.spcs {
		checkSecretProviderClass(t, name, spc, want)
	}
	for name, cm := range m.configMaps {
		checkConfigMap(t, name, cm, want)
	}
	checkConnectionBudget(t, m, want)
	for name, sa := range m.accounts {
		gsa, annotated := sa.Annotations[gsaAnnotation]
		switch name {
		case "vmpulse-route":
			if !regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-zA-Z0-9_-]+\.iam\.gserviceaccount\.com$`).MatchString(gsa) {
				t.Errorf("ServiceAccount %s: annotation %s=%q is not a Google service account address", name, gsaAnnotation, gsa)
			}
			if want.gsa != "" && gsa != want.gsa {
				t.Errorf("ServiceAccount %s: %s=%q, want %q", name, gsaAnnotation, gsa, want.gsa)
			}
		default:
			// The GRANT Job's identity is granted its one secret directly; a GSA
			// annotation would make the CSI driver act as that account instead.
			if annotated {
				t.Errorf("ServiceAccount %s: must not be mapped to a Google service account (%s)", name, gsa)
			}
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
	where := "Deployment " + name
	checkPodSpec(t, m, where, pod.Spec, want)
	for _, c := range pod.Spec.Containers {
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		if c.ReadinessProbe == nil {
			t.Errorf("%s: no readinessProbe", cw)
		}
		if c.LivenessProbe == nil {
			t.Errorf("%s: no livenessProbe", cw)
		}
		for pname, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			checkProbePort(t, cw+" "+pname, c, p)
		}
		// Readiness is /healthz, which depends on MySQL only (a Pub/Sub outage
		// must not take the routes out of the load balancer). A liveness probe on
		// it would restart every pod at the first database blip unless it is
		// very patient.
		if rp := c.ReadinessProbe; rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: readiness must be GET /healthz", cw)
		}
		if lp := c.LivenessProbe; lp != nil && lp.HTTPGet != nil && lp.HTTPGet.Path == "/healthz" {
			if int(lp.PeriodSeconds)*int(lp.FailureThreshold) < 60 {
				t.Errorf("%s: liveness on /healthz (which depends on the database) must tolerate at least 60 s of failures", cw)
			}
		}
		// The ingest token: a file mounted from Secret Manager, named by
		// INGEST_TOKEN_FILE.
		file := envValue(c, "INGEST_TOKEN_FILE")
		if file != tokenFile {
			t.Errorf("%s: INGEST_TOKEN_FILE=%q, want %s", cw, file, tokenFile)
		} else if spc := mountedSPC(pod.Spec, c, file); spc == "" {
			t.Errorf("%s: %s is not in a %s volume mounted from a SecretProviderClass", cw, file, csiDriver)
		} else if s, ok := m.spcs[spc]; !ok {
			t.Errorf("%s: SecretProviderClass %s is not rendered", cw, spc)
		} else if paths := spcPaths(s); !slices.Contains(paths, tokenFile[strings.LastIndex(tokenFile, "/")+1:]) {
			t.Errorf("%s: SecretProviderClass %s does not write %s (it writes %v)", cw, spc, tokenFile, paths)
		} else if secrets := spcSecrets(s); len(secrets) != 1 || !strings.Contains(secrets[0], "-ingest-token/versions/") {
			t.Errorf("%s: SecretProviderClass %s must mount the ingest token's secret, mounts %v", cw, spc, secrets)
		}
	}
}

// checkJob: the GRANT Job. It must finish or give up within a deadline (a Job
// without one can hang a deploy forever), get the administrator's password as a
// file, and grant exactly the contract's privileges on the one database.
func checkJob(t reporter, m *manifests, name string, j *batchv1.Job, want expectations) {
	t.Helper()
	where := "Job " + name
	checkPodSpec(t, m, where, j.Spec.Template.Spec, want)
	if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d < 300 || *d > 1800 {
		t.Errorf("%s: activeDeadlineSeconds %v, want 300..1800 (a fresh Autopilot node takes minutes; a hung Job must end)", where, d)
	}
	if b := j.Spec.BackoffLimit; b == nil || *b < 1 || *b > 10 {
		t.Errorf("%s: backoffLimit %v, want 1..10", where, b)
	}
	if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q", where, rp)
	}
	if len(j.Spec.Template.Spec.Containers) != 1 {
		t.Errorf("%s: want one container", where)
		return
	}
	c := j.Spec.Template.Spec.Containers[0]
	script := strings.Join(append(append([]string{}, c.Command...), c.Args...), "\n")
	grants := regexp.MustCompile(`(?i)\bGRANT\s+(.+?)\s+ON\s+(\S+)\s+TO\b`).FindAllStringSubmatch(script, -1)
	if len(grants) != 1 {
		t.Errorf("%s: want exactly one GRANT statement, have %d", where, len(grants))
	} else {
		var privs []string
		for _, p := range strings.Split(grants[0][1], ",") {
			privs = append(privs, strings.ToUpper(strings.TrimSpace(p)))
		}
		if !slices.Equal(privs, grantPrivileges) {
			t.Errorf("%s: GRANT %v, want exactly %v", where, privs, grantPrivileges)
		}
		if on := grants[0][2]; on != "\\`$DB_NAME\\`.*" && on != "`$DB_NAME`.*" {
			t.Errorf("%s: GRANT ON %s, want the vmpulse database only (`$DB_NAME`.*)", where, on)
		}
	}
	// Converges: anything granted before on the database is revoked first.
	if !regexp.MustCompile(`(?i)REVOKE\s+IF\s+EXISTS\s+ALL\s+PRIVILEGES\s+ON\s+\\?` + "`" + `\$DB_NAME\\?` + "`" + `\.\*`).MatchString(script) {
		t.Errorf("%s: does not revoke earlier privileges on the database before granting", where)
	}
	if !strings.Contains(script, "--ssl-mode=REQUIRED") {
		t.Errorf("%s: the mysql client must require TLS", where)
	}
	// The password comes from the mounted secret file, never from the spec.
	if spc := mountedSPC(j.Spec.Template.Spec, c, "/var/run/secrets/vmpulse/db-admin-password"); spc == "" {
		t.Errorf("%s: the administrator's password is not read from a SecretProviderClass mount", where)
	} else if s, ok := m.spcs[spc]; !ok || len(spcSecrets(s)) != 1 || !strings.Contains(spcSecrets(s)[0], "-db-admin-password/") {
		t.Errorf("%s: SecretProviderClass %s must mount the db admin password's secret only", where, spc)
	}
	if !strings.Contains(script, "/var/run/secrets/vmpulse/db-admin-password") {
		t.Errorf("%s: does not read the password file", where)
	}
}

// checkPodSpec: what every pod must be (restricted Pod Security, resources,
// images from the kustomization, no secret in its environment).
func checkPodSpec(t reporter, m *manifests, where string, ps corev1.PodSpec, want expectations) {
	t.Helper()
	if ps.ServiceAccountName == "" {
		t.Errorf("%s: no serviceAccountName (Workload Identity needs the right one)", where)
	} else if _, ok := m.accounts[ps.ServiceAccountName]; !ok {
		t.Errorf("%s: ServiceAccount %s is not in the manifests", where, ps.ServiceAccountName)
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Errorf("%s: uses host namespaces", where)
	}
	podNonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
	if ps.SecurityContext == nil || ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault (restricted Pod Security)", where)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
		if v.CSI != nil {
			if v.CSI.Driver != csiDriver {
				t.Errorf("%s: CSI volume %s uses driver %s, want the GKE Secret Manager add-on's %s", where, v.Name, v.CSI.Driver, csiDriver)
			}
			if v.CSI.ReadOnly == nil || !*v.CSI.ReadOnly {
				t.Errorf("%s: CSI volume %s must be readOnly", where, v.Name)
			}
			spc := v.CSI.VolumeAttributes["secretProviderClass"]
			if _, ok := m.spcs[spc]; !ok {
				t.Errorf("%s: volume %s names SecretProviderClass %q, which is not rendered", where, v.Name, spc)
			}
		}
		if v.Secret != nil {
			t.Errorf("%s: volume %s is a Kubernetes Secret; secrets come from Secret Manager", where, v.Name)
		}
	}
	if len(ps.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	all := append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...)
	for _, c := range all {
		cw := fmt.Sprintf("%s container %s", where, c.Name)
		if !want.images[c.Image] {
			t.Errorf("%s: image %q is not one of the kustomization's images %v", cw, c.Image, keys(want.images))
		}
		checkResources(t, cw, c.Resources)
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", cw)
			continue
		}
		if !(podNonRoot || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)) {
			t.Errorf("%s: runAsNonRoot is not set", cw)
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s: runs as UID 0", cw)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", cw)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", cw)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", cw)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities must drop ALL and add none", cw)
		}
		for _, vm := range c.VolumeMounts {
			v, ok := volumes[vm.Name]
			if !ok {
				t.Errorf("%s: mounts volume %s that the pod does not define", cw, vm.Name)
			}
			if v.CSI != nil && !vm.ReadOnly {
				t.Errorf("%s: mounts the secret volume %s writable", cw, vm.Name)
			}
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			if seen[e.Name] {
				t.Errorf("%s: env %s set twice", cw, e.Name)
			}
			seen[e.Name] = true
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				t.Errorf("%s: env %s comes from a Kubernetes Secret; secrets are files from Secret Manager", cw, e.Name)
			}
			// A variable that names a secret's file is fine; one that holds a
			// secret is not.
			if secretish.MatchString(e.Name) && !(strings.HasSuffix(e.Name, "_FILE") && strings.HasPrefix(e.Value, "/var/run/secrets/")) {
				t.Errorf("%s: env %s looks like a secret; secrets are mounted files", cw, e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				if _, ok := m.configMaps[ef.ConfigMapRef.Name]; !ok {
					t.Errorf("%s: envFrom ConfigMap %s is not rendered (generator name and reference disagree?)", cw, ef.ConfigMapRef.Name)
				}
			}
			if ef.SecretRef != nil {
				t.Errorf("%s: envFrom a Secret; secrets are mounted files", cw)
			}
		}
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mountedSPC returns the SecretProviderClass whose CSI volume container c mounts
// at the directory of file, or "".
func mountedSPC(ps corev1.PodSpec, c corev1.Container, file string) string {
	dir := file[:strings.LastIndex(file, "/")]
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == vm.Name && v.CSI != nil && v.CSI.Driver == csiDriver {
				return v.CSI.VolumeAttributes["secretProviderClass"]
			}
		}
	}
	return ""
}

func spcEntries(s *secretProviderClass) []gkeSecret {
	var list []gkeSecret
	if err := yaml.UnmarshalStrict([]byte(s.Spec.Parameters["secrets"]), &list); err != nil {
		return nil
	}
	return list
}

func spcPaths(s *secretProviderClass) []string {
	var out []string
	for _, e := range spcEntries(s) {
		out = append(out, e.Path)
	}
	return out
}

func spcSecrets(s *secretProviderClass) []string {
	var out []string
	for _, e := range spcEntries(s) {
		out = append(out, e.ResourceName)
	}
	return out
}

// checkSecretProviderClass: the GKE add-on's provider, references to secret
// versions by name only (a value can never be inlined: there is no field for
// one), and nothing synced into Kubernetes Secrets.
func checkSecretProviderClass(t reporter, name string, s *secretProviderClass, want expectations) {
	t.Helper()
	where := "SecretProviderClass " + name
	if s.Spec.Provider != "gke" {
		t.Errorf("%s: provider %q, want gke (the GKE Secret Manager add-on)", where, s.Spec.Provider)
	}
	for k := range s.Spec.Parameters {
		if k != "secrets" {
			t.Errorf("%s: parameter %s: only secrets is used", where, k)
		}
	}
	var list []gkeSecret
	if err := yaml.UnmarshalStrict([]byte(s.Spec.Parameters["secrets"]), &list); err != nil {
		t.Errorf("%s: parameters.secrets: %v", where, err)
		return
	}
	if len(list) == 0 {
		t.Errorf("%s: mounts no secret", where)
	}
	re := regexp.MustCompile(`^projects/([a-zA-Z0-9_-]+)/secrets/[a-zA-Z0-9_-]+/versions/(latest|[0-9]+)$`)
	for _, e := range list {
		m := re.FindStringSubmatch(e.ResourceName)
		if m == nil {
			t.Errorf("%s: resourceName %q is not projects/P/secrets/S/versions/V", where, e.ResourceName)
			continue
		}
		if m[2] != "latest" {
			t.Errorf("%s: %s pins a version; rotation needs latest", where, e.ResourceName)
		}
		if want.project != "" && m[1] != want.project {
			t.Errorf("%s: project %s, want %s", where, m[1], want.project)
		}
		if e.Path == "" || strings.Contains(e.Path, "/") {
			t.Errorf("%s: path %q must be a plain file name", where, e.Path)
		}
	}
	if len(s.Spec.SecretObjects) > 0 {
		t.Errorf("%s: syncs into Kubernetes Secrets", where)
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
	var http, https bool
	for _, l := range g.Spec.Listeners {
		switch {
		case l.Protocol == gwv1.HTTPProtocolType && l.Port == 80 && l.Name == "http":
			http = true
		case l.Protocol == gwv1.HTTPSProtocolType && l.Port == 443 && l.Name == "https":
			https = true
			// A Google-managed certificate, referenced by name (pre-shared), and
			// terminated at the load balancer.
			if l.TLS == nil || l.TLS.Mode == nil || *l.TLS.Mode != gwv1.TLSModeTerminate ||
				!regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`).MatchString(string(l.TLS.Options["networking.gke.io/pre-shared-certs"])) {
				t.Errorf("Gateway %s: the HTTPS listener must terminate TLS with a pre-shared (Google-managed) certificate, has %+v", name, l.TLS)
			}
		default:
			t.Errorf("Gateway %s: unexpected listener %s %s:%d", name, l.Name, l.Protocol, l.Port)
		}
	}
	if !http {
		t.Errorf("Gateway %s: no HTTP listener on port 80", name)
	}
	if https != want.https {
		t.Errorf("Gateway %s: HTTPS listener present=%v, want %v", name, https, want.https)
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

// checkHTTPRoutes: the Gateway exposes exactly POST /ingest, split 50/50, on
// HTTPS when there is a certificate (and then HTTP only redirects); nothing
// else of the routes (/healthz, /metrics) is reachable from outside.
func checkHTTPRoutes(t reporter, m *manifests, want expectations) {
	t.Helper()
	ingestListener := "http"
	if want.https {
		ingestListener = "https"
	}
	split, redirect := 0, 0
	for _, name := range keys(m.routes) {
		r := m.routes[name]
		if len(r.Spec.ParentRefs) == 0 {
			t.Errorf("HTTPRoute %s: no parentRefs", name)
		}
		var listeners []string
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
			if p.SectionName == nil {
				t.Errorf("HTTPRoute %s: parentRef must name its listener (sectionName)", name)
				continue
			}
			if !slices.ContainsFunc(g.Spec.Listeners, func(l gwv1.Listener) bool { return l.Name == *p.SectionName }) {
				t.Errorf("HTTPRoute %s: Gateway %s has no listener %s", name, p.Name, *p.SectionName)
			}
			listeners = append(listeners, string(*p.SectionName))
		}
		for _, rule := range r.Spec.Rules {
			if len(rule.BackendRefs) == 0 {
				// Only a redirect to HTTPS may go without backends.
				if len(rule.Filters) == 1 && rule.Filters[0].Type == gwv1.HTTPRouteFilterRequestRedirect &&
					rule.Filters[0].RequestRedirect != nil && rule.Filters[0].RequestRedirect.Scheme != nil && *rule.Filters[0].RequestRedirect.Scheme == "https" {
					redirect++
					if !slices.Equal(listeners, []string{"http"}) {
						t.Errorf("HTTPRoute %s: the redirect must be on the http listener only, is on %v", name, listeners)
					}
					continue
				}
				t.Errorf("HTTPRoute %s: a rule without backends that is not a redirect to https", name)
				continue
			}
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
			// Every rule with backends matches the exact path /ingest and nothing else.
			if len(rule.Matches) != 1 || rule.Matches[0].Path == nil || rule.Matches[0].Path.Value == nil ||
				*rule.Matches[0].Path.Value != ingressPath || rule.Matches[0].Path.Type == nil || *rule.Matches[0].Path.Type != gwv1.PathMatchExact ||
				len(rule.Matches[0].Headers) > 0 || len(rule.Matches[0].QueryParams) > 0 {
				t.Errorf("HTTPRoute %s: a rule with backends must match exactly the path %s (Exact), has %+v", name, ingressPath, rule.Matches)
				continue
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
				split++
			} else {
				t.Errorf("HTTPRoute %s: %s backends %v, want route1 and route2 at weight 50 each", name, ingressPath, weights)
			}
			if !slices.Equal(listeners, []string{ingestListener}) {
				t.Errorf("HTTPRoute %s: %s is served on %v, want only the %s listener", name, ingressPath, listeners, ingestListener)
			}
		}
	}
	if split != 1 {
		t.Errorf("want exactly one 50/50 split of %s between route1 and route2, have %d", ingressPath, split)
	}
	if want.https && redirect != 1 {
		t.Errorf("with HTTPS, plain HTTP must redirect (one RequestRedirect to https), have %d", redirect)
	}
	if !want.https && redirect != 0 {
		t.Errorf("without HTTPS there is nothing to redirect to, have %d redirects", redirect)
	}
}

// policyTarget resolves a GKE policy's targetRef to a rendered Service.
func policyTarget(t reporter, m *manifests, kind, name string, ref policyTargetRef) *corev1.Service {
	t.Helper()
	if ref.Group != "" || ref.Kind != "Service" {
		t.Errorf("%s %s: targets %s/%s, want a core Service", kind, name, ref.Group, ref.Kind)
		return nil
	}
	svc, ok := m.services[ref.Name]
	if !ok {
		t.Errorf("%s %s: Service %s does not exist", kind, name, ref.Name)
		return nil
	}
	return svc
}

func checkHealthCheckPolicy(t reporter, m *manifests, name string, h *healthCheckPolicy) {
	t.Helper()
	svc := policyTarget(t, m, "HealthCheckPolicy", name, h.Spec.TargetRef)
	if svc == nil {
		return
	}
	c := h.Spec.Default
	if c == nil || c.Config == nil {
		t.Errorf("HealthCheckPolicy %s: no default.config", name)
		return
	}
	if c.CheckIntervalSec != nil && (*c.CheckIntervalSec < 1 || *c.CheckIntervalSec > 300) {
		t.Errorf("HealthCheckPolicy %s: checkIntervalSec %d outside 1..300", name, *c.CheckIntervalSec)
	}
	if c.TimeoutSec != nil && c.CheckIntervalSec != nil && *c.TimeoutSec > *c.CheckIntervalSec {
		t.Errorf("HealthCheckPolicy %s: timeoutSec above checkIntervalSec", name)
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

// checkBackendPolicies: one GCPBackendPolicy per route Service, each attaching
// the same Cloud Armor policy (terraform's, which admits only the load
// generator), with a drain time that matches the pods' preStop sleep.
func checkBackendPolicies(t reporter, m *manifests) {
	t.Helper()
	covered := map[string]string{}
	for _, name := range keys(m.backends) {
		b := m.backends[name]
		svc := policyTarget(t, m, "GCPBackendPolicy", name, b.Spec.TargetRef)
		if svc == nil {
			continue
		}
		if b.Spec.Default == nil || b.Spec.Default.SecurityPolicy == nil || *b.Spec.Default.SecurityPolicy == "" {
			t.Errorf("GCPBackendPolicy %s: no securityPolicy (Cloud Armor)", name)
			continue
		}
		if prev, dup := covered[svc.Name]; dup {
			t.Errorf("GCPBackendPolicy %s and %s both target Service %s", prev, name, svc.Name)
		}
		covered[svc.Name] = *b.Spec.Default.SecurityPolicy
		if cd := b.Spec.Default.ConnectionDraining; cd == nil || cd.DrainingTimeoutSec == nil || *cd.DrainingTimeoutSec < 1 {
			t.Errorf("GCPBackendPolicy %s: connectionDraining.drainingTimeoutSec must be set (pods drain for their preStop sleep)", name)
		}
	}
	var policies []string
	for _, s := range []string{"route1", "route2"} {
		p, ok := covered[s]
		if !ok {
			t.Errorf("Service %s has no GCPBackendPolicy with a Cloud Armor security policy", s)
			continue
		}
		policies = append(policies, p)
	}
	if len(policies) == 2 && policies[0] != policies[1] {
		t.Errorf("route1 and route2 have different security policies %v", policies)
	}
}

// checkPodMonitoring: Managed Prometheus scrapes /metrics of every route pod,
// by the port name the containers declare, and labels the series by route.
func checkPodMonitoring(t reporter, m *manifests) {
	t.Helper()
	scraped := map[string]bool{}
	for _, name := range keys(m.monitorings) {
		pm := m.monitorings[name]
		if len(pm.Spec.Endpoints) == 0 {
			t.Errorf("PodMonitoring %s: no endpoints", name)
		}
		for _, d := range selectedDeployments(m, &pm.Spec.Selector) {
			for _, ep := range pm.Spec.Endpoints {
				ok := false
				for _, c := range d.Spec.Template.Spec.Containers {
					ok = ok || containerPort(c, ep.Port)
				}
				if !ok {
					t.Errorf("PodMonitoring %s: port %s is not a port of Deployment %s", name, ep.Port.String(), d.Name)
					continue
				}
				if ep.Path != "" && ep.Path != "/metrics" {
					t.Errorf("PodMonitoring %s: path %s, the routes serve /metrics", name, ep.Path)
					continue
				}
				scraped[d.Name] = true
			}
		}
		byRoute := false
		if pm.Spec.TargetLabels != nil {
			for _, f := range pm.Spec.TargetLabels.FromPod {
				byRoute = byRoute || (f.From == "app.kubernetes.io/instance" && f.To == "route")
			}
		}
		if !byRoute {
			t.Errorf("PodMonitoring %s: series must carry a route label (targetLabels.fromPod app.kubernetes.io/instance -> route)", name)
		}
	}
	for _, d := range []string{"route1", "route2"} {
		if !scraped[d] {
			t.Errorf("Deployment %s's /metrics is scraped by no PodMonitoring", d)
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
	switch {
	case strings.HasPrefix(name, "vmpulse-route-config"):
		for _, k := range []string{"CLOUDSQL_INSTANCE", "DB_USER", "DB_NAME", "DB_CONNS", "PUBSUB_PROJECT", "PUBSUB_TOPIC"} {
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
	case strings.HasPrefix(name, "vmpulse-db-grant-config"):
		for _, k := range []string{"DB_HOST", "DB_ADMIN"} {
			if cm.Data[k] == "" {
				t.Errorf("ConfigMap %s: %s is empty", name, k)
			}
		}
	default:
		t.Errorf("unexpected ConfigMap %s", name)
	}
	for k, v := range want.config {
		if _, ok := cm.Data[k]; ok && cm.Data[k] != v {
			t.Errorf("ConfigMap %s: %s=%q, want %q", name, k, cm.Data[k], v)
		}
	}
}

// checkConnectionBudget: both routes read the same DB_CONNS (one ConfigMap), and
// what they can open at their HPA's maximum, plus one pod each during a rolling
// update, plus the reserve, fits the SQL tier's max_connections. Each pod holds
// DB_CONNS connections for data plus one for the outbox's named lock, as
// terraform/main.tf local.db_connection_budget counts.
func checkConnectionBudget(t reporter, m *manifests, want expectations) {
	t.Helper()
	if want.maxConns > 0 && want.dbReserve < 1 {
		t.Errorf("expectations: maxConns %d without dbReserve (local.db_connection_reserve)", want.maxConns)
	}
	conns := map[string]int{}
	for _, name := range []string{"route1", "route2"} {
		d, ok := m.deployments[name]
		if !ok {
			continue
		}
		n := -1
		for _, c := range d.Spec.Template.Spec.Containers {
			if envValue(c, "DB_CONNS") != "" {
				t.Errorf("Deployment %s: DB_CONNS set on the Deployment; both routes must read it from the shared ConfigMap", name)
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					if cm, ok := m.configMaps[ef.ConfigMapRef.Name]; ok && cm.Data["DB_CONNS"] != "" {
						v, err := strconv.Atoi(cm.Data["DB_CONNS"])
						if err != nil || v < 1 {
							t.Errorf("ConfigMap %s: DB_CONNS=%q", cm.Name, cm.Data["DB_CONNS"])
						}
						n = v
					}
				}
			}
		}
		if n < 0 {
			t.Errorf("Deployment %s: no DB_CONNS from a ConfigMap (the -db-conns default would not follow the SQL tier)", name)
			continue
		}
		conns[name] = n
	}
	if conns["route1"] != conns["route2"] {
		t.Errorf("route1 and route2 have different connection budgets %v", conns)
	}
	total := want.dbReserve
	for _, name := range []string{"route1", "route2"} {
		for _, h := range m.hpas {
			if h.Spec.ScaleTargetRef.Name == name {
				total += int(h.Spec.MaxReplicas+1) * (conns[name] + 1)
			}
		}
	}
	if want.maxConns > 0 && total > want.maxConns {
		t.Errorf("the routes can open %d connections (per route (maxReplicas+1) pods x (DB_CONNS + 1 for the outbox's named lock), + reserve %d), more than max_connections %d", total, want.dbReserve, want.maxConns)
	}
}
