#!/usr/bin/env bash
# Builds the local cluster's metrics plane from the Go module proxy into the cache
# outside the repo, keyed by version (hack/versions.sh):
#   $PROMETHEUS_BIN/{prometheus,promtool}
#   $PROM_OPERATOR_BIN/{prometheus-operator,prometheus-config-reloader,crds/*.yaml}
#
# Debian's Prometheus (2.42) has Kubernetes discovery removed, so we build 3.x.
# github.com/prometheus/prometheus has no replace directives: it builds as a
# dependency of a throwaway module. The build tags drop every service discovery
# but Kubernetes' (plus the always-present file/static ones), which keeps the
# binary and the cold build small. No web UI assets are embedded (the API works).
#
# prometheus-operator's go.mod replaces its two API submodules with ./ paths, so
# `go install module@version` refuses it; as a dependency of a wrapper module
# those replaces are ignored and the published submodules at the same tag are used.
#
# Usage: hack/build-monitoring.sh [all|prometheus|operator]   (no-op when cached)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

log() { printf '[build-monitoring] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
export CGO_ENABLED=0
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

# The same -X flags Prometheus' own release tooling sets, so `--version` and the
# prometheus_build_info metric tell the truth.
version_ldflags() {
  local version=$1 pkg=github.com/prometheus/common/version
  printf -- '-s -w -X %s.Version=%s -X %s.Revision=%s -X %s.Branch=%s -X %s.BuildUser=%s -X %s.BuildDate=%s' \
    "$pkg" "$version" "$pkg" "$2" "$pkg" HEAD "$pkg" modelship "$pkg" "$(date -u +%Y%m%d-%H:%M:%S)"
}

# wrapper_module DIR MODULE-PATH REQUIRE...: a go.mod that only requires the given modules.
wrapper_module() {
  local dir=$1 name=$2; shift 2
  mkdir -p "$dir"
  {
    echo "module $name"
    echo
    echo "go 1.24.0"
    echo
    for r in "$@"; do echo "require $r"; done
  } >"$dir/go.mod"
}

build_prometheus() {
  local out=$PROMETHEUS_BIN
  if [[ -x $out/prometheus && -x $out/promtool ]]; then log "prometheus $PROMETHEUS_VERSION cached in $out"; return; fi
  local src=$MODELSHIP_CACHE/src/prometheus-$PROMETHEUS_VERSION
  wrapper_module "$src" modelship.local/prometheusbuild "github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  log "building prometheus + promtool $PROMETHEUS_VERSION (module $PROMETHEUS_MODULE_VERSION; cold: many minutes on 2 cores)"
  local start=$SECONDS
  # Lower priority: this machine may be building Kubernetes at the same time.
  (cd "$src" && nice -n 10 go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "$(version_ldflags "${PROMETHEUS_VERSION#v}" "$PROMETHEUS_MODULE_VERSION")" \
    -o "$out.tmp/" github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool)
  "$out.tmp/prometheus" --version 2>&1 | sed "s/^/  /" >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "prometheus $PROMETHEUS_VERSION built into $out in $((SECONDS - start)) s"
}

build_operator() {
  local out=$PROM_OPERATOR_BIN
  if [[ -x $out/prometheus-operator && -x $out/prometheus-config-reloader && -d $out/crds ]]; then
    log "prometheus-operator $PROM_OPERATOR_VERSION cached in $out"; return
  fi
  local mod=github.com/prometheus-operator/prometheus-operator
  local src=$MODELSHIP_CACHE/src/prometheus-operator-$PROM_OPERATOR_VERSION
  wrapper_module "$src" modelship.local/promoperatorbuild "$mod $PROM_OPERATOR_VERSION"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/crds"
  log "building prometheus-operator + prometheus-config-reloader $PROM_OPERATOR_VERSION (cold: about 7 min on 2 idle cores)"
  local start=$SECONDS
  local ld; ld=$(version_ldflags "${PROM_OPERATOR_VERSION#v}" "$PROM_OPERATOR_VERSION")
  (cd "$src" && nice -n 10 go build -trimpath -ldflags "$ld" -o "$out.tmp/prometheus-operator" "$mod/cmd/operator" \
    && nice -n 10 go build -trimpath -ldflags "$ld" -o "$out.tmp/prometheus-config-reloader" "$mod/cmd/prometheus-config-reloader")
  # The CRDs ship in the module itself; keep the ones of this exact version beside the binary.
  local dir
  dir=$(cd "$src" && go list -m -f '{{.Dir}}' "$mod")
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$out.tmp/crds/"
  chmod -R u+w "$out.tmp/crds"
  "$out.tmp/prometheus-operator" --version 2>&1 | sed "s/^/  /" >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "prometheus-operator $PROM_OPERATOR_VERSION built into $out in $((SECONDS - start)) s"
}

# One build at a time: `make binaries` and `hack/images.sh build` may both ask for these.
mkdir -p "$MODELSHIP_CACHE/bin"
exec 9>"$MODELSHIP_CACHE/bin/.monitoring.lock"
flock -n 9 || { log "waiting for another hack/build-monitoring.sh"; flock 9; }

case "${1:-all}" in
  prometheus) build_prometheus ;;
  operator) build_operator ;;
  all) build_operator; build_prometheus ;;
  *) echo "usage: $0 [all|prometheus|operator]" >&2; exit 2 ;;
esac
