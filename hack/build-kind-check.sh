#!/usr/bin/env bash
# Builds hack/kind-check (validates kind-config.yaml against kind's own v1alpha4 types, no
# Docker needed) into $MODELSHIP_CACHE/bin/kind-check-<kind version>/, once per version.
# The kind version is the one hack/kind-check/go.mod requires; bump it there (then
# `go mod tidy` in that directory) and the cache key follows.
#
# Usage: hack/build-kind-check.sh          build (no-op when cached), print the binary path
#        hack/build-kind-check.sh path     print the binary path without building
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/kind-check
MODELSHIP_CACHE=${MODELSHIP_CACHE:-$HOME/.cache/modelship}

log() { printf '[build-kind-check] %s\n' "$*" >&2; }

kind_version=$(sed -n 's#^\s*sigs\.k8s\.io/kind \(v[^ ]*\).*#\1#p' "$src/go.mod" | head -n1)
[[ -n $kind_version ]] || { log "no sigs.k8s.io/kind requirement in $src/go.mod"; exit 1; }
out=$MODELSHIP_CACHE/bin/kind-check-$kind_version
bin=$out/kind-check

if [[ ${1:-build} == path ]]; then echo "$bin"; exit 0; fi
if [[ -x $bin ]]; then log "kind-check (kind $kind_version) cached in $out"; echo "$bin"; exit 0; fi

command -v go >/dev/null || { log "go is not on PATH (needed to build kind-check)"; exit 1; }
export CGO_ENABLED=0
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
log "building kind-check against sigs.k8s.io/kind $kind_version"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/kind-check" .)
rm -rf "$out" && mv "$out.tmp" "$out"
log "kind-check built into $out"
echo "$bin"
