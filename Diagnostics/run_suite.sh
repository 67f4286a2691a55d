#!/usr/bin/env bash
# All diagnostics in one command: a summary, and exit 1 when anything is unhealthy.
#
#   Diagnostics/run_suite.sh            (from the install directory, where .env lives)
#
# Read-only, apart from test_token_manager_logic.py's scratch keys under their own
# prefix (deleted afterwards) and one free Keepa /token call. Secrets are masked.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${KEEPA_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3

declare -a names results
run() {
  local name="$1"; shift
  echo "=== $name"
  "$@"
  local rc=$?
  names+=("$name"); results+=("$rc")
  echo
}

# doctor: Redis reachable and its eviction policy, the database, Keepa, workers alive
# (celery inspect ping), the token state, locks and their holders, beat judged from the
# last runs, and progress.
run "doctor" "$PY" -m keepa_deals doctor
run "recharge" "$PY" "$HERE/check_pause_status.py"
run "tokens vs Keepa" "$PY" "$HERE/token_status.py"
run "progress" "$PY" "$HERE/check_progress.py"
run "token logic" "$PY" "$HERE/test_token_manager_logic.py"

echo "=== summary"
failed=0
for i in "${!names[@]}"; do
  if [ "${results[$i]}" = 0 ]; then verdict="ok"; else verdict="UNHEALTHY"; failed=1; fi
  printf '%-16s %s\n' "${names[$i]}" "$verdict"
done
exit "$failed"
