#!/usr/bin/env bash
# All test tiers, each in the runtime environment it needs (see README "Environments").
# pytest exits 5 when a selection collects nothing; `set -e` makes that a failure, never a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP=127.0.0.1 PYTHONDONTWRITEBYTECODE=1
app=.venvs/app/bin
start=$(date +%s)
declare -a timings=()

tier() {  # name command...
  local name=$1 t0=$SECONDS; shift
  printf '\n=== %s\n' "$name"
  "$@"
  timings+=("$(printf '%-22s %4ds' "$name" $((SECONDS - t0)))")
}

# Free space where the jobs write scratch files: a full disk fails jobs in ways that look like
# anything else (a CI run once failed on a Flink blob upload's "Broken pipe").
space() { df -h --output=avail,target "${TMPDIR:-/tmp}" | tail -1; }
printf 'free space at start: %s\n' "$(space)"
trap 'printf "free space at exit: %s\n" "$(space)"' EXIT

tier "lint (ruff)" bash -c "$app/ruff check . && $app/ruff format --check ."
tier "types (mypy)" "$app/mypy"
tier "unit" "$app/pytest" -m unit tests/unit
# torch lives in the spark environment (TorchDistributor runs the training there).
tier "unit: training" .venvs/spark/bin/pytest -p no:cacheprovider -m unit tests/training
tier "component: flink" .venvs/flink/bin/pytest -p no:cacheprovider -m "component and flink" tests/flink
tier "component: spark" .venvs/spark/bin/pytest -p no:cacheprovider -m "component and spark" tests/spark
tier "integration" "$app/pytest" -m integration tests/integration

printf '\n=== summary\n'
printf '%s\n' "${timings[@]}"
printf 'all tiers passed in %ds\n' $(( $(date +%s) - start ))
