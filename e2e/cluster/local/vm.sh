#!/usr/bin/env bash
# shellcheck shell=bash
# VM worker nodes: qemu VMs that run Debian's stock cloud kernel (which has the NFS,
# CIFS, iSCSI, RBD and device-mapper clients this machine's kernel lacks) and are
# ready to join the local cluster as Kubernetes nodes.
#
#   vm.sh build        the kernel, initramfs and base disk (cached in $STOWAGE_CACHE/vm)
#   vm.sh boot-check   build, boot one VM standalone (no network but loopback), check it,
#                      power it off, print timings
#
# Sourced (local.sh does), it only defines the settings below and these functions:
#   vm_build_artifacts                  cached; needs kubelet and kube-proxy in $BIN_DIR
#   vm_prepare_node NAME INDEX CONFIG_DIR   a copy-on-write root disk and a config disk
#   vm_start NAME INDEX [NETDEV]        qemu in the background (NETDEV: qemu -netdev value
#                                       without id, default $VM_NETDEV)
#   vm_wait_ready NAME [SECONDS]        until the node's init says "ready"
#   vm_import_image NAME|IP|IP:PORT TAG...   images from the build store into a VM
#   vm_stop NAME                        clean power-off (then TERM, KILL); removes its disk
#   vm_kill NAME                        SIGKILL: the node is lost; its disks stay
#   vm_shell NAME                       a root shell on the VM's virtio console
#   vm_exec NAME SCRIPT [SECONDS]       SCRIPT run by that shell; prints its output
#   vm_is_running NAME
#
# The config disk contract (CONFIG_DIR, copied onto /dev/vdb, mounted read-only at
# /etc/stowage/node in the VM: paths in the files below refer to that folder):
#   node.env               required, sourced by the init: NODE_NAME NODE_IP PREFIX_LEN
#                          GATEWAY DNS_IP POD_CIDR, optionally KUBELET_DIR (and, for the
#                          caller's own use, CLUSTER_CIDR SERVICE_CIDR API_SERVER ...). eth0 gets
#                          NODE_IP/PREFIX_LEN, the default route goes via GATEWAY,
#                          /etc/resolv.conf has DNS_IP only.
#   kubelet.yaml           present: the kubelet starts, with --root-dir KUBELET_DIR (by
#                          default /var/lib/kubelet) --cert-dir KUBELET_DIR/pki
#                          --hostname-override NODE_NAME --node-ip NODE_IP
#                          (containerd: unix:///run/containerd/containerd.sock)
#   kubelet.kubeconfig     present: the kubelet joins the cluster with it (--kubeconfig);
#                          absent: a standalone kubelet (static pods only)
#   kube-proxy.yaml        present: kube-proxy starts (its kubeconfig is the file it names)
#   ca.crt, kubelet-serving.crt/.key, kube-proxy.kubeconfig, ...   whatever those name
#   cni.conflist           optional; by default vm_prepare_node writes the local cluster's
#                          (config.sh's cni_conflist) for POD_CIDR
#   ready.sh               optional, executable: run once containerd is ready, before the
#                          kubelet, its output on the console
# containerd runs with Debian's configuration (/etc/containerd/config.toml: overlayfs,
# runc, sandbox image registry.k8s.io/pause:3.6, CNI in /usr/lib/cni and /etc/cni/net.d);
# the pause and base images are already in its k8s.io namespace.
# shellcheck source=../../scripts/common.sh
[ -n "${E2E_DIR:-}" ] || source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
# shellcheck source=../../scripts/image.sh
source "$E2E_DIR/scripts/image.sh"
# shellcheck source=config.sh
source "$E2E_DIR/cluster/local/config.sh"

# --- settings: sizes, names, places -------------------------------------------------

VM_MEMORY=${VM_MEMORY:-3072}                 # MiB per VM
VM_CPUS=${VM_CPUS:-2}
VM_DISK_SIZE=${VM_DISK_SIZE:-10G}            # the root file system (sparse base image)
VM_CONFIG_DISK_SIZE=${VM_CONFIG_DISK_SIZE:-8M}
VM_ACCEL=${VM_ACCEL:-tcg}                    # tcg, or kvm (guests hang under KVM here)
VM_NETDEV=${VM_NETDEV:-user,restrict=on}     # qemu -netdev without id; the cluster's: a tap
VM_IMPORT_PORT=10300                         # the import endpoint (stowage-init's IMPORT_PORT)
VM_STOP_TIMEOUT=${VM_STOP_TIMEOUT:-90}       # seconds for a clean power-off
VM_CACHE="$STOWAGE_CACHE/vm"
VM_STATE_DIR=${VM_STATE_DIR:-$STATE_DIR/vms} # one folder per VM: disks, pid, console.log
VM_GUEST_DIR="$E2E_DIR/cluster/local/vm-guest"
# The newest linux-image-6.1.0-N-cloud-amd64 apt knows, unless set.
VM_KERNEL_PACKAGE=${VM_KERNEL_PACKAGE:-}
# Modules the initramfs loads to reach the root disk (ext4 is built in).
VM_ROOT_MODULES=(virtio_pci virtio_blk)
VM_PACKAGES=(containerd runc containernetworking-plugins iptables iproute2 kmod conntrack
  nfs-common cifs-utils open-iscsi lvm2 thin-provisioning-tools xfsprogs e2fsprogs btrfs-progs
  util-linux mount socat ca-certificates procps ethtool udev busybox-static)
# In the VM's containerd from the start: what pods and helpers there run (the operator does not).
VM_IMAGES=("$PAUSE_IMAGE" "$BASE_IMAGE" "$TOOLS_IMAGE" "$HELPER_IMAGE")

# --- cached artefacts ------------------------------------------------------------------

# vm_seconds_since EPOCHREALTIME: the seconds since then, to 0.1 s.
vm_seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# vm_timing WHAT SECONDS: a line for the table in $VM_TIMINGS, when that is set.
vm_timing() {
  [ -z "${VM_TIMINGS:-}" ] || printf '%-64s %7s s\n' "$1" "$2" >> "$VM_TIMINGS"
}

# Build steps work in folders under $VM_CACHE/work, which every build starts by
# emptying (so a failed one leaves nothing behind for long).
vm_scratch() { mktemp -d "$VM_CACHE/work/XXXXXX"; }

vm_clear_scratch() {
  local target
  findmnt -rn -o TARGET | { grep "^$VM_CACHE/work/" || true; } | while read -r target; do
    umount -l "$target"
  done
  rm -rf "$VM_CACHE/work"
}

# vm_cached VAR NAME SUFFIX STAMP BUILD sets VAR to $VM_CACHE/NAME-HASH.SUFFIX (HASH of
# STAMP), built by `BUILD PATH` unless it exists; older versions of NAME go. (BUILD runs
# in this shell, not in a $(...), so that `set -e` stops it at its first failure.)
vm_cached() {
  local var=$1 name=$2 suffix=$3 stamp=$4 build=$5 hash path start old
  # The code that builds it is part of the stamp.
  hash=$(printf '%s\n%s' "$stamp" "$(declare -f "$build")" | sha256sum | cut -c1-16)
  path="$VM_CACHE/$name-$hash$suffix"
  if [ ! -e "$path" ]; then
    start=$EPOCHREALTIME
    log "building the VM's $name"
    rm -rf "$path.tmp"
    "$build" "$path.tmp" >&2
    mv "$path.tmp" "$path"
    for old in "$VM_CACHE/$name"-*"$suffix"; do [ "$old" = "$path" ] || rm -rf "$old"; done
    log "built the VM's $name in $(vm_seconds_since "$start") s"
    vm_timing "build $name" "$(vm_seconds_since "$start")"
  fi
  printf -v "$var" '%s' "$path"
}

vm_newest_kernel() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | cut -d' ' -f1 \
    | sort -V | tail -1
}

# Sets and prints VM_KERNEL_PACKAGE.
vm_kernel_package() {
  [ -n "$VM_KERNEL_PACKAGE" ] && { echo "$VM_KERNEL_PACKAGE"; return 0; }
  VM_KERNEL_PACKAGE=$(vm_newest_kernel)
  if [ -z "$VM_KERNEL_PACKAGE" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    VM_KERNEL_PACKAGE=$(vm_newest_kernel)
  fi
  [ -n "$VM_KERNEL_PACKAGE" ] || { log "apt knows no linux-image-6.1.0-*-cloud-amd64"; return 1; }
  echo "$VM_KERNEL_PACKAGE"
}

vm_kernel_release() { local p=$1; p=${p#linux-image-}; echo "$p"; }

# The kernel package unpacked (nothing installed on this machine): DIR/boot/vmlinuz-*,
# DIR/lib/modules/RELEASE with its modules.dep.
vm_build_kernel() {
  local dir=$1 download
  download=$(vm_scratch)
  (cd "$download" && apt-get download "$VM_KERNEL_PACKAGE" > download.log 2>&1) \
    || { cat "$download/download.log" >&2; return 1; }
  dpkg -x "$download"/*.deb "$dir"
  rm -rf "$download"
  depmod -b "$dir" "$(vm_kernel_release "$VM_KERNEL_PACKAGE")"
}

# busybox, the root disk's modules (dependencies first, as modprobe would load them)
# and the initramfs-init, as a gzipped cpio.
vm_build_initramfs() {
  local out=$1 tree release module
  release=$(vm_kernel_release "$VM_KERNEL_PACKAGE")
  tree=$(vm_scratch)
  mkdir -p "$tree"/{bin,dev,proc,sys,newroot,lib/modules}
  cp /bin/busybox "$tree/bin/busybox"
  install -m 755 "$VM_GUEST_DIR/initramfs-init" "$tree/init"
  modprobe -d "$VM_KERNEL_DIR" -S "$release" --show-depends -a "${VM_ROOT_MODULES[@]}" \
    | awk '$1 == "insmod" {print $2}' | while read -r module; do
      [ -f "$tree/lib/modules/${module##*/}" ] && continue
      cp "$module" "$tree/lib/modules/"
      echo "${module##*/}" >> "$tree/lib/modules/load-order"
    done
  (cd "$tree" && find . | cpio --quiet -o -H newc | gzip -9) > "$out"
  rm -rf "$tree"
}

# vm_chroot_run ROOT COMMAND...: COMMAND with ROOT/proc mounted, no daemon started
# by a package, and this machine's resolver (for Debian's mirror).
vm_chroot_run() {
  local root=$1
  shift
  mount -t proc proc "$root/proc"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  local status=0
  "$@" || status=$?
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
  umount -l "$root/proc"
  return $status
}

vm_apt_install() {
  local root=$1
  shift
  chroot "$root" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends "$@" &&
    chroot "$root" apt-get clean
}

# image.sh's debootstrap minbase with the VM's packages, as a tarball.
vm_build_rootfs() {
  local out=$1 root
  root=$(vm_scratch)
  tar -C "$root" -xf "$(base_rootfs_tarball)"
  vm_chroot_run "$root" vm_apt_install "$root" "${VM_PACKAGES[@]}" > "$VM_CACHE/apt.log" 2>&1 \
    || { tail -20 "$VM_CACHE/apt.log" >&2; rm -rf "$root"; return 1; }
  rm -rf "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -cf "$out" .
  rm -rf "$root"
}

# vm_preimport_images ROOT ARCHIVE...: the archives imported and unpacked into
# ROOT/var/lib/containerd by a containerd of this machine (the VM's version), so that
# the VM does not spend its emulated time on them.
vm_preimport_images() {
  local root=$1 tmp
  shift
  tmp=$(vm_scratch)
  cat > "$tmp/config.toml" <<EOF
version = 2
root = "$root/var/lib/containerd"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$tmp/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
EOF
  containerd --config "$tmp/config.toml" > "$tmp/containerd.log" 2>&1 &
  local pid=$! status=0 archive
  local ctr_=(ctr --address "$tmp/containerd.sock" --namespace k8s.io)
  for _ in $(seq 100); do "${ctr_[@]}" version > /dev/null 2>&1 && break; sleep 0.2; done
  for archive in "$@"; do
    "${ctr_[@]}" images import "$archive" > /dev/null || { status=1; break; }
  done
  kill -TERM "$pid"
  wait "$pid" || true
  [ $status -eq 0 ] || cat "$tmp/containerd.log" >&2
  rm -rf "$tmp"
  return $status
}

vm_guest_files_stamp() {
  (cd "$VM_GUEST_DIR" && sha256sum stowage-init stowage-import poweroff)
}

# The root file system: the packages' tarball, the kernel's modules, the init, the
# kubelet and kube-proxy, the images in containerd; as a sparse raw ext4 image.
vm_build_disk() {
  local out=$1 root release archives=() tag
  release=$(vm_kernel_release "$VM_KERNEL_PACKAGE")
  root=$(vm_scratch)
  tar -C "$root" -xf "$VM_ROOTFS_TARBALL"
  cp -a "$VM_KERNEL_DIR/boot/." "$root/boot/"
  mkdir -p "$root/lib/modules" "$root/etc/stowage/node" "$root/var/log/stowage"
  cp -a "$VM_KERNEL_DIR/lib/modules/$release" "$root/lib/modules/"
  install -m 755 "$VM_GUEST_DIR/stowage-init" "$root/sbin/stowage-init"
  install -m 755 "$VM_GUEST_DIR/stowage-import" "$VM_GUEST_DIR/poweroff" "$root/usr/local/sbin/"
  install -m 755 "$BIN_DIR/kubelet" "$BIN_DIR/kube-proxy" "$root/usr/local/bin/"
  for tag in "${VM_IMAGES[@]}"; do
    archives+=("$(archive_of "$tag")")
    save_archive "$tag" "${archives[-1]}"
  done
  local start=$EPOCHREALTIME
  vm_preimport_images "$root" "${archives[@]}" || { rm -rf "$root"; return 1; }
  vm_timing "  base: images pre-imported by a containerd of this machine" "$(vm_seconds_since "$start")"
  # containerd's own id: each VM makes its own.
  rm -f "$root/var/lib/containerd/io.containerd.grpc.v1.introspection/uuid"
  start=$EPOCHREALTIME
  truncate -s "$VM_DISK_SIZE" "$out"
  mkfs.ext4 -q -F -L stowage-root -d "$root" "$out"
  vm_timing "  base: mkfs.ext4 -d ($(du -sh "$root" | cut -f1) of files)" "$(vm_seconds_since "$start")"
  rm -rf "$root"
}

vm_binaries_stamp() {
  local name
  for name in kubelet kube-proxy; do
    [ -x "$BIN_DIR/$name" ] || { log "no $BIN_DIR/$name: run e2e/scripts/build-binaries.sh"; return 1; }
    stat -c '%n %s %Y' "$BIN_DIR/$name"
  done
}

vm_images_stamp() {
  local tag
  for tag in "${VM_IMAGES[@]}"; do
    echo "$tag $(buildah_ inspect --type image --format '{{.FromImageID}}' "$tag")"
  done
}

# Builds what is missing and writes $VM_CACHE/current.env, which names the kernel,
# initramfs and base disk that vm_prepare_node and vm_start use.
vm_build_artifacts() {
  require_packages
  vm_clear_scratch
  mkdir -p "$VM_CACHE/work"
  vm_kernel_package > /dev/null
  local release binaries
  release=$(vm_kernel_release "$VM_KERNEL_PACKAGE")
  binaries=$(vm_binaries_stamp)
  cmd_pause
  cmd_base
  vm_cached VM_KERNEL_DIR kernel "" "$VM_KERNEL_PACKAGE" vm_build_kernel
  vm_cached VM_INITRAMFS initramfs .img "$release ${VM_ROOT_MODULES[*]}
$(dpkg-query -W busybox-static) $(sha256sum "$VM_GUEST_DIR/initramfs-init")" vm_build_initramfs
  vm_cached VM_ROOTFS_TARBALL rootfs .tar "$(stat -c '%s %Y' "$(base_rootfs_tarball)")
${VM_PACKAGES[*]}
$(declare -f vm_chroot_run vm_apt_install)" vm_build_rootfs
  vm_cached VM_BASE_DISK base .img "$VM_ROOTFS_TARBALL $release $VM_DISK_SIZE
$binaries
$(vm_images_stamp)
$(vm_guest_files_stamp)
$(declare -f vm_preimport_images)" vm_build_disk
  vm_clear_scratch
  cat > "$VM_CACHE/current.env" <<EOF
VM_KERNEL=$VM_KERNEL_DIR/boot/vmlinuz-$release
VM_INITRAMFS=$VM_INITRAMFS
VM_BASE_DISK=$VM_BASE_DISK
EOF
}

vm_load_artifacts() {
  [ -f "$VM_CACHE/current.env" ] || { log "no VM artefacts: run vm_build_artifacts"; return 1; }
  # shellcheck source=/dev/null
  source "$VM_CACHE/current.env"
}

# --- one VM node ------------------------------------------------------------------------

vm_dir() { echo "$VM_STATE_DIR/$1"; }

vm_pid() { cat "$(vm_dir "$1")/qemu.pid" 2>/dev/null || true; }

vm_is_running() {
  local pid
  pid=$(vm_pid "$1")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-name $1 "
}

# vm_prepare_node NAME INDEX CONFIG_DIR: a fresh copy-on-write root disk on the base
# disk and a config disk made from CONFIG_DIR (see the contract at the top).
vm_prepare_node() {
  local name=$1 index=$2 config=$3 dir staging key
  dir=$(vm_dir "$name")
  vm_is_running "$name" && { log "VM $name runs; stop it first"; return 1; }
  vm_load_artifacts
  [ -f "$config/node.env" ] || { log "$config has no node.env"; return 1; }
  (
    # shellcheck source=/dev/null
    source "$config/node.env"
    for key in NODE_NAME NODE_IP PREFIX_LEN GATEWAY DNS_IP POD_CIDR; do
      [ -n "${!key:-}" ] || { log "$config/node.env has no $key"; exit 1; }
    done
  )
  mkdir -p "$dir"
  rm -f "$dir/disk.qcow2" "$dir/config.img"
  qemu-img create -q -f qcow2 -b "$VM_BASE_DISK" -F raw "$dir/disk.qcow2"
  staging=$(mktemp -d)
  cp -a "$config/." "$staging/"
  if [ ! -f "$staging/cni.conflist" ]; then
    # shellcheck source=/dev/null
    (source "$config/node.env" && cni_conflist "$POD_CIDR" /var/lib/cni/ipam) > "$staging/cni.conflist"
  fi
  truncate -s "$VM_CONFIG_DISK_SIZE" "$dir/config.img"
  mkfs.ext4 -q -F -L stowage-config -d "$staging" "$dir/config.img"
  rm -rf "$staging"
  cp "$config/node.env" "$dir/node.env"
  echo "$index" > "$dir/index"
  # shellcheck source=/dev/null
  echo "$(source "$config/node.env" && echo "$NODE_IP"):$VM_IMPORT_PORT" > "$dir/import-address"
}

vm_accel_args() {
  case "$VM_ACCEL" in
    kvm) echo "-accel kvm -cpu host,-arch-capabilities" ;; # plain host: qemu aborts on MSR 0x10a
    tcg) echo "-accel tcg,thread=multi -cpu max" ;;
    *) log "VM_ACCEL is kvm or tcg, not $VM_ACCEL"; return 1 ;;
  esac
}

# vm_start NAME INDEX [NETDEV]: qemu in the background; the console goes to
# VM_STATE_DIR/NAME/console.log. INDEX makes the MAC address (52:54:00:5a:00:INDEX).
vm_start() {
  local name=$1 index=$2 netdev=${3:-$VM_NETDEV} dir accel uuid
  dir=$(vm_dir "$name")
  vm_is_running "$name" && return 0
  if [ ! -f "$dir/disk.qcow2" ] || [ ! -f "$dir/config.img" ]; then
    log "run vm_prepare_node $name first"
    return 1
  fi
  vm_load_artifacts
  read -ra accel <<< "$(vm_accel_args)"
  uuid=$(printf '%s' "$name" | md5sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
  rm -f "$dir/console.log" "$dir/qemu.pid"
  log "starting VM $name (${VM_ACCEL}, ${VM_CPUS} cpus, ${VM_MEMORY} MiB)"
  qemu-system-x86_64 -name "$name" "${accel[@]}" -smp "$VM_CPUS" -m "$VM_MEMORY" \
    -uuid "$uuid" -nodefaults -display none -no-reboot -daemonize -pidfile "$dir/qemu.pid" \
    -kernel "$VM_KERNEL" -initrd "$VM_INITRAMFS" \
    -append "console=ttyS0 root=/dev/vda init=/sbin/stowage-init net.ifnames=0 panic=-1" \
    -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
    -drive "file=$dir/config.img,if=virtio,format=raw,readonly=on" \
    -netdev "$netdev,id=n0" -device "virtio-net-pci,netdev=n0,mac=52:54:00:5a:00:$(printf %02x "$index")" \
    -device virtio-rng-pci \
    -serial "file:$dir/console.log" \
    -monitor "unix:$dir/monitor.sock,server=on,wait=off" \
    -device virtio-serial -chardev "socket,id=shell,path=$dir/shell.sock,server=on,wait=off" \
    -device virtconsole,chardev=shell
}

# vm_console NAME: what the VM wrote on its serial console (without the CRs).
vm_console() { tr -d '\r' < "$(vm_dir "$1")/console.log" 2>/dev/null || true; }

# vm_wait_console NAME PATTERN SECONDS: until the console log has a line matching PATTERN
# (grep -E); fails early when qemu exits or the init gives up.
vm_wait_console() {
  local name=$1 pattern=$2 seconds=$3 console deadline
  console="$(vm_dir "$name")/console.log"
  deadline=$(( $(date +%s) + seconds ))
  until vm_console "$name" | grep -qE "$pattern"; do
    if ! vm_is_running "$name" || vm_console "$name" | grep -q '^stowage-init: .* fatal:'; then
      log "VM $name stopped before '$pattern'; see $console"
      return 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { log "VM $name: no '$pattern' in ${seconds}s; see $console"; return 1; }
    sleep 0.5
  done
}

vm_wait_ready() { vm_wait_console "$1" '^stowage-init: \[[0-9.]+\] ready$' "${2:-300}"; }

vm_import_address() {
  case "$1" in
    *:*) echo "$1" ;;
    [0-9]*.*[0-9]) echo "$1:$VM_IMPORT_PORT" ;;
    *) cat "$(vm_dir "$1")/import-address" ;;
  esac
}

# vm_import_image NAME|IP|IP:PORT TAG...: each image (archived from the build store as
# image.sh does) streamed to the VM's import endpoint; fails unless the VM says ok.
vm_import_image() {
  local address tag archive output start
  address=$(vm_import_address "$1")
  shift
  for tag in "$@"; do
    archive=$(archive_of "$tag")
    save_archive "$tag" "$archive"
    start=$EPOCHREALTIME
    for _ in $(seq 60); do
      output=$(socat -t 600 -T 600 - "TCP:$address,connect-timeout=5" < "$archive" 2>&1) && break
      sleep 2
    done
    if ! grep -q '^stowage-import: ok$' <<< "$output"; then
      log "importing $tag into $address failed: $output"
      return 1
    fi
    log "imported $tag into $address in $(vm_seconds_since "$start") s"
  done
}

vm_monitor() { echo "$2" | socat - "UNIX-CONNECT:$(vm_dir "$1")/monitor.sock" > /dev/null; }

# vm_wait_exit NAME SECONDS
vm_wait_exit() {
  local pid
  pid=$(vm_pid "$1")
  for _ in $(seq $(( $2 * 5 ))); do
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    sleep 0.2
  done
  return 1
}

# vm_stop NAME: ctrl-alt-delete (the init stops the node and powers off), then TERM
# and KILL to qemu when it takes too long; the root disk goes.
vm_stop() {
  local name=$1 dir pid
  dir=$(vm_dir "$name")
  if vm_is_running "$name"; then
    pid=$(vm_pid "$name")
    log "stopping VM $name"
    vm_monitor "$name" "sendkey ctrl-alt-delete" || true
    if ! vm_wait_exit "$name" "$VM_STOP_TIMEOUT"; then
      log "VM $name did not power off in ${VM_STOP_TIMEOUT}s; terminating qemu"
      kill -TERM "$pid" 2>/dev/null || true
      vm_wait_exit "$name" 10 || kill -KILL "$pid" 2>/dev/null || true
      vm_wait_exit "$name" 10
    fi
  fi
  rm -f "$dir/disk.qcow2" "$dir/qemu.pid"
}

vm_kill() {
  local name=$1
  vm_is_running "$name" || return 0
  log "killing VM $name"
  kill -KILL "$(vm_pid "$name")"
  vm_wait_exit "$name" 10
  rm -f "$(vm_dir "$name")/qemu.pid"
}

vm_shell() { socat -,raw,echo=0 "UNIX-CONNECT:$(vm_dir "$1")/shell.sock"; }

# vm_exec NAME SCRIPT [SECONDS]: SCRIPT (one line of bash) typed into the VM's debug
# shell, its output and status sent back through the console; prints the output and
# returns the status.
vm_exec() {
  local name=$1 script=$2 seconds=${3:-120} tag="exec-$RANDOM$RANDOM"
  # shellcheck disable=SC2016 # expanded by the VM's shell
  printf '{ %s\n} 2>&1 | sed "s/^/[%s] /" > /dev/console; echo "[%s] status ${PIPESTATUS[0]}" > /dev/console\n' \
    "$script" "$tag" "$tag" | socat -u - "UNIX-CONNECT:$(vm_dir "$name")/shell.sock"
  vm_wait_console "$name" "^\\[$tag\\] status [0-9]+$" "$seconds" || return 1
  vm_console "$name" | sed -n "s/^\\[$tag\\] //p" | sed '$d'
  return "$(vm_console "$name" | sed -n "s/^\\[$tag\\] status //p")"
}

# --- standalone use -----------------------------------------------------------------------

vm_main() {
  case "${1:-}" in
    build) vm_build_artifacts ;;
    boot-check)
      # shellcheck source=vm-check.sh
      source "$E2E_DIR/cluster/local/vm-check.sh"
      vm_boot_check
      ;;
    *) sed -n '2,8p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then vm_main "$@"; fi
