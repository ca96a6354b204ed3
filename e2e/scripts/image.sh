#!/usr/bin/env bash
# Container images built offline with buildah and imported into the cluster.
#
#   image.sh base                      Debian bookworm minbase -> localhost/stowage/debian:bookworm
#   image.sh pause                     Kubernetes' pause.c, static -> registry.k8s.io/pause:3.6
#   image.sh build CONTEXT TAG [--target STAGE] [--file DOCKERFILE] [--build-arg K=V]...
#                                      a Dockerfile build (BASE_IMAGE defaults to the base image),
#                                      cached layer by layer in $STOWAGE_CACHE/containers
#   image.sh import TAG...             copy images from the build store into the cluster
#   image.sh exists TAG                exit 0 when the build store has TAG
#   image.sh remove TAG...             delete from the build store and the cluster
#
# RUN steps use the host network (to reach Debian's mirror) and the rlimits the
# VM allows (no CAP_SYS_RESOURCE here). Sourcing it (vm.sh does) defines the
# functions only.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ARCHIVES="$IMAGE_STORE/archives"
RUN_LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

image_exists() { buildah_ inspect --type image "$1" >/dev/null 2>&1; }

# --- the Debian base image --------------------------------------------------

write_apt_sources() {
  local rootfs=$1
  cat > "$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
}

base_rootfs_tarball() {
  local tarball="$STOWAGE_CACHE/debian-bookworm-minbase.tar"
  if [ ! -f "$tarball" ]; then
    require_packages
    local rootfs
    rootfs=$(mktemp -d /var/tmp/stowage-debootstrap.XXXXXX)
    log "debootstrap --variant=minbase bookworm (about 30 s)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
      > "$STOWAGE_CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$STOWAGE_CACHE/debootstrap.log" >&2; return 1; }
    write_apt_sources "$rootfs"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    rm -rf "$rootfs"
    mv "$tarball.tmp" "$tarball"
  fi
  echo "$tarball"
}

cmd_base() {
  image_exists "$BASE_IMAGE" && { log "$BASE_IMAGE is cached"; return 0; }
  local tarball container
  tarball=$(base_rootfs_tarball)
  container=$(buildah_ from scratch)
  buildah_ add "$container" "$tarball" / >/dev/null
  buildah_ config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$container"
  buildah_ commit --rm "$container" "$BASE_IMAGE" >/dev/null
  log "built $BASE_IMAGE"
}

# --- the sandbox (pause) image ---------------------------------------------

pause_source() {
  local source="$GOMODCACHE/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c"
  [ -f "$source" ] || (cd "$E2E_DIR/build/k8s" && go mod download "k8s.io/kubernetes@$KUBE_VERSION")
  echo "$source"
}

cmd_pause() {
  image_exists "$PAUSE_IMAGE" && { log "$PAUSE_IMAGE is cached"; return 0; }
  require_packages
  local workdir container
  workdir=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION=v3.6 -o "$workdir/pause" "$(pause_source)"
  strip "$workdir/pause"
  container=$(buildah_ from scratch)
  buildah_ copy "$container" "$workdir/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$container"
  buildah_ commit --rm "$container" "$PAUSE_IMAGE" >/dev/null
  rm -rf "$workdir"
  log "built $PAUSE_IMAGE"
}

# --- Dockerfile builds -------------------------------------------------------

cmd_build() {
  local context=$1 tag=$2
  shift 2
  local has_base_arg=false arg
  for arg in "$@"; do [[ $arg == BASE_IMAGE=* ]] && has_base_arg=true; done
  local base_args=()
  if ! $has_base_arg; then
    cmd_base
    base_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  fi
  log "building $tag from $context $*"
  buildah_ bud --layers --pull=never --network host "${RUN_LIMITS[@]}" \
    --tag "$tag" "${base_args[@]}" "$@" "$context" >&2
}

# --- into the cluster ----------------------------------------------------------

archive_of() {
  local tag=$1 id
  id=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$tag")
  mkdir -p "$ARCHIVES"
  echo "$ARCHIVES/${id:0:24}.tar"
}

save_archive() {
  local tag=$1 archive=$2
  [ -f "$archive" ] && return 0
  find "$ARCHIVES" -name '*.tar' -mmin +1440 -delete
  buildah_ push --quiet "$tag" "docker-archive:$archive.tmp:$tag" >&2
  mv "$archive.tmp" "$archive"
}

import_archive() {
  local archive=$1
  case "${STOWAGE_CLUSTER_PROVIDER:-local}" in
    local) ctr --address "$CONTAINERD_SOCK" --namespace k8s.io images import "$archive" >&2 ;;
    kind) kind load image-archive --name "${KIND_CLUSTER_NAME:-stowage}" "$archive" >&2 ;;
    *) log "provider ${STOWAGE_CLUSTER_PROVIDER} has no image import; push $archive yourself"; return 1 ;;
  esac
}

cmd_import() {
  local tag archive
  for tag in "$@"; do
    archive=$(archive_of "$tag")
    save_archive "$tag" "$archive"
    import_archive "$archive"
    log "imported $tag"
  done
}

cmd_remove() {
  local tag
  for tag in "$@"; do
    if [ "${STOWAGE_CLUSTER_PROVIDER:-local}" = local ] && [ -S "$CONTAINERD_SOCK" ]; then
      ctr --address "$CONTAINERD_SOCK" --namespace k8s.io images rm "$tag" >/dev/null 2>&1 || true
    fi
    image_exists "$tag" && buildah_ rmi "$tag" >/dev/null
  done
  return 0
}

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" >&2; exit 2; }

main() {
  [ $# -ge 1 ] || usage
  local command=$1
  shift
  case "$command" in
    base) cmd_base ;;
    pause) cmd_pause ;;
    build) [ $# -ge 2 ] || usage; cmd_build "$@" ;;
    import) [ $# -ge 1 ] || usage; cmd_import "$@" ;;
    exists) image_exists "$1" ;;
    remove) cmd_remove "$@" ;;
    *) usage ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
