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

die() {
    echo "s3-lock-server.sh: $*" >&2
    exit 1
}

log() {
    echo "$(date -u +%FT%TZ) $*" >>"$LOG"
}

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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The pid from the pid file when that process is alive and is moto (not a recycled pid).
running_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid state
    pid="$(cat "$PID_FILE")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)"
    [ "$state" != "Z" ] && [ "$state" != "X" ] || return 1
    echo "$pid"
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

write_env() {
    local pid="$1" port="$2"
    (
        umask 077
        cat >"$ENV_FILE" <<EOV
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=$REGION
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export PGDR_S3_LOCK_BUCKET=$BUCKET
export PGDR_MOTO_PID=$pid
export PGDR_MOTO_DIR=$DIR
EOV
    )
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
    write_env "$pid" "$port"
    log "ready: pid $pid"
    cat "$ENV_FILE"
}

cmd_stop() {
    [ -d "$DIR" ] || return 0
    local pid
    if pid="$(running_pid)"; then
        log "stopping pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [ -e "/proc/$pid" ] || break
            running_pid >/dev/null || break
            sleep 0.1
        done
        running_pid >/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    # Only remove a directory this script populated, whatever PGDR_MOTO_DIR points at.
    if [ -f "$PID_FILE" ] || [ -f "$LOG" ]; then
        rm -rf "$DIR"
    fi
}

cmd_env() {
    [ -f "$ENV_FILE" ] || die "no server state in $DIR; run '$0 start' first"
    cat "$ENV_FILE"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "moto running (pid $pid, state $DIR)"
    else
        echo "moto not running (state $DIR)"
        exit 1
    fi
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
install)
    mkdir -p "$DIR"
    ensure_moto
    ;;
*)
    echo "usage: $0 start|stop|env|status|install   (state dir: \$PGDR_MOTO_DIR, default /tmp/pgdr-moto)" >&2
    exit 2
    ;;
esac
