#!/usr/bin/env bash
# Builds etcd, the Kubernetes binaries and helm from their Go modules into
# $STOWAGE_CACHE/bin. A stamp file per binary set makes a warm run a no-op.
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

if stamp_ok helm "$HELM_VERSION"; then
  log "helm $HELM_VERSION is cached"
else
  log "building helm $HELM_VERSION"
  GOBIN="$BIN_DIR" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$BIN_DIR/.helm.stamp"
fi

# CoreDNS, for cluster DNS (its own module; no replace directives).
if stamp_ok coredns "$COREDNS_VERSION"; then
  log "coredns $COREDNS_VERSION is cached"
else
  log "building coredns $COREDNS_VERSION"
  GOBIN="$BIN_DIR" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  echo "$COREDNS_VERSION" > "$BIN_DIR/.coredns.stamp"
fi

log "binaries ready in $BIN_DIR ($(( $(date +%s) - start )) s)"
