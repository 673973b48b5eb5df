# ---- where ---------------------------------------------------------------------

variable "project_id" {
  description = "ID of the Google Cloud project to deploy into: it must exist and have billing; terraform enables the APIs it needs (apis.tf)."
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

# ---- the monitored VMs ----------------------------------------------------------

variable "vms" {
  description = "The monitored VMs: short name -> machine type, e.g. { small = \"e2-small\", medium = \"e2-medium\", std2 = \"e2-standard-2\" }. Each becomes the instance PREFIX-NAME with the kernel modules and the agent, and that instance name is the vm of its records."
  type        = map(string)
  default = {
    vm = "e2-medium"
  }

  validation {
    condition     = length(var.vms) >= 1 && length(var.vms) <= 8
    error_message = "vms needs between 1 and 8 entries."
  }

  validation {
    condition     = alltrue([for k, v in var.vms : can(regex("^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$", k))])
    error_message = "Each key of vms must be 1-22 lowercase letters, digits or hyphens, starting with a letter (it becomes part of the instance name)."
  }

  validation {
    condition     = alltrue([for k, v in var.vms : can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", v))])
    error_message = "Each value of vms must be a Compute Engine machine type such as e2-medium."
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

# ---- images --------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the images. Empty (the default): a hash of their sources, so an apply after a change builds and rolls out new images and an apply without one builds nothing. Set it to deploy images already in the registry under that tag (with dockerhub_user: the tag `make push` used)."
  type        = string
  default     = ""

  validation {
    condition     = var.image_tag == "" || (can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest")
    error_message = "image_tag must be empty or a valid image tag other than \"latest\"."
  }
}

variable "dockerhub_user" {
  description = "Empty (the default): Cloud Build builds the images into this project's Artifact Registry. A Docker Hub user: the images are the public ones `make push REGISTRY=docker.io/USER` published there (set image_tag to their tag), pulled through the Artifact Registry remote repository of Docker Hub, and nothing is built here (the agent bundle then comes from `make vm-push`)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^([a-z0-9]{4,30})?$", var.dockerhub_user))
    error_message = "dockerhub_user must be empty or a Docker Hub user name (4-30 lowercase letters and digits)."
  }
}

variable "prometheus_sidecar_image" {
  description = "Google Cloud Managed Service for Prometheus sidecar for Cloud Run, which collects the relay's metrics."
  type        = string
  default     = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"

  validation {
    condition     = can(regex(":[A-Za-z0-9_.-]+$", var.prometheus_sidecar_image)) && !endswith(var.prometheus_sidecar_image, ":latest")
    error_message = "prometheus_sidecar_image must name a tag other than latest."
  }
}

# ---- safety, exposure and cost -------------------------------------------------

variable "deletion_protection" {
  description = "Protect the Cloud SQL instance (the only state: the records) from deletion. Off by default, so that `terraform destroy` and a re-run after a failed create never stop at it; turn it on once the deployment is up if its data must survive. The stateless parts (cluster, Cloud Run) are never protected."
  type        = bool
  default     = false
}

variable "public_access" {
  description = "Let anyone open the dashboard and its websocket relay: Cloud Run's invoker IAM check is disabled on both services (invoker_iam_disabled), which needs no allUsers binding and so passes Domain Restricted Sharing. A browser cannot attach IAM credentials to a websocket, so without this the dashboard only works behind IAP or a proxy."
  type        = bool
  default     = true
}

variable "loadgen_source_ranges" {
  description = "CIDR ranges of the machines that run the load generator (Locust, the Go driver); only they may reach the agents on TCP 8090 (firewall) and /ingest (Cloud Armor). Use your public address as a /32 (curl -s https://checkip.amazonaws.com). There is deliberately no default and 0.0.0.0/0 is refused."
  type        = list(string)

  validation {
    condition     = length(var.loadgen_source_ranges) > 0 && length(var.loadgen_source_ranges) <= 10
    error_message = "loadgen_source_ranges needs between 1 and 10 CIDR ranges (a Cloud Armor rule matches at most 10)."
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

variable "ingest_domain" {
  description = "A domain name for the Gateway (e.g. ingest.example.com). With it, /ingest is served over HTTPS with a Google-managed certificate (issued once the domain's A record points at output ingress_address) and HTTP only redirects. Empty: plain HTTP, and the bearer token crosses the internet in clear text (docs/security.md)."
  type        = string
  default     = ""

  validation {
    condition     = var.ingest_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.ingest_domain))
    error_message = "ingest_domain must be empty or a lowercase DNS name such as ingest.example.com."
  }
}

variable "ingest_requests_per_minute" {
  description = "Requests per minute one load generator address may send to /ingest before Cloud Armor answers 429; at twice this rate it is banned for five minutes."
  type        = number
  default     = 60000

  validation {
    condition     = var.ingest_requests_per_minute >= 600 && var.ingest_requests_per_minute <= 1000000
    error_message = "ingest_requests_per_minute must be between 600 and 1000000."
  }
}

variable "enable_iap_ssh" {
  description = "Allow SSH to the VMs only through Identity-Aware Proxy TCP forwarding (35.235.240.0/20), for `gcloud compute ssh --tunnel-through-iap`. Logins use OS Login."
  type        = bool
  default     = true
}

variable "grant_pull_to_default_compute_sa" {
  description = "Also let the Compute Engine default service account pull the images, for Autopilot nodes that run as it despite the dedicated node account (provider issue #9505). Set false if that account was deleted."
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

variable "budget_amount" {
  description = "Monthly budget for the project in the billing account's currency: alerts at 50, 90 and 100 %. 0 creates no budget (creating one needs Billing Account Administrator or Costs Manager). docs/deploy.md has the cost table."
  type        = number
  default     = 400

  validation {
    condition     = var.budget_amount >= 0 && floor(var.budget_amount) == var.budget_amount
    error_message = "budget_amount must be a whole amount, 0 or more."
  }
}

variable "alert_email" {
  description = "Where the alert policies and the budget send mail. Empty: incidents only show in the console."
  type        = string
  default     = ""

  validation {
    condition     = var.alert_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alert_email))
    error_message = "alert_email must be empty or an email address."
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

variable "capacity" {
  description = "The Cloud SQL tier and the routes' scale, chosen together so that the routes' connections fit what the tier serves (terraform/main.tf, local.capacity_profiles): small (1 vCPU, 4 route pods each, 8 connections per pod), medium (2 vCPU, 6, 12) or large (4 vCPU, 10, 16). docs/deploy.md has their cost."
  type        = string
  default     = "medium"

  validation {
    condition     = contains(["small", "medium", "large"], var.capacity)
    error_message = "capacity must be small, medium or large."
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
  description = "Open websockets per relay instance: Cloud Run's request concurrency and the relay's own -max-clients, from this one value."
  type        = number
  default     = 1000

  validation {
    condition     = var.relay_concurrency >= 1 && var.relay_concurrency <= 1000
    error_message = "relay_concurrency must be between 1 and 1000 (the Cloud Run maximum)."
  }
}

variable "relay_max_per_ip" {
  description = "Open websockets one client address may hold on one relay instance (the relay's -max-per-ip)."
  type        = number
  default     = 20

  validation {
    condition     = var.relay_max_per_ip >= 1 && var.relay_max_per_ip <= 1000
    error_message = "relay_max_per_ip must be between 1 and 1000."
  }
}

variable "relay_expose_processes" {
  description = "Send the VMs' process names to dashboards (the relay's -expose-processes). Off: names are redacted, which is what a public dashboard should do."
  type        = bool
  default     = false
}

# ---- secrets ---------------------------------------------------------------------

variable "db_admin_password_version" {
  description = "Raise it to rotate the MySQL administrator's password (a new random one goes to Secret Manager and Cloud SQL; it never enters the state)."
  type        = number
  default     = 1

  validation {
    condition     = var.db_admin_password_version >= 1 && floor(var.db_admin_password_version) == var.db_admin_password_version
    error_message = "db_admin_password_version must be a whole number, 1 or more."
  }
}
