# GKE Autopilot runs route1 and route2 (k8s/). The Gateway API (standard CRDs) is
# what gives the 50/50 HTTPRoute split; Workload Identity lets the routes act as
# the route service account without keys.

resource "google_container_cluster" "autopilot" {
  name     = "${var.prefix}-gke"
  location = var.region

  enable_autopilot    = true
  deletion_protection = var.deletion_protection

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

  # Always on in Autopilot; stated so that the pool name is explicit.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Autopilot's nodes run as a dedicated minimal service account instead of the
  # Compute Engine default one (which often holds roles/editor).
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
