# The two Cloud Run services: the websocket relay and the dashboard. Terraform
# creates them with the images of this apply (local.images); releases are rolled
# out with `gcloud run deploy` (`make release`, k8s/deploy.mk), which keeps every
# other setting, and terraform ignores what gcloud writes (the image, its client
# annotations and labels), so the next apply neither rolls the image back nor
# starts a new revision that would drop every open websocket.
#
# Both are stateless: no deletion protection (a protected service that a failed
# create left tainted would block the next apply), and public without an allUsers
# binding (invoker_iam_disabled), which Domain Restricted Sharing refuses.

locals {
  relay_ws_url = "wss://${trimprefix(google_cloud_run_v2_service.relay.uri, "https://")}/ws"
}

resource "google_cloud_run_v2_service" "relay" {
  name                 = local.relay_service_name
  location             = var.region
  ingress              = "INGRESS_TRAFFIC_ALL"
  deletion_protection  = false
  invoker_iam_disabled = var.public_access

  template {
    service_account = google_service_account.relay.email

    # Websockets are long requests: up to an hour each (the page reconnects), the
    # same instance for a returning browser, and as many sockets per instance as
    # the relay accepts (-max-clients follows the same variable, below).
    timeout                          = "3600s"
    session_affinity                 = true
    max_instance_request_concurrency = var.relay_concurrency

    scaling {
      min_instance_count = var.relay_min_instances
      max_instance_count = var.relay_max_instances
    }

    # Keep the relay first: lifecycle.ignore_changes names containers[0].
    containers {
      name  = "relay"
      image = local.images.relay

      # Cloud Run sets PORT from this.
      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # CPU stays allocated between requests: the Pub/Sub receiver and the
        # websocket fan-out run outside any request.
        cpu_idle          = false
        startup_cpu_boost = true
      }

      env {
        name  = "PUBSUB_PROJECT"
        value = var.project_id
      }
      env {
        name  = "PUBSUB_TOPIC"
        value = google_pubsub_topic.records.name
      }
      env {
        name  = "SUBSCRIPTION_PREFIX"
        value = local.relay_subscription_prefix
      }
      env {
        name  = "ALLOWED_ORIGINS"
        value = join(",", local.allowed_origins)
      }
      # One variable for Cloud Run's concurrency and the relay's own cap: a cap
      # above the concurrency could never be reached, one below it would refuse
      # sockets Cloud Run routed here.
      env {
        name  = "MAX_CLIENTS"
        value = tostring(local.relay_max_clients)
      }
      env {
        name  = "MAX_PER_IP"
        value = tostring(var.relay_max_per_ip)
      }
      env {
        name  = "EXPOSE_PROCESSES"
        value = tostring(var.relay_expose_processes)
      }
      # Cloud Run's front end appends the client's address to X-Forwarded-For:
      # the relay's per-address cap trusts that one hop and no more.
      env {
        name  = "TRUSTED_PROXIES"
        value = "1"
      }
      # /metrics only inside the instance, for the sidecar below.
      env {
        name  = "METRICS_ADDR"
        value = "127.0.0.1:${local.relay_metrics_port}"
      }

      # Traffic only once the instance has its subscription. The window (10 s,
      # then up to 48 × 5 s) is the time the relay has to create it: it retries
      # within this window while a fresh IAM grant propagates, instead of
      # exiting at the first PermissionDenied.
      startup_probe {
        initial_delay_seconds = 10
        period_seconds        = 5
        timeout_seconds       = 3
        failure_threshold     = 48
        http_get {
          path = "/health"
        }
      }
      # /health answers 503 when the subscription stalled and did not heal
      # (paths ending in z never reach a container from outside Cloud Run).
      liveness_probe {
        period_seconds    = 15
        timeout_seconds   = 5
        failure_threshold = 4
        http_get {
          path = "/health"
        }
      }
    }

    # Google Cloud Managed Service for Prometheus for Cloud Run: scrapes the
    # relay's 127.0.0.1:9090/metrics (config from Secret Manager, secrets.tf) and
    # writes them as the relay's service account.
    containers {
      name       = "metrics"
      image      = var.prometheus_sidecar_image
      depends_on = ["relay"]

      # A whole vCPU: with CPU always allocated, Cloud Run's examples of this
      # sidecar give it one, and a fraction is not worth a failed first deploy.
      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = false
      }

      volume_mounts {
        name       = "rungmp-config"
        mount_path = "/etc/rungmp"
      }
    }

    volumes {
      name = "rungmp-config"
      secret {
        secret = google_secret_manager_secret.relay_metrics_config.secret_id
        items {
          version = "latest"
          path    = "config.yaml"
        }
      }
    }
  }

  # What `gcloud run deploy` writes besides the image: client and client_version
  # name the tool, and the annotations and labels carry gcloud's
  # client.knative.dev/user-image and the like. None of them is set here.
  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
      annotations,
      labels,
      template[0].annotations,
      template[0].labels,
    ]

    precondition {
      condition     = var.relay_max_instances >= var.relay_min_instances
      error_message = "relay_max_instances must be at least relay_min_instances."
    }
  }

  depends_on = [
    time_sleep.iam,
    terraform_data.build,
    google_secret_manager_secret_version.relay_metrics_config,
  ]
}

resource "google_cloud_run_v2_service" "web" {
  name                 = local.web_service_name
  location             = var.region
  ingress              = "INGRESS_TRAFFIC_ALL"
  deletion_protection  = false
  invoker_iam_disabled = var.public_access

  template {
    service_account                  = google_service_account.web.email
    max_instance_request_concurrency = 80

    scaling {
      min_instance_count = 0
      max_instance_count = 3
    }

    containers {
      name  = "web"
      image = local.images.web

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        cpu_idle = true
      }

      # Served to the page as /config.json; never baked into the bundle.
      env {
        name  = "RELAY_URL"
        value = local.relay_ws_url
      }
      # The comparison view names each VM's machine type (records do not carry it).
      env {
        name  = "MACHINE_TYPES"
        value = join(",", [for k, v in local.vms : "${v.name}=${v.machine_type}"])
      }
    }
  }

  # What `gcloud run deploy` writes besides the image: client and client_version
  # name the tool, and the annotations and labels carry gcloud's
  # client.knative.dev/user-image and the like. None of them is set here.
  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
      annotations,
      labels,
      template[0].annotations,
      template[0].labels,
    ]
  }

  depends_on = [time_sleep.iam, terraform_data.build]
}
