# The deployment's secrets live in Secret Manager; none of them is in this
# repository, the terraform state, a Kubernetes Secret or kubectl's history.
#
#   ingest token      the bearer token(s) the routes accept (one line, two during
#                     a rotation); mounted into the route pods as a file
#   db admin password the built-in MySQL administrator's, for the GRANT Job
#   relay metrics cfg not secret: the Managed Prometheus sidecar's config file,
#                     which Cloud Run can only mount from Secret Manager

# ---- the ingest token ------------------------------------------------------------

resource "google_secret_manager_secret" "ingest_token" {
  secret_id = "${var.prefix}-ingest-token"
  replication {
    auto {}
  }
  depends_on = [time_sleep.apis]
}

# The first version is made on the operator's machine, outside terraform, and only
# when the secret has no enabled version yet (scripts/seed-secret.sh): the value
# goes from /dev/urandom to Secret Manager through a pipe, so it is in no
# argument, no log, no state. Later versions are the operator's (rotation, in
# docs/security.md); terraform never manages a version it could fight over, and a
# re-run of apply leaves them alone.
resource "terraform_data" "ingest_token_seed" {
  triggers_replace = [google_secret_manager_secret.ingest_token.id]

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/seed-secret.sh"
    environment = {
      PROJECT = var.project_id
      SECRET  = google_secret_manager_secret.ingest_token.secret_id
    }
  }
}

# The routes (their Workload Identity, the route service account) may read this
# one secret, nothing else in Secret Manager.
resource "google_secret_manager_secret_iam_member" "route_reads_ingest_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.ingest_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.route.email}"
}

# ---- the database administrator's password ---------------------------------------

resource "google_secret_manager_secret" "db_admin" {
  secret_id = "${var.prefix}-db-admin-password"
  replication {
    auto {}
  }
  depends_on = [time_sleep.apis]
}

# Ephemeral: generated for this run only, never stored in the state. It is written
# to the secret through a write-only argument when the version is created, i.e.
# once, or again when var.db_admin_password_version changes (sql.tf reads it back
# for the user).
ephemeral "random_password" "db_admin" {
  length  = 32
  special = false
}

resource "google_secret_manager_secret_version" "db_admin" {
  secret                 = google_secret_manager_secret.db_admin.id
  secret_data_wo         = ephemeral.random_password.db_admin.result
  secret_data_wo_version = tostring(var.db_admin_password_version)
}

# The GRANT Job's Kubernetes service account itself (no Google service account in
# between) may read this one secret.
resource "google_secret_manager_secret_iam_member" "grant_reads_db_admin" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.db_admin.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.grant_principal

  # The workload identity pool exists once the cluster does.
  depends_on = [google_container_cluster.autopilot]
}

# ---- the relay's metrics collection (not a secret) --------------------------------

resource "google_secret_manager_secret" "relay_metrics_config" {
  secret_id = "${var.prefix}-relay-rungmp-config"
  replication {
    auto {}
  }
  depends_on = [time_sleep.apis]
}

resource "google_secret_manager_secret_version" "relay_metrics_config" {
  secret = google_secret_manager_secret.relay_metrics_config.id
  secret_data = templatefile("${path.module}/templates/rungmp-config.yaml.tftpl", {
    name = local.relay_service_name
    port = local.relay_metrics_port
  })
}

resource "google_secret_manager_secret_iam_member" "relay_reads_metrics_config" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.relay_metrics_config.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.relay.email}"
}
