# shellcheck shell=bash
# VM worker nodes of the local cluster: the VMs of vm.sh, joined to its control plane.
# Sourced by local.sh. Each VM node gets its own kubelet certificates (Node authorizer), a tap
# on the test-host bridge, a route to its pod network, and is tainted $VM_NODE_TAINT so that
# only what needs its kernel or a second node runs there. Its kubelet's root directory is the
# same path as this machine's ($KUBELET_DIR), so that one node plugin DaemonSet serves all nodes.
#
#   start_vm_nodes    prepare and boot every VM (in the background: they join on their own)
#   wait_vm_nodes     until every VM node is Ready
#   stop_vm_nodes     power them off and remove their taps (down)
#   vm_node_command kill|start|cut|restore NAME   faults for the tests: SIGKILL its qemu (the
#                     node is lost, not drained), boot it again on the same disk, drop every
#                     packet to and from it (its tap down), undo that
# shellcheck source=vm.sh
source "$LOCAL_DIR/vm.sh"

vm_tap() { echo "$VM_TAP_PREFIX$1"; }

vm_node_pki() {
  local name=$1 ip=$2
  make_cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name" clientAuth
  make_cert "kubelet-serving-$name" "/CN=$name" serverAuth "DNS:$name,IP:$ip"
  make_kubeconfig "$KUBECONFIG_DIR/kubelet-$name" "kubelet-$name" "https://$NODE_IP:$API_PORT"
}

# The VM's files, as vm.sh's config-disk contract names them (paths inside the VM are
# under /etc/stowage/node).
vm_node_config() {
  local index=$1 dir=$2 name ip node=/etc/stowage/node
  name=$(vm_node_name "$index")
  ip=$(vm_node_ip "$index")
  mkdir -p "$dir"
  cat > "$dir/node.env" <<EOF
NODE_NAME=$name
NODE_IP=$ip
PREFIX_LEN=${HOSTS_CIDR#*/}
GATEWAY=$NODE_IP
DNS_IP=$NODE_IP
POD_CIDR=$(vm_pod_cidr "$index")
CLUSTER_CIDR=$CLUSTER_CIDR
SERVICE_CIDR=$SERVICE_CIDR
API_SERVER=https://$NODE_IP:$API_PORT
KUBELET_DIR=$KUBELET_DIR
EOF
  cp "$PKI_DIR/ca.crt" "$dir/ca.crt"
  cp "$PKI_DIR/kubelet-serving-$name.crt" "$dir/kubelet-serving.crt"
  cp "$PKI_DIR/kubelet-serving-$name.key" "$dir/kubelet-serving.key"
  cp "$KUBECONFIG_DIR/kubelet-$name" "$dir/kubelet.kubeconfig"
  cp "$KUBECONFIG_DIR/kube-proxy" "$dir/kube-proxy.kubeconfig"
  cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $node/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $node/kubelet-serving.crt
tlsPrivateKeyFile: $node/kubelet-serving.key
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "100Mi"}
registerNode: true
registerWithTaints: [{key: $VM_NODE_TAINT, value: "true", effect: NoSchedule}]
serializeImagePulls: false
resolvConf: /etc/resolv.conf
$(cluster_dns_config)
EOF
  kube_proxy_config "$node/kube-proxy.kubeconfig" "$name" "$ip" > "$dir/kube-proxy.yaml"
}

vm_node_network() {
  local index=$1 tap
  tap=$(vm_tap "$index")
  ip link show "$tap" >/dev/null 2>&1 || ip tuntap add dev "$tap" mode tap
  ip link set "$tap" master "$HOSTS_BRIDGE" up
  ip route replace "$(vm_pod_cidr "$index")" via "$(vm_node_ip "$index")" dev "$HOSTS_BRIDGE"
}

start_vm_nodes() {
  [ "$VM_NODES" -gt 0 ] || return 0
  vm_load_artifacts
  local index name
  for index in $(seq "$VM_NODES"); do
    name=$(vm_node_name "$index")
    vm_is_running "$name" && continue
    vm_node_pki "$name" "$(vm_node_ip "$index")"
    vm_node_config "$index" "$STATE_DIR/vms/$name.config"
    vm_node_network "$index"
    vm_prepare_node "$name" "$index" "$STATE_DIR/vms/$name.config"
    vm_start "$name" "$index" "tap,ifname=$(vm_tap "$index"),script=no,downscript=no"
  done
}

vm_node_ready() {
  kubectl_admin get node "$1" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

wait_vm_nodes() {
  local name
  for name in $VM_NODE_NAMES; do
    wait_until "${VM_READY_TIMEOUT:-420}" "VM node $name Ready" vm_node_ready "$name"
  done
}

vm_nodes_healthy() {
  local name
  for name in $VM_NODE_NAMES; do
    if ! vm_is_running "$name" || ! vm_node_ready "$name"; then return 1; fi
  done
}

stop_vm_nodes() {
  local dir name link
  for dir in "$VM_STATE_DIR"/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    vm_is_running "$name" && vm_kill "$name"
  done
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 \
      | grep -E "^$VM_TAP_PREFIX" || true); do
    ip link delete "$link" 2>/dev/null || true
  done
}

vm_node_index() {
  local index
  for index in $(seq "$VM_NODES"); do
    [ "$(vm_node_name "$index")" = "$1" ] && { echo "$index"; return 0; }
  done
  log "no VM node $1 (VM nodes: $VM_NODE_NAMES)"
  return 1
}

vm_node_command() {
  local command=${1:-} name=${2:-} index
  index=$(vm_node_index "$name")
  case "$command" in
    kill) vm_kill "$name" ;;
    start) vm_start "$name" "$index" "tap,ifname=$(vm_tap "$index"),script=no,downscript=no" ;;
    cut) ip link set "$(vm_tap "$index")" down ;;
    restore) ip link set "$(vm_tap "$index")" up ;;
    *) log "usage: local.sh vm kill|start|cut|restore NAME"; return 2 ;;
  esac
}
