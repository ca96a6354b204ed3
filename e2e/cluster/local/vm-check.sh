# shellcheck shell=bash
# `vm.sh boot-check` (sourced by vm.sh): builds the VM artefacts (then again, warm),
# boots one VM with no network but a loopback port forward to its import endpoint,
# checks the node from its console, waits for a standalone kubelet's static pod, streams
# two images in through the endpoint, powers it off, and prints the timings. Its state (the console log) stays in /var/tmp/stowage-vm-check.
VM_CHECK_NAME=stowage-vm-check
VM_CHECK_PORT=${VM_CHECK_PORT:-24300}
VM_CHECK_IMAGES=(localhost/stowage/vm-check:tiny localhost/stowage/vm-check:64m)

# Images from scratch with one file of random bytes (1 KiB, 64 MiB), made once.
vm_check_make_images() {
  local tag size container file
  for tag in "${VM_CHECK_IMAGES[@]}"; do
    image_exists "$tag" && continue
    case "$tag" in *:tiny) size=1K ;; *) size=64M ;; esac
    file=$(mktemp)
    head -c "$size" /dev/urandom > "$file"
    container=$(buildah_ from scratch)
    buildah_ copy "$container" "$file" /data > /dev/null
    buildah_ commit --quiet --rm "$container" "$tag" > /dev/null
    rm -f "$file"
  done
}

# The config disk of a VM on qemu's user network (10.0.2.0/24, no way out), no kubelet;
# ready.sh prints what the check looks for.
vm_check_config() {
  local dir=$1
  mkdir -p "$dir"
  cat > "$dir/node.env" <<EOF
NODE_NAME=$VM_CHECK_NAME
NODE_IP=10.0.2.15
PREFIX_LEN=24
GATEWAY=10.0.2.2
DNS_IP=10.0.2.3
POD_CIDR=$(vm_pod_cidr 99)
CLUSTER_CIDR=$CLUSTER_CIDR
SERVICE_CIDR=$SERVICE_CIDR
API_SERVER=https://10.0.2.2:6443
EOF
  cat > "$dir/ready.sh" <<EOF
#!/bin/bash
echo "uname \$(uname -r)"
kubelet --version
kube-proxy --version
ctr --namespace k8s.io images ls -q
ctr --namespace k8s.io run --rm $BASE_IMAGE vm-check echo container-ok
echo "cgroup \$(stat -f -c %T /sys/fs/cgroup)"
echo "iscsid \$(iscsiadm -m session 2>&1)"
# device-mapper: an LVM thin volume on a loop device, formatted, mounted, written.
modprobe -a loop dm_thin_pool
img=/tmp/lvm.img
truncate -s 300M \$img
dev=\$(losetup -f --show \$img)
vgcreate -q vmcheck \$dev > /dev/null && lvcreate -q -L 100M -T vmcheck/pool > /dev/null &&
  lvcreate -q -V 200M -T vmcheck/pool -n thin > /dev/null && mkfs.ext4 -q /dev/vmcheck/thin &&
  mkdir -p /mnt/thin && mount /dev/vmcheck/thin /mnt/thin && echo data > /mnt/thin/file &&
  umount /mnt/thin && echo "lvm-thin-ok"
vgremove -f -q vmcheck > /dev/null
losetup -d \$dev
rm -f \$img
EOF
  chmod +x "$dir/ready.sh"
  # A standalone kubelet (no kubeconfig) with one static pod: sandbox, CNI, an image
  # unpacked on this machine.
  cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
staticPodPath: /etc/stowage/node/manifests
EOF
  mkdir -p "$dir/manifests"
  cat > "$dir/manifests/check.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: check, namespace: default}
spec:
  containers:
    - name: check
      image: $BASE_IMAGE
      imagePullPolicy: Never
      command: [sh, -c, 'echo "pod-ok \$(hostname -i)"; sleep 3600']
EOF
}

# vm_check_expect CONSOLE WHAT PATTERN
vm_check_expect() {
  grep -qE "$3" "$1" || { log "check failed: $2"; return 1; }
}

# vm_check_console CONSOLE: what the node said; logs each failed check, fails if any.
vm_check_console() {
  local console=$1 failed=0 image
  vm_check_expect "$console" "the Debian 6.1 cloud kernel runs" \
    '^stowage-init: .* kernel 6\.1\.0-[0-9]+-cloud-amd64$' || failed=1
  vm_check_expect "$console" "uname -r is the Debian 6.1 cloud kernel" \
    '^\[ready.sh\] uname 6\.1\.0-[0-9]+-cloud-amd64$' || failed=1
  vm_check_expect "$console" "modules loaded" '^stowage-init: .* modules loaded: ' || failed=1
  if grep 'modprobe failed' "$console" >&2; then failed=1; fi
  vm_check_expect "$console" "containerd answers" '^stowage-init: .* containerd ready$' || failed=1
  vm_check_expect "$console" "kubelet --version runs" "^\[ready.sh\] Kubernetes $KUBE_VERSION\$" \
    || failed=1
  for image in "$PAUSE_IMAGE" "$BASE_IMAGE"; do
    vm_check_expect "$console" "$image is in containerd" "^\[ready.sh\] ${image//./\\.}\$" || failed=1
  done
  vm_check_expect "$console" "a container runs from the pre-imported base image" \
    '^\[ready.sh\] container-ok$' || failed=1
  vm_check_expect "$console" "cgroup2 is mounted" '^\[ready.sh\] cgroup cgroup2fs$' || failed=1
  vm_check_expect "$console" "an LVM thin volume works" '^\[ready.sh\] lvm-thin-ok$' || failed=1
  vm_check_expect "$console" "the import endpoint listens" '^stowage-init: .* import endpoint on ' \
    || failed=1
  return $failed
}

# vm_check_uptime CONSOLE PATTERN: the guest's uptime on the init's first line matching.
vm_check_uptime() {
  grep -E "^stowage-init: \[[0-9.]+\] $2" "$1" | head -1 | sed -E 's/^stowage-init: \[([0-9.]+)\].*/\1/'
}

vm_boot_check() {
  VM_STATE_DIR=/var/tmp/stowage-vm-check
  rm -rf "$VM_STATE_DIR"
  mkdir -p "$VM_STATE_DIR"
  VM_TIMINGS="$VM_STATE_DIR/timings"
  trap vm_check_finish EXIT
  local start
  start=$EPOCHREALTIME
  vm_build_artifacts
  vm_timing "artefacts, first build of this run (all steps)" "$(vm_seconds_since "$start")"
  start=$EPOCHREALTIME
  vm_build_artifacts
  vm_timing "artefacts, warm (cached)" "$(vm_seconds_since "$start")"
  vm_check_make_images
  vm_boot_check_node
}

vm_check_finish() {
  local status=$?
  vm_kill "$VM_CHECK_NAME"
  log "timings:"
  cat "$VM_TIMINGS" >&2
  rm -f "$(vm_dir "$VM_CHECK_NAME")"/*.qcow2 "$(vm_dir "$VM_CHECK_NAME")"/*.img
  if [ $status -eq 0 ]; then
    log "boot-check passed; console: $VM_STATE_DIR/console.txt"
  else
    log "boot-check FAILED; console: $(vm_dir "$VM_CHECK_NAME")/console.log"
  fi
}

vm_boot_check_node() {
  local name=$VM_CHECK_NAME console start marker
  console="$VM_STATE_DIR/console.txt"
  vm_check_config "$VM_STATE_DIR/config"
  vm_prepare_node "$name" 1 "$VM_STATE_DIR/config"
  echo "127.0.0.1:$VM_CHECK_PORT" > "$(vm_dir "$name")/import-address"
  local boot
  boot=$EPOCHREALTIME
  start=$boot
  vm_start "$name" 1 "user,restrict=on,hostfwd=tcp:127.0.0.1:$VM_CHECK_PORT-:$VM_IMPORT_PORT"
  for marker in "kernel " "containerd ready" "ready$"; do
    vm_wait_console "$name" "^stowage-init: \[[0-9.]+\] $marker" 300 || return 1
    vm_console "$name" > "$console"
    vm_timing "qemu start -> '${marker%$}' (wall; guest uptime $(vm_check_uptime "$console" "$marker"))" \
      "$(vm_seconds_since "$start")"
  done
  vm_check_console "$console" || return 1
  local pod_log
  # shellcheck disable=SC2016 # run by the VM's shell
  pod_log=$(vm_exec "$name" 'for _ in $(seq 240); do grep -hs pod-ok /var/log/pods/*/check/*.log && break; sleep 0.5; done' 150)
  log "the static pod says: $pod_log"
  grep -qE 'pod-ok 10\.244\.99\.[0-9]+$' <<< "$pod_log" || { log "check failed: the static pod runs on the pod network"; return 1; }
  vm_timing "qemu start -> the static pod's output (wall)" "$(vm_seconds_since "$boot")"
  local tag
  for tag in "${VM_CHECK_IMAGES[@]}"; do
    start=$EPOCHREALTIME
    vm_import_image "$name" "$tag" || return 1
    vm_timing "import $tag through the endpoint" "$(vm_seconds_since "$start")"
  done
  start=$EPOCHREALTIME
  vm_stop "$name"
  vm_console "$name" > "$console"
  vm_timing "vm_stop (ctrl-alt-delete -> qemu gone)" "$(vm_seconds_since "$start")"
  grep -q '^stowage-init: .* powering off$' "$console" || { log "check failed: no clean power-off"; return 1; }
}
