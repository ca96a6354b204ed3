# shellcheck shell=bash
# Certificates and kubeconfigs of the local cluster; sourced by local.sh.
# One CA signs everything (as hack/local-up-cluster.sh does); keys are ECDSA P-256.
PKI_DIR="$STATE_DIR/pki"
KUBECONFIG_DIR="$STATE_DIR/kubeconfig.d"
ADMIN_KUBECONFIG="$STATE_DIR/kubeconfig"
API_PORT=6443

new_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

make_ca() {
  [ -f "$PKI_DIR/ca.crt" ] && return 0
  new_key "$PKI_DIR/ca.key"
  openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=stowage-e2e-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI_DIR/ca.crt"
}

# make_cert NAME SUBJECT USAGE [SAN] — NAME.crt/.key signed by the CA;
# USAGE is clientAuth or serverAuth.
make_cert() {
  local name=$1 subject=$2 usage=$3 san=${4:-}
  [ -f "$PKI_DIR/$name.crt" ] && return 0
  local extra=()
  [ -n "$san" ] && extra=(-addext "subjectAltName=$san")
  new_key "$PKI_DIR/$name.key"
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=$usage" "${extra[@]}" -out "$PKI_DIR/$name.csr"
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -days 3650 -copy_extensions copyall -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr"
}

make_service_account_keys() {
  [ -f "$PKI_DIR/sa.key" ] && return 0
  openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
}

# make_kubeconfig FILE CERT_NAME SERVER
make_kubeconfig() {
  local file=$1 cert=$2 server=$3
  [ -f "$file" ] && return 0
  local k=(kubectl config --kubeconfig "$file")
  "${k[@]}" set-cluster stowage --server "$server" --certificate-authority "$PKI_DIR/ca.crt" \
    --embed-certs >/dev/null
  "${k[@]}" set-credentials "$cert" --client-certificate "$PKI_DIR/$cert.crt" \
    --client-key "$PKI_DIR/$cert.key" --embed-certs >/dev/null
  "${k[@]}" set-context stowage --cluster stowage --user "$cert" >/dev/null
  "${k[@]}" use-context stowage >/dev/null
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$PKI_DIR" "$KUBECONFIG_DIR"
  chmod 700 "$PKI_DIR"
  make_ca
  local api_san="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  api_san+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME"
  api_san+=",IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_IP"
  make_cert apiserver "/CN=kube-apiserver" serverAuth "$api_san"
  make_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  make_cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
  make_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  make_cert scheduler "/CN=system:kube-scheduler" clientAuth
  make_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  make_cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  make_cert kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  make_service_account_keys

  local local_api="https://127.0.0.1:$API_PORT" node_api="https://$NODE_IP:$API_PORT"
  make_kubeconfig "$ADMIN_KUBECONFIG" admin "$local_api"
  make_kubeconfig "$KUBECONFIG_DIR/controller-manager" controller-manager "$local_api"
  make_kubeconfig "$KUBECONFIG_DIR/scheduler" scheduler "$local_api"
  make_kubeconfig "$KUBECONFIG_DIR/kubelet" kubelet "$node_api"
  make_kubeconfig "$KUBECONFIG_DIR/kube-proxy" kube-proxy "$node_api"
}
