#!/usr/bin/env bash
# The whole test suite, as the README and .ci/run run it: lint, then every
# tier (unit, integration, e2e) against a real cluster that the suite brings
# up from source on this machine (or the cluster in $KUBECONFIG with
# STOWAGE_CLUSTER_PROVIDER=existing).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
start=$(date +%s)

step "install: Debian packages, Python, Go binaries, images (cached after the first run)"
bash scripts/install.sh

# From here on no packet may leave the machine: the guard rejects and counts every new
# connection outside loopback, the test hosts and VM nodes, and the cluster's networks.
step "network guard on"
guard() { PYTHONPATH=e2e .venv/bin/python -m stowage_e2e.guard "$@"; }
guard on
trap 'guard off' EXIT

status=0
step "lint: ruff, mypy --strict"
make --no-print-directory lint || status=$?

step "tests: unit, integration, e2e"
if [ "$status" -eq 0 ]; then
  .venv/bin/pytest "$@" || status=$?
fi

step "network guard"
guard report || status=1
printf '\nwhole suite took %s s\n' "$(( $(date +%s) - start ))"
exit "$status"
