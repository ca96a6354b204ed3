#!/usr/bin/env bash
# The whole test suite, as the README and .ci/run run it: lint, then every
# tier (unit, integration, e2e) against a real cluster that the suite brings
# up from source on this machine (or the cluster in $KUBECONFIG with
# STOWAGE_CLUSTER_PROVIDER=existing).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)

step "python environment"
bash scripts/setup-python.sh

step "lint: ruff, mypy --strict"
make --no-print-directory lint

step "build the cluster binaries (cached after the first run)"
bash e2e/scripts/build-binaries.sh

step "tests: unit, integration, e2e"
.venv/bin/pytest "$@"

printf '\nwhole suite took %s s\n' "$(( $(date +%s) - start ))"
