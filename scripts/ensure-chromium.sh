#!/usr/bin/env bash
# Makes sure Debian's chromium and chromium-driver exist, for `make test`: the
# dashboard's browser tests drive /usr/bin/chromium through Playwright (which never
# downloads a browser of its own). Installs the packages when they are missing and we
# are root; otherwise says what to do.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium and chromium-driver packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
  exit 0
fi
echo "chromium is missing. Install it (Debian: 'sudo apt-get install chromium chromium-driver') and retry." >&2
exit 1
