#!/usr/bin/env bash
# Installs what vmpulse's tests need on Debian/Ubuntu when it is missing, in one
# apt-get call: MariaDB (only when no MySQL answers on 127.0.0.1:3306), Java for
# the Pub/Sub emulator, the kernel test's packages, Chromium for the dashboard
# test, Locust, and shellcheck (the VM bootstrap script's check). Safe to run
# again: it installs nothing that is present.
set -euo pipefail

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
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
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
