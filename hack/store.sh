# The object store part of hack/cluster.sh (sourced after node.sh and monitoring.sh): MinIO as a
# host process on the node's address, so pods reach it as they would any S3 endpoint, with one
# bucket for the operator's builds and the models the tests upload. Its keys are made once per
# cluster directory (.cluster/store/credentials, mode 600); .cluster/endpoints.env says where it
# listens and with which keys. MinIO is built by hack/build-s3.sh (`make binaries`).
# shellcheck shell=bash

STORE_PORT=19000
STORE_CONSOLE_PORT=19001
STORE_BUCKET=modelship
STORE_DIR=$CLUSTER_DIR/store
STORE_KEYS=(STORE_URL STORE_BUCKET STORE_ACCESS_KEY STORE_SECRET_KEY)
# Set MODELSHIP_STORE=0 for a cluster without an object store.
WITH_STORE=${MODELSHIP_STORE:-1}

store_live() { curl -fsS --max-time 2 "http://$NODE_IP:$STORE_PORT/minio/health/live"; }

# Made once, so the keys (and what the tests' Secrets hold) survive a restart.
store_credentials() {
  if [[ ! -s $STORE_DIR/credentials ]]; then
    mkdir -p "$STORE_DIR"
    (
      umask 077
      printf 'STORE_ACCESS_KEY=modelship-%s\nSTORE_SECRET_KEY=%s\n' \
        "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
        "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$STORE_DIR/credentials"
    )
  fi
  # shellcheck source=/dev/null
  source "$STORE_DIR/credentials"
}

# PUT Bucket, signed with SigV4 by curl: 200 made, 409 already ours.
store_bucket() {
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$STORE_ACCESS_KEY:$STORE_SECRET_KEY" \
    "http://$NODE_IP:$STORE_PORT/$STORE_BUCKET")
  [[ $code == 200 || $code == 409 ]] ||
    die "making bucket $STORE_BUCKET answered HTTP $code (log: $LOGS/store.log)"
}

store_up() {
  [[ $WITH_STORE == 1 ]] || return 0
  local bin
  bin=$(bash "$here/build-s3.sh" path)
  if [[ ! -x $bin ]]; then
    log "warning: MinIO is not built; no object store (run 'make binaries', then up)"
    return 0
  fi
  store_credentials
  mkdir -p "$STORE_DIR/data"
  # The keys reach MinIO through its environment, never its command line.
  start store bash -c 'set -a; source "$1"; set +a
    export MINIO_ROOT_USER=$STORE_ACCESS_KEY MINIO_ROOT_PASSWORD=$STORE_SECRET_KEY
    exec "$2" server --quiet --address "$3" --console-address "$4" "$5"' store \
    "$STORE_DIR/credentials" "$bin" "$NODE_IP:$STORE_PORT" "127.0.0.1:$STORE_CONSOLE_PORT" \
    "$STORE_DIR/data"
  wait_for store 60 store_live
  store_bucket
  set_endpoints \
    "STORE_URL=http://$NODE_IP:$STORE_PORT" \
    "STORE_BUCKET=$STORE_BUCKET" \
    "STORE_ACCESS_KEY=$STORE_ACCESS_KEY" \
    "STORE_SECRET_KEY=$STORE_SECRET_KEY"
  log "object store ready: http://$NODE_IP:$STORE_PORT, bucket $STORE_BUCKET"
}

store_down() {
  unset_endpoints "${STORE_KEYS[@]}"
  stop store
}

store_status() {
  [[ $WITH_STORE == 1 ]] || return 0
  check store store_live
}
