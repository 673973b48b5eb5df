# ---- what a person opens -------------------------------------------------------

output "dashboard_url" {
  description = "The dashboard (Cloud Run). Its origin is the one the relay accepts websockets from."
  value       = local.dashboard_url
}

output "relay_url" {
  description = "The websocket relay's HTTPS URL (Cloud Run); /healthz and /metrics live here."
  value       = google_cloud_run_v2_service.relay.uri
}

output "relay_ws_url" {
  description = "The websocket URL the dashboard is given as RELAY_URL."
  value       = local.relay_ws_url
}

output "ingress_url" {
  description = "Base URL of the Gateway (static address reserved here): the load generator's INGRESS_URL. It answers once `kubectl apply -k out/k8s` has run and the load balancer is programmed (a few minutes)."
  value       = "http://${google_compute_global_address.gateway.address}"
}

output "gateway_address" {
  description = "The Gateway's static IPv4 address; `kubectl -n so1-fase2 get gateway vmpulse` shows the same once programmed."
  value       = google_compute_global_address.gateway.address
}

output "agent_url" {
  description = "The agent on the monitored VM: the load generator's AGENT_URL (reachable only from var.loadgen_source_ranges)."
  value       = "http://${google_compute_instance.vm.network_interface[0].access_config[0].nat_ip}:${local.agent_port}"
}

# ---- operating the deployment ---------------------------------------------------

output "vm_name" {
  description = "Name of the monitored VM (gcloud compute ssh NAME --zone ZONE --tunnel-through-iap)."
  value       = google_compute_instance.vm.name
}

output "vm_zone" {
  description = "Zone of the monitored VM."
  value       = google_compute_instance.vm.zone
}

output "agent_bundle_uri" {
  description = "Where `make vm-push` uploads the agent bundle that the VM installs."
  value       = "gs://${google_storage_bucket.agent_bundle.name}/${local.bundle_object}"
}

output "gke_cluster_name" {
  description = "Name of the GKE Autopilot cluster."
  value       = google_container_cluster.autopilot.name
}

output "gke_get_credentials" {
  description = "Command that writes kubectl credentials for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.autopilot.name} --region ${var.region} --project ${var.project_id}"
}

output "region" {
  description = "Region of the cluster, Cloud SQL and the Cloud Run services (gcloud run deploy --region)."
  value       = var.region
}

output "relay_service_name" {
  description = "Cloud Run service name of the relay (gcloud run deploy NAME)."
  value       = google_cloud_run_v2_service.relay.name
}

output "web_service_name" {
  description = "Cloud Run service name of the dashboard (gcloud run deploy NAME)."
  value       = google_cloud_run_v2_service.web.name
}

# ---- what the Kubernetes side needs --------------------------------------------

output "cloudsql_instance_connection_name" {
  description = "Cloud SQL instance connection name, project:region:instance (CLOUDSQL_INSTANCE)."
  value       = google_sql_database_instance.mysql.connection_name
}

output "cloudsql_private_ip" {
  description = "Private IP of the Cloud SQL instance (only reachable from the VPC: the one-time GRANT runs from a pod)."
  value       = google_sql_database_instance.mysql.private_ip_address
}

output "db_name" {
  description = "Database the routes write to (DB_NAME)."
  value       = google_sql_database.vmpulse.name
}

output "db_user" {
  description = "IAM database user of the routes (DB_USER): the route service account's email up to the \"@\"."
  value       = local.db_user
}

output "db_admin_user" {
  description = "Built-in MySQL administrator, used once to GRANT the route user its privileges."
  value       = google_sql_user.admin.name
}

output "db_admin_password" {
  description = "Password of db_admin_user (terraform output -raw db_admin_password)."
  value       = random_password.db_admin.result
  sensitive   = true
}

output "pubsub_topic" {
  description = "Pub/Sub topic of committed records (PUBSUB_TOPIC)."
  value       = google_pubsub_topic.records.name
}

output "route_gsa_email" {
  description = "Google service account of the routes, for the iam.gke.io/gcp-service-account annotation of so1-fase2/vmpulse-route."
  value       = google_service_account.route.email
}

output "gateway_address_name" {
  description = "Name of the reserved global address that the Gateway uses (NamedAddress)."
  value       = google_compute_global_address.gateway.name
}

output "k8s_config_env" {
  description = "The route ConfigMap's values as KEY=value lines (the same ones k8s_overlay writes)."
  value = join("\n", [
    "CLOUDSQL_INSTANCE=${google_sql_database_instance.mysql.connection_name}",
    "CLOUDSQL_PRIVATE_IP=true",
    "CLOUDSQL_IAM_AUTH=true",
    "DB_USER=${local.db_user}",
    "DB_NAME=${google_sql_database.vmpulse.name}",
    "PUBSUB_PROJECT=${var.project_id}",
    "PUBSUB_TOPIC=${google_pubsub_topic.records.name}",
  ])
}

output "k8s_overlay" {
  description = "Kustomize overlay (without images) for k8s/: ConfigMap values, Workload Identity annotation and Gateway address. `make k8s-overlay` writes it to out/k8s/kustomization.yaml."
  value = templatefile("${path.module}/templates/k8s-overlay.yaml.tftpl", {
    cloudsql_instance    = google_sql_database_instance.mysql.connection_name
    db_user              = local.db_user
    db_name              = google_sql_database.vmpulse.name
    project_id           = var.project_id
    pubsub_topic         = google_pubsub_topic.records.name
    route_gsa_email      = google_service_account.route.email
    gateway_address_name = google_compute_global_address.gateway.name
  })
}

output "project_id" {
  description = "The project everything was created in (gcloud --project)."
  value       = var.project_id
}
