#!/usr/bin/env python3
"""Writes google-provider-schema.txt: every argument and attribute path (dotted,
nested blocks included) of the google provider resources this configuration
uses, read from the provider's Go sources. TestSchema (terraform/config_test.go)
checks every argument and block of terraform/*.tf against it.

    python3 gen-provider-schema.py PATH-TO-terraform-provider-google-CHECKOUT > google-provider-schema.txt

The paths come from the nesting of `"name": {` lines inside each resource's
schema map, which is how the provider's generated and handwritten resources are
written. IAM member resources share one schema built in code and are listed in
the test itself."""
import re
import subprocess
import sys

RESOURCES = {
    "google_artifact_registry_repository": "artifactregistry/resource_artifact_registry_repository",
    "google_billing_budget": "billingbudgets/resource_billing_budget",
    "google_cloud_run_v2_service": "cloudrunv2/resource_cloud_run_v2_service",
    "google_compute_address": "compute/resource_compute_address",
    "google_compute_firewall": "compute/resource_compute_firewall",
    "google_compute_global_address": "compute/resource_compute_global_address",
    "google_compute_instance": "compute/resource_compute_instance",
    "google_compute_managed_ssl_certificate": "compute/resource_compute_managed_ssl_certificate",
    "google_compute_network": "compute/resource_compute_network",
    "google_compute_router": "compute/resource_compute_router",
    "google_compute_router_nat": "compute/resource_compute_router_nat",
    "google_compute_security_policy": "compute/resource_compute_security_policy",
    "google_compute_subnetwork": "compute/resource_compute_subnetwork",
    "google_container_cluster": "container/resource_container_cluster",
    "google_monitoring_alert_policy": "monitoring/resource_monitoring_alert_policy",
    "google_monitoring_notification_channel": "monitoring/resource_monitoring_notification_channel",
    "google_monitoring_uptime_check_config": "monitoring/resource_monitoring_uptime_check_config",
    "google_project_iam_custom_role": "resourcemanager/resource_google_project_iam_custom_role",
    "google_project_service": "resourcemanager/resource_google_project_service",
    "google_pubsub_topic": "pubsub/resource_pubsub_topic",
    "google_secret_manager_secret": "secretmanager/resource_secret_manager_secret",
    "google_secret_manager_secret_version": "secretmanager/resource_secret_manager_secret_version",
    "google_service_account": "resourcemanager/resource_google_service_account",
    "google_service_networking_connection": "servicenetworking/resource_service_networking_connection",
    "google_sql_database": "sql/resource_sql_database",
    "google_sql_database_instance": "sql/resource_sql_database_instance",
    "google_sql_user": "sql/resource_sql_user",
    "google_storage_bucket": "storage/resource_storage_bucket",
}


def walk(lines, elems):
    """Dotted paths of the `"name": {` lines; a key whose block says
    `Elem: someVar,` gets the paths of that package-level *schema.Resource."""
    stack, out = [], set()
    for line in lines:
        m = re.match(r'^(\t+)"([a-z_0-9]+)": \{', line)
        if m:
            depth = len(m.group(1))
            while stack and stack[-1][0] >= depth:
                stack.pop()
            stack.append((depth, m.group(2)))
            out.add(".".join(k for _, k in stack))
            continue
        e = re.match(r'^\t+Elem:\s+([A-Za-z_][A-Za-z0-9_]*)(?:\(\))?,\s*$', line)
        if e and stack and e.group(1) in elems:
            prefix = ".".join(k for _, k in stack)
            out.update(prefix + "." + p for p in elems[e.group(1)])
    return out


def paths(src):
    lines = src.split("\n")
    # Element schemas defined apart: `var x = &schema.Resource{ Schema: ... }` and
    # `func x() *schema.Resource { return &schema.Resource{ Schema: ... } }`,
    # referred to as `Elem: x,` or `Elem: x(),`. Bodies are read in source
    # order; one may use another defined earlier or later, so resolve twice.
    bodies = {}
    for i, line in enumerate(lines):
        m = re.match(r'^var ([A-Za-z_][A-Za-z0-9_]*)\s*(?:\*schema\.Resource)?\s*=\s*&schema\.Resource\{', line) or \
            re.match(r'^func ([a-z][A-Za-z0-9_]*)\(\) \*schema\.Resource \{', line)
        if m:
            body = []
            for l in lines[i + 1:]:
                if l == "}":
                    break
                body.append(l)
            bodies[m.group(1)] = body
    elems = {}
    for _ in range(3):
        elems = {name: sorted(walk(body, elems)) for name, body in bodies.items()}
    # The resource's own schema: the first schema map after `func Resource…`.
    fn = re.search(r'^func Resource[A-Za-z0-9]*\(\) \*schema\.Resource \{', src, re.M)
    if not fn:
        raise SystemExit("no resource function")
    start = src.find("Schema: map[string]*schema.Schema{", fn.start())
    return sorted(walk(src[start:].split("\n"), elems))


def main():
    repo = sys.argv[1]
    git = ["git", "-C", repo]
    head = subprocess.run(git + ["log", "-1", "--format=%H %cs"], capture_output=True, text=True, check=True).stdout.split()
    print(f"# hashicorp/terraform-provider-google main at {head[0]} ({head[1]}, after v7.45.0); generated by gen-provider-schema.py")
    for rtype, f in sorted(RESOURCES.items()):
        src = subprocess.run(git + ["show", f"HEAD:google/services/{f}.go"], capture_output=True, text=True, check=True).stdout
        for p in paths(src):
            print(rtype, p)


if __name__ == "__main__":
    main()
