#!/usr/bin/env bash
# `docker compose up` for real: build the Dockerfile, bring the demo profile up, use it, break it,
# restart it, and stop everything. Exits non-zero naming the step that failed.
#
#   bash scripts/container-check.sh          # about 6 minutes from nothing, less when cached
#   KEEP=1 bash scripts/container-check.sh   # leave the cluster running afterwards
#
# The engine comes from ../shared/containers/run-compose.sh (RUN_COMPOSE): podman 4.3 serving
# the Docker API, the real `docker compose`, locally made base images, a network namespace with
# no way out. Its stages are reused (setup, images, build, start, stop); the cluster itself is
# driven here with the project's docker-compose.yml ALONE (NO_OVERRIDE=1: never its podman
# override file), exactly as a user would: `cp .env.example .env`, `docker compose --profile
# demo up -d`.
#
# Steps: build; up (every service healthy); status; a 3-day backfill of two datasets in a
# worker; Flower (bind address, refuses without its password, lists the workers with it,
# refuses the example password outside the demo); a worker container killed (`docker kill`)
# mid-backfill and the job still complete with no duplicate; the simulator and Redis exiting 0
# on stop; `down` then `up` with the data and the jobs kept; stop.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_COMPOSE=${RUN_COMPOSE:-$ROOT/../shared/containers/run-compose.sh}
export CTR=${CTR:-/tmp/bmrs-container-check}
export SRC=$ROOT
# The project's compose file alone: run-compose.sh's env.sh honours this.
export NO_OVERRIDE=1
PROJ=$CTR/main
LOG=$CTR/logs
# Generous limits: the machine may be shared and slow. Each is a ceiling, not a sleep.
HEALTHY_TIMEOUT_S=${HEALTHY_TIMEOUT_S:-600}
JOB_TIMEOUT_S=${JOB_TIMEOUT_S:-600}
T_START=$SECONDS
STEP=preflight
declare -A MEASURED=()

say() { echo "== $(date +%T) [$STEP] $*"; }
step() { STEP=$1; shift; say "$*"; }
fail() { echo "container-check: FAILED at step '$STEP': $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    echo "container-check: FAILED at step '$STEP' (exit $rc); logs in $LOG" >&2
    if [ -S "$CTR/run/podman.sock" ] && [ -d "$PROJ" ]; then
      (cd "$PROJ" && compose ps -a) >&2 2>&1 || true
    fi
  fi
  if [ -z "${KEEP:-}" ] && [ -f "$CTR/env.sh" ]; then
    STEP=stop
    say "stop everything (run-compose.sh stop)"
    bash "$RUN_COMPOSE" stop >"$LOG/stop.log" 2>&1 || echo "container-check: stop failed, see $LOG/stop.log" >&2
    tail -2 "$LOG/stop.log" || true
  fi
  exit "$rc"
}
trap cleanup EXIT

compose() { docker compose "$@"; }
in_worker() { compose exec -T worker "$@" </dev/null; }  # CI has no standard input
in_ns() { nsenter "--net=$CTR/netns" "$@"; }

# Every service of the demo profile running, and healthy (they all have a healthcheck).
wait_healthy() {
  local what=$1 t0=$SECONDS want states bad
  want=$(compose config --services | wc -l)
  while :; do
    states=$(compose ps -a --format '{{.Service}} {{.State}} {{.Health}}' 2>/dev/null | sort)
    bad=$(echo "$states" | awk '$2 != "running" || $3 != "healthy"')
    if [ "$(echo "$states" | grep -c .)" -ge "$want" ] && [ -z "$bad" ]; then
      MEASURED[$what]=$((SECONDS - t0))
      say "all $want services running and healthy after $((SECONDS - t0)) s"
      return 0
    fi
    if [ $((SECONDS - t0)) -ge "$HEALTHY_TIMEOUT_S" ]; then
      echo "$states" >&2
      fail "not every service healthy after ${HEALTHY_TIMEOUT_S}s (want $want); not healthy: $(echo "$bad" | awk '{print $1"="$2"/"$3}' | tr '\n' ' ')"
    fi
    sleep 2
  done
}

# `bmrs job ID --json` in a worker, summarised as "done failed pending".
job_counts() {
  in_worker bmrs job "$1" --json | python3 -c '
import json, sys
totals = json.load(sys.stdin)["totals"]
print(totals["done"], totals["failed"], totals["pending"])'
}

wait_job() {  # job id: until no chunk is pending; then none may have failed
  local job=$1 t0=$SECONDS counts
  while :; do
    counts=$(job_counts "$job") || fail "cannot read job $job"
    read -r done failed pending <<<"$counts"
    if [ "$pending" = 0 ]; then
      [ "$failed" = 0 ] || fail "job $job finished with $failed failed chunks ($done done)"
      say "job $job complete: $done chunks done, 0 failed, $((SECONDS - t0)) s"
      return 0
    fi
    [ $((SECONDS - t0)) -lt "$JOB_TIMEOUT_S" ] \
      || fail "job $job not complete after ${JOB_TIMEOUT_S}s: $done done, $failed failed, $pending pending"
    sleep 2
  done
}

# Rows per dataset in <code>_latest (some, and no natural key twice), read in a worker.
check_rows_no_duplicates() {
  in_worker python -c '
import sys
from worker.elexon import catalog
from worker.settings import get_settings
from worker.sinks import open_sink
sink = open_sink(get_settings())
bad = []
for code in sys.argv[1:]:
    key = ", ".join(f"\"{k}\"" for k in catalog.get(code).natural_key)
    row = sink.query(f"select count(*) as n, count(distinct ({key})) as k from {code.lower()}_latest").to_pylist()[0]
    n, k = row["n"], row["k"]
    print(f"  {code}: {n} rows in {code.lower()}_latest, {k} distinct natural keys")
    if not n or n != k:
        bad.append(code)
sys.exit(1 if bad else 0)
' "$@"
}

rows_of() {
  in_worker bmrs query --format json "select count(*) as n from $1_latest" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["n"])'
}

# -- the engine -------------------------------------------------------------------------------------
step engine "engine, base images (run-compose.sh setup images); waits for another apt to finish"
mkdir -p "$LOG"
if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  for _ in $(seq 1 120); do  # another apt-get (a colleague's) holds the dpkg lock: wait for it
    pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null || break
    sleep 5
  done
fi
bash "$RUN_COMPOSE" setup >"$LOG/setup.log" 2>&1 || fail "run-compose.sh setup, see $LOG/setup.log"
bash "$RUN_COMPOSE" images >"$LOG/images.log" 2>&1 || fail "run-compose.sh images, see $LOG/images.log"
# shellcheck disable=SC1091
. "$CTR/env.sh"
[ "$COMPOSE_FILE" = "$PROJ/docker-compose.yml" ] || fail "COMPOSE_FILE=$COMPOSE_FILE: not the project's file alone"

step build "build the Dockerfile (run-compose.sh build copies $SRC to $PROJ)"
t0=$SECONDS
bash "$RUN_COMPOSE" build >"$LOG/build-step.log" 2>&1 || fail "image build, see $LOG/build.log"
MEASURED[build_s]=$((SECONDS - t0))
MEASURED[image_mb]=$(podman image inspect bmrs-cluster:local --format '{{.Size}}' | awk '{printf "%.0f", $1/1e6}')
say "built in ${MEASURED[build_s]} s: bmrs-cluster:local ${MEASURED[image_mb]} MB"
# The user's .env is the example one; the check shortens the task time limits and retry delays so
# that a killed worker's chunk comes back in ~40 s instead of minutes (settings reach the
# containers from .env by name: this also proves that). A budget of 1 request/s makes the
# 62-chunk job of the kill step last over a minute, so the kill surely lands mid-job.
cat >>"$PROJ/.env" <<'EOF'

# --- scripts/container-check.sh ---
BMRS_TASK_SOFT_TIME_LIMIT_S=20
BMRS_TASK_TIME_LIMIT_S=30
BMRS_VISIBILITY_TIMEOUT_S=40
BMRS_RETRY_BACKOFF_S=2
BMRS_RETRY_BACKOFF_MAX_S=10
BMRS_RATE_PER_S=1
BMRS_RATE_BURST=2
EOF

step start "namespace, podman API service, healthcheck driver (run-compose.sh start)"
bash "$RUN_COMPOSE" start >"$LOG/start.log" 2>&1 || fail "run-compose.sh start, see $LOG/start.log"
cd "$PROJ"

# -- up ---------------------------------------------------------------------------------------------
step up "docker compose --profile demo up -d"
compose --profile demo up -d >"$LOG/up.log" 2>&1 || fail "compose up, see $LOG/up.log"
wait_healthy healthy_s
compose ps -a --format '{{.Name}} {{.Status}}' | sort
[ -z "$(podman volume ls -q --filter dangling=true | grep -v -E '^bmrs_')" ] \
  || fail "anonymous volumes left: $(podman volume ls -q | tr '\n' ' ')"
uid=$(podman top "$(compose ps -q redis)" user huser 2>/dev/null | awk 'NR==2 {print $1}')
[ -n "$uid" ] && [ "$uid" != root ] || fail "Redis runs as '${uid:-?}', not its own user"
say "Redis runs as $uid; no anonymous volume"

step status "bmrs status in a worker"
in_worker bmrs status >"$LOG/status.log" 2>&1 || { cat "$LOG/status.log"; fail "bmrs status exited non-zero"; }
sed -n 1,8p "$LOG/status.log"

step backfill "3-day backfill of FUELINST and MID in a worker (--wait)"
t0=$SECONDS
in_worker bmrs backfill FUELINST,MID --start 2025-11-01 --end 2025-11-03 --wait >"$LOG/backfill.log" 2>"$LOG/backfill.err" \
  || { tail -20 "$LOG/backfill.log" "$LOG/backfill.err"; fail "bmrs backfill --wait exited non-zero"; }
tail -4 "$LOG/backfill.log"
MEASURED[backfill_s]=$((SECONDS - t0))
JOB=$(sed -n 1p "$LOG/backfill.log")  # stdout's first line is the job id
[[ "$JOB" =~ ^[0-9a-f]+$ ]] || fail "no job id printed (first line: '$JOB')"
wait_job "$JOB"
check_rows_no_duplicates FUELINST MID || fail "missing rows or duplicate keys after the backfill"
FUEL_ROWS=$(rows_of fuelinst)
say "job $JOB: ${MEASURED[backfill_s]} s; fuelinst_latest $FUEL_ROWS rows"

step flower "Flower: published on 127.0.0.1, refuses without its password, lists the workers with it"
published=$(compose port flower 5555)
[ "${published%:*}" = 127.0.0.1 ] || fail "Flower published on $published, not 127.0.0.1"
pass=$(grep -E '^FLOWER_BASIC_AUTH=' .env | cut -d= -f2-)
code() { in_ns curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code http://127.0.0.1:5555/)" = 401 ] || fail "Flower answers without a password"
[ "$(code -u admin:wrong http://127.0.0.1:5555/)" = 401 ] || fail "Flower accepts a wrong password"
[ "$(code -u "$pass" http://127.0.0.1:5555/)" = 200 ] || fail "Flower refuses its own password"
workers=$(in_ns curl -s -u "$pass" 'http://127.0.0.1:5555/api/workers?refresh=1' \
  | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))')
for id in $(compose ps -q worker worker-realtime); do
  host=$(podman inspect "$id" --format '{{.Config.Hostname}}')
  case " $workers " in *" celery@$host "*) ;; *) fail "Flower does not list celery@$host (it lists: $workers)";; esac
done
say "401 without / with a wrong password, 200 with it; workers: $workers"
# Outside the demo profile (a project without the simulator) the example password is refused.
# (`timeout`: were it to start, Flower would run until stopped.)
out=$(COMPOSE_PROFILES='' timeout 120 docker compose -p bmrs-nodemo run --rm --no-deps -T flower </dev/null 2>&1) || true
compose -p bmrs-nodemo down -v >/dev/null 2>&1 || true
echo "$out" | grep -q "refusing to serve Flower with the example password" \
  || fail "Flower outside the demo profile did not refuse the example password: $(echo "$out" | tail -5)"
say "outside the demo profile: $(echo "$out" | grep -o 'refusing[^(]*' | head -1)"

# -- a worker killed mid-backfill -------------------------------------------------------------------
step kill "two backfill workers; a 31-day backfill of both; docker kill one mid-way; the job completes, no duplicate"
compose --profile demo up -d --scale worker=2 --no-recreate >"$LOG/scale.log" 2>&1 || fail "scale worker=2, see $LOG/scale.log"
wait_healthy scaled_healthy_s
t0=$SECONDS
KJOB=$(in_worker bmrs backfill FUELINST,MID --start 2025-08-01 --end 2025-08-31 2>>"$LOG/kill.err" | sed -n 1p)
[[ "$KJOB" =~ ^[0-9a-f]+$ ]] || fail "no job id for the kill backfill (got '$KJOB')"
victim=""
while [ $((SECONDS - t0)) -lt "$JOB_TIMEOUT_S" ]; do
  read -r done failed pending <<<"$(job_counts "$KJOB")"
  [ "$pending" != 0 ] || fail "job $KJOB finished ($done chunks) before a worker could be killed mid-way"
  if [ "$done" -ge 2 ]; then
    victim=$(compose ps -q worker | tail -1)
    docker kill "$victim" >/dev/null || fail "docker kill $victim"
    say "killed worker container ${victim:0:12} with $done chunks done, $pending pending"
    break
  fi
  sleep 1
done
[ -n "$victim" ] || fail "job $KJOB made no progress in ${JOB_TIMEOUT_S}s"
wait_job "$KJOB"
MEASURED[kill_job_s]=$((SECONDS - t0))
check_rows_no_duplicates FUELINST MID || fail "missing rows or duplicate keys after the kill"
ROWS_BEFORE=$(rows_of fuelinst)
# The simulator gives every (non-DST) day the same rows: 3 days, then 3 + 31: nothing lost or doubled.
[ "$ROWS_BEFORE" = $((FUEL_ROWS / 3 * 34)) ] \
  || fail "fuelinst_latest has $ROWS_BEFORE rows after the kill, expected $((FUEL_ROWS / 3 * 34)) (34 days)"

# -- down / up ----------------------------------------------------------------------------------------
step persist "docker compose stop (each exits cleanly), down (volumes kept), up again: data and jobs kept"
compose --profile demo stop >"$LOG/stop-services.log" 2>&1 || fail "compose stop, see $LOG/stop-services.log"
exits=$(for id in $(compose ps -a -q); do
  podman inspect "$id" --format '{{index .Config.Labels "com.docker.compose.service"}}={{.State.ExitCode}}'
done | sort | tr '\n' ' ')
say "exit codes after SIGTERM: $exits"
for service in sim redis; do  # 143 would be "killed by SIGTERM", 137 "killed after the grace period"
  case " $exits" in *" $service=0 "*) ;; *) fail "$service did not exit 0 on stop: $exits";; esac
done
# Every worker but the one killed above stops by its warm shutdown: exit 0, not Celery's cold
# shutdown (1) nor the grace period's kill (137).
for id in $(compose ps -a -q worker worker-realtime); do
  [ "$id" = "$victim" ] && continue
  code=$(podman inspect "$id" --format '{{.State.ExitCode}}')
  [ "$code" = 0 ] || fail "worker container ${id:0:12} exited $code on stop: $exits"
done
compose --profile demo down >"$LOG/down.log" 2>&1 || fail "compose down, see $LOG/down.log"
compose --profile demo up -d >"$LOG/up-again.log" 2>&1 || fail "compose up again, see $LOG/up-again.log"
wait_healthy healthy_again_s
rows_after=$(rows_of fuelinst)
[ "$rows_after" = "$ROWS_BEFORE" ] || fail "fuelinst_latest has $rows_after rows after down/up, $ROWS_BEFORE before"
for job in "$JOB" "$KJOB"; do
  read -r done failed pending <<<"$(job_counts "$job")" || fail "job $job lost across down/up"
  [ "$done" -gt 0 ] && [ "$pending" = 0 ] || fail "job $job after down/up: $done done, $pending pending"
done
say "fuelinst_latest $rows_after rows, jobs $JOB and $KJOB complete, after down/up"

STEP=done
MEASURED[total_s]=$((SECONDS - T_START))
echo "container-check: OK"
for k in build_s image_mb healthy_s scaled_healthy_s backfill_s kill_job_s healthy_again_s total_s; do
  echo "  $k=${MEASURED[$k]:-?}"
done
