# vmpulse on Google Cloud: the APIs, VPC, GKE Autopilot (Gateway API), Cloud SQL
# for MySQL (private IP, IAM database authentication), Pub/Sub, Artifact Registry
# with the images Cloud Build makes, the Cloud Run relay and dashboard, the
# monitored VMs with the kernel modules and the agent, the Kubernetes side applied
# and waited for, alerts, an uptime check and a budget. docs/deploy.md walks from
# a fresh project to the dashboard URL.

terraform {
  # 1.11: write-only arguments (the database administrator's password never
  # enters the state) and ephemeral resources (1.10).
  required_version = ">= 1.11.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 7.6: the ephemeral google_secret_manager_secret_version (write-only
      # arguments, invoker_iam_disabled and MYSQL_8_4 are older).
      version = ">= 7.6.0, < 8.0.0"
    }
    random = {
      source = "hashicorp/random"
      # 3.7: the ephemeral random_password.
      version = ">= 3.7.0, < 4.0.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.12.0, < 1.0.0"
    }
  }

  # State stays local by default. For a shared deployment, keep it in a bucket:
  #   terraform init -backend-config=bucket=BUCKET -backend-config=prefix=vmpulse
  # after adding `backend "gcs" {}` here. The state holds no password or token
  # (docs/security.md), but it does name every resource: keep it private anyway.
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

# The Billing Budgets API refuses user credentials without a quota project; only
# the budget uses this alias, so that enabling the APIs does not depend on one.
provider "google" {
  alias                 = "billing"
  project               = var.project_id
  region                = var.region
  user_project_override = true
  billing_project       = var.project_id
}
