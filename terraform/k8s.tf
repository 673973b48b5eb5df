# The Kubernetes side, applied and waited for within `terraform apply`:
# k8s/deploy.sh writes the overlay below to out/k8s, applies it, waits for the
# GRANT Job, both routes' rollouts and the Gateway, and says what failed if one
# of them does not come up in time. It runs again whenever the overlay, the
# manifests or the route image change. `terraform destroy` runs it to delete the
# namespace first and wait until GKE has removed the load balancer, its NEGs and
# its firewall rules, which would otherwise keep the VPC and the address from
# being deleted.

locals {
  k8s_overlay = templatefile("${path.module}/templates/k8s-overlay.yaml.tftpl", {
    https                = var.ingest_domain != ""
    cloudsql_instance    = google_sql_database_instance.mysql.connection_name
    db_user              = local.db_user
    db_name              = google_sql_database.vmpulse.name
    db_conns             = local.capacity.db_conns
    db_host              = google_sql_database_instance.mysql.private_ip_address
    db_admin             = google_sql_user.admin.name
    project_id           = var.project_id
    pubsub_topic         = google_pubsub_topic.records.name
    route_image_name     = "${local.image_registry}/vmpulse-route"
    route_image_tag      = local.image_tag
    mysql_image_name     = local.mysql_image
    route_gsa_email      = google_service_account.route.email
    gateway_address_name = google_compute_global_address.gateway.name
    certificate_name     = local.ingest_certificate
    security_policy      = google_compute_security_policy.ingest.name
    route_max_pods       = local.capacity.route_max_pods
    ingest_token_secret  = google_secret_manager_secret.ingest_token.secret_id
    db_admin_secret      = google_secret_manager_secret.db_admin.secret_id
  })
}

resource "terraform_data" "k8s" {
  triggers_replace = [
    sha256(local.k8s_overlay),
    module.sources.k8s_hash,
  ]

  provisioner "local-exec" {
    command = "bash ${path.module}/../k8s/deploy.sh apply"
    environment = {
      PROJECT     = var.project_id
      REGION      = var.region
      CLUSTER     = google_container_cluster.autopilot.name
      K8S_OVERLAY = local.k8s_overlay
      OUT_DIR     = "${abspath("${path.module}/..")}/out/k8s"
    }
  }

  depends_on = [
    terraform_data.k8s_teardown,
    time_sleep.iam,
    time_sleep.iam_cluster,
    terraform_data.build,
    terraform_data.ingest_token_seed,
    google_sql_user.route,
    google_sql_user.admin,
    google_compute_managed_ssl_certificate.ingest,
  ]
}

# The teardown lives in a resource of its own that is never replaced (it has no
# triggers_replace; a changed input is updated in place): a destroy-time step on
# terraform_data.k8s would also run on every redeploy, since a replacement
# destroys the old instance first, and would take the load balancer down each
# time. It depends on the cluster, the network and the address (through input),
# so `terraform destroy` runs it before any of them goes.
resource "terraform_data" "k8s_teardown" {
  # What the destroy-time step needs (it may refer to nothing but self).
  input = {
    repo_root = abspath("${path.module}/..")
    project   = var.project_id
    region    = var.region
    cluster   = google_container_cluster.autopilot.name
    network   = google_compute_network.vpc.name
    address   = google_compute_global_address.gateway.address
  }

  provisioner "local-exec" {
    when    = destroy
    command = "bash ${self.input.repo_root}/k8s/deploy.sh delete"
    environment = {
      PROJECT = self.input.project
      REGION  = self.input.region
      CLUSTER = self.input.cluster
      NETWORK = self.input.network
      ADDRESS = self.input.address
    }
  }
}
