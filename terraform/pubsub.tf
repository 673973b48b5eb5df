# Every committed record goes to one topic; each relay instance reads it through
# a subscription of its own, which the relay creates at start and deletes on
# SIGTERM (with an expiration policy for instances that die without cleaning up).

# The topic keeps what it received for 30 minutes, so that a relay instance that
# starts (deploy, crash, scale-out) can Seek its fresh subscription to 15 minutes
# ago and serve that history to its first dashboard.
resource "google_pubsub_topic" "records" {
  name                       = var.pubsub_topic
  message_retention_duration = "1800s"

  depends_on = [time_sleep.apis]
}

# The routes publish...
resource "google_pubsub_topic_iam_member" "route_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# ...and read the topic's metadata (pubsub.topics.get) to report Pub/Sub's health
# in /healthz's body and metrics, on this topic only.
resource "google_pubsub_topic_iam_member" "route_viewer" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.viewer"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# The relay attaches its subscriptions to this topic (pubsub.topics.attachSubscription
# is in roles/pubsub.subscriber) and may read the topic's metadata. Creating,
# reading, consuming (and seeking) and deleting the subscriptions themselves is
# the project-level custom role in iam.tf, limited by an IAM condition to the
# relay's own subscription name prefix: the subscriptions do not exist until the
# relay makes them.
resource "google_pubsub_topic_iam_member" "relay_subscriber" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.subscriber"
  member  = "serviceAccount:${google_service_account.relay.email}"
}

resource "google_pubsub_topic_iam_member" "relay_viewer" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.viewer"
  member  = "serviceAccount:${google_service_account.relay.email}"
}
