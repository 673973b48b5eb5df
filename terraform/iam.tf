# One service account per workload, each with only what it uses:
#
#   route     GKE (Workload Identity)  Cloud SQL client + IAM login, publish to the topic
#   relay     Cloud Run                create/consume/delete its own subscriptions
#   web       Cloud Run                nothing (it serves files and /config.json)
#   vm        Compute Engine           write logs and metrics, read the agent bundle
#   gke-nodes GKE Autopilot nodes      the node role (logs, metrics, image pulls)

resource "google_service_account" "route" {
  account_id   = "${var.prefix}-route"
  display_name = "vmpulse ingest routes (route1, route2 on GKE)"
  description  = "Workload Identity for the so1-fase2/vmpulse-route Kubernetes service account: Cloud SQL IAM login and Pub/Sub publish."
}

resource "google_service_account" "relay" {
  account_id   = "${var.prefix}-relay"
  display_name = "vmpulse websocket relay (Cloud Run)"
  description  = "Creates, consumes and deletes its own per-instance subscriptions on the records topic."
}

resource "google_service_account" "web" {
  account_id   = "${var.prefix}-web"
  display_name = "vmpulse dashboard (Cloud Run)"
  description  = "Runtime identity of the dashboard file server; holds no roles."
}

resource "google_service_account" "vm" {
  account_id   = "${var.prefix}-vm"
  display_name = "vmpulse monitored VM"
  description  = "Writes logs and metrics and reads the agent bundle from its bucket."
}

resource "google_service_account" "gke_nodes" {
  account_id   = "${var.prefix}-gke-nodes"
  display_name = "vmpulse GKE Autopilot nodes"
  description  = "Node identity of the Autopilot cluster (roles/container.defaultNodeServiceAccount only)."
}

# ---- route: Cloud SQL (the topic roles are in pubsub.tf) ----------------------

# cloudsql.instances.connect and .get, which the Go connector needs.
resource "google_project_iam_member" "route_cloudsql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# cloudsql.instances.login: IAM database authentication.
resource "google_project_iam_member" "route_cloudsql_instance_user" {
  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# The Kubernetes service account so1-fase2/vmpulse-route may act as the route
# service account.
resource "google_service_account_iam_member" "route_workload_identity" {
  service_account_id = google_service_account.route.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${local.k8s_namespace}/${local.route_ksa}]"

  # The workload identity pool exists once the cluster does.
  depends_on = [google_container_cluster.autopilot]
}

# ---- relay: its own subscriptions ---------------------------------------------

# roles/pubsub.editor would also let the relay create and delete topics and touch
# every subscription's IAM policy. Subscriptions are project-level resources and
# the relay's do not exist before it starts, so this is granted on the project;
# attaching them to the topic is roles/pubsub.subscriber on the topic (pubsub.tf).
resource "google_project_iam_custom_role" "relay_subscriptions" {
  role_id     = "${replace(var.prefix, "-", "_")}_relay_subscriptions"
  title       = "vmpulse relay subscriptions"
  description = "Create, read, consume and delete Pub/Sub subscriptions (the relay's one-per-instance subscriptions)."
  permissions = [
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.get",
  ]
}

resource "google_project_iam_member" "relay_subscriptions" {
  project = var.project_id
  role    = google_project_iam_custom_role.relay_subscriptions.id
  member  = "serviceAccount:${google_service_account.relay.email}"
}

# ---- vm -----------------------------------------------------------------------

resource "google_project_iam_member" "vm_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.vm.email}"
}

resource "google_project_iam_member" "vm_metric_writer" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
  member  = "serviceAccount:${google_service_account.vm.email}"
}

# ---- GKE nodes ----------------------------------------------------------------

resource "google_project_iam_member" "gke_nodes" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = "serviceAccount:${google_service_account.gke_nodes.email}"
}
