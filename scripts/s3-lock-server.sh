#!/usr/bin/env bash
# A throwaway moto S3 server on loopback with an Object Lock bucket, for pgdr's Object Lock
# tests (Garage, the server of every other S3 test, has no Object Lock).
#
#   scripts/s3-lock-server.sh start    start (or reuse) the server; prints the env file
#   scripts/s3-lock-server.sh env      print the env file of the running server
#   scripts/s3-lock-server.sh status   exit 0 when the server is running
#   scripts/s3-lock-server.sh stop     stop the server this script started and remove its state
#   scripts/s3-lock-server.sh install  install moto into its venv when missing (CI)
#
# State (pid, env, log) lives in ${PGDR_MOTO_DIR:-/tmp/pgdr-moto}. moto (PyPI `moto[server]`)
# is installed once into the venv ${PGDR_MOTO_VENV:-$HOME/.cache/pgdr/moto-venv}, kept
# across stops so a test run does not reinstall it. The env file exports AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, PGDR_S3_LOCK_BUCKET (versioned, Object
# Lock enabled, no default retention) and PGDR_MOTO_PID. moto keeps everything in memory: a
# stopped server loses its objects.
set -euo pipefail

DIR="${PGDR_MOTO_DIR:-/tmp/pgdr-moto}"
VENV="${PGDR_MOTO_VENV:-$HOME/.cache/pgdr/moto-venv}"
PID_FILE="$DIR/moto.pid"
ENV_FILE="$DIR/env"
LOG="$DIR/moto.log"
BUCKET="pgdr-lock-test"
# moto accepts any credentials; these only need to be consistent.
KEY_ID="pgdrtest"
SECRET="pgdrtestsecret"
REGION="us-east-1"
NAME="s3-lock-server.sh"
SERVER="moto_server"
# shellcheck source=s3-common.sh
source "$(dirname "$0")/s3-common.sh"

ensure_moto() {
    if [ -x "$VENV/bin/moto_server" ] && "$VENV/bin/python" -c 'import moto, boto3' 2>/dev/null; then
        return
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is missing (needed for moto's S3 server)"
    log "installing moto[server] into $VENV"
    echo "s3-lock-server.sh: installing moto[server] into $VENV (log: $LOG) ..." >&2
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >>"$LOG" 2>&1 || die "python3 -m venv failed (install python3-venv); see $LOG"
    "$VENV/bin/pip" install -q 'moto[server]' >>"$LOG" 2>&1 || die "pip install moto[server] failed; see $LOG"
}

# Create the bucket with Object Lock (which turns versioning on) once the server answers.
make_bucket() {
    local port="$1"
    AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_DEFAULT_REGION="$REGION" \
        "$VENV/bin/python" - "$port" "$BUCKET" >>"$LOG" 2>&1 <<'PY'
import sys, time, boto3
port, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
for _ in range(150):
    try:
        s3.list_buckets()
        break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("moto did not answer within 30 s")
s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
v = s3.get_bucket_versioning(Bucket=bucket).get("Status")
if v != "Enabled":
    sys.exit(f"bucket versioning is {v!r}, not Enabled")
PY
}

cmd_start() {
    mkdir -p "$DIR"
    local pid port
    if pid="$(running_pid)" && [ -f "$ENV_FILE" ]; then
        cat "$ENV_FILE"
        return
    fi
    ensure_moto
    port="$(free_port)"
    log "starting moto_server on 127.0.0.1:$port"
    # All three streams redirected: a caller reading our output must not wait on moto.
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    if ! make_bucket "$port"; then
        kill -TERM "$pid" 2>/dev/null || true
        die "could not create the Object Lock bucket; see $LOG"
    fi
    write_env "$KEY_ID" "$SECRET" "$REGION" "$port" \
        "PGDR_S3_LOCK_BUCKET=$BUCKET" "PGDR_MOTO_PID=$pid" "PGDR_MOTO_DIR=$DIR"
    log "ready: pid $pid"
    cat "$ENV_FILE"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
install)
    # No server state yet: the install's log goes beside the venv, and the state folder is
    # left to `start` (a folder made here outlived every run).
    mkdir -p "$(dirname "$VENV")"
    LOG="$(dirname "$VENV")/moto-install.log"
    ensure_moto
    ;;
*)
    echo "usage: $0 start|stop|env|status|install   (state dir: \$PGDR_MOTO_DIR, default /tmp/pgdr-moto)" >&2
    exit 2
    ;;
esac
