#!/usr/bin/env bash
# Starts what vmpulse's integration tests talk to when it is not running:
# MariaDB on 127.0.0.1:3306 (root, no password) and the Google Cloud Pub/Sub
# emulator on 127.0.0.1:${PUBSUB_TEST_PORT:-8681}. Waits until both answer.
set -euo pipefail
port=${PUBSUB_TEST_PORT:-8681}
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "services: $name did not come up within ${secs}s" >&2
  return 1
}

mysql_up() { mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping; }
if ! mysql_up >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  if command -v start-stop-daemon >/dev/null; then
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  else
    $SUDO service mariadb start
  fi
  wait_for MariaDB 60 mysqladmin --protocol=socket -uroot ping
  # A fresh Debian install lets root in through the unix socket only.
  if ! mysql --protocol=tcp -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    $SUDO mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
  fi
  wait_for MariaDB 30 mysql_up
fi
echo "services: MariaDB answers on 127.0.0.1:3306"

emu_up() { curl -sf "http://127.0.0.1:${port}/" ; }
if ! emu_up >/dev/null 2>&1; then
  echo "services: starting the Pub/Sub emulator on 127.0.0.1:${port}"
  mkdir -p out
  nohup gcloud beta emulators pubsub start --host-port="127.0.0.1:${port}" --project=vmpulse-test \
    --quiet > out/pubsub-emulator.log 2>&1 &
  wait_for "the Pub/Sub emulator (log: out/pubsub-emulator.log)" 90 emu_up
fi
echo "services: Pub/Sub emulator answers on 127.0.0.1:${port}"
