# Every committed record goes to one topic; each relay instance reads it through
# a subscription of its own, which the relay creates at start and deletes on
# SIGTERM (with an expiration policy for instances that die without cleaning up).

# A new subscription only receives what is published after it exists; history on
# connect comes from the relay's own buffer (HISTORY_SIZE), so the topic keeps no
# retention of its own.
resource "google_pubsub_topic" "records" {
  name = var.pubsub_topic
}

# The routes publish...
resource "google_pubsub_topic_iam_member" "route_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# ...and their /healthz reads the topic's metadata (pubsub.topics.get), on this
# topic only.
resource "google_pubsub_topic_iam_member" "route_viewer" {
  project = var.project_id
  topic   = google_pubsub_topic.records.name
  role    = "roles/pubsub.viewer"
  member  = "serviceAccount:${google_service_account.route.email}"
}

# The relay attaches its subscriptions to this topic (pubsub.topics.attachSubscription
# is in roles/pubsub.subscriber) and may read the topic's metadata. Creating,
# reading, consuming and deleting the subscriptions themselves is the project-level
# custom role in iam.tf: the subscriptions do not exist until the relay makes them.
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
