#!/usr/bin/env bash
# Makes sure a redis-server binary exists. Installs Debian's package when it is
# missing and we are root; otherwise says what to do.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  # The package's own service is not needed: tests and `make run` start their own.
  exit 0
fi
echo "redis-server is missing. Install it (Debian: 'sudo apt-get install redis-server') and retry." >&2
exit 1
