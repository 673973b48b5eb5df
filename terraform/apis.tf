# Every API the deployment uses, enabled here so that a fresh project with billing
# needs nothing before `terraform apply`. Disabling them on destroy would break
# anything else in the project that uses them, so destroy leaves them on.

locals {
  apis = toset([
    "artifactregistry.googleapis.com", # the image repositories (registry.tf)
    "billingbudgets.googleapis.com",   # the budget (monitoring.tf)
    "cloudbuild.googleapis.com",       # the image builds (build.tf)
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",   # VPC, VMs, load balancer, Cloud Armor
    "container.googleapis.com", # GKE
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # Workload Identity, the connector's IAM login
    "iap.googleapis.com",            # SSH to the VMs through IAP
    "logging.googleapis.com",
    "monitoring.googleapis.com", # Managed Prometheus, alerts, uptime check
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",     # the ingest token, the DB admin password
    "servicenetworking.googleapis.com", # Cloud SQL's private IP
    "sqladmin.googleapis.com",
    "storage.googleapis.com", # the agent bundle, the build staging bucket
  ])
}

resource "google_project_service" "apis" {
  for_each = local.apis

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

# A freshly enabled API can refuse calls for a minute or two.
resource "time_sleep" "apis" {
  create_duration = "60s"
  triggers = {
    apis = join(",", sort(local.apis))
  }
  depends_on = [google_project_service.apis]
}
