#!/usr/bin/env bash
# Makes sure a redis-server binary exists, for `make test` and `make bench` (the
# tests start their own server on a free port). Installs Debian's package when it is
# missing and we are root; otherwise says what to do. `make run` does not call this:
# `keepa-deals run` uses REDIS_URL when it answers and installs the binary itself only
# when it has to start a local server.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
  # The package's own service is not needed: the tests start their own.
  exit 0
fi
echo "redis-server is missing. Install it (Debian: 'sudo apt-get install redis-server') and retry." >&2
exit 1
