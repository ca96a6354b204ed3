# shellcheck shell=bash
# `local.sh down`: removes every trace of the local cluster (processes, pods,
# mounts, network namespaces and links, iptables chains, cgroups, sysctls, state).
# Sourced by local.sh, which defines the daemons and paths.
# The network guard's chains (STOWAGE-GUARD*) are the suite's, not the cluster's: never ours.
OUR_CHAINS='KUBE-|CNI-HOSTPORT-|CNI-DN-'

# The shims of our containerd, found by the socket they serve, never by name alone.
our_shim_pids() {
  local cmdline pid
  for cmdline in /proc/[0-9]*/cmdline; do
    pid=${cmdline#/proc/}; pid=${pid%/cmdline}
    tr '\0' ' ' < "$cmdline" 2>/dev/null | grep -q "^containerd-shim.* -address $CONTAINERD_SOCK " \
      && echo "$pid"
  done
  return 0
}

pod_cgroup_pids() {
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

kill_containers() {
  if is_running containerd; then
    local c=(ctr --address "$CONTAINERD_SOCK" --namespace k8s.io) id
    for id in $("${c[@]}" tasks ls -q 2>/dev/null); do
      "${c[@]}" tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $("${c[@]}" tasks ls -q 2>/dev/null); do
      "${c[@]}" tasks delete --force "$id" >/dev/null 2>&1 || true
    done
  fi
  local pid
  for pid in $(pod_cgroup_pids); do kill -KILL "$pid" 2>/dev/null || true; done
}

stop_node() {
  stop_daemons kubelet kube-proxy
  kill_containers
  stop_daemons containerd
  # shellcheck disable=SC2046
  stop_pids $(our_shim_pids)
}

stop_control_plane() {
  stop_daemons coredns kube-scheduler kube-controller-manager kube-apiserver
  stop_daemons etcd
}

mounts_under() {
  awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_all_under() {
  local prefix=$1 mountpoint
  for _ in 1 2 3 4 5; do
    [ -z "$(mounts_under "$prefix")" ] && return 0
    for mountpoint in $(mounts_under "$prefix"); do
      umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || true
    done
  done
  [ -z "$(mounts_under "$prefix")" ] || { log "mounts left under $prefix"; return 1; }
}

# Chains that match OUR_CHAINS and did not exist before the first `up`.
our_chains() {
  local save=$1 table=$2
  "$save" -t "$table" 2>/dev/null | grep '^:' | cut -d' ' -f1 | grep -E "^:($OUR_CHAINS)" \
    | grep -vxF -f "$STATE_DIR/iptables.before" 2>/dev/null | sed 's/^://' || true
}

# The rules of other chains that jump to one of PATTERN's chains.
jumps_to() {
  local save=$1 table=$2 pattern=$3
  "$save" -t "$table" | grep -E -- "^-A .* -j ($pattern)( |\$)" | grep -vE "^-A ($pattern) " || true
}

remove_chains() {
  local ipt=$1 table save="${1}-save" chains pattern rule chain
  for table in filter nat mangle raw; do
    chains=$(our_chains "$save" "$table")
    [ -n "$chains" ] || continue
    pattern=$(echo "$chains" | paste -sd'|')
    jumps_to "$save" "$table" "$pattern" | while read -r rule; do
      eval "$ipt -t $table -D ${rule#-A }" 2>/dev/null || true
    done
    for chain in $chains; do "$ipt" -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $chains; do "$ipt" -t "$table" -X "$chain" 2>/dev/null || true; done
  done
}

clean_iptables() {
  if [ -x "$BIN_DIR/kube-proxy" ]; then "$BIN_DIR/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  [ -f "$STATE_DIR/iptables.before" ] || return 0
  remove_chains iptables
  remove_chains ip6tables
}

remove_network() {
  local ns link
  for ns in $(ip netns list | awk '{print $1}' | grep '^stowage-' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$ns"
    rm -rf "/etc/netns/$ns"
  done
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^sth-' || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  for link in "$POD_BRIDGE" "$HOSTS_BRIDGE"; do
    ip link show "$link" >/dev/null 2>&1 && ip link delete "$link"
  done
  return 0
}

remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

restore_sysctls() {
  [ -f "$STATE_DIR/sysctl.before" ] || return 0
  local key value
  tac "$STATE_DIR/sysctl.before" | while IFS='=' read -r key value; do
    echo "$value" > "/proc/sys/${key//.//}"
  done
}

teardown() {
  local start
  start=$(date +%s)
  stop_vm_nodes
  stop_node
  stop_control_plane
  clean_iptables
  remove_network
  unmount_all_under "$STATE_DIR"
  unmount_all_under "$SHARED_HOST_DIR"
  remove_cgroups
  restore_sysctls
  rm -rf "$STATE_DIR" "$SHARED_HOST_DIR"
  # Shim sockets live under containerd's default state dir whatever the config says.
  if [ -d /run/containerd ]; then find /run/containerd -depth -type d -empty -delete; fi
  log "local cluster removed in $(( $(date +%s) - start )) s"
}
