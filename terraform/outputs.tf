# ---- what a person opens and runs ------------------------------------------------

output "dashboard_url" {
  description = "The dashboard (Cloud Run). Its origin is the one the relay accepts websockets from."
  value       = local.dashboard_url
}

output "ingress_url" {
  description = "Base URL of the Gateway: the load generator's INGRESS_URL (POST /ingest). https://DOMAIN with var.ingest_domain, else http://ADDRESS."
  value       = local.ingest_url
}

output "agent_urls" {
  description = "Each monitored VM's agent (instance name -> URL): the load generator's AGENT_URL. Reachable only from var.loadgen_source_ranges; the addresses are static."
  value       = { for k, v in local.vms : v.name => "http://${google_compute_address.agent[k].address}:${local.agent_port}" }
}

output "vms" {
  description = "The monitored VMs: instance name (the vm of their records) -> machine type."
  value       = { for k, v in local.vms : v.name => v.machine_type }
}

output "ingest_token_command" {
  description = "Prints the ingest token (first line of the secret's latest version) without it entering terraform's state or your shell history."
  value       = "gcloud secrets versions access latest --secret ${google_secret_manager_secret.ingest_token.secret_id} --project ${var.project_id} | head -n1"
}

output "load_commands" {
  description = "The assignment's two load phases against this deployment, one line per VM (run them from an address in var.loadgen_source_ranges)."
  value = join("\n", concat(
    ["export INGEST_TOKEN=\"$(gcloud secrets versions access latest --secret ${google_secret_manager_secret.ingest_token.secret_id} --project ${var.project_id} | head -n1)\""],
    [for k, v in local.vms : "make load AGENT_URL=http://${google_compute_address.agent[k].address}:${local.agent_port} INGRESS_URL=${local.ingest_url} OUT=out/records-${v.name}.json"],
  ))
}

output "smoke_command" {
  description = "The check to run right after deploying: a few marked records through the Gateway, seen on the relay's websocket, split across both routes, and each agent read once."
  value       = "make smoke INGRESS=${local.ingest_url} RELAY=${local.relay_ws_url} TOKEN=\"$(gcloud secrets versions access latest --secret ${google_secret_manager_secret.ingest_token.secret_id} --project ${var.project_id} | head -n1)\" AGENT_URLS=${join(",", [for k, v in local.vms : "http://${google_compute_address.agent[k].address}:${local.agent_port}"])}"
}

# ---- operating the deployment ----------------------------------------------------

output "relay_url" {
  description = "The websocket relay's HTTPS URL (Cloud Run); its health is /health."
  value       = google_cloud_run_v2_service.relay.uri
}

output "relay_ws_url" {
  description = "The websocket URL the dashboard is given as RELAY_URL."
  value       = local.relay_ws_url
}

output "ingress_address" {
  description = "The Gateway's static IPv4 address; with var.ingest_domain, point the domain's A record here."
  value       = google_compute_global_address.gateway.address
}

output "vm_zone" {
  description = "Zone of the monitored VMs (gcloud compute ssh NAME --zone ZONE --tunnel-through-iap)."
  value       = var.zone
}

output "kmod_status_commands" {
  description = "Per VM, the command that shows whether its kernel modules are in use (the startup script's report)."
  value       = { for k, v in local.vms : v.name => "gcloud compute instances get-guest-attributes ${v.name} --zone ${var.zone} --project ${var.project_id} --query-path=vmpulse/" }
}

output "agent_bundle_uri" {
  description = "Where the agent bundle is (written by the Cloud Build run of apply, or by `make vm-push`)."
  value       = "gs://${google_storage_bucket.agent_bundle.name}/${local.bundle_object}"
}

output "gke_get_credentials" {
  description = "Command that writes kubectl credentials for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.autopilot.name} --region ${var.region} --project ${var.project_id}"
}

output "gke_cluster_name" {
  description = "Name of the GKE Autopilot cluster."
  value       = google_container_cluster.autopilot.name
}

output "region" {
  description = "Region of the cluster, Cloud SQL and the Cloud Run services (gcloud run deploy --region)."
  value       = var.region
}

output "project_id" {
  description = "The project everything was created in (gcloud --project)."
  value       = var.project_id
}

output "relay_service_name" {
  description = "Cloud Run service name of the relay (gcloud run deploy NAME)."
  value       = google_cloud_run_v2_service.relay.name
}

output "web_service_name" {
  description = "Cloud Run service name of the dashboard (gcloud run deploy NAME)."
  value       = google_cloud_run_v2_service.web.name
}

output "image_registry" {
  description = "Where the vmpulse images are: the Artifact Registry repository Cloud Build pushes to (or the Docker Hub remote repository path)."
  value       = local.image_registry
}

output "image_tag" {
  description = "The tag of the images this apply deployed."
  value       = local.image_tag
}

output "build_service_account" {
  description = "The service account Cloud Build runs as (`make release` uses it too)."
  value       = google_service_account.build.email
}

output "build_staging" {
  description = "Where `gcloud builds submit` uploads the sources."
  value       = "gs://${google_storage_bucket.build.name}/source"
}

output "agent_bundle_location" {
  description = "The bucket the build writes the agent bundle to (gs://BUCKET/)."
  value       = "gs://${google_storage_bucket.agent_bundle.name}/"
}

# ---- what the Kubernetes side gets ----------------------------------------------

output "cloudsql_instance_connection_name" {
  description = "Cloud SQL instance connection name, project:region:instance (CLOUDSQL_INSTANCE)."
  value       = google_sql_database_instance.mysql.connection_name
}

output "db_name" {
  description = "Database the routes write to (DB_NAME)."
  value       = google_sql_database.vmpulse.name
}

output "db_user" {
  description = "IAM database user of the routes (DB_USER): the route service account's email up to the \"@\"."
  value       = local.db_user
}

output "db_connection_budget" {
  description = "Connections the routes can open at most (2 routes x (max pods + 1) x DB_CONNS + reserve), against the instance's max_connections."
  value       = "${local.db_connection_budget} of ${local.capacity.max_connections} (${var.capacity}: ${local.capacity.sql_tier}, ${local.capacity.route_max_pods} pods per route, DB_CONNS=${local.capacity.db_conns})"
}

output "pubsub_topic" {
  description = "Pub/Sub topic of committed records (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.records.name
}

output "route_gsa_email" {
  description = "Google service account of the routes, for the iam.gke.io/gcp-service-account annotation of so1-fase2/vmpulse-route."
  value       = google_service_account.route.email
}

output "k8s_config_env" {
  description = "The route ConfigMap's values as KEY=value lines (the same ones k8s_overlay writes)."
  value = join("\n", [
    "CLOUDSQL_INSTANCE=${google_sql_database_instance.mysql.connection_name}",
    "CLOUDSQL_PRIVATE_IP=true",
    "CLOUDSQL_IAM_AUTH=true",
    "DB_USER=${local.db_user}",
    "DB_NAME=${google_sql_database.vmpulse.name}",
    "DB_CONNS=${local.capacity.db_conns}",
    "PUBSUB_PROJECT=${var.project_id}",
    "PUBSUB_TOPIC=${google_pubsub_topic.records.name}",
  ])
}

output "k8s_overlay" {
  description = "The Kustomize overlay of k8s/ that apply wrote to out/k8s/kustomization.yaml and applied (k8s/deploy.sh)."
  value       = local.k8s_overlay
}
