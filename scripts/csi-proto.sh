#!/usr/bin/env bash
# Regenerates stowage's CSI bindings (operator/stowage/csi/proto, or the folder given) from the
# CSI spec and the kubelet's plugin-registration API, their .proto files taken from the Go
# module cache (e2e/scripts/build-binaries.sh downloads them in the install step).
source "$(dirname "$0")/../e2e/scripts/common.sh"
cd "$REPO_DIR"
out=${1:-operator/stowage/csi/proto}

module_dir() {
  local json
  json=$(go mod download -json "$1") || { echo "$json" >&2; return 1; }
  .venv/bin/python -c 'import json, sys; print(json.loads(sys.argv[1])["Dir"])' "$json"
}

csi_dir=$(module_dir "$CSI_SPEC_MODULE")
kubelet_dir=$(module_dir "$KUBELET_API_MODULE")
.venv/bin/python -m stowage.csi.codegen \
  --csi "$csi_dir/csi.proto" \
  --registration "$kubelet_dir/pkg/apis/pluginregistration/v1/api.proto" \
  "$out"
