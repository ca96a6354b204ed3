#!/usr/bin/env bash
# stowage's main job, from a fresh machine: a local Kubernetes built from source (or the
# cluster in $KUBECONFIG with STOWAGE_CLUSTER_PROVIDER=existing), stowage installed by its
# chart, real volumes from a hostPath and an NFS backend, and what a user sees of them.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

bash scripts/setup-python.sh
bash e2e/scripts/build-binaries.sh
bash e2e/cluster.sh up
KUBECONFIG=$(bash e2e/cluster.sh kubeconfig)
export KUBECONFIG PATH="${STOWAGE_CACHE:-/var/cache/stowage}/bin:$PATH"
PYTHONPATH=operator:e2e .venv/bin/python -m stowage_e2e.demo

printf '\nmake demo took %s s\n' "$(( $(date +%s) - start ))"
