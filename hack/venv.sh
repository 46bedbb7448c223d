#!/usr/bin/env bash
# Creates the project virtualenv with uv (fast, and its cache outside the repo makes warm runs cheap).
set -euo pipefail
venv=${1:-.venv}
extras=${2:-operator,runtime,convert,convert-tf,dev}
log() { printf '[venv] %s\n' "$*" >&2; }

if [[ ! -x $venv/bin/python ]]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
if [[ ! -x $venv/bin/uv ]]; then
  log "installing uv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv
fi
log "installing modelship[$extras] (editable)"
"$venv/bin/uv" pip install --python "$venv/bin/python" -e ".[$extras]"
