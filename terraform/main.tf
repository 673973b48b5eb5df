# Values shared by the files split by concern (network.tf, gke.tf, sql.tf,
# pubsub.tf, run.tf, vm.tf, iam.tf).

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Kubernetes side of Workload Identity: k8s/serviceaccount.yaml.
  k8s_namespace = "so1-fase2"
  route_ksa     = "vmpulse-route"

  # GKE secondary ranges of the subnet.
  pods_range_name     = "pods"
  services_range_name = "services"

  agent_port    = 8090
  agent_net_tag = "vmpulse-agent"

  relay_service_name = "${var.prefix}-relay"
  web_service_name   = "${var.prefix}-web"

  images = {
    relay = "${var.registry}/vmpulse-relay:${var.image_tag}"
    web   = "${var.registry}/vmpulse-web:${var.image_tag}"
    route = "${var.registry}/vmpulse-route:${var.image_tag}"
  }

  # Cloud Run's deterministic URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app,
  # is known before the service exists. The relay must know the dashboard's origin
  # and the dashboard must know the relay's URL; computing the dashboard's URL
  # instead of reading it from the service breaks that cycle.
  dashboard_url   = "https://${local.web_service_name}-${data.google_project.this.number}.${var.region}.run.app"
  allowed_origins = concat([local.dashboard_url], var.extra_allowed_origins)

  # Cloud SQL for MySQL stores an IAM service account user as the part of its
  # email before "@" (for PostgreSQL it would be the email without
  # ".gserviceaccount.com"): that is the DB_USER the routes log in as.
  db_user = google_service_account.route.account_id

  bundle_object = "vmpulse-agent-bundle.tar.gz"
}
