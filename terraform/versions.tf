# vmpulse on Google Cloud: VPC, GKE Autopilot (Gateway API), Cloud SQL for MySQL
# (private IP, IAM database authentication), Pub/Sub, the Cloud Run relay and
# dashboard, and the monitored VM with the kernel modules and the agent.
# docs/deploy.md walks from a fresh project to the dashboard URL.

terraform {
  # 1.5: validation blocks, check-free configuration; nothing newer is needed.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x gave google_cloud_run_v2_service its deletion_protection; the
      # configuration uses nothing that 7.x removed.
      version = ">= 6.14.0, < 8.0.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6.0, < 4.0.0"
    }
  }

  # State stays local by default. For a shared deployment, keep it in a bucket:
  #   terraform init -backend-config=bucket=BUCKET -backend-config=prefix=vmpulse
  # after adding `backend "gcs" {}` here. The state holds the database admin
  # password (random_password.db_admin): treat it as a secret either way.
}

provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone

  default_labels = {
    app        = "vmpulse"
    managed-by = "terraform"
  }
}
