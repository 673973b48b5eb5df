package k8s

// Go types for the custom resources the manifests use, transcribed field by field
// from their published CRD schemas (the modules that define them are not
// imported: GKE's still builds on gateway-api's removed v1alpha2 policy types, and
// the others would pull a controller runtime into a test). decodeStrict decodes
// into them with unknown fields disallowed, so a field that is not in the CRD
// (or is spelled with the wrong case) fails here instead of at kubectl apply.

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ---- networking.gke.io/v1 HealthCheckPolicy -------------------------------------
// github.com/GoogleCloudPlatform/gke-gateway-api,
// config/crd/networking.gke.io_healthcheckpolicies.yaml.

type healthCheckPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              hcpSpec `json:"spec"`
}

type hcpSpec struct {
	TargetRef policyTargetRef `json:"targetRef"`
	Default   *hcpConfig      `json:"default,omitempty"`
}

// policyTargetRef is the targetRef of GKE's policies (group, kind, name required).
type policyTargetRef struct {
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

// ---- networking.gke.io/v1 GCPBackendPolicy --------------------------------------
// github.com/GoogleCloudPlatform/gke-gateway-api,
// config/crd/networking.gke.io_gcpbackendpolicies.yaml (spec only; status is the
// controller's).

type gcpBackendPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              gbpSpec `json:"spec"`
}

type gbpSpec struct {
	TargetRef policyTargetRef `json:"targetRef"`
	Default   *gbpConfig      `json:"default,omitempty"`
}

type gbpConfig struct {
	BackendPreference  *string `json:"backendPreference,omitempty"`
	ConnectionDraining *struct {
		DrainingTimeoutSec *int64 `json:"drainingTimeoutSec,omitempty"`
	} `json:"connectionDraining,omitempty"`
	IAP *struct {
		ClientID           *string `json:"clientID,omitempty"`
		Enabled            *bool   `json:"enabled,omitempty"`
		Oauth2ClientSecret *struct {
			Name *string `json:"name,omitempty"`
		} `json:"oauth2ClientSecret,omitempty"`
	} `json:"iap,omitempty"`
	Logging *struct {
		Enabled    *bool  `json:"enabled,omitempty"`
		SampleRate *int32 `json:"sampleRate,omitempty"`
	} `json:"logging,omitempty"`
	MaxRatePerEndpoint *int64  `json:"maxRatePerEndpoint,omitempty"`
	SecurityPolicy     *string `json:"securityPolicy,omitempty"`
	SessionAffinity    *struct {
		CookieTTLSec *int64  `json:"cookieTtlSec,omitempty"`
		Type         *string `json:"type,omitempty"`
	} `json:"sessionAffinity,omitempty"`
	TimeoutSec *int64 `json:"timeoutSec,omitempty"`
}

// ---- monitoring.googleapis.com/v1 PodMonitoring ----------------------------------
// github.com/GoogleCloudPlatform/prometheus-engine,
// charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml. The
// endpoints' authentication and TLS blocks are left out: a manifest that uses
// them fails to decode here until they are transcribed too.

type podMonitoring struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              pmSpec `json:"spec"`
}

type pmSpec struct {
	Selector      metav1.LabelSelector `json:"selector"`
	Endpoints     []pmEndpoint         `json:"endpoints"`
	FilterRunning *bool                `json:"filterRunning,omitempty"`
	Limits        *struct {
		LabelNameLength  *int64 `json:"labelNameLength,omitempty"`
		LabelValueLength *int64 `json:"labelValueLength,omitempty"`
		Labels           *int64 `json:"labels,omitempty"`
		Samples          *int64 `json:"samples,omitempty"`
	} `json:"limits,omitempty"`
	TargetLabels *struct {
		FromPod []struct {
			From string `json:"from"`
			To   string `json:"to,omitempty"`
		} `json:"fromPod,omitempty"`
		Metadata *[]string `json:"metadata,omitempty"`
	} `json:"targetLabels,omitempty"`
}

type pmEndpoint struct {
	Port             intstr.IntOrString  `json:"port"`
	Path             string              `json:"path,omitempty"`
	Scheme           string              `json:"scheme,omitempty"`
	Interval         string              `json:"interval"`
	Timeout          string              `json:"timeout,omitempty"`
	Params           map[string][]string `json:"params,omitempty"`
	ProxyURL         string              `json:"proxyUrl,omitempty"`
	MetricRelabeling []struct {
		Action       string   `json:"action,omitempty"`
		Modulus      int64    `json:"modulus,omitempty"`
		Regex        string   `json:"regex,omitempty"`
		Replacement  string   `json:"replacement,omitempty"`
		Separator    string   `json:"separator,omitempty"`
		SourceLabels []string `json:"sourceLabels,omitempty"`
		TargetLabel  string   `json:"targetLabel,omitempty"`
	} `json:"metricRelabeling,omitempty"`
}

// ---- secrets-store.csi.x-k8s.io/v1 SecretProviderClass ---------------------------
// github.com/kubernetes-sigs/secrets-store-csi-driver, apis/v1
// (secretproviderclass_types.go, the CRD's source). parameters.secrets is the GKE
// provider's own YAML list, decoded strictly by gkeSecrets.

type secretProviderClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Provider      string            `json:"provider,omitempty"`
		Parameters    map[string]string `json:"parameters,omitempty"`
		SecretObjects []secretObject    `json:"secretObjects,omitempty"`
	} `json:"spec,omitempty"`
}

// secretObject is one spec.secretObjects entry: a Kubernetes Secret the driver
// would sync the mounted files into.
type secretObject struct {
	SecretName  string            `json:"secretName,omitempty"`
	Type        string            `json:"type,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Data        []struct {
		ObjectName string `json:"objectName,omitempty"`
		Key        string `json:"key,omitempty"`
		PlainValue string `json:"plainValue,omitempty"`
	} `json:"data,omitempty"`
}

// gkeSecret is one entry of parameters.secrets for the GKE Secret Manager add-on
// (provider gke): the secret version to mount and the file it becomes.
type gkeSecret struct {
	ResourceName string `json:"resourceName"`
	Path         string `json:"path"`
}
