# shellcheck shell=bash
# Shared settings for the e2e scripts; source it, do not run it.
# Every slow artefact (Go modules, Go build cache, binaries, images) lives
# under one stable cache folder so that a second run on the same machine
# rebuilds nothing.
set -Eeuo pipefail
# A command that fails under `set -e` says which one it was, even in a caller
# that captures our stdout.
trap '_status=$?; printf "[%s] failed (exit %s): %s, at %s:%s\n" "$(date +%H:%M:%S)" \
  "$_status" "$BASH_COMMAND" "${BASH_SOURCE[0]}" "$LINENO" >&2' ERR

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
STOWAGE_CACHE=${STOWAGE_CACHE:-/var/cache/stowage}
BIN_DIR="$STOWAGE_CACHE/bin"

KUBE_VERSION=v1.34.4
HELM_VERSION=v3.19.4
COREDNS_VERSION=v1.13.1
CSI_SANITY_VERSION=v5.6.0
# The Go modules whose .proto files stowage's CSI bindings are generated from (scripts/csi-proto.sh).
CSI_SPEC_MODULE=github.com/container-storage-interface/spec@v1.13.0
KUBELET_API_MODULE=k8s.io/kubelet@v0.34.4

export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOMODCACHE="$STOWAGE_CACHE/go/mod" GOCACHE="$STOWAGE_CACHE/go/build"
export PATH="$BIN_DIR:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# apt_install PKG... installs the Debian packages that are missing, running
# `apt-get update` at most once per script run.
apt_install() {
  local missing=()
  mapfile -t missing < <(missing_packages "$@")
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "${_STOWAGE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _STOWAGE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

# The one list of the Debian packages the suite uses (installed up front by scripts/install.sh).
PACKAGES_FILE="$E2E_DIR/packages.txt"
listed_packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PACKAGES_FILE"; }

# require_packages fails, naming them, when packages of the list are missing: once the network
# guard is on nothing can be installed, so nothing is installed lazily.
require_packages() {
  local listed=() missing=()
  mapfile -t listed < <(listed_packages)
  mapfile -t missing < <(missing_packages "${listed[@]}")
  [ ${#missing[@]} -eq 0 ] && return 0
  log "Debian packages not installed: ${missing[*]} (run: bash scripts/install.sh)"
  return 1
}

# The local cluster: all of its state under one folder, all of its names here.
STATE_DIR=${STOWAGE_STATE_DIR:-/var/lib/stowage-e2e}
CONTAINERD_SOCK="$STATE_DIR/run/containerd/containerd.sock"
NODE_NAME=stowage-node
# The node's address is the gateway of the test-host bridge: traffic to the
# node stays on this machine, and pods reach test hosts through it.
HOSTS_BRIDGE=stowage-hosts
HOSTS_CIDR=172.30.0.0/24
NODE_IP=172.30.0.1
# Every node has a /24 of the cluster's pod network: the first node this one.
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
POD_BRIDGE=stowage-cni0
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
SHARED_HOST_DIR=/var/lib/stowage

# VM worker nodes (e2e/cluster/local/vm.sh, vm_nodes.sh): qemu VMs running Debian's stock
# kernel, joined to the cluster. VM node N is stowage-vmN at 172.30.0.(1+N) on the test-host
# bridge (a tap stv-N), its pods in 10.244.N.0/24, tainted so that only pods that ask for it
# run there. Two by default (the second for what needs two kernel nodes: a client that outlives
# the node it was served from, placement between two groups); STOWAGE_VM_NODES=0 turns them off.
# (The local provider's: kind's nodes have a kernel with these clients.)
if [ "${STOWAGE_CLUSTER_PROVIDER:-local}" = local ]; then VM_NODES=${STOWAGE_VM_NODES:-2}; else VM_NODES=0; fi
VM_NODE_PREFIX=stowage-vm
VM_TAP_PREFIX=stv-
VM_NODE_TAINT=node.stowage.io/vm
vm_node_name() { echo "$VM_NODE_PREFIX$1"; }
vm_node_ip() { local base=${NODE_IP%.*} last=${NODE_IP##*.}; echo "$base.$(( last + $1 ))"; }
vm_pod_cidr() { local b=${CLUSTER_CIDR%%/*}; echo "${b%.*.*}.$1.0/24"; }
VM_NODE_NAMES=$(for i in $(seq "$VM_NODES"); do vm_node_name "$i"; done | paste -sd' ')

# Images are built with buildah in a store of their own under the cache, so
# that layers survive `cluster.sh down`.
IMAGE_STORE="$STOWAGE_CACHE/containers"
BASE_IMAGE=localhost/stowage/debian:bookworm
PAUSE_IMAGE=registry.k8s.io/pause:3.6
# stowage's images and the suite's tools image (e2e/images/tools), built by scripts/install.sh.
OPERATOR_IMAGE=${STOWAGE_OPERATOR_IMAGE:-localhost/stowage/operator:dev}
HELPER_IMAGE=${STOWAGE_HELPER_IMAGE:-localhost/stowage/helper:dev}
TOOLS_IMAGE=localhost/stowage/e2e-tools:test

buildah_() {
  buildah --root "$IMAGE_STORE/storage" --runroot /run/stowage-buildah --storage-driver overlay "$@"
}
