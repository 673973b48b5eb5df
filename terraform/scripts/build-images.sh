#!/usr/bin/env bash
# Builds the three images and the agent bundle with Cloud Build (cloudbuild.yaml)
# and waits for the build. Run by terraform (build.tf) and by `make release`
# (k8s/deploy.mk), with these set:
#
#   REPO_ROOT        the checkout to build (uploaded without what
#                    build.gcloudignore leaves out)
#   PROJECT REGION   where the build runs
#   REGISTRY TAG     the images are REGISTRY/vmpulse-{route,relay,web}:TAG
#   BUNDLE_LOCATION  gs://BUCKET/ for out/vmpulse-agent-bundle.tar.gz
#   STAGING          gs://BUCKET/PREFIX for the uploaded sources
#   BUILD_SA         the service account the build runs as
set -euo pipefail

for v in REPO_ROOT PROJECT REGION REGISTRY TAG BUNDLE_LOCATION STAGING BUILD_SA; do
  if [ -z "${!v:-}" ]; then
    echo "build-images: $v is not set" >&2
    exit 2
  fi
done
GCLOUD="${GCLOUD:-gcloud}"

echo "build-images: building $REGISTRY/vmpulse-{route,relay,web}:$TAG with Cloud Build (a few minutes)" >&2
exec "$GCLOUD" builds submit "$REPO_ROOT" \
  --project "$PROJECT" \
  --region "$REGION" \
  --config "$REPO_ROOT/terraform/cloudbuild.yaml" \
  --ignore-file terraform/build.gcloudignore \
  --substitutions "_REGISTRY=$REGISTRY,_TAG=$TAG,_BUNDLE_LOCATION=$BUNDLE_LOCATION" \
  --service-account "projects/$PROJECT/serviceAccounts/$BUILD_SA" \
  --gcs-source-staging-dir "$STAGING"
