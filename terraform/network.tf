# One custom-mode VPC with one regional subnet: GKE nodes (pods and Services in
# secondary ranges) and the monitored VM. Cloud SQL sits in Google's producer
# network, reached over private services access (VPC peering): it has no public IP.

resource "google_compute_network" "vpc" {
  name                    = "${var.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"
}

resource "google_compute_subnetwork" "main" {
  name                     = "${var.prefix}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.vpc.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = local.pods_range_name
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = local.services_range_name
    ip_cidr_range = var.services_cidr
  }
}

# Private GKE nodes have no external address: Cloud NAT lets them pull images
# from Docker Hub.
resource "google_compute_router" "nat" {
  name    = "${var.prefix}-router"
  region  = var.region
  network = google_compute_network.vpc.id
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.prefix}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Private services access for Cloud SQL's private IP.
resource "google_compute_global_address" "private_services" {
  name          = "${var.prefix}-private-services"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = 20
  network       = google_compute_network.vpc.id
}

resource "google_service_networking_connection" "private_services" {
  network                 = google_compute_network.vpc.id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_services.name]
}

# The Gateway's address (k8s/gateway.yaml, NamedAddress), reserved here so that
# the ingress URL is an output before the Gateway exists.
resource "google_compute_global_address" "gateway" {
  name         = "${var.prefix}-gateway-ip"
  address_type = "EXTERNAL"
  ip_version   = "IPV4"
}

# The load generator reaches the agent, and only the load generator.
resource "google_compute_firewall" "agent_from_loadgen" {
  name          = "${var.prefix}-agent-from-loadgen"
  network       = google_compute_network.vpc.name
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = var.loadgen_source_ranges
  target_tags   = [local.agent_net_tag]

  allow {
    protocol = "tcp"
    ports    = [tostring(local.agent_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# SSH to the VM only through IAP TCP forwarding (Google's fixed IAP range).
resource "google_compute_firewall" "vm_ssh_from_iap" {
  count = var.enable_iap_ssh ? 1 : 0

  name          = "${var.prefix}-vm-ssh-from-iap"
  network       = google_compute_network.vpc.name
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = ["35.235.240.0/20"]
  target_tags   = [local.agent_net_tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}
