#!/usr/bin/env bash
# The local Kubernetes cluster: etcd and the control plane on 127.0.0.1, plus
# one real node (containerd, kubelet, kube-proxy, CoreDNS) when the node part
# is enabled. Processes, not units: there is no systemd here.
#
#   hack/cluster.sh up       start what is not running (a no-op when all is up)
#   hack/cluster.sh down     stop everything, leave no process behind
#   hack/cluster.sh status   health of each component; non-zero when any is down
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

CLUSTER_DIR=${MODELSHIP_CLUSTER_DIR:-$repo/.cluster}
PKI=$CLUSTER_DIR/pki
RUN=$CLUSTER_DIR/run
LOGS=$CLUSTER_DIR/logs
KUBECONFIG_ADMIN=$CLUSTER_DIR/kubeconfig
NODE_NAME=${MODELSHIP_NODE_NAME:-modelship-node}
# The node's address lives on an empty bridge of our own (this kernel has no
# dummy driver), so pods behind the CNI bridge can reach host services without
# anything listening on the machine's real interface.
NODE_IF=modelship0
NODE_IP=${MODELSHIP_NODE_IP:-10.250.0.1}
ETCD_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=6443
SERVICE_CIDR=10.96.0.0/16
# Set MODELSHIP_NODE=0 for a control plane only (no containers run).
WITH_NODE=${MODELSHIP_NODE:-1}

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$PKI" "$RUN" "$LOGS"

# ---------------------------------------------------------------- processes --

pid_of() { [[ -f $RUN/$1.pid ]] && cat "$RUN/$1.pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# start NAME CMD...: runs CMD detached in its own session, logs to $LOGS/NAME.log.
start() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  log "starting $name (log: $LOGS/$name.log)"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

stop() {
  local name=$1 pid
  pid=$(pid_of "$name")
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping $name"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

# wait_for NAME SECONDS CMD...: polls CMD until it succeeds; fails naming the log.
wait_for() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      die "$name exited; last lines of $LOGS/$name.log:
$(tail -n 20 "$LOGS/$name.log" 2>/dev/null)"
    fi
    ((SECONDS < deadline)) || die "$name not healthy after ${timeout}s; see $LOGS/$name.log"
    sleep 0.3
  done
}

# ----------------------------------------------------------- configuration --

kubeconfig() {
  local out=$1 user=$2 server=${3:-https://127.0.0.1:$APISERVER_PORT}
  [[ -f $out && $out -nt $PKI/$user.crt ]] && return 0
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelship
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$user.crt")
    client-key-data: $(base64 -w0 "$PKI/$user.key")
contexts:
- name: modelship
  context: {cluster: modelship, user: $user}
current-context: modelship
EOF
  chmod 600 "$out"
}

# client_credentials KUBECONFIG FILE CN: a host component's own client certificate (user CN,
# signed by the cluster CA like every other component's; kept across restarts like pki.sh's)
# and its kubeconfig.
client_credentials() {
  local out=$1 name=$PKI/$2 cn=$3
  if [[ ! -f $name.crt ]]; then
    local ext
    ext=$(mktemp)
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >"$ext"
    openssl genrsa -out "$name.key" 2048 2>/dev/null
    chmod 600 "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr" 2>/dev/null
    openssl x509 -req -in "$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$ext"
  fi
  kubeconfig "$out" "$2"
}

ensure_node_address() {
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type bridge
  fi
  ip link set "$NODE_IF" up
  ip addr replace "$NODE_IP/32" dev "$NODE_IF"
}

configure() {
  ensure_node_address
  bash "$here/pki.sh" "$PKI" "$NODE_IP" "$NODE_NAME"
  kubeconfig "$KUBECONFIG_ADMIN" admin
  kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" controller-manager
  kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" scheduler
  kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" kubelet
  kubeconfig "$CLUSTER_DIR/kube-proxy.kubeconfig" kube-proxy
}

# ------------------------------------------------------------ control plane --

curl_api() {
  curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT$1"
}
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() { curl_api /readyz | grep -q '^ok$'; }
component_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz" | grep -q '^ok$'; }

start_etcd() {
  start etcd "$ETCD_BIN/etcd" \
    --name modelship --data-dir "$CLUSTER_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "modelship=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "http://127.0.0.1:12381" \
    --quota-backend-bytes $((2 * 1024 * 1024 * 1024)) \
    --log-level warn
  wait_for etcd 30 etcd_healthy
}

start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --advertise-address "$NODE_IP" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --profiling=false \
    --v 1
  wait_for kube-apiserver 90 apiserver_ready
}

start_controller_manager() {
  local kc=$CLUSTER_DIR/controller-manager.kubeconfig
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --root-ca-file "$PKI/ca.crt" \
    --service-account-private-key-file "$PKI/sa.key" \
    --use-service-account-credentials=true \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false \
    --profiling=false \
    --v 1
}

start_scheduler() {
  local kc=$CLUSTER_DIR/scheduler.kubeconfig
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 \
    --leader-elect=false \
    --profiling=false \
    --v 1
}

CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)

# --------------------------------------------------------------------- node --

if [[ $WITH_NODE == 1 && -f $here/node.sh ]]; then
  # shellcheck source=node.sh
  source "$here/node.sh"
else
  NODE_COMPONENTS=()
  node_up() { :; }
  node_down() { :; }
  node_status() { :; }
fi

# ------------------------------------------------------------ metrics plane --

# Prometheus runs as a pod, so the metrics plane needs the node.
if [[ $WITH_NODE == 1 && -f $here/monitoring.sh ]]; then
  # shellcheck source=monitoring.sh
  source "$here/monitoring.sh"
else
  monitoring_up() { :; }
  monitoring_down() { :; }
  monitoring_status() { :; }
fi

# ------------------------------------------------------------------ gateway --

# The Gateway routes to pods, so it needs the node; set_endpoints comes with the metrics plane.
if [[ $WITH_NODE == 1 && -f $here/gateway.sh && -f $here/monitoring.sh ]]; then
  # shellcheck source=gateway.sh
  source "$here/gateway.sh"
else
  gateway_up() { :; }
  gateway_down() { :; }
  gateway_status() { :; }
fi

# ------------------------------------------------------------- object store --

# Pods reach it on the node's address, so it needs the node; set_endpoints comes with the
# metrics plane.
if [[ $WITH_NODE == 1 && -f $here/store.sh && -f $here/monitoring.sh ]]; then
  # shellcheck source=store.sh
  source "$here/store.sh"
else
  store_up() { :; }
  store_down() { :; }
  store_status() { :; }
fi

# ----------------------------------------------------------------- commands --

cmd_up() {
  [[ -x $K8S_BIN/kube-apiserver && -x $ETCD_BIN/etcd ]] ||
    die "binaries missing; run 'make binaries' (hack/build-binaries.sh) first"
  local t0=$SECONDS
  configure
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  wait_for kube-controller-manager 60 component_healthy 10257
  wait_for kube-scheduler 60 component_healthy 10259
  log "control plane ready in $((SECONDS - t0))s"
  node_up
  store_up
  monitoring_up
  gateway_up
  log "cluster up in $((SECONDS - t0))s"
  echo "kubeconfig: $KUBECONFIG_ADMIN"
  echo "  export KUBECONFIG=$KUBECONFIG_ADMIN"
}

cmd_down() {
  gateway_down
  monitoring_down
  store_down
  node_down
  local i
  for ((i = ${#CONTROL_PLANE[@]} - 1; i >= 0; i--)); do stop "${CONTROL_PLANE[$i]}"; done
  # A process whose pid file was lost (a killed `up`) is still ours: every
  # component's command line names a file under the cluster directory.
  pkill -KILL -f -- "$CLUSTER_DIR/" 2>/dev/null || true
  log "cluster down"
}

cmd_status() {
  local bad=0 name
  check() {
    local name=$1; shift
    if ! alive "$name"; then
      printf '%-24s %s\n' "$name" "DOWN (log: $LOGS/$name.log)"; bad=1
    elif "$@" >/dev/null 2>&1; then
      printf '%-24s %s\n' "$name" "ok (pid $(pid_of "$name"))"
    else
      printf '%-24s %s\n' "$name" "UNHEALTHY (log: $LOGS/$name.log)"; bad=1
    fi
  }
  check etcd etcd_healthy
  check kube-apiserver apiserver_ready
  check kube-controller-manager component_healthy 10257
  check kube-scheduler component_healthy 10259
  node_status || bad=1
  store_status || bad=1
  monitoring_status || bad=1
  gateway_status || bad=1
  if alive kube-apiserver; then
    echo "server version: $(curl_api /version | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p')"
  fi
  echo "kubeconfig: $KUBECONFIG_ADMIN"
  return $bad
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
