#!/usr/bin/env bash
# The Kubernetes side of a deployment, applied and waited for, or torn down and
# waited for. terraform runs it (terraform/k8s.tf) during apply and destroy; the
# make targets in k8s/deploy.mk run it for releases.
#
#   deploy.sh apply    write the overlay ($K8S_OVERLAY) to $OUT_DIR, apply it,
#                      wait for the GRANT Job, both routes and the Gateway
#   deploy.sh grant    run the GRANT Job again and wait for it
#   deploy.sh release  roll both routes to $ROUTE_IMAGE and wait (`make release`;
#                      the next terraform apply that changes the overlay sets the
#                      image of the sources it built)
#   deploy.sh delete   delete the namespace, then wait until GKE has removed the
#                      load balancer's forwarding rule, NEGs and firewall rules
#
# Environment: PROJECT, REGION, CLUSTER (the GKE cluster); for delete also NETWORK
# and ADDRESS (the Gateway's IP). kubectl runs with credentials of its own
# (a temporary KUBECONFIG from `gcloud container clusters get-credentials`), so
# the operator's current context is neither used nor changed. Every wait has a
# timeout and ends with what failed and where to look.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
GCLOUD="${GCLOUD:-gcloud}"
NS=so1-fase2
OUT_DIR="${OUT_DIR:-$root/out/k8s}"
# A fresh Autopilot cluster brings up a node for the first pod it schedules:
# minutes, not kubectl's default one.
JOB_TIMEOUT_SECONDS="${JOB_TIMEOUT_SECONDS:-900}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-15m}"
GATEWAY_TIMEOUT="${GATEWAY_TIMEOUT:-20m}"
GONE_TIMEOUT_SECONDS="${GONE_TIMEOUT_SECONDS:-1200}"
POLL_SECONDS="${POLL_SECONDS:-15}"
APPLY_ATTEMPTS="${APPLY_ATTEMPTS:-10}"

log() { echo "deploy.sh: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
need() {
  local v
  for v in "$@"; do
    [ -n "${!v:-}" ] || die "$v is not set"
  done
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

credentials() {
  export KUBECONFIG="$tmp/kubeconfig"
  "$GCLOUD" container clusters get-credentials "$CLUSTER" --region "$REGION" --project "$PROJECT" >&2
}

write_overlay() {
  if [ -n "${K8S_OVERLAY:-}" ]; then
    mkdir -p "$OUT_DIR"
    printf '%s\n' "$K8S_OVERLAY" >"$OUT_DIR/kustomization.yaml"
  fi
  [ -f "$OUT_DIR/kustomization.yaml" ] || die "no overlay: set K8S_OVERLAY or run terraform apply first (it writes $OUT_DIR)"
  "$KUBECTL" kustomize "$OUT_DIR" >/dev/null || die "kubectl kustomize $OUT_DIR failed"
}

# The CRDs of a fresh cluster (Gateway API, GKE policies, PodMonitoring,
# SecretProviderClass) can appear a little after the cluster reports ready.
apply_overlay() {
  local i
  for i in $(seq 1 "$APPLY_ATTEMPTS"); do
    if "$KUBECTL" apply -k "$OUT_DIR"; then
      return 0
    fi
    log "kubectl apply failed (attempt $i of $APPLY_ATTEMPTS); retrying in $POLL_SECONDS s"
    sleep "$POLL_SECONDS"
  done
  die "kubectl apply -k $OUT_DIR kept failing"
}

# A finished Job cannot be changed or applied again with another spec; deleting
# it first makes every run start it afresh (the GRANT converges, so a re-run is
# harmless), and never meets AlreadyExists.
delete_grant_job() {
  "$KUBECTL" -n "$NS" delete job vmpulse-db-grant --ignore-not-found --wait=true
}

wait_grant_job() {
  local deadline state
  deadline=$(( $(date +%s) + JOB_TIMEOUT_SECONDS ))
  while :; do
    state="$("$KUBECTL" -n "$NS" get job vmpulse-db-grant -o jsonpath='{.status.conditions[?(@.status=="True")].type}' 2>/dev/null || true)"
    case " $state " in
      *" Complete "*)
        log "GRANT done:"
        "$KUBECTL" -n "$NS" logs job/vmpulse-db-grant --tail=20 >&2 || true
        return 0
        ;;
      *" Failed "*)
        "$KUBECTL" -n "$NS" logs job/vmpulse-db-grant --tail=50 >&2 || true
        die "the GRANT Job failed (logs above; kubectl -n $NS describe job vmpulse-db-grant)"
        ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      "$KUBECTL" -n "$NS" describe job vmpulse-db-grant >&2 || true
      "$KUBECTL" -n "$NS" logs job/vmpulse-db-grant --tail=50 >&2 || true
      die "the GRANT Job did not finish within $JOB_TIMEOUT_SECONDS s"
    fi
    log "waiting for the GRANT Job (a new Autopilot node takes a few minutes)"
    sleep "$POLL_SECONDS"
  done
}

wait_routes() {
  local d
  for d in route1 route2; do
    "$KUBECTL" -n "$NS" rollout status "deployment/$d" --timeout="$ROLLOUT_TIMEOUT" ||
      die "deployment/$d did not become ready (kubectl -n $NS describe deployment $d; kubectl -n $NS logs deployment/$d)"
  done
}

wait_gateway() {
  "$KUBECTL" -n "$NS" wait --for=condition=Programmed gateway/vmpulse --timeout="$GATEWAY_TIMEOUT" ||
    die "the Gateway is not programmed (kubectl -n $NS describe gateway vmpulse)"
}

# leftovers: what GKE's Gateway controller made in the project for this
# deployment and has not deleted yet, one name per line.
leftovers() {
  "$GCLOUD" compute forwarding-rules list --project "$PROJECT" --global \
    --filter="IPAddress=$ADDRESS" --format='value(name)'
  "$GCLOUD" compute network-endpoint-groups list --project "$PROJECT" \
    --filter="network~/$NETWORK\$" --format='value(name)'
  "$GCLOUD" compute firewall-rules list --project "$PROJECT" \
    --filter="network~/$NETWORK\$ AND name~^(gkegw|k8s)" --format='value(name)'
}

case "${1:-}" in
  apply)
    need PROJECT REGION CLUSTER
    write_overlay
    credentials
    delete_grant_job || log "could not delete an earlier GRANT Job (the namespace may not exist yet)"
    apply_overlay
    wait_grant_job
    wait_routes
    wait_gateway
    log "applied $OUT_DIR: the GRANT ran, route1 and route2 are ready, the Gateway is programmed"
    ;;
  grant)
    need PROJECT REGION CLUSTER
    write_overlay
    credentials
    delete_grant_job
    apply_overlay
    wait_grant_job
    ;;
  release)
    need PROJECT REGION CLUSTER ROUTE_IMAGE
    credentials
    for d in route1 route2; do
      "$KUBECTL" -n "$NS" set image "deployment/$d" "route=$ROUTE_IMAGE"
    done
    wait_routes
    log "route1 and route2 run $ROUTE_IMAGE"
    ;;
  delete)
    need PROJECT REGION CLUSTER NETWORK ADDRESS
    if credentials; then
      "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=true --timeout=10m ||
        log "deleting namespace $NS did not finish; waiting for the load balancer anyway"
    else
      log "no credentials for $CLUSTER (already deleted?); waiting for the load balancer anyway"
    fi
    deadline=$(( $(date +%s) + GONE_TIMEOUT_SECONDS ))
    while :; do
      left="$(leftovers)" || die "could not list the load balancer's resources"
      if [ -z "$left" ]; then
        log "the load balancer, its NEGs and its firewall rules are gone"
        break
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        die "still there after $GONE_TIMEOUT_SECONDS s (delete them, then run terraform destroy again): $(echo "$left" | tr '\n' ' ')"
      fi
      log "waiting for GKE to remove: $(echo "$left" | tr '\n' ' ')"
      sleep "$POLL_SECONDS"
    done
    ;;
  *)
    echo "usage: deploy.sh apply|grant|release|delete (see the comment at its top)" >&2
    exit 2
    ;;
esac
