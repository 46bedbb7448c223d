#!/usr/bin/env bash
# Builds one of the project's small Go checkers, hack/<tool>/ (kind-check: kind-config.yaml
# against kind's own v1alpha4 types; kstatus: cli-utils' kstatus verdict on an object;
# argocd-health: a health.lua run by Argo CD's own Lua VM; helm: Helm's own command, for the
# chart's lint, render and install tests), into
# $MODELSHIP_CACHE/bin/<tool>-<version>/, once per version. The version is the one
# hack/<tool>/go.mod requires of the module the tool exists for; bump it there (then
# `go mod tidy` in that directory) and the cache key follows.
#
# Usage: hack/build-go-tool.sh TOOL          build (no-op when cached), print the binary path
#        hack/build-go-tool.sh TOOL path     print the binary path without building
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tool=${1:?usage: hack/build-go-tool.sh kind-check|kstatus|argocd-health|helm [path]}
# The Go toolchain each tool needs: the local one, or (when the module asks for a newer Go, as
# Argo CD 3.6 does) a release fetched once through the module proxy.
toolchain=local
package=.
case $tool in
  kind-check) module=sigs.k8s.io/kind ;;
  kstatus) module=sigs.k8s.io/cli-utils ;;
  argocd-health) module=github.com/argoproj/argo-cd/v3 toolchain=go1.27.4 ;;
  # Helm's command itself, at the dependency versions its own go.mod pins (hack/helm only
  # requires it, as a `tool`).
  helm) module=helm.sh/helm/v4 package=helm.sh/helm/v4/cmd/helm ;;
  *) echo "[build-go-tool] unknown tool $tool (kind-check, kstatus, argocd-health or helm)" >&2; exit 2 ;;
esac
src=$here/$tool
MODELSHIP_CACHE=${MODELSHIP_CACHE:-$HOME/.cache/modelship}

log() { printf '[build-%s] %s\n' "$tool" "$*" >&2; }

version=$(sed -n "s#^\s*${module//./\\.} \(v[^ ]*\).*#\1#p" "$src/go.mod" | head -n1)
[[ -n $version ]] || { log "no $module requirement in $src/go.mod"; exit 1; }
out=$MODELSHIP_CACHE/bin/$tool-$version
bin=$out/$tool

if [[ ${2:-build} == path ]]; then echo "$bin"; exit 0; fi
if [[ -x $bin ]]; then log "$tool ($module $version) cached in $out"; echo "$bin"; exit 0; fi

command -v go >/dev/null || { log "go is not on PATH (needed to build $tool)"; exit 1; }
export CGO_ENABLED=0
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=$toolchain

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
log "building $tool against $module $version"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out.tmp/$tool" "$package")
rm -rf "$out" && mv "$out.tmp" "$out"
log "$tool built into $out"
echo "$bin"
