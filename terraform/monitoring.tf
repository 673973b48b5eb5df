# What Google Cloud watches for the operator: alert policies on the routes'
# Prometheus metrics (scraped by Managed Service for Prometheus, k8s/podmonitoring.yaml),
# on the relay's (its sidecar, run.tf) and on Cloud SQL; an uptime check on the
# dashboard; and a budget. With var.alert_email the alerts mail that address;
# without it they still open incidents in the console.

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == "" ? 0 : 1

  display_name = "vmpulse operator"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [time_sleep.apis]
}

locals {
  notification_channels = google_monitoring_notification_channel.email[*].id

  # PromQL alerts on Managed Prometheus metrics. The metric names are the
  # services' own (functions/ingest, the outbox, functions/relay); they do not
  # exist until the first scrape, so their validation is off.
  prometheus_alerts = {
    route_5xx = {
      name     = "vmpulse: a route answers 5xx"
      query    = "sum by (route) (rate(vmpulse_ingest_requests_total{code=~\"5..\"}[5m])) / sum by (route) (rate(vmpulse_ingest_requests_total[5m])) > 0.05"
      duration = "300s"
      doc      = "More than 5 % of a route's /ingest requests failed with 5xx for 5 minutes. 503 means MySQL is unreachable or slow (the route's /healthz and logs say which); see docs/deploy.md, troubleshooting."
    }
    outbox_backlog = {
      name     = "vmpulse: committed records are not reaching Pub/Sub"
      query    = "max by (route) (vmpulse_outbox_backlog_records) > 1000"
      duration = "300s"
      doc      = "A route's outbox holds more than 1000 committed records that are not yet published: Pub/Sub is down or refusing the route (IAM). Nothing is lost; dashboards fall behind until it drains."
    }
    relay_stall = {
      name     = "vmpulse: the relay receives nothing"
      query    = "max(vmpulse_relay_last_message_age_seconds) > 90"
      duration = "180s"
      doc      = "A relay instance has received no message for 90 s although the routes send a heartbeat every 5 s: its subscription stalled and did not heal (Cloud Run restarts an instance whose /health fails for a minute), or the routes are down."
    }
  }
}

resource "google_monitoring_alert_policy" "prometheus" {
  for_each = local.prometheus_alerts

  display_name          = each.value.name
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = each.value.name
    condition_prometheus_query_language {
      query                     = each.value.query
      duration                  = each.value.duration
      evaluation_interval       = "60s"
      disable_metric_validation = true
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [time_sleep.apis]
}

# Cloud SQL's own metrics: CPU (the routes' strategies should be what a load
# test measures, not a saturated database) and connections near max_connections.
resource "google_monitoring_alert_policy" "sql_cpu" {
  display_name          = "vmpulse: Cloud SQL CPU above 80 %"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Cloud SQL CPU utilization > 0.8 for 5 min"
    condition_threshold {
      filter          = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.mysql.name}\" AND metric.type = \"cloudsql.googleapis.com/database/cpu/utilization\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.8
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MEAN"
      }
    }
  }

  documentation {
    content   = "The database is the bottleneck: a load test now measures Cloud SQL, not route1 against route2. Use a larger var.capacity (docs/deploy.md, cost table)."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "sql_connections" {
  display_name          = "vmpulse: Cloud SQL connections near max_connections"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "connections > 90 % of max_connections"
    condition_threshold {
      filter          = "resource.type = \"cloudsql_database\" AND resource.labels.database_id = \"${var.project_id}:${google_sql_database_instance.mysql.name}\" AND metric.type = \"cloudsql.googleapis.com/database/network/connections\""
      comparison      = "COMPARISON_GT"
      threshold_value = floor(0.9 * local.capacity.max_connections)
      duration        = "120s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Connections are close to max_connections (${local.capacity.max_connections}); the routes' budget is ${local.db_connection_budget}. Something else holds connections, or the budget and the tier disagree."
    mime_type = "text/markdown"
  }
}

# The dashboard answers from outside Google Cloud.
resource "google_monitoring_uptime_check_config" "dashboard" {
  display_name = "vmpulse dashboard"
  timeout      = "10s"
  period       = "300s"

  http_check {
    path         = "/"
    port         = 443
    use_ssl      = true
    validate_ssl = true
    accepted_response_status_codes {
      status_class = "STATUS_CLASS_2XX"
    }
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = local.dashboard_host
    }
  }

  depends_on = [google_cloud_run_v2_service.web]
}

resource "google_monitoring_alert_policy" "dashboard_down" {
  display_name          = "vmpulse: the dashboard does not answer"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "uptime check failing"
    condition_threshold {
      filter          = "resource.type = \"uptime_url\" AND metric.type = \"monitoring.googleapis.com/uptime_check/check_passed\" AND metric.labels.check_id = \"${google_monitoring_uptime_check_config.dashboard.uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "600s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.label.project_id"]
      }
      trigger {
        count = 1
      }
    }
  }
}

# ---- the budget ------------------------------------------------------------------

# Alerts at 50, 90 and 100 % of var.budget_amount (in the billing account's
# currency) spent on this project in a month; 0 creates no budget. Creating a
# budget needs Billing Account Administrator or Costs Manager on the project's
# billing account (docs/deploy.md).
resource "google_billing_budget" "project" {
  count    = var.budget_amount > 0 ? 1 : 0
  provider = google.billing

  billing_account = data.google_project.this.billing_account
  display_name    = "vmpulse ${var.project_id}"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      units = tostring(var.budget_amount)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }

  all_updates_rule {
    monitoring_notification_channels = local.notification_channels
  }

  depends_on = [time_sleep.apis]
}
