# GKE Autopilot runs route1 and route2 (k8s/). The Gateway API (standard CRDs) is
# what gives the 50/50 HTTPRoute split; Workload Identity lets the routes act as
# the route service account without keys; the Secret Manager add-on mounts the
# ingest token into the route pods as a file; Managed Service for Prometheus (on
# in every Autopilot cluster) scrapes what k8s/podmonitoring.yaml names.
#
# No deletion protection: the cluster holds no state (the records are in Cloud
# SQL), and a protected cluster that a failed create left tainted would make the
# next apply fail instead of replacing it.

resource "google_container_cluster" "autopilot" {
  name     = "${var.prefix}-gke"
  location = var.region

  enable_autopilot    = true
  deletion_protection = false

  network    = google_compute_network.vpc.id
  subnetwork = google_compute_subnetwork.main.id

  ip_allocation_policy {
    cluster_secondary_range_name  = local.pods_range_name
    services_secondary_range_name = local.services_range_name
  }

  # Nodes without external addresses (Cloud NAT for egress); the control plane
  # keeps its public endpoint so that kubectl works from the operator's machine.
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
  }

  release_channel {
    channel = var.gke_release_channel
  }

  gateway_api_config {
    channel = "CHANNEL_STANDARD"
  }

  # Secrets as files (k8s/secretproviderclass.yaml). Rotation re-reads the
  # secret's latest version into the mounted file every two minutes, which is
  # how a new ingest token reaches running pods (docs/security.md).
  secret_manager_config {
    enabled = true
    rotation_config {
      enabled           = true
      rotation_interval = "120s"
    }
  }

  # Always on in Autopilot; stated so that the pool name is explicit.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Autopilot's nodes run as a dedicated minimal service account instead of the
  # Compute Engine default one (which often holds roles/editor). An open
  # provider issue (#9505) reports Autopilot ignoring this; the image repositories
  # therefore also let the default account pull (registry.tf).
  cluster_autoscaling {
    auto_provisioning_defaults {
      service_account = google_service_account.gke_nodes.email
      oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    }
  }

  depends_on = [
    google_project_iam_member.gke_nodes,
    google_compute_router_nat.nat,
  ]
}
