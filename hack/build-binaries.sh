#!/usr/bin/env bash
# Builds the local cluster's Go programs (Kubernetes, etcd, CoreDNS) from the Go
# module proxy into a cache outside the repo, keyed by version.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging
# modules with ./staging paths. We depend on it from a throwaway wrapper module
# that replaces every staging module with its published v0.<minor>.<patch> tag,
# the list derived from the tag's own go.mod.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

log() { printf '[build-binaries] %s\n' "$*" >&2; }

export CGO_ENABLED=0
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

build_kubernetes() {
  local out=$K8S_BIN
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=0
  for b in "${bins[@]}"; do [[ -x $out/$b ]] || missing=1; done
  if [[ $missing == 0 ]]; then log "kubernetes $K8S_VERSION cached in $out"; return; fi

  local src=$MODELSHIP_CACHE/src/kubernetes-$K8S_VERSION
  mkdir -p "$src" "$out.tmp"
  local staging_version=v0.${K8S_VERSION#v1.}
  log "fetching k8s.io/kubernetes $K8S_VERSION go.mod"
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >"$src/download.json"
  local upstream_mod
  upstream_mod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$src/download.json")
  {
    echo "module modelship.local/k8sbuild"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # Every "k8s.io/X => ./staging/src/k8s.io/X" becomes "k8s.io/X => k8s.io/X <published tag>".
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$upstream_mod"
    echo ")"
  } >"$src/go.mod"
  local n
  n=$(grep -c '=> k8s.io/' "$src/go.mod")
  log "wrapper module replaces $n staging modules with $staging_version"

  local pkg=k8s.io/component-base/version
  local cpkg=k8s.io/client-go/pkg/version
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w"
  for p in $pkg $cpkg; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  local targets=()
  for b in "${bins[@]}"; do targets+=("k8s.io/kubernetes/cmd/$b"); done
  log "building ${bins[*]} (cold: 15-30 min on 2 cores)"
  (cd "$src" && go build -trimpath -ldflags "$ld" -o "$out.tmp/" "${targets[@]}")
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "kubernetes $K8S_VERSION built into $out"
}

build_etcd() {
  local out=$ETCD_BIN
  if [[ -x $out/etcd ]]; then log "etcd $ETCD_VERSION cached"; return; fi
  local src=$MODELSHIP_CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$src" "$out.tmp"
  # etcd's server module replaces its siblings with ../ paths too; pin them to the same tag.
  cat >"$src/go.mod" <<EOF
module modelship.local/etcdbuild

go 1.23

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.305.${ETCD_VERSION#v3.5.}
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/raft/v3 => go.etcd.io/etcd/raft/v3 $ETCD_VERSION
)
EOF
  log "building etcd $ETCD_VERSION"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "etcd $ETCD_VERSION built into $out"
}

build_coredns() {
  local out=$COREDNS_BIN
  if [[ -x $out/coredns ]]; then log "coredns $COREDNS_VERSION cached"; return; fi
  log "building coredns $COREDNS_VERSION"
  mkdir -p "$out.tmp"
  # CoreDNS's go.mod has no replace directives, so a plain `go install` works.
  GOFLAGS= GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "coredns $COREDNS_VERSION built into $out"
}

case "${1:-all}" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  coredns) build_coredns ;;
  all) build_etcd; build_kubernetes; build_coredns ;;
  *) echo "usage: $0 [all|kubernetes|etcd|coredns]" >&2; exit 2 ;;
esac
