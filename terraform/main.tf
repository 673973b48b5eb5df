# Values shared by the files split by concern (apis.tf, network.tf, gke.tf,
# sql.tf, pubsub.tf, secrets.tf, registry.tf, build.tf, run.tf, vm.tf, k8s.tf,
# monitoring.tf, iam.tf).

data "google_project" "this" {
  project_id = var.project_id
  depends_on = [google_project_service.apis]
}

# Hashes of what the images, the agent bundle and the Kubernetes side are built
# from (modules/sources): a change in the sources means new images on the next
# apply, and nothing else does.
module "sources" {
  source    = "./modules/sources"
  repo_root = "${path.module}/.."
}

locals {
  # Kubernetes side: k8s/serviceaccount.yaml.
  k8s_namespace = "so1-fase2"
  route_ksa     = "vmpulse-route"
  grant_ksa     = "vmpulse-db-grant"

  # GKE secondary ranges of the subnet.
  pods_range_name     = "pods"
  services_range_name = "services"

  agent_port    = 8090
  agent_net_tag = "vmpulse-agent"

  relay_service_name        = "${var.prefix}-relay"
  web_service_name          = "${var.prefix}-web"
  relay_subscription_prefix = "${var.prefix}-relay-"
  # The relay serves Prometheus metrics only here, inside its instance; the
  # Managed Prometheus sidecar scrapes it (run.tf).
  relay_metrics_port = 9090

  # One VM per entry of var.vms; the record's vm is the instance name.
  vms = { for k, machine in var.vms : k => {
    name         = "${var.prefix}-${k}"
    machine_type = machine
  } }

  # ---- images ------------------------------------------------------------------
  # By default Cloud Build builds the images from this checkout (build.tf) into
  # the Artifact Registry repository below, tagged with a hash of their sources
  # unless var.image_tag names one. With var.dockerhub_user the images are the
  # ones `make push` published on Docker Hub, pulled through the remote
  # repository (no anonymous Docker Hub pulls from the cluster's NAT address).
  build_images   = var.dockerhub_user == ""
  image_tag      = var.image_tag != "" ? var.image_tag : "src-${module.sources.images_hash}"
  registry_host  = "${var.region}-docker.pkg.dev"
  images_repo    = "${local.registry_host}/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
  dockerhub_repo = "${local.registry_host}/${var.project_id}/${google_artifact_registry_repository.dockerhub.repository_id}"
  image_registry = local.build_images ? local.images_repo : "${local.dockerhub_repo}/${var.dockerhub_user}"
  images = {
    relay = "${local.image_registry}/vmpulse-relay:${local.image_tag}"
    web   = "${local.image_registry}/vmpulse-web:${local.image_tag}"
    route = "${local.image_registry}/vmpulse-route:${local.image_tag}"
  }
  # Docker Hub's official mysql image (the GRANT Job's client), through the
  # remote repository.
  mysql_image = "${local.dockerhub_repo}/library/mysql"

  # ---- capacity ----------------------------------------------------------------
  # The Cloud SQL tier and the routes' pods are chosen together: every route pod
  # opens up to db_conns connections, an HPA can run route_max_pods of each route
  # plus one more during a rolling update, and a reserve stays for the GRANT Job
  # and an operator. The sum must stay within the max_connections set on the
  # instance (sql.tf checks it), and max_connections stays where the tier's CPU
  # serves it: a load test then measures the strategies, not the database's CPU.
  capacity_profiles = {
    small  = { sql_tier = "db-custom-1-3840", max_connections = 100, route_max_pods = 4, db_conns = 8 }
    medium = { sql_tier = "db-custom-2-7680", max_connections = 200, route_max_pods = 6, db_conns = 12 }
    large  = { sql_tier = "db-custom-4-15360", max_connections = 400, route_max_pods = 10, db_conns = 16 }
  }
  capacity              = local.capacity_profiles[var.capacity]
  db_connection_reserve = 10
  # Each pod holds DB_CONNS for data plus one for the outbox's named lock.
  db_connection_budget   = 2 * (local.capacity.route_max_pods + 1) * (local.capacity.db_conns + 1) + local.db_connection_reserve
  relay_max_clients      = var.relay_concurrency
  ingest_scheme          = var.ingest_domain == "" ? "http" : "https"
  ingest_host            = var.ingest_domain == "" ? google_compute_global_address.gateway.address : var.ingest_domain
  ingest_url             = "${local.ingest_scheme}://${local.ingest_host}"
  ingest_security_policy = "${var.prefix}-ingest"
  ingest_certificate     = "${var.prefix}-ingest"

  # Cloud Run's deterministic URL, https://SERVICE-PROJECT_NUMBER.REGION.run.app,
  # is known before the service exists. The relay must know the dashboard's origin
  # and the dashboard must know the relay's URL; computing the dashboard's URL
  # instead of reading it from the service breaks that cycle.
  dashboard_host  = "${local.web_service_name}-${data.google_project.this.number}.${var.region}.run.app"
  dashboard_url   = "https://${local.dashboard_host}"
  allowed_origins = concat([local.dashboard_url], var.extra_allowed_origins)

  # Cloud SQL for MySQL stores an IAM service account user as the part of its
  # email before "@" (for PostgreSQL it would be the email without
  # ".gserviceaccount.com"): that is the DB_USER the routes log in as.
  db_user = google_service_account.route.account_id

  bundle_object = "vmpulse-agent-bundle.tar.gz"

  # The Kubernetes identities as IAM principals (Workload Identity Federation for
  # GKE), for grants made to a Kubernetes service account itself.
  wi_pool         = "${var.project_id}.svc.id.goog"
  grant_principal = "principal://iam.googleapis.com/projects/${data.google_project.this.number}/locations/global/workloadIdentityPools/${local.wi_pool}/subject/ns/${local.k8s_namespace}/sa/${local.grant_ksa}"
}
