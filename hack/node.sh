# The node part of hack/cluster.sh (sourced): containerd + runc + CNI bridge,
# the kubelet, kube-proxy in iptables mode, CoreDNS, and a forwarder that lets
# pods reach the apiserver, which itself listens on 127.0.0.1 only.
# shellcheck shell=bash

CONTAINERD_DIR=$CLUSTER_DIR/containerd
# Unix socket paths are limited to 108 bytes and the kubelet makes sockets below
# its root dir, so both live under short per-cluster paths rather than in a
# checkout whose path length we do not control. The socket's path is also
# written to .cluster/containerd.address for other scripts.
SHORT_ID=$(printf %s "$CLUSTER_DIR" | sha256sum | cut -c1-8)
CONTAINERD_SOCK=/run/modelship/$SHORT_ID/containerd.sock
KUBELET_ROOT=/var/lib/modelship/kubelet-$SHORT_ID
CNI_CONF_DIR=$CLUSTER_DIR/cni/net.d
CNI_BIN_DIR=${MODELSHIP_CNI_BIN_DIR:-/usr/lib/cni}
POD_CIDR=10.244.0.0/24
CLUSTER_DNS=10.96.0.10
KUBELET_DIR=$CLUSTER_DIR/kubelet
NODE_COMPONENTS=(containerd apiserver-forward kubelet kube-proxy coredns)
# The development artifact store (a file:// store is a hostPath): the pods the operator makes
# run as the runtime image's user (MODELSHIP_RUN_AS_USER), never root, so it must own the root.
DEV_STORE=/var/lib/modelship/artifacts
RUNTIME_UID=65532
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack socat)

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

ensure_node_packages() {
  local missing=() p
  for p in "${NODE_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_kernel_settings() {
  # Pods reach Services and the outside only with forwarding, and kube-proxy's
  # rules see bridged pod-to-pod traffic only with bridge netfilter on.
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
    log "warning: net.bridge.bridge-nf-call-iptables not settable; pod-to-Service on one bridge may fail"
}

# kube-proxy exits when its config file changes under it, so a repeated `up`
# must leave unchanged files untouched.
write_if_changed() {
  local target=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if cmp -s "$tmp" "$target"; then rm -f "$tmp"; else mv "$tmp" "$target"; fi
}

write_node_config() {
  mkdir -p "$CONTAINERD_DIR" "$CNI_CONF_DIR" "$KUBELET_DIR" "$KUBELET_ROOT" "$CLUSTER_DIR/cni/ipam" \
    "$(dirname "$CONTAINERD_SOCK")"
  echo "$CONTAINERD_SOCK" >"$CLUSTER_DIR/containerd.address"
  install -d -m 0755 -o "$RUNTIME_UID" -g "$RUNTIME_UID" "$DEV_STORE"
  write_if_changed "$CONTAINERD_DIR/config.toml" <<EOF
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/modelship/pause:0.1.0"
  enable_selinux = false
  # This machine withholds CAP_SYS_RESOURCE even from root, so the negative
  # oom_score_adj the kubelet asks for (-998 sandboxes, -997 Guaranteed pods)
  # cannot be written; clamp it to containerd's own score instead of failing.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
EOF
  write_if_changed "$CNI_CONF_DIR/10-modelship.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "modelship",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  write_if_changed "$KUBELET_DIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$CLUSTER_DNS]
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
failSwapOn: false
serializeImagePulls: false
# Images cannot be pulled again here (no registry), so the kubelet must never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
podPidsLimit: 4096
maxPods: 110
# Secret and ConfigMap volumes follow their objects on each pod sync: 10s instead of 1m, so a new
# PodMonitor or rule reaches Prometheus (via its config-reloader) within seconds in tests.
syncFrequency: 10s
EOF
  write_if_changed "$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CLUSTER_DIR/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack table size alone: this may be a VM that forbids changing it.
conntrack: {maxPerCore: 0}
nodePortAddresses: [$NODE_IP/32]
EOF
  kubeconfig "$CLUSTER_DIR/coredns.kubeconfig" coredns
  write_if_changed "$CLUSTER_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $CLUSTER_DIR/coredns.kubeconfig modelship
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
EOF
}

containerd_ready() { ctr --address "$CONTAINERD_SOCK" version; }
kubelet_healthy() { curl -fsS --max-time 2 http://127.0.0.1:10248/healthz | grep -q '^ok$'; }
kube_proxy_healthy() { curl -fsS --max-time 2 http://127.0.0.1:10256/healthz; }
coredns_ready() { curl -fsS --max-time 2 http://127.0.0.1:18181/ready; }
forward_up() { (exec 3<>"/dev/tcp/$NODE_IP/$APISERVER_PORT") 2>/dev/null; }
node_ready() {
  kubectl_admin get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -q True
}

# CoreDNS runs on the node's address as a host process; the kube-dns Service
# points at it through an EndpointSlice of our own (the Service has no selector).
apply_cluster_addons() {
  kubectl_admin apply --server-side --field-manager modelship-cluster -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "modelship:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "modelship:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "modelship:coredns"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:kube-proxy"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-proxier"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-proxy"}
---
# The 1.33 node-proxier role lacks ServiceCIDRs, which kube-proxy watches.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "modelship:kube-proxy-extra"}
rules:
- apiGroups: [networking.k8s.io]
  resources: [servicecidrs]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:kube-proxy-extra"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "modelship:kube-proxy-extra"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-proxy"}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $CLUSTER_DNS
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: modelship-cluster
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
}

import_images() {
  if [[ -f $here/images.sh ]]; then
    # Pods of an image that did not import fail with ErrImageNeverPull, which
    # names the image; the cluster itself is still useful, so go on.
    bash "$here/images.sh" import --address "$CONTAINERD_SOCK" ||
      log "warning: image import failed; run 'make images' then 'hack/images.sh import'"
  else
    log "warning: hack/images.sh missing; no images imported, pods cannot start"
  fi
}

node_up() {
  [[ -x $COREDNS_BIN/coredns ]] || die "coredns missing; run 'make binaries' first"
  local t0=$SECONDS
  ensure_node_packages
  ensure_kernel_settings
  write_node_config
  start containerd containerd --config "$CONTAINERD_DIR/config.toml"
  wait_for containerd 30 containerd_ready
  import_images
  start apiserver-forward socat \
    "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_IP,reuseaddr,fork" "TCP:127.0.0.1:$APISERVER_PORT"
  wait_for apiserver-forward 10 forward_up
  apply_cluster_addons
  start kubelet "$K8S_BIN/kubelet" \
    --config "$KUBELET_DIR/config.yaml" \
    --kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" \
    --root-dir "$KUBELET_ROOT" \
    --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" \
    --v 1
  start kube-proxy "$K8S_BIN/kube-proxy" --config "$CLUSTER_DIR/kube-proxy.yaml" --v 1
  start coredns "$COREDNS_BIN/coredns" -conf "$CLUSTER_DIR/Corefile"
  wait_for kubelet 60 kubelet_healthy
  wait_for kube-proxy 60 kube_proxy_healthy
  wait_for coredns 60 coredns_ready
  wait_for kubelet 60 node_ready
  log "node $NODE_NAME Ready in $((SECONDS - t0))s"
}

# Everything the node leaves on the host: containers and their shims, mounts,
# network namespaces, the bridge, and iptables rules.
node_down() {
  stop coredns
  stop kube-proxy
  stop kubelet
  if alive containerd; then
    local ns=k8s.io task
    for task in $(ctr --address "$CONTAINERD_SOCK" -n $ns tasks ls -q 2>/dev/null); do
      ctr --address "$CONTAINERD_SOCK" -n $ns tasks kill -s KILL "$task" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  stop apiserver-forward
  pkill -KILL -f -- "-address $CONTAINERD_SOCK" 2>/dev/null || true
  pkill -KILL -f -- "TCP-LISTEN:$APISERVER_PORT,bind=$NODE_IP" 2>/dev/null || true
  # Container processes whose shim is gone are still ours if they run in our cgroups.
  local cg
  for cg in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
    [[ -d $cg ]] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  done
  { grep -oE " ($CLUSTER_DIR|$KUBELET_ROOT)[^ ]*" /proc/mounts || true; } | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  local n
  for n in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns del "$n" 2>/dev/null || true; done
  ip link del cni0 2>/dev/null || true
  rm -rf "$CLUSTER_DIR/cni/ipam"
  if [[ -x $K8S_BIN/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  # The bridge plugin's masquerade chains are named CNI-<hash>.
  if iptables-save 2>/dev/null | grep -q '^:CNI-'; then
    iptables-save | grep -v -- '-j CNI-\|^:CNI-\|-A CNI-' | iptables-restore 2>/dev/null || true
  fi
}

node_status() {
  local bad=0
  check containerd containerd_ready
  check apiserver-forward forward_up
  check kubelet kubelet_healthy
  check kube-proxy kube_proxy_healthy
  check coredns coredns_ready
  if alive kubelet && node_ready >/dev/null 2>&1; then
    printf '%-24s %s\n' "node/$NODE_NAME" "Ready"
  else
    printf '%-24s %s\n' "node/$NODE_NAME" "NOT READY"; bad=1
  fi
  return $bad
}
