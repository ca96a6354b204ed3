#!/usr/bin/env bash
# Builds etcd, the Kubernetes binaries, helm, CoreDNS, csi-sanity and the CSI sidecars from their
# Go modules into $STOWAGE_CACHE/bin. A stamp file per binary set makes a warm run a no-op.
source "$(dirname "$0")/common.sh"

K8S_MODULE="$E2E_DIR/build/k8s"
mkdir -p "$BIN_DIR"
start=$(date +%s)

kube_ldflags() {
  local v=${KUBE_VERSION#v} major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

stamp_ok() { [ -f "$BIN_DIR/.$1.stamp" ] && [ "$(cat "$BIN_DIR/.$1.stamp")" = "$2" ]; }

# go_install_once NAME VERSION PACKAGE [LDFLAGS] builds PACKAGE@VERSION into $BIN_DIR, unless
# its stamp says that version is there.
go_install_once() {
  local name=$1 version=$2 package=$3 ldflags=${4:-"-s -w"}
  if stamp_ok "$name" "$version"; then
    log "$name $version is cached"
    return
  fi
  log "building $name $version"
  GOBIN="$BIN_DIR" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$package@$version"
  echo "$version" > "$BIN_DIR/.$name.stamp"
}

# The .proto files of stowage's CSI bindings (scripts/csi-proto.sh and its unit test read them
# from the module cache, offline).
download_proto_modules() {
  go mod download "$CSI_SPEC_MODULE" "$KUBELET_API_MODULE"
}

kube_stamp="$KUBE_VERSION $(sha256sum "$K8S_MODULE/go.mod" | cut -c1-16)"
if stamp_ok kube "$kube_stamp"; then
  log "kubernetes $KUBE_VERSION binaries are cached"
else
  log "building etcd and kubernetes $KUBE_VERSION (cold: tens of minutes on 2 cores)"
  (cd "$K8S_MODULE" && CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN_DIR/" \
      ./cmd/etcd \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kube-proxy \
      k8s.io/kubernetes/cmd/kubectl)
  # The kubelet needs cgo-free builds too; it is built apart so that a failure names it.
  (cd "$K8S_MODULE" && CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN_DIR/" \
      k8s.io/kubernetes/cmd/kubelet)
  echo "$kube_stamp" > "$BIN_DIR/.kube.stamp"
fi

# CoreDNS is for cluster DNS (its own module; no replace directives), csi-sanity checks
# stowage's CSI services against the spec.
go_install_once helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
go_install_once coredns "$COREDNS_VERSION" github.com/coredns/coredns
go_install_once csi-sanity "$CSI_SANITY_VERSION" github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity \
  "-s -w -X main.VERSION=$CSI_SANITY_VERSION"
download_proto_modules

# The CSI sidecars: their go.mod files have replace directives, which `go install pkg@version`
# refuses, so e2e/build/csi-sidecars requires them with those lines copied (its tools.go names
# them) and builds them from there.
SIDECARS_MODULE="$E2E_DIR/build/csi-sidecars"
sidecars_stamp="$(sha256sum "$SIDECARS_MODULE/go.mod" | cut -c1-16)"
if stamp_ok csi-sidecars "$sidecars_stamp"; then
  log "CSI sidecars are cached"
else
  provisioner=github.com/kubernetes-csi/external-provisioner/v6
  version=$(cd "$SIDECARS_MODULE" && go list -m -f '{{.Version}}' "$provisioner")
  log "building csi-provisioner $version"
  (cd "$SIDECARS_MODULE" && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=$version" -o "$BIN_DIR/" "$provisioner/cmd/csi-provisioner")
  echo "$sidecars_stamp" > "$BIN_DIR/.csi-sidecars.stamp"
fi

log "binaries ready in $BIN_DIR ($(( $(date +%s) - start )) s)"
