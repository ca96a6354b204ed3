#!/usr/bin/env bash
# stowage's main job, from a fresh machine: a local Kubernetes built from source (or the
# cluster in $KUBECONFIG with STOWAGE_CLUSTER_PROVIDER=existing), stowage installed by its
# chart, real volumes from a hostPath and an NFS backend, and what a user sees of them.
# Everything is installed first; then the network guard is on until the demo has shown its
# volumes (nothing leaves the machine), and the demo ends with its count of blocked connections.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/install.sh
guard() { PYTHONPATH=e2e .venv/bin/python -m stowage_e2e.guard "$@"; }
guard on
trap 'guard off' EXIT
bash e2e/cluster.sh up
KUBECONFIG=$(bash e2e/cluster.sh kubeconfig)
export KUBECONFIG PATH="${STOWAGE_CACHE:-/var/cache/stowage}/bin:$PATH"
PYTHONPATH=operator:e2e .venv/bin/python -m stowage_e2e.demo
guard report

printf '\nmake demo took %s s\n' "$(( $(date +%s) - start ))"
