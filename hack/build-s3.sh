#!/usr/bin/env bash
# Builds the S3-compatible object store used by the build-toolchain tests (MinIO) from the
# Go module proxy into $MODELSHIP_CACHE/bin/minio-<version>/, once per version.
#
# MinIO publishes no semver tags on the module proxy, so the version is a pinned
# pseudo-version of a commit on its default branch. Its go.mod has no replace
# directives, so a plain `go install module@version` works.
#
# Usage: hack/build-s3.sh          build (no-op when cached), print the binary path
#        hack/build-s3.sh path     print the binary path without building
set -euo pipefail

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
MODELSHIP_CACHE=${MODELSHIP_CACHE:-$HOME/.cache/modelship}
out=$MODELSHIP_CACHE/bin/minio-$MINIO_VERSION
bin=$out/minio

log() { printf '[build-s3] %s\n' "$*" >&2; }

if [[ ${1:-build} == path ]]; then echo "$bin"; exit 0; fi
if [[ -x $bin ]]; then log "minio $MINIO_VERSION cached in $out"; echo "$bin"; exit 0; fi

command -v go >/dev/null || { log "go is not on PATH (needed to build minio)"; exit 1; }
export CGO_ENABLED=0
export GOFLAGS=-mod=mod
# MinIO's go.mod asks for a newer toolchain line than it needs; never download a toolchain.
export GOTOOLCHAIN=local

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
log "building github.com/minio/minio@$MINIO_VERSION (cold: several minutes on 2 busy cores)"
# Lower priority: this machine is shared with a Kubernetes build.
GOBIN=$out.tmp nice -n 10 go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
rm -rf "$out" && mv "$out.tmp" "$out"
log "minio built into $out"
echo "$bin"
