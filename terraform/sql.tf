# Cloud SQL for MySQL 8.4 (MySQL 8.0 has been in paid extended support since
# July 2026): private IP only, IAM database authentication for the routes (no
# application password anywhere), automated backups with binary logs for
# point-in-time recovery, LOCAL INFILE off, and max_connections set to what the
# tier serves (local.capacity).

# Instance names cannot be reused for a while after deletion: a suffix keeps
# destroy-then-apply working.
resource "random_id" "sql_suffix" {
  byte_length = 2
}

resource "google_sql_database_instance" "mysql" {
  name             = "${var.prefix}-mysql-${random_id.sql_suffix.hex}"
  database_version = "MYSQL_8_4"
  region           = var.region
  # The one stateful resource. Off by default so that teardown and a re-run
  # after a failed create never stop at it; turn it on to keep the records.
  deletion_protection = var.deletion_protection

  settings {
    tier                        = local.capacity.sql_tier
    edition                     = "ENTERPRISE"
    availability_type           = var.sql_availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = 10
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection

    user_labels = {
      app = "vmpulse"
    }

    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.vpc.id
      # The routes use the Cloud SQL Go connector (its own TLS); the GRANT Job
      # uses the mysql client with --ssl-mode=REQUIRED.
      ssl_mode = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      binary_log_enabled             = true
      start_time                     = "03:00"
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = 7
        retention_unit   = "COUNT"
      }
    }

    database_flags {
      name  = "cloudsql_iam_authentication"
      value = "on"
    }

    database_flags {
      name  = "local_infile"
      value = "off"
    }

    database_flags {
      name  = "max_connections"
      value = tostring(local.capacity.max_connections)
    }

    insights_config {
      query_insights_enabled = true
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }
  }

  lifecycle {
    precondition {
      condition     = local.db_connection_budget <= local.capacity.max_connections
      error_message = "The routes could open ${local.db_connection_budget} connections, more than max_connections ${local.capacity.max_connections} of the ${var.capacity} profile."
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "vmpulse" {
  name      = var.db_name
  instance  = google_sql_database_instance.mysql.name
  charset   = "utf8mb4"
  collation = "utf8mb4_0900_ai_ci"
}

# The routes' database user: the route service account, logging in with IAM
# database authentication through the Cloud SQL connector. Given the full email,
# Cloud SQL for MySQL stores it as local.db_user (the part before "@"). Its
# privileges come from the GRANT Job (k8s/db-grant-job.yaml).
resource "google_sql_user" "route" {
  name     = google_service_account.route.email
  instance = google_sql_database_instance.mysql.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# A built-in administrator, used by the GRANT Job only. Its password is made by
# an ephemeral random_password, written to Secret Manager through a write-only
# argument (secrets.tf), read back ephemerally and set here through a write-only
# argument again: it is in Secret Manager and in Cloud SQL, never in the state
# or the plan. Reading it back (instead of using the random value twice) keeps
# the two equal even when an earlier apply failed between them; keying the
# version on the secret version's number re-sets the password whenever that
# version is replaced (var.db_admin_password_version rotates it).
ephemeral "google_secret_manager_secret_version" "db_admin" {
  secret  = google_secret_manager_secret.db_admin.id
  version = google_secret_manager_secret_version.db_admin.version
}

resource "google_sql_user" "admin" {
  name                = "vmpulse-admin"
  instance            = google_sql_database_instance.mysql.name
  host                = "%"
  password_wo         = ephemeral.google_secret_manager_secret_version.db_admin.secret_data
  password_wo_version = tonumber(google_secret_manager_secret_version.db_admin.version)
}
