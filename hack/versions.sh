# Versions of everything the local cluster builds, and where builds are cached.
# Sourced by the hack/ scripts; change a version here and the cache key follows.
K8S_VERSION=${K8S_VERSION:-v1.33.13}
ETCD_VERSION=${ETCD_VERSION:-v3.5.35}
MODELSHIP_CACHE=${MODELSHIP_CACHE:-$HOME/.cache/modelship}
K8S_BIN=$MODELSHIP_CACHE/bin/kubernetes-$K8S_VERSION
ETCD_BIN=$MODELSHIP_CACHE/bin/etcd-$ETCD_VERSION
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.4}
COREDNS_BIN=$MODELSHIP_CACHE/bin/coredns-$COREDNS_VERSION
