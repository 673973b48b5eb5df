# ---- where ---------------------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into (it must exist, with billing and the APIs listed in docs/deploy.md enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits and hyphens, starting with a letter), not a project name or number."
  }
}

variable "region" {
  description = "Region for the GKE Autopilot cluster, Cloud SQL, Cloud Run services, the subnet and the agent bundle bucket."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region name such as us-central1 (not a zone)."
  }
}

variable "zone" {
  description = "Zone of the monitored VM; it must be in var.region (for example us-central1-a)."
  type        = string
  default     = "us-central1-a"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "zone must be a zone name such as us-central1-a."
  }
}

variable "prefix" {
  description = "Prefix of every resource name (service accounts, cluster, instance, services). Keep the default unless two deployments share a project: the k8s base and docs use \"vmpulse\"."
  type        = string
  default     = "vmpulse"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 3-16 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

# ---- images --------------------------------------------------------------------

variable "registry" {
  description = "Registry path the images are pushed to with `make push REGISTRY=...`, without a trailing slash: docker.io/USER for Docker Hub (the default of the assignment) or REGION-docker.pkg.dev/PROJECT/REPO for Artifact Registry. Cloud Run and GKE pull vmpulse-relay, vmpulse-web and vmpulse-route from it."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)+$", var.registry))
    error_message = "registry must look like docker.io/USER or REGION-docker.pkg.dev/PROJECT/REPO: lowercase, no scheme, no trailing slash, no tag."
  }
}

variable "image_tag" {
  description = "Tag of the images Cloud Run starts with (`make push` uses the git short SHA by default). Later releases go out with `gcloud run deploy --image` (docs/deploy.md); terraform ignores image changes made that way."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid image tag other than \"latest\" (use the git short SHA or a version)."
  }
}

# ---- safety and exposure -------------------------------------------------------

variable "deletion_protection" {
  description = "Protect the GKE cluster, the Cloud SQL instance and the Cloud Run services from deletion (terraform and API level). Set to false, apply, then destroy, to tear everything down."
  type        = bool
  default     = true
}

variable "public_access" {
  description = "Let anyone open the dashboard and its websocket relay (roles/run.invoker for allUsers on both Cloud Run services). A browser cannot attach IAM credentials to a websocket, so without this the dashboard only works behind IAP or a proxy."
  type        = bool
  default     = true
}

variable "loadgen_source_ranges" {
  description = "CIDR ranges of the machines that run the load generator (Locust); only they may reach the agent on TCP 8090. Use your public address as a /32 (curl -s https://checkip.amazonaws.com). There is deliberately no default and 0.0.0.0/0 is refused."
  type        = list(string)

  validation {
    condition     = length(var.loadgen_source_ranges) > 0
    error_message = "loadgen_source_ranges needs at least one CIDR range."
  }

  validation {
    condition     = alltrue([for r in var.loadgen_source_ranges : can(cidrnetmask(r))])
    error_message = "Every entry of loadgen_source_ranges must be an IPv4 CIDR range such as 203.0.113.7/32."
  }

  validation {
    condition     = alltrue([for r in var.loadgen_source_ranges : !contains(["0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1"], r) && try(tonumber(split("/", r)[1]) >= 8, false)])
    error_message = "loadgen_source_ranges must not open the agent to the internet: 0.0.0.0/0 and ranges wider than /8 are refused."
  }
}

variable "enable_iap_ssh" {
  description = "Allow SSH to the VM only through Identity-Aware Proxy TCP forwarding (35.235.240.0/20), for `gcloud compute ssh --tunnel-through-iap`. Logins use OS Login."
  type        = bool
  default     = true
}

variable "extra_allowed_origins" {
  description = "More browser origins (scheme://host[:port]) allowed to open the relay's websocket, for example a custom domain of the dashboard. The dashboard's own run.app URL is always allowed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for o in var.extra_allowed_origins : can(regex("^https?://[^/]+$", o))])
    error_message = "Each extra origin must be scheme://host[:port] with no path, for example https://dashboard.example.com."
  }
}

# ---- network -------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Primary range of the subnet (GKE nodes and the VM)."
  type        = string
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr must be an IPv4 CIDR range."
  }
}

variable "pods_cidr" {
  description = "Secondary range of the subnet for GKE pods."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.pods_cidr))
    error_message = "pods_cidr must be an IPv4 CIDR range."
  }
}

variable "services_cidr" {
  description = "Secondary range of the subnet for GKE Services."
  type        = string
  default     = "10.30.0.0/20"

  validation {
    condition     = can(cidrnetmask(var.services_cidr))
    error_message = "services_cidr must be an IPv4 CIDR range."
  }
}

# ---- GKE -----------------------------------------------------------------------

variable "gke_release_channel" {
  description = "GKE release channel of the Autopilot cluster."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.gke_release_channel)
    error_message = "gke_release_channel must be RAPID, REGULAR or STABLE."
  }
}

# ---- Cloud SQL -----------------------------------------------------------------

variable "sql_tier" {
  description = "Machine tier of the Cloud SQL for MySQL 8.0 instance (Enterprise edition), for example db-custom-1-3840 or db-g1-small."
  type        = string
  default     = "db-custom-1-3840"

  validation {
    condition     = can(regex("^db-", var.sql_tier))
    error_message = "sql_tier must be a Cloud SQL tier name starting with db-."
  }
}

variable "sql_availability_type" {
  description = "ZONAL (one zone, cheaper) or REGIONAL (high availability with a standby in another zone)."
  type        = string
  default     = "ZONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.sql_availability_type)
    error_message = "sql_availability_type must be ZONAL or REGIONAL."
  }
}

variable "db_name" {
  description = "Name of the MySQL database the routes write to (their DB_NAME)."
  type        = string
  default     = "vmpulse"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,63}$", var.db_name))
    error_message = "db_name must be lowercase letters, digits and underscores, starting with a letter."
  }
}

# ---- Pub/Sub -------------------------------------------------------------------

variable "pubsub_topic" {
  description = "Name of the Pub/Sub topic the routes publish committed records to and the relay subscribes to (PUBSUB_TOPIC)."
  type        = string
  default     = "vmpulse-records"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~%+-]{2,254}$", var.pubsub_topic)) && !startswith(lower(var.pubsub_topic), "goog")
    error_message = "pubsub_topic must be a valid Pub/Sub topic ID (3-255 characters, starting with a letter, not with goog)."
  }
}

# ---- Cloud Run -----------------------------------------------------------------

variable "relay_min_instances" {
  description = "Relay instances kept running (at least 1, so that a websocket always finds a warm instance with its subscription)."
  type        = number
  default     = 1

  validation {
    condition     = var.relay_min_instances >= 1 && var.relay_min_instances <= 10
    error_message = "relay_min_instances must be between 1 and 10."
  }
}

variable "relay_max_instances" {
  description = "Upper bound of relay instances; each holds its own Pub/Sub subscription."
  type        = number
  default     = 3

  validation {
    condition     = var.relay_max_instances >= 1 && var.relay_max_instances <= 100
    error_message = "relay_max_instances must be between 1 and 100."
  }
}

variable "relay_concurrency" {
  description = "Concurrent requests (open websockets) per relay instance."
  type        = number
  default     = 1000

  validation {
    condition     = var.relay_concurrency >= 1 && var.relay_concurrency <= 1000
    error_message = "relay_concurrency must be between 1 and 1000 (the Cloud Run maximum)."
  }
}

# ---- the monitored VM ----------------------------------------------------------

variable "vm_machine_type" {
  description = "Machine type of the monitored VM that runs the kernel modules and the agent."
  type        = string
  default     = "e2-medium"

  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.vm_machine_type))
    error_message = "vm_machine_type must be a Compute Engine machine type such as e2-medium."
  }
}

variable "kmod_suffix" {
  description = "Suffix of the kernel module names, as in the assignment's procesos_<carnet> form: \"_202201524\" builds cpu_so1_202201524.ko and /proc/cpu_so1_202201524 (kernel/Makefile SUFFIX, the agent's KMOD_SUFFIX). Empty keeps cpu_so1, ram_so1, procesos_so1."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_]*$", var.kmod_suffix))
    error_message = "kmod_suffix may contain only letters, digits and underscores."
  }
}
