#!/usr/bin/env bash
# Installs what vmpulse's tests need on Debian/Ubuntu when it is missing, in one
# apt-get call: MariaDB (only when no MySQL answers on 127.0.0.1:3306), Java for
# the Pub/Sub emulator, the kernel test's packages, Chromium for the dashboard
# test, Locust, and shellcheck (the VM bootstrap script's check). Safe to run
# again: it installs nothing that is present.
#
# `deps.sh up` is what `make up` runs: only the MariaDB server, which the local
# stack starts privately (the in-memory stand-in it falls back to is slow). It
# never fails `make up`: without root, passwordless sudo or apt it says how to
# install MariaDB and the stack falls back.
set -euo pipefail

if [ "${1:-}" = up ]; then
  # A MySQL of the user's own (MYSQL_DSN) needs no local server.
  if [ -n "${MYSQL_DSN:-}" ] || command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || [ -x /usr/local/sbin/mariadbd ]; then
    exit 0
  fi
  if ! command -v apt-get >/dev/null; then
    echo "deps: MariaDB is not installed; make up uses its slow in-memory stand-in (install MariaDB for the real engine)" >&2
    exit 0
  fi
  if [ "$(id -u)" -eq 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "deps: MariaDB is not installed and installing it needs root: run \`sudo apt-get install mariadb-server\` for the real engine; make up uses its slow in-memory stand-in meanwhile" >&2
    exit 0
  fi
  echo "deps: installing mariadb-server for make up's private database (the package also starts its own service on 3306)"
  # sudo resets the environment: the frontend setting goes on apt-get's command line.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null ||
    echo "deps: installing mariadb-server failed; make up uses its slow in-memory stand-in" >&2
  exit 0
fi

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
want() { for p in "$@"; do have_pkg "$p" || need+=("$p"); done; }

if ! command -v mysqladmin >/dev/null || ! mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; then
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || want mariadb-server
  command -v mysqladmin >/dev/null || want mariadb-client
fi
command -v java >/dev/null || want default-jre-headless
want linux-headers-amd64 linux-image-amd64 qemu-system-x86 busybox-static cpio
want chromium python3-locust shellcheck
command -v make >/dev/null || want make
command -v gcc >/dev/null || want gcc libc6-dev

if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "deps: everything is installed"
fi

missing=()
command -v go >/dev/null || missing+=("go (https://go.dev/dl, version in go.mod)")
command -v npm >/dev/null || missing+=("node and npm (Node 20 or newer)")
command -v gcloud >/dev/null || missing+=("the Google Cloud CLI with its Pub/Sub emulator (gcloud components install pubsub-emulator beta)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'deps: missing, install by hand: %s\n' "${missing[@]}" >&2
  exit 1
fi
