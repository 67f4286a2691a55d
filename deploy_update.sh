#!/usr/bin/env bash
# Install or upgrade keepa-deals on this host and restart its systemd units.
#
#   sudo ./deploy_update.sh [--dry-run]
#
# Idempotent: run it after every `git pull`. It installs into the venv, migrates the
# database, installs or refreshes the units, restarts them and runs `keepa-deals
# doctor`, failing when doctor fails. It never flushes Redis and never deletes locks:
# a live run keeps its lock, and a killed one's lock expires by itself (failure mode: stuck locks).
# KEEPA_DOCTOR_WAIT_S (default 60): how long doctor may wait for the restarted units.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "deploy_update.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEEPA_HOME="${KEEPA_HOME:-$HERE}"
SERVICE_USER="${KEEPA_SERVICE_USER:-keepa-deals}"
UNIT_DIR="${KEEPA_UNIT_DIR:-/etc/systemd/system}"
UNITS=(keepa-deals-worker.service keepa-deals-beat.service)
VENV="$KEEPA_HOME/.venv"
DOCTOR_WAIT_S="${KEEPA_DOCTOR_WAIT_S:-60}"
case "$DOCTOR_WAIT_S" in
  ''|*[!0-9]*) echo "deploy_update.sh: KEEPA_DOCTOR_WAIT_S must be whole seconds, got '$DOCTOR_WAIT_S'" >&2; exit 2 ;;
esac

run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

step() { printf '==> %s\n' "$*"; }

if ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
  echo "deploy_update.sh: systemd is not running on this host; nothing was changed." >&2
  echo "Run the service in the foreground with 'make run' instead." >&2
  exit 1
fi

if [ ! -f "$KEEPA_HOME/.env" ]; then
  echo "deploy_update.sh: $KEEPA_HOME/.env is missing; copy .env.example and set KEEPA_API_KEY." >&2
  exit 1
fi

step "1/4 install into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  run python3 -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet -r "$KEEPA_HOME/requirements.txt"
run "$VENV/bin/python" -m pip install --quiet --no-deps "$KEEPA_HOME"

if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --home-dir "$KEEPA_HOME" --shell /usr/sbin/nologin "$SERVICE_USER"
fi
run install -d -o "$SERVICE_USER" -g "$SERVICE_USER" "$KEEPA_HOME/var"

step "2/4 migrate the database"
run runuser -u "$SERVICE_USER" -- env -C "$KEEPA_HOME" "$VENV/bin/keepa-deals" migrate

step "3/4 install the units and restart them"
changed=0
for unit in "${UNITS[@]}"; do
  rendered="$(sed "s#/opt/keepa-deals#$KEEPA_HOME#g; s#^User=.*#User=$SERVICE_USER#; s#^Group=.*#Group=$SERVICE_USER#" \
    "$KEEPA_HOME/deploy/systemd/$unit")"
  if [ ! -f "$UNIT_DIR/$unit" ] || [ "$rendered" != "$(cat "$UNIT_DIR/$unit")" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      echo "would write $UNIT_DIR/$unit"
    else
      printf '%s\n' "$rendered" > "$UNIT_DIR/$unit"
    fi
    changed=1
  fi
done
if [ "$changed" = 1 ]; then run systemctl daemon-reload; fi
run systemctl enable "${UNITS[@]}"
# A restart sends SIGTERM to the worker's main process (KillMode=mixed): its runs stop
# at their next check, settle their grants and release their locks (warm shutdown,
# keepa_deals/service/shutdown.py) before the new code starts.
run systemctl restart "${UNITS[@]}"

# Right after a restart the worker is still starting and does not answer pings yet:
# doctor retries its failing checks for up to DOCTOR_WAIT_S seconds (a deadline it
# computes once) and fails only what is still failing then.
step "4/4 keepa-deals doctor (waiting up to ${DOCTOR_WAIT_S}s for the restarted units)"
run runuser -u "$SERVICE_USER" -- env -C "$KEEPA_HOME" "$VENV/bin/keepa-deals" doctor \
  --wait-s "$DOCTOR_WAIT_S"
step "deployed"
