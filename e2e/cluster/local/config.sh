# shellcheck shell=bash
# Configuration files of containerd, CNI, the kubelet and kube-proxy; sourced by local.sh.
CONFIG_DIR="$STATE_DIR/config"
CNI_CONF_DIR="$STATE_DIR/cni/net.d"
KUBELET_DIR="$STATE_DIR/kubelet"

# install_file DEST < CONTENT: replaces DEST only when CONTENT differs (daemons such as
# kube-proxy exit when their configuration file is written); 0 when it changed.
install_file() {
  local dest=$1
  cat > "$dest.new"
  if [ -f "$dest" ] && cmp -s "$dest" "$dest.new"; then
    rm -f "$dest.new"
    return 1
  fi
  mv "$dest.new" "$dest"
}

write_containerd_config() {
  install_file "$CONFIG_DIR/containerd.toml" <<EOF || true
version = 2
root = "$STATE_DIR/containerd"
state = "$STATE_DIR/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  # Without CAP_SYS_RESOURCE no process may lower its oom_score_adj (the sandbox asks -998).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STATE_DIR/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
EOF
}

write_cni_config() {
  mkdir -p "$CNI_CONF_DIR"
  cni_conflist "$POD_CIDR" "$STATE_DIR/cni/ipam" | install_file "$CNI_CONF_DIR/10-stowage.conflist" || true
}

# cni_conflist POD_CIDR IPAM_DIR prints the pods' network of a node (the VM nodes' too):
# a bridge that is the pods' gateway, host-local addresses from POD_CIDR, portmap.
cni_conflist() {
  cat <<EOF
{
  "cniVersion": "0.4.0",
  "name": "stowage-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$2",
        "ranges": [[{"subnet": "$1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

cluster_dns_config() {
  if dns_enabled; then
    printf 'clusterDNS: ["%s"]\nclusterDomain: cluster.local\n' "$DNS_SERVICE_IP"
  fi
}

# What pods get instead of this machine's resolv.conf (dnsPolicy Default, and the host-network
# pods): the cluster's DNS only, which answers for the cluster and forwards nothing.
write_pod_resolv_conf() {
  local servers=""
  if dns_enabled; then servers="nameserver $NODE_IP"; fi
  echo "$servers" | install_file "$CONFIG_DIR/resolv.conf" || true
}

# A changed kubelet configuration (cluster DNS appeared, say) restarts the kubelet.
write_kubelet_config() {
  if kubelet_config | install_file "$CONFIG_DIR/kubelet.yaml"; then stop_daemons kubelet; fi
}

kubelet_config() {
  cat <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"nodefs.available": "1%", "imagefs.available": "1%", "memory.available": "100Mi"}
podCIDR: $POD_CIDR
podLogsDir: $STATE_DIR/pod-logs
volumePluginDir: $STATE_DIR/kubelet-plugins
registerNode: true
serializeImagePulls: false
resolvConf: $CONFIG_DIR/resolv.conf
$(cluster_dns_config)
EOF
}

# kube_proxy_config KUBECONFIG NODE_NAME NODE_IP: a node's kube-proxy (this one's, a VM's).
kube_proxy_config() {
  cat <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $1}
hostnameOverride: $2
bindAddress: $3
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $CLUSTER_CIDR
nodePortAddresses: ["$3/32"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

write_kube_proxy_config() {
  kube_proxy_config "$KUBECONFIG_DIR/kube-proxy" "$NODE_NAME" "$NODE_IP" \
    | install_file "$CONFIG_DIR/kube-proxy.yaml" || true
}

write_configs() {
  mkdir -p "$CONFIG_DIR"
  write_containerd_config
  write_cni_config
  write_pod_resolv_conf
  write_kubelet_config
  write_kube_proxy_config
}
