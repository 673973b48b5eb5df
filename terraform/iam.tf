# One service account per workload, each with only what it uses:
#
#   route     GKE (Workload Identity)  Cloud SQL client + IAM login, publish to the
#                                      topic, read the ingest token, write metrics
#                                      (the Cloud SQL connector's own)
#   relay     Cloud Run                its own subscriptions only (IAM condition),
#                                      write metrics (Managed Prometheus sidecar),
#                                      read the sidecar's config
#   web       Cloud Run                nothing (it serves files and /config.json)
#   vm        Compute Engine           write logs and metrics, read the agent bundle
#   gke-nodes GKE Autopilot nodes      the node role, pull images
#   build     Cloud Build              push images, write the agent bundle, logs
#
# The GRANT Job has no service account of its own: its Kubernetes identity reads
# the administrator's password directly (secrets.tf).

resource "google_service_account" "route" {
  account_id   = "${var.prefix}-route"
  display_name = "vmpulse ingest routes (route1, route2 on GKE)"
  description  = "Workload Identity for the so1-fase2/vmpulse-route Kubernetes service account: Cloud SQL IAM login and Pub/Sub publish."

  depends_on = [time_sleep.apis]
}

resource "google_service_account" "relay" {
  account_id   = "${var.prefix}-relay"
  display_name = "vmpulse websocket relay (Cloud Run)"
  description  = "Creates, consumes and deletes its own per-instance subscriptions on the records topic."

  depends_on = [time_sleep.apis]
}

resource "google_service_account" "web" {
  account_id   = "${var.prefix}-web"
  display_name = "vmpulse dashboard (Cloud Run)"
  description  = "Runtime identity of the dashboard file server; holds no roles."

  depends_on = [time_sleep.apis]
}

resource "google_service_account" "vm" {
  account_id   = "${var.prefix}-vm"
  display_name = "vmpulse monitored VM"
  description  = "Writes logs and metrics and reads the agent bundle from its bucket."

  depends_on = [time_sleep.apis]
}

resource "google_service_account" "gke_nodes" {
  account_id   = "${var.prefix}-gke-nodes"
  display_name = "vmpulse GKE Autopilot nodes"
  description  = "Node identity of the Autopilot cluster (roles/container.defaultNodeServiceAccount only)."

  depends_on = [time_sleep.apis]
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

# The Cloud SQL Go connector (v1.26) exports its own metrics (dial latency, open
# connections) to Cloud Monitoring by default and warns without this role. They
# are worth having next to the routes' own, so the role is granted rather than
# the export turned off.
resource "google_project_iam_member" "route_metric_writer" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
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
# the relay's do not exist before it starts, so this is granted on the project,
# with a condition that limits it to subscriptions named with the relay's prefix
# (SUBSCRIPTION_PREFIX in run.tf): the relay cannot read, consume or delete anyone
# else's. Attaching them to the topic is roles/pubsub.subscriber on the topic
# (pubsub.tf). consume also covers Seek (the 15-minute replay).
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

  condition {
    title       = "own subscriptions only"
    description = "Subscriptions whose ID starts with the relay's prefix."
    expression  = "resource.type == \"pubsub.googleapis.com/Subscription\" && resource.name.startsWith(\"projects/${var.project_id}/subscriptions/${local.relay_subscription_prefix}\")"
  }
}

# The Managed Service for Prometheus sidecar next to the relay writes the relay's
# metrics as the relay's identity.
resource "google_project_iam_member" "relay_metric_writer" {
  project = var.project_id
  role    = "roles/monitoring.metricWriter"
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

# ---- IAM propagation ------------------------------------------------------------

# A grant takes a minute or two to hold everywhere. Whatever starts running with
# these identities (the image build, the relay, which exits when it cannot create
# its subscription) waits for this, so that the first apply does not fail on a
# grant it just made; the relay also retries within its startup window (run.tf).
resource "time_sleep" "iam" {
  create_duration = "120s"
  triggers = {
    relay  = google_project_iam_member.relay_subscriptions.id
    route  = google_project_iam_member.route_cloudsql_client.id
    build  = google_artifact_registry_repository_iam_member.build_pushes.id
    bundle = google_storage_bucket_iam_member.build_writes_bundle.id
  }
  depends_on = [
    google_project_iam_member.relay_subscriptions,
    google_project_iam_member.relay_metric_writer,
    google_pubsub_topic_iam_member.relay_subscriber,
    google_pubsub_topic_iam_member.relay_viewer,
    google_secret_manager_secret_iam_member.relay_reads_metrics_config,
    google_project_iam_member.route_cloudsql_client,
    google_project_iam_member.route_cloudsql_instance_user,
    google_project_iam_member.route_metric_writer,
    google_pubsub_topic_iam_member.route_publisher,
    google_pubsub_topic_iam_member.route_viewer,
    google_secret_manager_secret_iam_member.route_reads_ingest_token,
    google_artifact_registry_repository_iam_member.build_pushes,
    google_artifact_registry_repository_iam_member.nodes_pull_images,
    google_artifact_registry_repository_iam_member.nodes_pull_dockerhub,
    google_storage_bucket_iam_member.build_writes_bundle,
    google_storage_bucket_iam_member.build_reads_source,
    google_project_iam_member.build_log_writer,
    google_storage_bucket_iam_member.vm_reads_bundle,
    google_project_iam_member.vm_log_writer,
    google_project_iam_member.vm_metric_writer,
    google_project_iam_member.gke_nodes,
  ]
}

# The grants that name the cluster's workload identity pool exist only once the
# cluster does; their own wait keeps the image build and Cloud Run (above) from
# waiting for the cluster.
resource "time_sleep" "iam_cluster" {
  create_duration = "60s"
  triggers = {
    grant = google_secret_manager_secret_iam_member.grant_reads_db_admin.id
    route = google_service_account_iam_member.route_workload_identity.id
  }
  depends_on = [
    google_secret_manager_secret_iam_member.grant_reads_db_admin,
    google_service_account_iam_member.route_workload_identity,
  ]
}
