# The metrics plane part of hack/cluster.sh (sourced after node.sh): prometheus-operator as a
# host process, and one Prometheus (`monitoring/modelship`) that it runs as a pod on the node and
# that picks up every namespace's PodMonitors, ServiceMonitors and PrometheusRules. A host
# forwarder publishes Prometheus on 127.0.0.1; .cluster/endpoints.env says where.
#
# Binaries: hack/build-monitoring.sh; images (prometheus, prometheus-config-reloader):
# hack/images.sh, imported into containerd by node_up like the others.
# shellcheck shell=bash

MONITORING_NAMESPACE=monitoring
PROMETHEUS_NAME=modelship
PROMETHEUS_IMAGE=docker.io/modelship/prometheus:${PROMETHEUS_VERSION#v}
CONFIG_RELOADER_IMAGE=docker.io/modelship/prometheus-config-reloader:${PROM_OPERATOR_VERSION#v}
# A fixed ClusterIP, so the host forwarder needs no lookup; kube-proxy's OUTPUT rules make it
# reachable from the host. Outside the range the apiserver usually hands out first (it
# allocates randomly, so a clash is unlikely but reported by the apply).
PROMETHEUS_CLUSTER_IP=10.96.0.90
PROMETHEUS_PORT=9090
PROMETHEUS_HOST_PORT=${MODELSHIP_PROMETHEUS_PORT:-19090}
PROM_OPERATOR_PORT=${MODELSHIP_PROM_OPERATOR_PORT:-19091}
PROM_OPERATOR_KUBECONFIG=$CLUSTER_DIR/prometheus-operator.kubeconfig
ENDPOINTS_FILE=$CLUSTER_DIR/endpoints.env
# Only what the Prometheus controller watches: it always informs on Probes, and ScrapeConfigs
# are optional (the operator checks). No Alertmanager, ThanosRuler or PrometheusAgent.
MONITORING_CRDS=(prometheuses podmonitors servicemonitors prometheusrules probes)
# Set MODELSHIP_MONITORING=0 for a cluster without the metrics plane.
WITH_MONITORING=${MODELSHIP_MONITORING:-1}

prom_operator_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$PROM_OPERATOR_PORT/healthz"; }
prometheus_ready() { curl -fsS --max-time 2 "http://127.0.0.1:$PROMETHEUS_HOST_PORT/-/ready"; }
prometheus_pod_ready() {
  kubectl_admin -n "$MONITORING_NAMESPACE" get pods -l "prometheus=$PROMETHEUS_NAME" \
    -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' | grep -q True
}

# The operator's own client certificate: a user bound to its ClusterRole below.
ensure_prom_operator_credentials() {
  client_credentials "$PROM_OPERATOR_KUBECONFIG" prometheus-operator "modelship:prometheus-operator"
}

# Server-side: the Prometheus CRD is larger than client-side apply's annotation allows.
# Skipped when every CRD is there at this operator version (keeps a repeated `up` fast).
apply_monitoring_crds() {
  local names=() n
  for n in "${MONITORING_CRDS[@]}"; do names+=("$n.monitoring.coreos.com"); done
  local have
  have=$(kubectl_admin get crd "${names[@]}" --ignore-not-found \
    -o jsonpath='{range .items[*]}{.metadata.annotations.operator\.prometheus\.io/version}{"\n"}{end}' 2>/dev/null || true)
  if [[ $(grep -cx "${PROM_OPERATOR_VERSION#v}" <<<"$have") == "${#names[@]}" ]]; then return 0; fi
  log "applying prometheus-operator $PROM_OPERATOR_VERSION CRDs: ${MONITORING_CRDS[*]}"
  local files=()
  for n in "${MONITORING_CRDS[@]}"; do files+=(-f "$PROM_OPERATOR_BIN/crds/monitoring.coreos.com_$n.yaml"); done
  kubectl_admin apply --server-side --force-conflicts --field-manager modelship-cluster "${files[@]}" >/dev/null
  # A CRD created a moment ago has no status.conditions yet, and `kubectl wait` then fails at
  # once ("accessor error") instead of waiting: retry it until the deadline.
  local deadline=$((SECONDS + 60))
  until kubectl_admin wait --for condition=Established --timeout 20s "${names[@]/#/crd/}" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "prometheus-operator CRDs not Established after 60s"
    sleep 1
  done
}

# What prometheus-operator does for one Prometheus: StatefulSet, its config Secrets and rule
# ConfigMaps, the governing Service, status and events. Read-only on the monitors and rules.
apply_prom_operator_rbac() {
  kubectl_admin apply --server-side --field-manager modelship-cluster -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "modelship:prometheus-operator"}
rules:
- apiGroups: [monitoring.coreos.com]
  resources: [prometheuses]
  verbs: [get, list, watch, update, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheuses/status, prometheuses/finalizers]
  verbs: [get, update, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors, servicemonitors, prometheusrules, probes]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, endpoints]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:prometheus-operator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "modelship:prometheus-operator"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "modelship:prometheus-operator"}
EOF
}

start_prom_operator() {
  # The operator reads its kubeconfig from $KUBECONFIG (it has no flag for one). Only the
  # monitoring namespace may hold Prometheus objects; monitors and rules come from anywhere.
  start prometheus-operator env KUBECONFIG="$PROM_OPERATOR_KUBECONFIG" \
    "$PROM_OPERATOR_BIN/prometheus-operator" \
    --web.listen-address "127.0.0.1:$PROM_OPERATOR_PORT" \
    --prometheus-config-reloader "$CONFIG_RELOADER_IMAGE" \
    --prometheus-instance-namespaces "$MONITORING_NAMESPACE" \
    --config-reloader-cpu-limit 0 \
    --log-level info
  wait_for prometheus-operator 60 prom_operator_healthy
}

# The Prometheus the tests, the operator and users query. Its ServiceAccount may discover and
# scrape pods, Services and endpoints, and nothing else.
apply_prometheus() {
  kubectl_admin apply --server-side --field-manager modelship-cluster -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $MONITORING_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus, namespace: $MONITORING_NAMESPACE}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "modelship:prometheus"}
rules:
- apiGroups: [""]
  resources: [pods, services, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- nonResourceURLs: [/metrics]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:prometheus"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "modelship:prometheus"}
subjects:
- {kind: ServiceAccount, name: prometheus, namespace: $MONITORING_NAMESPACE}
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: $PROMETHEUS_NAME, namespace: $MONITORING_NAMESPACE}
spec:
  image: $PROMETHEUS_IMAGE
  version: $PROMETHEUS_VERSION
  # Images are imported, never pulled (there is no registry to pull from).
  imagePullPolicy: IfNotPresent
  replicas: 1
  serviceAccountName: prometheus
  # Fast enough for tests and the canary analysis to see a change within seconds.
  scrapeInterval: 5s
  scrapeTimeout: 4s
  evaluationInterval: 5s
  # {} selects everything: every namespace's monitors and rules, whatever their labels.
  podMonitorSelector: {}
  podMonitorNamespaceSelector: {}
  serviceMonitorSelector: {}
  serviceMonitorNamespaceSelector: {}
  ruleSelector: {}
  ruleNamespaceSelector: {}
  retention: 6h
  retentionSize: 512MB
  resources:
    requests: {cpu: 100m, memory: 256Mi}
    limits: {memory: 1Gi}
  # The images' own user (nobody); the operator sets no securityContext of its own.
  securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534}
---
apiVersion: v1
kind: Service
metadata:
  name: prometheus
  namespace: $MONITORING_NAMESPACE
  labels: {app.kubernetes.io/name: prometheus}
spec:
  clusterIP: $PROMETHEUS_CLUSTER_IP
  selector: {prometheus: $PROMETHEUS_NAME}
  ports:
  - {name: web, port: $PROMETHEUS_PORT, targetPort: web}
EOF
}

# Waits for the Prometheus pod; on a timeout names what it waits on (an image, a crash loop).
wait_prometheus_pod() {
  local deadline=$((SECONDS + $1))
  until prometheus_pod_ready >/dev/null 2>&1; do
    alive prometheus-operator || die "prometheus-operator exited; last lines of $LOGS/prometheus-operator.log:
$(tail -n 20 "$LOGS/prometheus-operator.log" 2>/dev/null)"
    if ((SECONDS >= deadline)); then
      die "Prometheus pod not Ready after ${1}s:
$(kubectl_admin -n "$MONITORING_NAMESPACE" get pods -o wide 2>&1)
$(kubectl_admin -n "$MONITORING_NAMESPACE" get pods -o jsonpath='{range .items[*].status.containerStatuses[*]}{.name}: {.state}{"\n"}{end}' 2>&1)
last lines of $LOGS/prometheus-operator.log:
$(tail -n 10 "$LOGS/prometheus-operator.log" 2>/dev/null)"
    fi
    sleep 1
  done
}

# Rewrites only the given KEY=VALUE lines of .cluster/endpoints.env; other keys are someone
# else's. Under a lock, and only when something changed.
set_endpoints() {
  local keys=() kv
  for kv in "$@"; do keys+=("${kv%%=*}"); done
  local pattern
  pattern="^($(IFS='|'; echo "${keys[*]}"))="
  (
    flock 8
    local tmp
    tmp=$(mktemp "$ENDPOINTS_FILE.XXXXXX")
    { grep -vE "$pattern" "$ENDPOINTS_FILE" 2>/dev/null || true; printf '%s\n' "$@"; } >"$tmp"
    if cmp -s "$tmp" "$ENDPOINTS_FILE"; then rm -f "$tmp"; else chmod 644 "$tmp" && mv "$tmp" "$ENDPOINTS_FILE"; fi
  ) 8>>"$ENDPOINTS_FILE.lock"
}

unset_endpoints() {
  [[ -f $ENDPOINTS_FILE ]] || return 0
  local pattern
  pattern="^($(IFS='|'; echo "$*"))="
  (
    flock 8
    local tmp
    tmp=$(mktemp "$ENDPOINTS_FILE.XXXXXX")
    grep -vE "$pattern" "$ENDPOINTS_FILE" >"$tmp" || true
    chmod 644 "$tmp" && mv "$tmp" "$ENDPOINTS_FILE"
  ) 8>>"$ENDPOINTS_FILE.lock"
}

MONITORING_KEYS=(PROMETHEUS_URL PROMETHEUS_IN_CLUSTER_URL PROMETHEUS_NAMESPACE PROMETHEUS_NAME)

monitoring_up() {
  [[ $WITH_MONITORING == 1 ]] || return 0
  if [[ ! -x $PROM_OPERATOR_BIN/prometheus-operator || ! -d $PROM_OPERATOR_BIN/crds ]]; then
    # The rest of the cluster is still useful; tests that need Prometheus say it is missing.
    log "warning: prometheus-operator not built; no metrics plane (run 'make binaries images', then up)"
    return 0
  fi
  # Imported here by name as well as by node_up: that import stops at the first image not
  # built for the current tree (the runtime's inputs change with every edit of the wheel).
  if ! bash "$here/images.sh" import --address "$CONTAINERD_SOCK" prometheus prometheus-config-reloader; then
    log "warning: the Prometheus images are not built; no metrics plane (run 'make images', then up)"
    return 0
  fi
  local t0=$SECONDS
  ensure_prom_operator_credentials
  apply_monitoring_crds
  apply_prom_operator_rbac
  start_prom_operator
  apply_prometheus
  wait_prometheus_pod 240
  # Packets for the ClusterIP that kube-proxy has not rewritten (it is down, the Service has no
  # endpoint yet) go to the node's empty bridge and die there, never out of the machine.
  ip route replace "$PROMETHEUS_CLUSTER_IP/32" dev "$NODE_IF"
  start prometheus-forward socat \
    "TCP-LISTEN:$PROMETHEUS_HOST_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$PROMETHEUS_CLUSTER_IP:$PROMETHEUS_PORT"
  wait_for prometheus-forward 60 prometheus_ready
  set_endpoints \
    "PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_HOST_PORT" \
    "PROMETHEUS_IN_CLUSTER_URL=http://prometheus.$MONITORING_NAMESPACE.svc:$PROMETHEUS_PORT" \
    "PROMETHEUS_NAMESPACE=$MONITORING_NAMESPACE" \
    "PROMETHEUS_NAME=$PROMETHEUS_NAME"
  log "metrics plane ready in $((SECONDS - t0))s: Prometheus at http://127.0.0.1:$PROMETHEUS_HOST_PORT"
}

monitoring_down() {
  unset_endpoints "${MONITORING_KEYS[@]}"
  stop prometheus-forward
  stop prometheus-operator
  # Started by a `up` whose pid file was lost: the listen addresses are this cluster's own.
  pkill -KILL -f -- "TCP-LISTEN:$PROMETHEUS_HOST_PORT,bind=127.0.0.1" 2>/dev/null || true
  pkill -KILL -f -- "$PROM_OPERATOR_BIN/prometheus-operator --web.listen-address 127.0.0.1:$PROM_OPERATOR_PORT" 2>/dev/null || true
  ip route del "$PROMETHEUS_CLUSTER_IP/32" dev "$NODE_IF" 2>/dev/null || true
}

monitoring_status() {
  [[ $WITH_MONITORING == 1 ]] || return 0
  # check (cmd_status') sets bad when a component is down or unhealthy.
  local bad=0
  check prometheus-operator prom_operator_healthy
  check prometheus-forward prometheus_ready
  if prometheus_ready >/dev/null 2>&1; then
    printf '%-24s %s\n' "prometheus" "ready: http://127.0.0.1:$PROMETHEUS_HOST_PORT"
  else
    printf '%-24s %s\n' "prometheus" "NOT READY (/-/ready at http://127.0.0.1:$PROMETHEUS_HOST_PORT)"; bad=1
  fi
  return $bad
}
