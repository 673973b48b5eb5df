# Artifact Registry: where the cluster and Cloud Run pull from.
#
#   images     vmpulse-route, vmpulse-relay, vmpulse-web, built by Cloud Build
#              (build.tf); old versions are cleaned up
#   dockerhub  a remote repository (pull-through cache) of Docker Hub: the GRANT
#              Job's mysql image, and the vmpulse images for whoever publishes
#              them on Docker Hub (var.dockerhub_user). The cluster then never
#              pulls from Docker Hub directly, where anonymous pulls are limited
#              to 10 an hour per address and every private node shares the one
#              Cloud NAT address.

resource "google_artifact_registry_repository" "images" {
  repository_id = "${var.prefix}-images"
  location      = var.region
  format        = "DOCKER"
  mode          = "STANDARD_REPOSITORY"
  description   = "vmpulse images built by Cloud Build."

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [time_sleep.apis]
}

resource "google_artifact_registry_repository" "dockerhub" {
  repository_id = "${var.prefix}-dockerhub"
  location      = var.region
  format        = "DOCKER"
  mode          = "REMOTE_REPOSITORY"
  description   = "Pull-through cache of Docker Hub."

  remote_repository_config {
    description = "Docker Hub"
    docker_repository {
      public_repository = "DOCKER_HUB"
    }
  }

  depends_on = [time_sleep.apis]
}

# Cloud Run pulls through its service agent, which may read repositories of its
# own project. The GKE nodes pull as their node service account; Autopilot can
# end up running nodes as the Compute Engine default account instead (provider
# issue #9505), so that account may pull too unless the operator says it does not
# exist (var.grant_pull_to_default_compute_sa).
locals {
  # Static keys (the project number is unknown until the first apply reads it).
  pullers = merge(
    { nodes = "serviceAccount:${google_service_account.gke_nodes.email}" },
    var.grant_pull_to_default_compute_sa ? { compute_default = "serviceAccount:${data.google_project.this.number}-compute@developer.gserviceaccount.com" } : {},
  )
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull_images" {
  for_each = local.pullers

  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull_dockerhub" {
  for_each = local.pullers

  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.dockerhub.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
