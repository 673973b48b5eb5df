# Cloud SQL for MySQL 8.0: private IP only, IAM database authentication for the
# routes (no application password anywhere), automated backups with binary logs
# for point-in-time recovery, LOCAL INFILE off.

# Instance names cannot be reused for a while after deletion: a suffix keeps
# destroy-then-apply working.
resource "random_id" "sql_suffix" {
  byte_length = 2
}

resource "google_sql_database_instance" "mysql" {
  name                = "${var.prefix}-mysql-${random_id.sql_suffix.hex}"
  database_version    = "MYSQL_8_0"
  region              = var.region
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.sql_tier
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
      # The routes use the Cloud SQL Go connector (its own TLS); the one-time
      # GRANT in docs/deploy.md uses the mysql client with --ssl-mode=REQUIRED.
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

    insights_config {
      query_insights_enabled = true
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
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
# Cloud SQL for MySQL stores it as local.db_user (the part before "@").
resource "google_sql_user" "route" {
  name     = google_service_account.route.email
  instance = google_sql_database_instance.mysql.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

# A built-in administrator, used once to GRANT the route user its privileges on
# the vmpulse database (an IAM user starts with none; docs/deploy.md step 5). The
# password lives only in the terraform state (output db_admin_password, sensitive).
resource "random_password" "db_admin" {
  length  = 32
  special = false
}

resource "google_sql_user" "admin" {
  name     = "vmpulse-admin"
  instance = google_sql_database_instance.mysql.name
  host     = "%"
  password = random_password.db_admin.result
}
