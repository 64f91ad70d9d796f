#!/usr/bin/env bash
# The package on every CPython this machine has besides the project's 3.11: for each of
# python3.12 and python3.13 found (on PATH, or pyenv's), a fresh virtualenv with the package and
# its test extra, then: every package imports, `bmrs --help`, a short `bmrs demo` (a real local
# cluster against the simulator), and the unit tests (no broker, no cluster).
#
#   bash scripts/python-versions.sh            # the versions found; exits non-zero if one fails
#   VERSIONS="3.13" bash scripts/python-versions.sh
#
# Not in .ci/run (each version installs every dependency: minutes); README says what it found.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VERSIONS=${VERSIONS:-3.12 3.13}
WORK=${WORK:-/tmp/bmrs-python-versions}
UNIT_TESTS=(tests/test_catalog.py tests/test_settlement.py tests/test_parse.py tests/test_parse_fast_path.py
  tests/test_dedup_paths.py tests/test_local_warehouse.py tests/test_pipeline.py tests/test_inspect.py
  tests/test_dashboard_model.py)
mkdir -p "$WORK"
failed=()
tested=()

find_python() {  # python3.X on PATH, else pyenv's newest 3.X
  local v=$1 p
  p=$(command -v "python$v" 2>/dev/null || true)
  if [ -n "$p" ] && "$p" -c 'import sys' 2>/dev/null; then echo "$p"; return; fi
  p=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$v".* 2>/dev/null | sort -V | tail -1)
  [ -n "$p" ] && [ -x "$p/bin/python" ] && echo "$p/bin/python"
}

for v in $VERSIONS; do
  py=$(find_python "$v") || true
  if [ -z "$py" ]; then echo "== python$v: not on this machine, skipped"; continue; fi
  venv=$WORK/py$v
  echo "== python$v: $("$py" -c 'import sys; print(sys.version.split()[0])') ($py)"
  if ! { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } \
    || ! "$venv/bin/pip" install -q ".[test]" >"$WORK/pip-$v.log" 2>&1; then
    echo "   install failed: $WORK/pip-$v.log"; failed+=("$v install"); continue
  fi
  run() {  # name, command...: the tree's code (PYTHONPATH), not the installed copy
    local name=$1; shift
    if (cd "$WORK" && PYTHONPATH=$ROOT "$@") >"$WORK/$name-$v.log" 2>&1; then
      echo "   $name: ok ($(tail -1 "$WORK/$name-$v.log"))"
    else
      echo "   $name: FAILED, see $WORK/$name-$v.log"; failed+=("$v $name")
    fi
  }
  run import "$venv/bin/python" -c 'import worker.cli, worker.cluster.celery_app, worker.health, worker.sinks.local, worker.sinks.bigquery, beat.scheduler, iris_listener.run, sheets; print("every package imports")'
  run help "$venv/bin/bmrs" --help
  run demo env BMRS_DATA_DIR="$WORK/data-$v" "$venv/bin/bmrs" demo --days 1 --workers 1 \
    --datasets FUELINST,MID --redis-port $((16379 + ${v#3.})) --flower-port $((15555 + ${v#3.}))
  run unit "$venv/bin/python" -m pytest -q -p no:cacheprovider "${UNIT_TESTS[@]/#/$ROOT/}"
  tested+=("$v")
done
echo "tested: ${tested[*]:-none}"
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
