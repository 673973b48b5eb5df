# The images and the agent bundle, built by Cloud Build from this checkout during
# `terraform apply` (no Docker on the operator's machine): scripts/build-images.sh
# uploads the sources and runs cloudbuild.yaml as the build service account,
# which pushes vmpulse-route, vmpulse-relay and vmpulse-web to the images
# repository and writes the agent bundle to the VMs' bucket. It runs again when
# the sources change (the tag is a hash of them, module.sources) and never
# otherwise. With var.dockerhub_user the images come from Docker Hub instead and
# nothing is built here (the agent bundle then comes from `make vm-push`).

resource "google_service_account" "build" {
  account_id   = "${var.prefix}-build"
  display_name = "vmpulse image builds (Cloud Build)"
  description  = "Runs terraform/cloudbuild.yaml: pushes the vmpulse images, writes the agent bundle."

  depends_on = [time_sleep.apis]
}

# Where gcloud uploads the sources for a build; they are not kept.
resource "google_storage_bucket" "build" {
  name                        = "${var.project_id}-${var.prefix}-build"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [time_sleep.apis]
}

resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.build.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_pushes" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Overwrites the bundle object, so objectAdmin (on this bucket only).
resource "google_storage_bucket_iam_member" "build_writes_bundle" {
  bucket = google_storage_bucket.agent_bundle.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.build.email}"
}

# A build that runs as a chosen service account logs to Cloud Logging only.
resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "terraform_data" "build" {
  count = local.build_images ? 1 : 0

  triggers_replace = [local.image_tag, local.image_registry]

  provisioner "local-exec" {
    command = "bash ${path.module}/scripts/build-images.sh"
    environment = {
      REPO_ROOT       = abspath("${path.module}/..")
      PROJECT         = var.project_id
      REGION          = var.region
      REGISTRY        = local.image_registry
      TAG             = local.image_tag
      BUNDLE_LOCATION = "gs://${google_storage_bucket.agent_bundle.name}/"
      STAGING         = "gs://${google_storage_bucket.build.name}/source"
      BUILD_SA        = google_service_account.build.email
    }
  }

  depends_on = [time_sleep.iam]
}
