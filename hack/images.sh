#!/usr/bin/env bash
# Builds, lists and imports modelship's container images without a registry or a Docker daemon.
#
#   hack/images.sh build [pause|runtime|build-tensorflow|operator ...]
#                                                       build what changed (default: all of them)
#   hack/images.sh list                                 each image ref, its archive and size
#   hack/images.sh import --address SOCKET [--snapshotter NAME] [pause|runtime|operator ...]
#                                                       load built images (default: all) into
#                                                       containerd's k8s.io namespace, skipping
#                                                       those already there with the same digest
#   hack/images.sh clean                                drop every cached image and the base rootfs
#
# How: a Debian rootfs from debootstrap (python3 + ca-certificates, slimmed the way
# debian:*-slim is) becomes one shared base layer; the project's wheel is installed into a
# venv at /opt/modelship inside a chroot of a copy of that rootfs with uv, and /opt/modelship
# becomes the second layer. umoci assembles OCI layouts, which are tarred into OCI archives
# named <name>-<inputhash>.tar under $MODELSHIP_CACHE/images. serving-runtime/Dockerfile and
# operator/Dockerfile describe the same contents for Docker users (see docs/images.md).
#
# The metrics plane's images (prometheus, prometheus-config-reloader) hold only static Go
# binaries built by hack/build-monitoring.sh (run from here when missing): one small layer,
# no Debian base, tagged with the upstream version rather than the project's.
#
# Environment:
#   MODELSHIP_CACHE          cache root (default ~/.cache/modelship)
#   DEBIAN_MIRROR            Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   MODELSHIP_IMAGES_UV_ARGS extra arguments for the in-image `uv pip install`, e.g. an index
#                            for CPU-only wheels
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=versions.sh
source "$here/versions.sh"

cache=$MODELSHIP_CACHE/images
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n1)
[[ -n $version ]] || { echo "[images] cannot read the project version from pyproject.toml" >&2; exit 1; }
repository=docker.io/modelship
# build-tensorflow is the runtime image plus TensorFlow and tf2onnx (1.3 GB more): the build Jobs of
# tensorflow and keras models run it, so the serving image never carries TensorFlow.
images=(pause runtime build-tensorflow operator prometheus prometheus-config-reloader)
# The static images' user: nobody, as upstream's images run (the operator's pods override it).
static_uid=65534

debian_suite=bookworm
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_packages=python3,ca-certificates
app_uid=65532
pause_uid=65535
venv_dir=/opt/modelship
uv_bin=${UV:-$repo/.venv/bin/uv}

start_time=$SECONDS
# Set while the uv cache sits inside a chroot, so an interrupted build still gives it back.
uv_cache_away=""
return_uv_cache() {
  if [[ -n $uv_cache_away && -d $uv_cache_away ]]; then
    rm -rf "$cache/uv-cache" && mv "$uv_cache_away" "$cache/uv-cache"
  fi
}
trap return_uv_cache EXIT
trap 'exit 130' INT TERM
log() { printf '[images %3ds] %s\n' $((SECONDS - start_time)) "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# The metrics plane's images carry the upstream version (what prometheus-operator is told).
tag_of() {
  case $1 in
    prometheus) echo "${PROMETHEUS_VERSION#v}" ;;
    prometheus-config-reloader) echo "${PROM_OPERATOR_VERSION#v}" ;;
    *) echo "$version" ;;
  esac
}
ref_of() { echo "$repository/$1:$(tag_of "$1")"; }
is_static() { [[ $1 == prometheus || $1 == prometheus-config-reloader ]]; }
# static_binaries_of NAME: the binaries that make up a static image, one path a line.
static_binaries_of() {
  case $1 in
    prometheus) printf '%s\n' "$PROMETHEUS_BIN/prometheus" "$PROMETHEUS_BIN/promtool" ;;
    prometheus-config-reloader) echo "$PROM_OPERATOR_BIN/prometheus-config-reloader" ;;
  esac
}
entrypoint_of_static() { static_binaries_of "$1" | head -n1 | sed 's#.*/#/bin/#'; }
extras_of() {
  case $1 in
    runtime) echo "runtime,convert" ;;
    build-tensorflow) echo "runtime,convert,convert-tf" ;;
    operator) echo "operator" ;;
    *) die "no python extras for image '$1'" ;;
  esac
}
entrypoint_of() {
  case $1 in
    runtime | build-tensorflow) echo "$venv_dir/bin/modelship-runtime" ;;
    operator) echo "$venv_dir/bin/modelship-operator" ;;
    pause) echo "/pause" ;;
  esac
}

# --- input hashing --------------------------------------------------------------------------

sha() { sha256sum | cut -c1-16; }

# The files that go into the wheel: tracked or untracked-but-not-ignored, so work in progress
# by others is packaged (and hashed) exactly as it sits in the tree.
wheel_sources() {
  (
    cd "$repo"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git ls-files -co --exclude-standard -- pyproject.toml README.md operator serving-runtime
    else
      find pyproject.toml README.md operator serving-runtime -type f \
        -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null
    fi
  ) | grep -v -e '/Dockerfile$' -e '\.egg-info/' | LC_ALL=C sort -u | while IFS= read -r f; do
    if [[ -f $repo/$f ]]; then printf '%s\n' "$f"; fi
  done
}

hash_files() { # paths relative to $repo on stdin
  (cd "$repo" && tr '\n' '\0' | xargs -0 -r sha256sum --)
}

base_key() {
  { echo "$debian_suite $debian_packages $app_uid"; declare -f build_base layer_tar; } | sha
}

input_key() {
  local name=$1
  {
    echo "$name $version $(ref_of "$name")"
    declare -f pack_layout finish_archive layer_tar
    case $name in
      prometheus | prometheus-config-reloader)
        echo "$static_uid"
        # The binaries' contents, not their version: a rebuild with other flags is another image.
        local bin
        while IFS= read -r bin; do
          if [[ -f $bin ]]; then sha256sum <"$bin"; else echo "missing $bin"; fi
        done < <(static_binaries_of "$name")
        declare -f build_static pack_static_layout
        ;;
      pause)
        echo "$pause_uid"
        go version 2>/dev/null || echo "no go"
        (cd "$repo" && find hack/pause -type f -not -name Dockerfile | LC_ALL=C sort) | hash_files
        declare -f build_pause
        ;;
      *)
        base_key
        extras_of "$name"
        entrypoint_of "$name"
        "$uv_bin" --version 2>/dev/null || echo "no uv"
        echo "${MODELSHIP_IMAGES_UV_ARGS:-}"
        wheel_sources | hash_files
        declare -f build_wheel build_app
        ;;
    esac
  } | sha
}

archive_of() { echo "$cache/$1-$(input_key "$1").tar"; }

# --- helpers --------------------------------------------------------------------------------

# Refuses to delete a tree with anything mounted below it: a leftover bind of /dev or /proc
# under a chroot would otherwise take host files with it.
safe_rm() {
  local dir=$1
  [[ -e $dir ]] || return 0
  local mounts
  mounts=$(findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | sort -r)
  if [[ -n $mounts ]]; then
    log "unmounting leftovers under $dir"
    while IFS= read -r m; do umount "$m" || umount -l "$m" || true; done <<<"$mounts"
    if findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | grep -q .; then
      die "$dir still has mounts below it; not deleting it"
    fi
  fi
  rm -rf --one-file-system "$dir"
}

# Installs the Debian package of any missing tool (a fresh machine has none of
# them); a tool with no package here is reported by name.
require() {
  local missing=() packages=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    case $tool in
      debootstrap | umoci) packages+=("$tool") ;;
      ctr) packages+=(containerd) ;;
      *) missing+=("$tool") ;;
    esac
  done
  if ((${#packages[@]})); then
    log "installing Debian packages: ${packages[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${packages[@]}" >/dev/null ||
      die "apt-get install ${packages[*]} failed"
  fi
  if ((${#missing[@]})); then
    die "missing tools: ${missing[*]} (Go from go.dev; the rest from Debian)"
  fi
}

# Condenses debootstrap's per-package chatter into one line per 25 packages and phase.
debootstrap_progress() {
  awk '
    /^I: Validating [^ ]+ [^ ]+$/ { next }
    /^I: Retrieving [^ ]+ [^ ]+$/ || /^I: (Extracting|Unpacking|Configuring) [^ ]+\.\.\.$/ {
      verb = $2
      if (verb != last) { if (last != "") printf "[images]   debootstrap: %s %d packages\n", last, n; n = 0; last = verb }
      n++
      if (n % 25 == 0) printf "[images]   debootstrap: %s %d packages...\n", verb, n
      fflush(); next
    }
    /^(I|W|E): / {
      if (last != "") { printf "[images]   debootstrap: %s %d packages\n", last, n; last = ""; n = 0 }
      print "[images]   debootstrap: " substr($0, 4); fflush()
    }
  ' >&2
}

layer_tar() { # DIR PATH... -> uncompressed layer tar on stdout; ownership as in the tree
  local dir=$1; shift
  tar -C "$dir" --numeric-owner --sort=name --xattrs --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf - "$@"
}

# --- build steps (each is hashed into the keys above; edit one and its images rebuild) ------

build_base() { # OUT: OUT/rootfs (slim Debian + python3) and OUT/oci (one layer, tag "base")
  local out=$1 rootfs=$1/rootfs
  mkdir -p "$out"
  log "debootstrap $debian_suite (minbase + $debian_packages) from $debian_mirror"
  debootstrap --variant=minbase --include="$debian_packages" "$debian_suite" "$rootfs" \
    "$debian_mirror" 2>&1 | debootstrap_progress ||
    die "debootstrap failed; see $rootfs/debootstrap/debootstrap.log"

  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $debian_suite main
deb http://deb.debian.org/debian $debian_suite-updates main
deb http://deb.debian.org/debian-security $debian_suite-security main
EOF
  # Keep later `apt-get install`s inside the image as lean as the base (as debian:*-slim does).
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/modelship-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/modelship-clean" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  log "applying $debian_suite-updates and -security"
  local mirror_host=${debian_mirror#*://}; mirror_host=${mirror_host%%/*}
  [[ $mirror_host == deb.debian.org ]] || sed -i "s#http://deb.debian.org/debian #$debian_mirror #" \
    "$rootfs/etc/apt/sources.list"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # Maintainer scripts are chatty even when all is well; their output is shown only on failure.
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    DEBCONF_NOWARNINGS=yes sh -c 'apt-get -qq update &&
      apt-get -qq -y -o Dpkg::Use-Pty=0 upgrade && apt-get -qq clean' >"$out/apt.log" 2>&1 ||
    { sed 's/^/[images]   apt: /' "$out/apt.log" >&2; die "apt-get upgrade inside the base rootfs failed"; }
  grep -o '^Setting up [^ ]*' "$out/apt.log" | sed 's/^Setting up /[images]   upgraded: /' >&2 || true
  rm -f "$out/apt.log"

  # The unprivileged user both images run as; numeric so runAsNonRoot can verify it.
  echo "modelship:x:$app_uid:$app_uid:modelship:/home/modelship:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
  echo "modelship:x:$app_uid:" >>"$rootfs/etc/group"
  echo "modelship:!:19000::::::" >>"$rootfs/etc/shadow"
  install -d -o "$app_uid" -g "$app_uid" -m 0755 "$rootfs/home/modelship"

  log "slimming the rootfs"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache "$rootfs/debootstrap"
  # Runtimes provide these per container; an image must not carry this machine's.
  : >"$rootfs/etc/resolv.conf"; : >"$rootfs/etc/hostname"
  rm -f "$rootfs/etc/machine-id"; : >"$rootfs/etc/machine-id"
  find "$rootfs/dev" -mindepth 1 -delete

  log "packing the base layer"
  umoci init --layout "$out/oci"
  umoci new --image "$out/oci:base"
  layer_tar "$rootfs" . >"$out/base-layer.tar"
  stat -c %s "$out/base-layer.tar" >"$out/layer-bytes"
  umoci raw add-layer --image "$out/oci:base" \
    --history.created_by "debootstrap --variant=minbase --include=$debian_packages $debian_suite" \
    "$out/base-layer.tar"
  rm -f "$out/base-layer.tar"
}

build_pause() { # WORK -> WORK/layer.tar holding /pause
  local work=$1
  mkdir -p "$work/root"
  log "compiling the pause program (static, CGO_ENABLED=0)"
  (cd "$repo/hack/pause" && CGO_ENABLED=0 GOFLAGS='' GOTOOLCHAIN=local \
    go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$work/root/pause" .)
  chmod 0755 "$work/root/pause"
  layer_tar "$work/root" --owner=0 --group=0 ./pause >"$work/layer.tar"
}

build_wheel() { # OUT_DIR -> OUT_DIR/modelship-*.whl, built from a copy so the tree stays untouched
  local out=$1 src=$1/src
  mkdir -p "$src"
  wheel_sources | (cd "$repo" && tar -cf - -T -) | tar -C "$src" -xf -
  log "building the modelship wheel"
  "$uv_bin" build --quiet --wheel --out-dir "$out" "$src"
  rm -rf "$src"
}

build_app() { # NAME WHEEL ROOTFS_COPY -> ROOTFS_COPY$venv_dir holds the venv
  local name=$1 wheel=$2 rootfs=$3 extras
  extras=$(extras_of "$name")
  local uv_cache=$cache/uv-cache
  mkdir -p "$uv_cache"
  # uv and python need these; device nodes rather than a bind of /dev (see safe_rm).
  mknod -m 666 "$rootfs/dev/null" c 1 3
  mknod -m 666 "$rootfs/dev/zero" c 1 5
  mknod -m 666 "$rootfs/dev/urandom" c 1 9
  cp "$uv_bin" "$rootfs/tmp/uv"
  cp "$wheel" "$rootfs/tmp/"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # The host may reach PyPI through a TLS-inspecting proxy; trust what the host trusts, for
  # this step only (the bundle stays in /tmp, outside the layer).
  cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$rootfs/tmp/ca.crt"
  # A persistent uv cache makes rebuilds after a source change fast; moved, not mounted, so
  # nothing of the host is ever mounted inside the chroot.
  mv "$uv_cache" "$rootfs/tmp/uv-cache"
  uv_cache_away=$rootfs/tmp/uv-cache
  local envs=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root SSL_CERT_FILE=/tmp/ca.crt
    UV_CACHE_DIR=/tmp/uv-cache UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1)
  for v in UV_INDEX_URL UV_DEFAULT_INDEX UV_INDEX UV_EXTRA_INDEX_URL PIP_INDEX_URL \
    HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [[ -n ${!v:-} ]] && envs+=("$v=${!v}")
  done
  log "installing $(basename "$wheel")[$extras] into $venv_dir (uv, inside the rootfs)"
  local rc=0
  # $1/$2 expand inside the chroot's sh; MODELSHIP_IMAGES_UV_ARGS is a list of words on purpose.
  # shellcheck disable=SC2016
  chroot "$rootfs" /usr/bin/env -i "${envs[@]}" sh -c '
      /tmp/uv venv --quiet --python /usr/bin/python3 "$1" &&
      /tmp/uv pip install --python "$1/bin/python" "$2" '"${MODELSHIP_IMAGES_UV_ARGS:-}"'
    ' install "$venv_dir" "/tmp/$(basename "$wheel")[$extras]" 2>&1 |
    sed -u -e '/^ + /d' -e '/^Using Python/d' -e 's/^/[images]   uv: /' >&2 || rc=$?
  mv "$rootfs/tmp/uv-cache" "$uv_cache"
  uv_cache_away=""
  ((rc == 0)) || die "installing modelship[$extras] into the $name image failed (see uv output above)"
  # Test suites shipped inside wheels (numpy, scipy, scikit-learn: ~35 MB) are never imported.
  find "$rootfs$venv_dir" \( -name __pycache__ -o -path '*/site-packages/*/tests' \) -type d \
    -prune -exec rm -rf {} +
  local package=modelship
  [[ $name == runtime ]] && package=modelship_runtime
  [[ $name == build-tensorflow ]] && package="modelship_runtime, tensorflow, tf2onnx"
  [[ -x $rootfs$(entrypoint_of "$name") ]] || die "the $name image has no $(entrypoint_of "$name")"
  # TF_CPP_MIN_LOG_LEVEL: TensorFlow (build-tensorflow) would print pages of start-up notes.
  chroot "$rootfs" /usr/bin/env -i TF_CPP_MIN_LOG_LEVEL=3 "$venv_dir/bin/python" -c "import $package" ||
    die "the $name image's venv cannot import $package (see the traceback above)"
  find "$rootfs$venv_dir" -name __pycache__ -type d -prune -exec rm -rf {} +
  chown -R 0:0 "$rootfs$venv_dir"
}

pack_layout() { # LAYOUT NAME: OCI config (entrypoint, user, env, labels)
  local layout=$1 name=$2 user=$app_uid:$app_uid
  local args=(--image "$layout:$version" --author "modelship"
    --config.entrypoint "$(entrypoint_of "$name")"
    --config.label "org.opencontainers.image.title=modelship-$name"
    --config.label "org.opencontainers.image.version=$version"
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
    --history.created_by "hack/images.sh build $name")
  if [[ $name == pause ]]; then
    user=$pause_uid:$pause_uid
    args+=(--config.env "PATH=/")
  else
    args+=(--config.env "PATH=$venv_dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      --config.env "LANG=C.UTF-8" --config.env "PYTHONUNBUFFERED=1"
      --config.env "HOME=/home/modelship" --config.workingdir /home/modelship)
  fi
  umoci config "${args[@]}" --config.user "$user"
  umoci gc --layout "$layout"
}

finish_archive() { # LAYOUT NAME OUT.tar: name the manifest for ctr/docker/podman, then tar it
  local layout=$1 name=$2 out=$3
  python3 - "$layout/index.json" "$(ref_of "$name")" "$version" <<'EOF'
import json, sys
path, ref, tag = sys.argv[1:]
with open(path) as f:
    index = json.load(f)
manifests = [m for m in index["manifests"]
             if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
if len(manifests) != 1:
    sys.exit(f"expected one manifest tagged {tag} in {path}, found {len(manifests)}")
m = manifests[0]
# io.containerd.image.name gives `ctr import` and `docker load` the full reference.
m["annotations"] = {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
m["platform"] = {"architecture": "amd64", "os": "linux"}
index["manifests"] = [m]
with open(path, "w") as f:
    json.dump(index, f, separators=(",", ":"))
EOF
  tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner -cf "$out.tmp" \
    oci-layout index.json blobs
  mv "$out.tmp" "$out"
}

build_static() { # NAME WORK -> WORK/layer.tar: the static binaries, /etc/passwd, writable dirs
  local name=$1 root=$2/root bin
  mkdir -p "$root/bin" "$root/etc"
  while IFS= read -r bin; do install -m 0755 -o 0 -g 0 "$bin" "$root/bin/"; done < <(static_binaries_of "$name")
  # Go's os/user and Prometheus' own logs want a passwd entry for the user they run as.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:%s:%s:nobody:/home:/sbin/nologin\n' \
    "$static_uid" "$static_uid" >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:%s:\n' "$static_uid" >"$root/etc/group"
  install -d -m 1777 -o 0 -g 0 "$root/tmp"
  local dirs=(./bin ./etc ./tmp)
  if [[ $name == prometheus ]]; then
    # What `docker run` of the image alone needs: a config scraping itself, a data directory
    # the user owns. In the cluster prometheus-operator mounts both over these.
    install -d -m 0755 -o 0 -g 0 "$root/etc/prometheus"
    cat >"$root/etc/prometheus/prometheus.yml" <<'YAML'
global: {scrape_interval: 15s}
scrape_configs:
- job_name: prometheus
  static_configs: [{targets: ["localhost:9090"]}]
YAML
    install -d -m 0755 -o "$static_uid" -g "$static_uid" "$root/prometheus"
    dirs+=(./prometheus)
  fi
  layer_tar "$root" "${dirs[@]}" >"$2/layer.tar"
}

pack_static_layout() { # LAYOUT NAME: OCI config of a static image (entrypoint, user, volumes)
  local layout=$1 name=$2 tag
  tag=$(tag_of "$name")
  local args=(--image "$layout:$tag" --author "modelship"
    --config.entrypoint "$(entrypoint_of_static "$name")"
    --config.user "$static_uid:$static_uid"
    --config.env "PATH=/bin"
    --config.label "org.opencontainers.image.title=$name"
    --config.label "org.opencontainers.image.version=$tag"
    --config.label "org.opencontainers.image.licenses=Apache-2.0"
    --history.created_by "hack/images.sh build $name")
  if [[ $name == prometheus ]]; then
    args+=(--config.cmd "--config.file=/etc/prometheus/prometheus.yml"
      --config.cmd "--storage.tsdb.path=/prometheus"
      --config.workingdir /prometheus --config.volume /prometheus --config.exposedports 9090/tcp)
  fi
  umoci config "${args[@]}"
  umoci gc --layout "$layout"
}

# --- commands -------------------------------------------------------------------------------

manifest_digest() { # ARCHIVE -> sha256:...
  tar --occurrence=1 -xOf "$1" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])'
}

human_size() { numfmt --to=iec --suffix=B "$1"; }

# Unpacked size: what the image occupies in a snapshotter once imported (recorded at build
# time; recomputed from the layers for archives built before that).
unpacked_size() {
  if [[ -f ${1%.tar}.unpacked-bytes ]]; then
    cat "${1%.tar}.unpacked-bytes"
    return
  fi
  local total=0 digest
  for digest in $(tar -xOf "$1" "blobs/sha256/$(manifest_digest "$1" | cut -d: -f2)" |
    python3 -c 'import json,sys; print(" ".join(l["digest"].split(":")[1] for l in json.load(sys.stdin)["layers"]))'); do
    total=$((total + $(tar -xOf "$1" "blobs/sha256/$digest" | gzip -dc | wc -c)))
  done
  echo "$total"
}

ensure_base() { # -> prints the base dir
  local dir
  dir=$cache/base-$(base_key)
  if [[ -f $dir/done ]]; then
    echo "$dir"
    return
  fi
  log "base rootfs: cold build into $dir"
  safe_rm "$dir.tmp"
  build_base "$dir.tmp"
  touch "$dir.tmp/done"
  safe_rm "$dir"
  mv "$dir.tmp" "$dir"
  # Older bases are unreachable once their key changes.
  for old in "$cache"/base-*; do
    [[ $old == "$dir" || ! -d $old ]] || safe_rm "$old"
  done
  log "base rootfs ready ($(du -sh "$dir/rootfs" | cut -f1) unpacked)"
  echo "$dir"
}

build_one() {
  local name=$1 archive work
  if is_static "$name"; then build_static_one "$name"; return; fi
  archive=$(archive_of "$name")
  if [[ -f $archive ]]; then
    log "$name: up to date ($(basename "$archive"))"
    return
  fi
  local t0=$SECONDS
  work=$cache/work/$name
  safe_rm "$work"
  mkdir -p "$work"
  if [[ $name == pause ]]; then
    build_pause "$work"
    umoci init --layout "$work/oci"
    umoci new --image "$work/oci:$version"
    umoci raw add-layer --image "$work/oci:$version" --history.created_by "go build ./hack/pause" \
      "$work/layer.tar"
  else
    local base wheel
    base=$(ensure_base)
    build_wheel "$work/dist"
    wheel=$(echo "$work"/dist/modelship-*.whl)
    [[ -f $wheel ]] || die "uv build produced no wheel in $work/dist"
    log "$name: copying the base rootfs"
    cp -a "$base/rootfs" "$work/rootfs"
    build_app "$name" "$wheel" "$work/rootfs"
    log "$name: packing $venv_dir ($(du -sh "$work/rootfs$venv_dir" | cut -f1)) as a layer"
    layer_tar "$work/rootfs" ".$venv_dir" >"$work/layer.tar"
    cp -a "$base/oci" "$work/oci"
    umoci tag --image "$work/oci:base" "$version"
    umoci rm --image "$work/oci:base"
    umoci raw add-layer --image "$work/oci:$version" \
      --history.created_by "uv pip install modelship[$(extras_of "$name")]" "$work/layer.tar"
  fi
  local bytes
  bytes=$(stat -c %s "$work/layer.tar")
  [[ $name == pause ]] || bytes=$((bytes + $(cat "$base/layer-bytes")))
  pack_layout "$work/oci" "$name"
  finish_archive "$work/oci" "$name" "$archive"
  echo "$bytes" >"${archive%.tar}.unpacked-bytes"
  # Only the archive for the current inputs is worth keeping.
  for old in "$cache/$name"-*.tar; do
    [[ $old == "$archive" || ! -f $old ]] || rm -f "$old" "${old%.tar}.unpacked-bytes"
  done
  safe_rm "$work"
  log "$name: built $(ref_of "$name") in $((SECONDS - t0))s: $(basename "$archive")" \
    "($(human_size "$(stat -c %s "$archive")") archive)"
}

build_static_one() {
  local name=$1 archive work bin
  # The binaries come from the Go module proxy like the cluster's; a no-op when cached.
  while IFS= read -r bin; do
    [[ -x $bin ]] || { bash "$here/build-monitoring.sh" all; break; }
  done < <(static_binaries_of "$name")
  archive=$(archive_of "$name")
  if [[ -f $archive ]]; then
    log "$name: up to date ($(basename "$archive"))"
    return
  fi
  local t0=$SECONDS tag
  tag=$(tag_of "$name")
  work=$cache/work/$name
  safe_rm "$work"
  mkdir -p "$work"
  build_static "$name" "$work"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:$tag"
  umoci raw add-layer --image "$work/oci:$tag" --history.created_by "hack/build-monitoring.sh" \
    "$work/layer.tar"
  pack_static_layout "$work/oci" "$name"
  # finish_archive names the manifest by $version; here the tag is the upstream version.
  local version=$tag
  finish_archive "$work/oci" "$name" "$archive"
  stat -c %s "$work/layer.tar" >"${archive%.tar}.unpacked-bytes"
  # 16 hex digits, not *: "prometheus-*" would also match the config-reloader's archives.
  for old in "$cache/$name"-????????????????.tar; do
    [[ $old == "$archive" || ! -f $old ]] || rm -f "$old" "${old%.tar}.unpacked-bytes"
  done
  safe_rm "$work"
  log "$name: built $(ref_of "$name") in $((SECONDS - t0))s: $(basename "$archive")" \
    "($(human_size "$(stat -c %s "$archive")") archive)"
}

cmd_build() {
  local names=("$@")
  ((${#names[@]})) || names=("${images[@]}")
  require tar python3 umoci sha256sum
  for n in "${names[@]}"; do
    case $n in
      pause) require go ;;
      runtime | build-tensorflow | operator) require debootstrap chroot; [[ -x $uv_bin ]] || die "no uv at $uv_bin (run make venv)" ;;
      prometheus | prometheus-config-reloader) require go ;;
      *) die "unknown image '$n' (known: ${images[*]})" ;;
    esac
  done
  [[ $(id -u) == 0 ]] || die "building needs root (debootstrap, chroot, file ownership in layers)"
  mkdir -p "$cache"
  # One build at a time: two would race on the base rootfs, the work dirs and the uv cache.
  exec 9>"$cache/.lock"
  flock -n 9 || { log "waiting for another hack/images.sh build"; flock 9; }
  for n in "${names[@]}"; do build_one "$n"; done
  log "done in $((SECONDS - start_time))s"
}

cmd_list() {
  local n archive
  printf '%-40s %-10s %-10s %s\n' IMAGE ARCHIVE UNPACKED PATH
  for n in "${images[@]}"; do
    archive=$(archive_of "$n")
    if [[ -f $archive ]]; then
      printf '%-40s %-10s %-10s %s\n' "$(ref_of "$n")" "$(human_size "$(stat -c %s "$archive")")" \
        "$(human_size "$(unpacked_size "$archive")")" "$archive"
    else
      printf '%-40s %-10s %-10s %s\n' "$(ref_of "$n")" - - "(not built for the current inputs: hack/images.sh build $n)"
    fi
  done
}

cmd_import() {
  local address="" snapshotter=${CONTAINERD_SNAPSHOTTER:-} names=()
  while (($#)); do
    case $1 in
      --address) address=${2:?--address needs a socket path}; shift 2 ;;
      --address=*) address=${1#*=}; shift ;;
      --snapshotter) snapshotter=${2:?--snapshotter needs a name}; shift 2 ;;
      --snapshotter=*) snapshotter=${1#*=}; shift ;;
      -*) die "import: unknown option '$1' (usage: import --address SOCKET [--snapshotter NAME] [IMAGE...])" ;;
      pause | runtime | build-tensorflow | operator | prometheus | prometheus-config-reloader) names+=("$1"); shift ;;
      *) die "import: unknown image '$1' (known: ${images[*]})" ;;
    esac
  done
  ((${#names[@]})) || names=("${images[@]}")
  [[ -n $address ]] || die "import: --address SOCKET is required"
  [[ -S $address ]] || die "import: no containerd socket at $address"
  require ctr python3
  local ctr=(ctr --address "$address" --namespace k8s.io)
  local n archive ref want have imported=0
  for n in "${names[@]}"; do
    archive=$(archive_of "$n")
    ref=$(ref_of "$n")
    [[ -f $archive ]] || die "import: $ref is not built for the current inputs; run hack/images.sh build"
    want=$(manifest_digest "$archive")
    have=$("${ctr[@]}" images ls "name==$ref" | awk -v r="$ref" '$1 == r {print $3}')
    if [[ $have == "$want" ]]; then
      log "$ref already in containerd ($want)"
      continue
    fi
    log "importing $ref ($want) from $(basename "$archive")"
    "${ctr[@]}" images import ${snapshotter:+--snapshotter "$snapshotter"} "$archive" >/dev/null
    have=$("${ctr[@]}" images ls "name==$ref" | awk -v r="$ref" '$1 == r {print $3}')
    [[ $have == "$want" ]] || die "import: containerd lists $ref as '${have:-missing}' after importing $want"
    imported=$((imported + 1))
  done
  log "imported $imported image(s) into $address (namespace k8s.io)"
}

cmd_clean() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  for d in "$cache"/base-* "$cache"/work; do safe_rm "$d"; done
  rm -f "$cache"/*.tar "$cache"/*.unpacked-bytes
  log "removed cached images and base rootfs under $cache (the uv cache is kept)"
}

case ${1:-} in
  build) shift; cmd_build "$@" ;;
  list) cmd_list ;;
  import) shift; cmd_import "$@" ;;
  clean) cmd_clean ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
