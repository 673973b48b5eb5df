#!/usr/bin/env bash
# One-time step after `terraform apply` (docs/deploy.md, `make db-grant`): give the
# routes' IAM database user its privileges on the vmpulse database. An IAM user
# starts with none, and the instance has only a private IP, so the GRANT runs from
# a throwaway mysql client pod in the cluster, as the built-in admin user whose
# password terraform generated. The password travels on the pod's stdin, never in
# its spec. Needs: terraform state in terraform/, kubectl credentials for the
# cluster (gcloud container clusters get-credentials ...).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tf() { "${TERRAFORM:-terraform}" -chdir="$root/terraform" output -raw "$1"; }

host="$(tf cloudsql_private_ip)"
admin="$(tf db_admin_user)"
user="$(tf db_user)"
db="$(tf db_name)"
# db and user come from validated terraform values: [a-z0-9_] and [a-z0-9-].
sql="GRANT ALL PRIVILEGES ON \`$db\`.* TO '$user'@'%'; SHOW GRANTS FOR '$user'@'%';"

echo "granting on $db to $user at $host (pod vmpulse-db-grant in namespace default)" >&2
tf db_admin_password | "${KUBECTL:-kubectl}" run vmpulse-db-grant \
  --namespace default --rm -i --quiet --restart=Never --image=mysql:8.4 \
  --env="DB_HOST=$host" --env="DB_ADMIN=$admin" --env="GRANT_SQL=$sql" \
  --command -- sh -c 'IFS= read -r MYSQL_PWD; export MYSQL_PWD; exec mysql --host="$DB_HOST" --user="$DB_ADMIN" --ssl-mode=REQUIRED --execute="$GRANT_SQL"'
