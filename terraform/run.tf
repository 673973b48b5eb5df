# The two Cloud Run services: the websocket relay and the dashboard. Terraform
# creates them with var.registry/var.image_tag; later releases are rolled out with
#   gcloud run deploy SERVICE --image REGISTRY/IMAGE:TAG --region REGION
# which keeps every other setting, and terraform ignores the image it then sees.

locals {
  relay_ws_url = "wss://${trimprefix(google_cloud_run_v2_service.relay.uri, "https://")}/ws"
}

resource "google_cloud_run_v2_service" "relay" {
  name                = local.relay_service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account = google_service_account.relay.email

    # Websockets are long requests: up to an hour each (the page reconnects), the
    # same instance for a returning browser, many sockets per instance.
    timeout                          = "3600s"
    session_affinity                 = true
    max_instance_request_concurrency = var.relay_concurrency

    scaling {
      min_instance_count = var.relay_min_instances
      max_instance_count = var.relay_max_instances
    }

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
        value = "${var.prefix}-relay-"
      }
      env {
        name  = "ALLOWED_ORIGINS"
        value = join(",", local.allowed_origins)
      }

      # Traffic only once the instance has its subscription.
      startup_probe {
        period_seconds    = 2
        timeout_seconds   = 2
        failure_threshold = 30
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]

    precondition {
      condition     = var.relay_max_instances >= var.relay_min_instances
      error_message = "relay_max_instances must be at least relay_min_instances."
    }
  }

  depends_on = [
    google_project_iam_member.relay_subscriptions,
    google_pubsub_topic_iam_member.relay_subscriber,
    google_pubsub_topic_iam_member.relay_viewer,
  ]
}

resource "google_cloud_run_v2_service" "web" {
  name                = local.web_service_name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

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
    }
  }

  lifecycle {
    ignore_changes = [
      template[0].containers[0].image,
      client,
      client_version,
    ]
  }
}

# A browser cannot attach IAM credentials to a websocket or a page load: both
# services are public when var.public_access is true.
resource "google_cloud_run_v2_service_iam_member" "relay_public" {
  count = var.public_access ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.relay.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "web_public" {
  count = var.public_access ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.web.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
