# Shared settings for the e2e scripts; source it, do not run it.
# Every slow artefact (Go modules, Go build cache, binaries, images) lives
# under one stable cache folder so that a second run on the same machine
# rebuilds nothing.
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
STOWAGE_CACHE=${STOWAGE_CACHE:-/var/cache/stowage}
BIN_DIR="$STOWAGE_CACHE/bin"

KUBE_VERSION=v1.34.4
HELM_VERSION=v3.19.4
COREDNS_VERSION=v1.13.1

export GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
export GOMODCACHE="$STOWAGE_CACHE/go/mod" GOCACHE="$STOWAGE_CACHE/go/build"
export PATH="$BIN_DIR:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# apt_install PKG... installs the Debian packages that are missing, running
# `apt-get update` at most once per script run.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ -z "${_STOWAGE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _STOWAGE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
