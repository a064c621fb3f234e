#!/usr/bin/env bash
# End-to-end check of docker-compose.yml on a machine with a Docker engine (`make compose-smoke`):
# build the image, train a tiny checkpoint into the models volume, start Kafka + Redis + topic-init +
# SMOKE_WORKERS workers, replay SMOKE_COUNT Banking77 tickets and fail unless every one comes back
# (`triage replay` exits 1 when lost > 0). The stack and its volumes are removed afterwards
# (SMOKE_KEEP=1 keeps them for a look).
#
# Settings (environment): BANKING77_DIR (default: TRIAGE_DATA_DIR, else ../shared/data/banking77),
# SMOKE_COUNT (1000), SMOKE_WORKERS (2), SMOKE_RATE (200 tickets/s), SMOKE_PRESET (tiny),
# SMOKE_TIMEOUT_S (300, for the workers to turn healthy), KAFKA_HOST_PORT (39092),
# COMPOSE_PROJECT_NAME (triage-smoke), REDIS_PASSWORD (random when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "compose-smoke: $*" >&2
  exit 2
}

command -v docker > /dev/null \
  || die "docker not found: this check needs Docker Engine with the compose plugin (the unit tests in tests/deploy run without it)"
docker compose version > /dev/null 2>&1 \
  || die "'docker compose' (compose v2 plugin) is missing: install docker-compose-plugin"
docker info > /dev/null 2>&1 \
  || die "no Docker engine answers ('docker info' failed): start dockerd, or point DOCKER_HOST at one"

export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-triage-smoke}
export BANKING77_DIR=${BANKING77_DIR:-${TRIAGE_DATA_DIR:-../shared/data/banking77}}
export KAFKA_HOST_PORT=${KAFKA_HOST_PORT:-39092}
export TRAIN_PRESET=${SMOKE_PRESET:-tiny}
REDIS_PASSWORD=${REDIS_PASSWORD:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
export REDIS_PASSWORD
count=${SMOKE_COUNT:-1000}
workers=${SMOKE_WORKERS:-2}
rate=${SMOKE_RATE:-200}
timeout_s=${SMOKE_TIMEOUT_S:-300}

[[ -f "$BANKING77_DIR/train.csv" && -f "$BANKING77_DIR/test.csv" ]] \
  || die "Banking77 not found in $BANKING77_DIR: set BANKING77_DIR to a folder with train.csv and test.csv"

compose() {
  docker compose --profile train --profile loadtest "$@"
}

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    echo "compose-smoke: FAILED (exit $status); last service logs:" >&2
    compose logs --no-color --tail 100 >&2 || true
  fi
  if [[ "${SMOKE_KEEP:-0}" != 1 ]]; then
    compose down --volumes --remove-orphans > /dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT

echo "compose-smoke: building the image"
compose build

echo "compose-smoke: training a '$TRAIN_PRESET' checkpoint into the models volume"
compose run --rm trainer

echo "compose-smoke: starting kafka, redis, topic-init and $workers workers"
docker compose up --detach --scale "worker=$workers"

deadline=$((SECONDS + timeout_s))
while true; do
  healthy=$(docker compose ps --status running --format '{{.Health}}' worker | grep -c '^healthy$' || true)
  [[ $healthy -ge $workers ]] && break
  ((SECONDS < deadline)) || die "only $healthy of $workers workers healthy after ${timeout_s}s"
  sleep 5
done
echo "compose-smoke: $healthy workers healthy"

echo "compose-smoke: replaying $count tickets at $rate/s"
compose run --rm replay replay --count "$count" --rate "$rate" --no-live --no-plots

echo "compose-smoke: OK, $count tickets through $workers workers, lost = 0"
