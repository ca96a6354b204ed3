#!/usr/bin/env bash
# The `local` provider: a one-node Kubernetes built from source, run as plain
# processes on this machine, all state under $STATE_DIR (default /var/lib/stowage-e2e).
#
#   local.sh up | down | status | kubeconfig | vm kill|start|cut|restore NAME
source "$(dirname "$0")/../../scripts/common.sh"
LOCAL_DIR="$E2E_DIR/cluster/local"
source "$LOCAL_DIR/pki.sh"
source "$LOCAL_DIR/config.sh"
source "$LOCAL_DIR/teardown.sh"
source "$LOCAL_DIR/vm_nodes.sh"

PID_DIR="$STATE_DIR/run/pids"
LOG_DIR="$STATE_DIR/logs"
ETCD_URL=http://127.0.0.1:23790
DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)
dns_enabled() { [ -x "$BIN_DIR/coredns" ]; }
dns_enabled && DAEMONS+=(coredns)

# --- processes ------------------------------------------------------------------

pid_of() { cat "$PID_DIR/$1.pid" 2>/dev/null || true; }

is_running() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$1"
}

# start_daemon NAME COMMAND... starts COMMAND in its own session, logging to
# $LOG_DIR/NAME.log, unless NAME already runs.
start_daemon() {
  local name=$1
  shift
  is_running "$name" && return 0
  log "starting $name"
  setsid nohup "$@" >> "$LOG_DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$PID_DIR/$name.pid"
}

# stop_pids PID... sends TERM to all, then KILL to those alive after 10 s.
stop_pids() {
  local pid alive
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 50); do
    alive=()
    for pid in "$@"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    sleep 0.2
  done
  kill -KILL "${alive[@]}" 2>/dev/null || true
}

# stop_daemons NAME... stops them together.
stop_daemons() {
  local name pids=()
  for name in "$@"; do
    is_running "$name" && { log "stopping $name"; pids+=("$(pid_of "$name")"); }
    rm -f "$PID_DIR/$name.pid"
  done
  stop_pids "${pids[@]}"
}

# wait_until SECONDS DESCRIPTION COMMAND...
wait_until() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${seconds}s waiting for $what; logs in $LOG_DIR"
      return 1
    fi
    sleep 1
  done
}

kubectl_admin() { kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# --- host preparation -----------------------------------------------------------

ensure_binaries() {
  local name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [ -x "$BIN_DIR/$name" ] || { bash "$E2E_DIR/scripts/build-binaries.sh"; return 0; }
  done
}

# Chains that exist before the cluster are never removed by `down`.
record_iptables_baseline() {
  [ -f "$STATE_DIR/iptables.before" ] && return 0
  # A new machine has no chains at all: grep then finds nothing, which is no error.
  { iptables-save; ip6tables-save; } 2>/dev/null | { grep '^:' || true; } | cut -d' ' -f1 \
    | sort -u > "$STATE_DIR/iptables.before"
}

set_sysctl() {
  local key=$1 value=$2 file="/proc/sys/${1//.//}"
  [ "$(cat "$file")" = "$value" ] && return 0
  echo "$key=$(cat "$file")" >> "$STATE_DIR/sysctl.before"
  echo "$value" > "$file"
}

ensure_network() {
  if ! ip link show "$HOSTS_BRIDGE" >/dev/null 2>&1; then
    ip link add "$HOSTS_BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/${HOSTS_CIDR#*/}" dev "$HOSTS_BRIDGE"
  ip link set "$HOSTS_BRIDGE" up
  set_sysctl net.ipv4.ip_forward 1
  set_sysctl net.bridge.bridge-nf-call-iptables 1
}

# A directory bound onto itself and made rshared, so that Bidirectional mounts
# made inside containers propagate back to the host.
ensure_shared_mount() {
  local dir=$1
  mkdir -p "$dir"
  mountpoint -q "$dir" || mount --bind "$dir" "$dir"
  mount --make-rshared "$dir"
}

prepare_host() {
  require_packages
  ensure_binaries
  mkdir -p "$STATE_DIR" "$PID_DIR" "$LOG_DIR" "$STATE_DIR/run/containerd" "$STATE_DIR/pod-logs"
  record_iptables_baseline
  ensure_network
  ensure_shared_mount "$SHARED_HOST_DIR"
  ensure_shared_mount "$KUBELET_DIR"
  make_pki
  write_configs
}

# --- the control plane ------------------------------------------------------------

start_etcd() {
  start_daemon etcd "$BIN_DIR/etcd" --name stowage --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster stowage=http://127.0.0.1:23800 --unsafe-no-fsync --quota-backend-bytes 4294967296
  wait_until 60 etcd curl -fsS "$ETCD_URL/health"
}

start_apiserver() {
  start_daemon kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers "$ETCD_URL" --bind-address 0.0.0.0 --advertise-address "$NODE_IP" \
    --secure-port "$API_PORT" --allow-privileged=true \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --client-ca-file "$PKI_DIR/ca.crt" \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
    --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI_DIR/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI_DIR/sa.pub" \
    --service-account-signing-key-file "$PKI_DIR/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
    --cert-dir "$STATE_DIR/apiserver-certs"
  wait_until 90 kube-apiserver kubectl_admin get --raw /readyz
}

start_controllers() {
  local kc="$KUBECONFIG_DIR/controller-manager" ks="$KUBECONFIG_DIR/scheduler"
  start_daemon kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --leader-elect=false --controllers '*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI_DIR/sa.key" --root-ca-file "$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" \
    --allocate-node-cidrs=false --cert-dir "$STATE_DIR/controller-manager-certs" \
    --kube-api-qps 100 --kube-api-burst 200
  start_daemon kube-scheduler "$BIN_DIR/kube-scheduler" \
    --kubeconfig "$ks" --authentication-kubeconfig "$ks" --authorization-kubeconfig "$ks" \
    --bind-address 127.0.0.1 --leader-elect=false
}

# --- the node -------------------------------------------------------------------------

start_containerd() {
  start_daemon containerd containerd --config "$CONFIG_DIR/containerd.toml"
  wait_until 30 containerd ctr --address "$CONTAINERD_SOCK" version
  bash "$E2E_DIR/scripts/image.sh" pause
  bash "$E2E_DIR/scripts/image.sh" base
  node_has_image "$PAUSE_IMAGE" || bash "$E2E_DIR/scripts/image.sh" import "$PAUSE_IMAGE"
  node_has_image "$BASE_IMAGE" || bash "$E2E_DIR/scripts/image.sh" import "$BASE_IMAGE"
}

node_has_image() {
  ctr --address "$CONTAINERD_SOCK" --namespace k8s.io images ls -q | grep -qxF "$1"
}

start_node() {
  start_containerd
  start_daemon kubelet "$BIN_DIR/kubelet" --config "$CONFIG_DIR/kubelet.yaml" \
    --kubeconfig "$KUBECONFIG_DIR/kubelet" --root-dir "$KUBELET_DIR" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --cert-dir "$STATE_DIR/kubelet-certs"
  start_daemon kube-proxy "$BIN_DIR/kube-proxy" --config "$CONFIG_DIR/kube-proxy.yaml"
}

node_ready() {
  kubectl_admin get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

# Cluster DNS: CoreDNS runs on the node's address as a plain process (no image needed),
# behind the kube-dns Service ($DNS_SERVICE_IP) with a hand-made EndpointSlice. It answers
# cluster.local only: nothing is forwarded off this machine.
write_corefile() {
  install_file "$CONFIG_DIR/Corefile" <<EOF || true
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $ADMIN_KUBECONFIG stowage
        pods insecure
    }
    cache 30
}
EOF
}

dns_service() {
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
    - {name: dns, port: 53, protocol: UDP, targetPort: 53}
    - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: stowage-e2e}
addressType: IPv4
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

start_dns() {
  dns_enabled || return 0
  write_corefile
  start_daemon coredns "$BIN_DIR/coredns" -conf "$CONFIG_DIR/Corefile"
  dns_service | kubectl_admin apply -f - >/dev/null
  wait_until 30 coredns curl -fsS http://127.0.0.1:18181/ready
}

# --- commands --------------------------------------------------------------------------

all_running() {
  local name
  for name in "${DAEMONS[@]}"; do is_running "$name" || return 1; done
}

cluster_healthy() { all_running && node_ready && vm_nodes_healthy; }

cmd_up() {
  if [ -f "$ADMIN_KUBECONFIG" ] && cluster_healthy 2>/dev/null; then
    echo "$ADMIN_KUBECONFIG"
    return 0
  fi
  local start
  start=$(date +%s)
  prepare_host
  start_vm_nodes  # first: they boot (slowly, emulated) while the control plane starts
  start_etcd
  start_apiserver
  start_controllers
  start_node
  wait_until 120 "node $NODE_NAME Ready" node_ready
  wait_until 60 "the default ServiceAccount" kubectl_admin get serviceaccount default -n default
  start_dns
  wait_vm_nodes
  log "cluster up in $(( $(date +%s) - start )) s; logs in $LOG_DIR"
  echo "$ADMIN_KUBECONFIG"
}

cmd_status() {
  local name state rc=0
  for name in "${DAEMONS[@]}"; do
    if is_running "$name"; then state="running (pid $(pid_of "$name"))"; else state=stopped; rc=1; fi
    printf '%-24s %s\n' "$name" "$state"
  done
  for name in $VM_NODE_NAMES; do
    if vm_is_running "$name"; then state="running (qemu pid $(vm_pid "$name"))"; else state=stopped; rc=1; fi
    printf '%-24s %s\n' "VM $name" "$state"
  done
  if [ -f "$ADMIN_KUBECONFIG" ] && kubectl_admin get nodes 2>/dev/null; then :; else rc=1; fi
  return $rc
}

cmd_kubeconfig() {
  [ -f "$ADMIN_KUBECONFIG" ] || { log "no local cluster (run: e2e/cluster.sh up)"; return 1; }
  echo "$ADMIN_KUBECONFIG"
}


case "${1:-}" in
  up) cmd_up ;;
  down) teardown ;;
  status) cmd_status ;;
  kubeconfig) cmd_kubeconfig ;;
  vm) shift; vm_node_command "$@" ;;
  *) echo "usage: $0 up|down|status|kubeconfig|vm kill|start|cut|restore NAME" >&2; exit 2 ;;
esac
