#!/usr/bin/env bash
# Install or upgrade keepa-deals on this host and restart its systemd units.
#
#   sudo ./deploy_update.sh [--dry-run]
#
# Idempotent: run it after every `git pull`. It installs into the venv, gives .env to
# root and the service's group (mode 0640) and the database files to the service user,
# migrates the database, installs or refreshes the units, restarts them and runs
# `keepa-deals doctor`, failing when doctor fails. It refuses, changing nothing, a .env
# that every user on the host may read and that holds a secret. It never flushes Redis
# and never deletes locks: a live run keeps its lock, and a killed one's lock expires
# by itself (failure mode: stuck locks).
# KEEPA_DOCTOR_WAIT_S (default 60): how long doctor may wait for the restarted units.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "deploy_update.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KEEPA_HOME="${KEEPA_HOME:-$HERE}"
SERVICE_USER="${KEEPA_SERVICE_USER:-keepa-deals}"
SERVICE_GROUP="${KEEPA_SERVICE_GROUP:-$SERVICE_USER}"
UNIT_DIR="${KEEPA_UNIT_DIR:-/etc/systemd/system}"
# Where a running systemd keeps its state (replaced only by the tests).
SYSTEMD_RUNTIME_DIR="${KEEPA_SYSTEMD_RUNTIME_DIR:-/run/systemd/system}"
ENV_FILE="$KEEPA_HOME/.env"
UNITS=(keepa-deals-worker.service keepa-deals-beat.service keepa-deals-dashboard.service)
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

if ! command -v systemctl >/dev/null 2>&1 || [ ! -d "$SYSTEMD_RUNTIME_DIR" ]; then
  echo "deploy_update.sh: systemd is not running on this host; nothing was changed." >&2
  echo "Run the service in the foreground with 'make run' instead." >&2
  exit 1
fi

if [ ! -f "$ENV_FILE" ]; then
  echo "deploy_update.sh: $ENV_FILE is missing; copy .env.example and set KEEPA_API_KEY." >&2
  exit 1
fi

# A .env every user may read has exposed what it holds already: chmod cannot take that
# back, so say so and stop before changing anything (the operator decides on rotating).
env_mode="$(stat -c '%a' "$ENV_FILE")"
if (( 8#$env_mode & 4 )); then
  secrets=()
  if grep -Eq '^[[:space:]]*(export[[:space:]]+)?KEEPA_API_KEY[[:space:]]*=[[:space:]]*["'"'"']?[A-Za-z0-9]' "$ENV_FILE"; then
    secrets+=(KEEPA_API_KEY)
  fi
  if grep -Eq '^[[:space:]]*(export[[:space:]]+)?REDIS_URL[[:space:]]*=.*(://[^/?#]*@|[?&][^=&#]*pass[^=&#]*=)' "$ENV_FILE"; then
    secrets+=("the Redis password in REDIS_URL")
  fi
  if [ "${#secrets[@]}" -gt 0 ]; then
    echo "deploy_update.sh: $ENV_FILE (mode $env_mode) is readable by every user on this host and holds ${secrets[*]}; nothing was changed." >&2
    echo "Run 'chmod o-rwx $ENV_FILE', consider the secret seen (rotate the key at keepa.com), and deploy again." >&2
    exit 1
  fi
fi

step "1/5 install into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  run python3 -m venv "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet -r "$KEEPA_HOME/requirements.txt"
run "$VENV/bin/python" -m pip install --quiet --no-deps "$KEEPA_HOME"

if ! getent group "$SERVICE_GROUP" >/dev/null 2>&1; then
  run groupadd --system "$SERVICE_GROUP"
fi
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --gid "$SERVICE_GROUP" --home-dir "$KEEPA_HOME" \
    --shell /usr/sbin/nologin "$SERVICE_USER"
fi

step "2/5 give .env and the database to the service"
# systemd reads .env as root (EnvironmentFile); the service reads it again as its own
# user, and refuses to start on a file it cannot read (an editor under sudo leaves 0600
# root). Root keeps it, the service's group may read it, nobody else may.
run chown "root:$SERVICE_GROUP" "$ENV_FILE"
run chmod 0640 "$ENV_FILE"
# DEALS_DB_PATH as the service reads it: from .env alone, relative to KEEPA_HOME. A
# setting the service would refuse stops the deploy here, in one line.
read_db_path='import sys
try:
    from keepa_deals.config import Settings
    print(Settings.from_env().deals_db_path)
except Exception as exc:
    sys.exit(f"deploy_update.sh: cannot read DEALS_DB_PATH from .env: {exc}")'
if ! { [ -x "$VENV/bin/python" ] &&
  db_path="$(env -i -C "$KEEPA_HOME" "$VENV/bin/python" -c "$read_db_path")"; }; then
  if [ "$DRY_RUN" != 1 ]; then exit 1; fi
  db_path="var/deals.db"  # a dry run before the first install
  echo "(dry run: taking the default DEALS_DB_PATH, $db_path)"
fi
case "$db_path" in /*) ;; *) db_path="$KEEPA_HOME/$db_path" ;; esac
db_dir="$(dirname "$db_path")"
# SQLite opens a database its user may not write read-only without a word, and every
# run then fails at its first write: a `sudo keepa-deals migrate` leaves root's files.
# The service user gets the folder (SQLite creates -wal and -shm there), the database,
# its -wal and -shm, and beat's schedule beside them.
run install -d -o "$SERVICE_USER" -g "$SERVICE_GROUP" "$db_dir"
for file in "$db_path" "$db_path-wal" "$db_path-shm" "$db_dir"/celerybeat-schedule*; do
  if [ -e "$file" ]; then
    run chown "$SERVICE_USER:$SERVICE_GROUP" "$file"
  fi
done

step "3/5 migrate the database"
run runuser -u "$SERVICE_USER" -- env -C "$KEEPA_HOME" "$VENV/bin/keepa-deals" migrate

step "4/5 install the units and restart them"
changed=0
for unit in "${UNITS[@]}"; do
  rendered="$(sed "s#/opt/keepa-deals#$KEEPA_HOME#g; s#^User=.*#User=$SERVICE_USER#; s#^Group=.*#Group=$SERVICE_GROUP#" \
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
step "5/5 keepa-deals doctor (waiting up to ${DOCTOR_WAIT_S}s for the restarted units)"
run runuser -u "$SERVICE_USER" -- env -C "$KEEPA_HOME" "$VENV/bin/keepa-deals" doctor \
  --wait-s "$DOCTOR_WAIT_S"
step "deployed"
