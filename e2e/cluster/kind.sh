#!/usr/bin/env bash
# The `kind` provider (machines with a Docker engine): kind.sh up | down | status | kubeconfig.
# kind itself is built from its Go module into the cache when missing.
source "$(dirname "$0")/../scripts/common.sh"

KIND_VERSION=v0.30.0
CLUSTER=${KIND_CLUSTER_NAME:-stowage}
KIND_KUBECONFIG="$STOWAGE_CACHE/kind-$CLUSTER.kubeconfig"

ensure_kind() {
  command -v kind >/dev/null && return 0
  log "building kind $KIND_VERSION"
  GOBIN="$BIN_DIR" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
}

exists() { kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

cmd_up() {
  ensure_kind
  if ! exists; then
    mkdir -p "$SHARED_HOST_DIR"
    kind create cluster --name "$CLUSTER" --config "$E2E_DIR/kind/config.yaml" --wait 180s >&2
  fi
  kind get kubeconfig --name "$CLUSTER" > "$KIND_KUBECONFIG"
  # The node's /var/lib/stowage must be shared for Bidirectional propagation.
  docker exec "$CLUSTER-control-plane" mount --make-rshared /var/lib/stowage
  # The kubelet's in-tree nfs and iscsi volumes run mount.nfs and iscsiadm (with iscsid) on
  # the node itself; kindest/node ships neither.
  docker exec "$CLUSTER-control-plane" bash -c '
    command -v mount.nfs >/dev/null && command -v iscsiadm >/dev/null && exit 0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nfs-common open-iscsi
    systemctl enable --now iscsid' >&2
  echo "$KIND_KUBECONFIG"
}

cmd_down() {
  exists && kind delete cluster --name "$CLUSTER" >&2
  rm -f "$KIND_KUBECONFIG"
}

case "${1:-}" in
  up) cmd_up ;;
  down) ensure_kind; cmd_down ;;
  status) exists && kubectl --kubeconfig "$KIND_KUBECONFIG" get nodes ;;
  kubeconfig) [ -f "$KIND_KUBECONFIG" ] && echo "$KIND_KUBECONFIG" ;;
  *) echo "usage: $0 up|down|status|kubeconfig" >&2; exit 2 ;;
esac
