#!/usr/bin/env bash
# The one install step of the suite, the demo and the benchmarks: everything they use from
# outside this machine, fetched here and cached, so that nothing needs the network once the
# network guard is on. A second run on the same machine fetches and builds nothing.
#   - the Debian packages of e2e/packages.txt
#   - the Python environment (.venv) with the pinned dependencies
#   - etcd, Kubernetes, helm, CoreDNS, csi-sanity and csi-provisioner built from their Go
#     modules, and the Go modules of the .proto files of stowage's CSI bindings
#   - the base and pause images, stowage's images and the suite's tools image
#   - the VM nodes' kernel, initramfs and disk (with those images), unless STOWAGE_VM_NODES=0
source "$(dirname "$0")/../e2e/scripts/common.sh"
cd "$REPO_DIR"
start=$(date +%s)

mapfile -t packages < <(listed_packages)
apt_install "${packages[@]}"
bash scripts/setup-python.sh
bash e2e/scripts/build-binaries.sh
bash e2e/scripts/image.sh base
bash e2e/scripts/image.sh pause
PYTHONPATH=operator:e2e .venv/bin/python -m stowage_e2e.images_stowage --no-import >&2
if [ "$VM_NODES" -gt 0 ]; then bash e2e/cluster/local/vm.sh build; fi

log "installed in $(( $(date +%s) - start )) s"
