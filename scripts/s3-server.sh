#!/usr/bin/env bash
# A throwaway single-node Garage S3 server on loopback, for pgdr's integration tests and for
# trying the S3 backend by hand.
#
#   scripts/s3-server.sh start    start (or reuse) the server; prints the env file
#   scripts/s3-server.sh env      print the env file of the running server
#   scripts/s3-server.sh status   exit 0 when the server is running
#   scripts/s3-server.sh stop     stop the server this script started and remove its state
#
# State (config, data, metadata, pid, env, log) lives in ${PGDR_GARAGE_DIR:-/tmp/pgdr-garage},
# so several instances can run side by side with different dirs. The env file exports
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, PGDR_S3_BUCKET and
# PGDR_GARAGE_PID: `eval "$(scripts/s3-server.sh start)"` points the AWS tooling at it.
#
# When garage is neither on PATH nor in ~/.cargo/bin it is installed with
# `cargo install garage --locked` (minutes, once; CI machines start empty).
set -euo pipefail

DIR="${PGDR_GARAGE_DIR:-/tmp/pgdr-garage}"
CFG="$DIR/garage.toml"
PID_FILE="$DIR/garage.pid"
ENV_FILE="$DIR/env"
LOG="$DIR/garage.log"
# Written once the layout, bucket and key exist: a restart reuses them instead of redoing setup.
READY="$DIR/setup-done"
BUCKET="pgdr-test"
KEY_NAME="pgdr-test-key"
NAME="s3-server.sh"
SERVER="garage"
# shellcheck source=s3-common.sh
source "$(dirname "$0")/s3-common.sh"

find_garage() {
    if command -v garage >/dev/null 2>&1; then
        command -v garage
    elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
        echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage"
    else
        return 1
    fi
}

ensure_garage() {
    if GARAGE="$(find_garage)"; then
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "garage is not installed and cargo is missing to install it (see https://rustup.rs)"
    log "installing garage with cargo install garage --locked"
    echo "s3-server.sh: installing garage (cargo install garage --locked; log: $LOG) ..." >&2
    cargo install garage --locked >>"$LOG" 2>&1 || die "cargo install garage failed; see $LOG"
    GARAGE="$(find_garage)" || die "garage still not found after cargo install; is ~/.cargo/bin writable?"
}

g() {
    "$GARAGE" -c "$CFG" "$@"
}

wait_ready() {
    local pid="$1"
    for _ in $(seq 1 150); do
        if g status >>"$LOG" 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "garage exited during startup; see $LOG"
        sleep 0.2
    done
    die "garage did not answer 'garage status' within 30 s; see $LOG"
}

launch() {
    log "starting: $GARAGE -c $CFG server"
    # stdin/stdout/stderr all redirected: a caller reading our output must not wait on garage.
    "$GARAGE" -c "$CFG" server </dev/null >>"$LOG" 2>&1 &
    echo $! >"$PID_FILE"
    wait_ready "$!"
}

write_config() {
    local s3_port rpc_port admin_port secret
    s3_port="$(free_port)"
    rpc_port="$(free_port)"
    admin_port="$(free_port)"
    while [ "$rpc_port" = "$s3_port" ]; do rpc_port="$(free_port)"; done
    while [ "$admin_port" = "$s3_port" ] || [ "$admin_port" = "$rpc_port" ]; do admin_port="$(free_port)"; done
    secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    (
        umask 077
        cat >"$CFG" <<EOF
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "garage"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
EOF
    )
    echo "$s3_port" >"$DIR/s3-port"
}

setup_cluster() {
    local node_id info key_id secret
    node_id="$(g node id -q 2>>"$LOG" | cut -d@ -f1)"
    [ -n "$node_id" ] || die "could not read the node id; see $LOG"
    g layout assign -z dc1 -c 1G "$node_id" >>"$LOG" 2>&1
    g layout apply --version 1 >>"$LOG" 2>&1
    g bucket create "$BUCKET" >>"$LOG" 2>&1
    g key create "$KEY_NAME" >>"$LOG" 2>&1
    g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >>"$LOG" 2>&1
    # Garage 2.x prints "Key ID:   GK..." and "Secret key:   <hex>" lines.
    info="$(g key info --show-secret "$KEY_NAME" 2>>"$LOG")"
    key_id="$(awk -F': *' '/^Key ID:/ {print $2; exit}' <<<"$info" | tr -d ' ')"
    secret="$(awk -F': *' '/^Secret key:/ {print $2; exit}' <<<"$info" | tr -d ' ')"
    [ -n "$key_id" ] && [ -n "$secret" ] || die "could not parse 'garage key info --show-secret'; see $LOG"
    (
        umask 077
        {
            echo "$key_id"
            echo "$secret"
        } >"$DIR/credentials"
    )
    touch "$READY"
}

# The env file for the running server, from the key and port setup wrote.
garage_env() {
    local pid="$1"
    write_env "$(sed -n 1p "$DIR/credentials")" "$(sed -n 2p "$DIR/credentials")" garage \
        "$(cat "$DIR/s3-port")" "PGDR_S3_BUCKET=$BUCKET" "PGDR_GARAGE_PID=$pid" "PGDR_GARAGE_DIR=$DIR"
}

cmd_start() {
    mkdir -p "$DIR"
    local pid
    if pid="$(running_pid)"; then
        [ -f "$ENV_FILE" ] || garage_env "$pid"
        cat "$ENV_FILE"
        return
    fi
    ensure_garage
    if [ -f "$READY" ] && [ -f "$CFG" ]; then
        # Stopped or killed earlier: restart on the same config, data, bucket and key.
        log "restarting on existing state"
        launch
    else
        rm -rf "$DIR/meta" "$DIR/data" "$READY"
        write_config
        launch
        setup_cluster
    fi
    pid="$(cat "$PID_FILE")"
    garage_env "$pid"
    log "ready: pid $pid"
    cat "$ENV_FILE"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop "$CFG" ;;
env) cmd_env ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|env|status   (state dir: \$PGDR_GARAGE_DIR, default /tmp/pgdr-garage)" >&2
    exit 2
    ;;
esac
