# One custom-mode VPC with one regional subnet: GKE nodes (pods and Services in
# secondary ranges) and the monitored VM. Cloud SQL sits in Google's producer
# network, reached over private services access (VPC peering): it has no public IP.

resource "google_compute_network" "vpc" {
  name                    = "${var.prefix}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [time_sleep.apis]
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

# Private GKE nodes have no external address: Cloud NAT is their egress (the
# images come from Artifact Registry over Private Google Access, not through it).
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
# the ingress URL is an output before the Gateway exists (and so that a domain's
# A record can point at it before the certificate is requested).
resource "google_compute_global_address" "gateway" {
  name         = "${var.prefix}-gateway-ip"
  address_type = "EXTERNAL"
  ip_version   = "IPV4"

  depends_on = [time_sleep.apis]
}

# Each VM's external address, static: the load generator's AGENT_URL stays valid
# across a stop and start of the VM.
resource "google_compute_address" "agent" {
  for_each = local.vms

  name         = "${each.value.name}-ip"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"

  depends_on = [time_sleep.apis]
}

# The load generator reaches the agents, and only the load generator. One rule
# covers every VM (they share the network tag).
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

# ---- the edge of ingest ----------------------------------------------------------

# Cloud Armor in front of both routes (k8s/route/backendpolicy.yaml attaches it
# through a GCPBackendPolicy): only the load generator's source ranges (the same
# variable that guards the agents) get in, and even they are throttled above
# var.ingest_requests_per_minute per address and banned for five minutes when
# they go on at twice that. Everyone else gets 403 from the load balancer before
# any request reaches a pod.
resource "google_compute_security_policy" "ingest" {
  name        = local.ingest_security_policy
  description = "vmpulse ingest: the load generator's ranges only, rate-limited."
  type        = "CLOUD_ARMOR"

  rule {
    action      = "rate_based_ban"
    priority    = 1000
    description = "The load generator, within its rate."
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = var.loadgen_source_ranges
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.ingest_requests_per_minute
        interval_sec = 60
      }
      ban_threshold {
        count        = 2 * var.ingest_requests_per_minute
        interval_sec = 60
      }
      ban_duration_sec = 300
    }
  }

  rule {
    action      = "deny(403)"
    priority    = 2147483647
    description = "Everyone else."
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }

  depends_on = [time_sleep.apis]
}

# With a domain, the Gateway's HTTPS listener presents this Google-managed
# certificate (k8s/https). Google issues it once the domain's A record points at
# the Gateway's address; until then HTTPS handshakes fail (docs/deploy.md).
resource "google_compute_managed_ssl_certificate" "ingest" {
  count = var.ingest_domain == "" ? 0 : 1

  name = local.ingest_certificate
  managed {
    domains = [var.ingest_domain]
  }

  depends_on = [time_sleep.apis]
}
