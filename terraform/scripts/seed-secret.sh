#!/usr/bin/env bash
# Gives a Secret Manager secret its first version when it has no enabled one:
# 32 random bytes as 43 letters and digits, one line. Run by terraform
# (secrets.tf, terraform_data.ingest_token_seed) with PROJECT and SECRET set.
#
# The value goes from /dev/urandom to `gcloud secrets versions add` through a
# pipe: it is never an argument (ps), never printed, never in terraform's state.
# Safe to re-run: a secret that already has an enabled version is left alone, so
# a rotation made by the operator (docs/security.md) is never undone.
set -euo pipefail

: "${PROJECT:?PROJECT must name the Google Cloud project}"
: "${SECRET:?SECRET must name the Secret Manager secret}"
GCLOUD="${GCLOUD:-gcloud}"

existing="$("$GCLOUD" secrets versions list "$SECRET" --project "$PROJECT" \
  --filter='state=ENABLED' --limit=1 --format='value(name)')"
if [ -n "$existing" ]; then
  echo "seed-secret: $SECRET already has an enabled version; leaving it" >&2
  exit 0
fi

token() {
  # base64 of 48 random bytes, letters and digits only, first 43 of them.
  head -c 48 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 43
}

value="$(token)"
if [ "${#value}" -lt 32 ]; then
  echo "seed-secret: could not make a random value" >&2
  exit 1
fi
printf '%s\n' "$value" | "$GCLOUD" secrets versions add "$SECRET" --project "$PROJECT" --data-file=- >/dev/null
unset value
echo "seed-secret: $SECRET has its first version (read it with: gcloud secrets versions access latest --secret $SECRET --project $PROJECT)" >&2
