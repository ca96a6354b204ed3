#!/usr/bin/env bash
# The test cluster, whatever provides it.
#
#   e2e/cluster.sh up | down | status | kubeconfig
#
# STOWAGE_CLUSTER_PROVIDER picks the provider:
#   local     (default without a Docker engine) Kubernetes built from source, run on this machine
#   kind      (default with a Docker engine)    kind with e2e/kind/config.yaml
#   existing  the cluster of $KUBECONFIG, used as it is (up/down only check it)
# `up` is idempotent and prints the kubeconfig path as its last line.
source "$(dirname "$0")/scripts/common.sh"

default_provider() {
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo kind; else echo local; fi
}

existing() {
  local kubeconfig=${KUBECONFIG:?STOWAGE_CLUSTER_PROVIDER=existing needs KUBECONFIG}
  case "$1" in
    up | status) kubectl --kubeconfig "$kubeconfig" get nodes >&2 && echo "$kubeconfig" ;;
    kubeconfig) echo "$kubeconfig" ;;
    down) log "provider 'existing': the cluster is not ours to remove" ;;
  esac
}

main() {
  local command=${1:-}
  case "$command" in
    up | down | status | kubeconfig) ;;
    *) sed -n '2,11p' "$0" >&2; exit 2 ;;
  esac
  local provider=${STOWAGE_CLUSTER_PROVIDER:-$(default_provider)}
  export STOWAGE_CLUSTER_PROVIDER=$provider
  case "$provider" in
    local) bash "$E2E_DIR/cluster/local/local.sh" "$command" ;;
    kind) bash "$E2E_DIR/cluster/kind.sh" "$command" ;;
    existing) existing "$command" ;;
    *) log "unknown STOWAGE_CLUSTER_PROVIDER=$provider (local, kind, existing)"; exit 2 ;;
  esac
}

main "$@"
