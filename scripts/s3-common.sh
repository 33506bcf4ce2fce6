# shellcheck shell=bash
# What scripts/s3-server.sh (Garage) and scripts/s3-lock-server.sh (moto) share: messages, a
# free port, the pid check, the env file the tests read, and stopping the server. The sourcing
# script sets NAME (for messages), SERVER (a word of the server's command line, to tell it from
# a recycled pid), DIR, PID_FILE, ENV_FILE and LOG.

die() {
    echo "$NAME: $*" >&2
    exit 1
}

log() {
    echo "$(date -u +%FT%TZ) $*" >>"$LOG"
}

# A free loopback TCP port: the kernel picks one for a socket bound to port 0.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! ss -ltnH "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# The pid from the pid file when that process is alive and is the server (not a recycled pid).
running_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid state
    pid="$(cat "$PID_FILE")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$SERVER" || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)"
    [ "$state" != "Z" ] && [ "$state" != "X" ] || return 1
    echo "$pid"
}

# write_env KEY_ID SECRET REGION PORT [NAME=VALUE...]: the env file (mode 0600: it holds the
# key) that `start` and `env` print, for `eval` and for the tests.
write_env() {
    local key_id="$1" secret="$2" region="$3" port="$4" line
    shift 4
    (
        umask 077
        {
            echo "export AWS_ACCESS_KEY_ID=$key_id"
            echo "export AWS_SECRET_ACCESS_KEY=$secret"
            echo "export AWS_REGION=$region"
            echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
            for line in "$@"; do
                echo "export $line"
            done
        } >"$ENV_FILE"
    )
}

# cmd_stop [MARKER...]: stop the server (TERM; KILL after 3 s: its state is deleted next, so a
# longer graceful shutdown buys nothing), wait until init has reaped it so no <defunct> server
# outlives `stop`, then remove DIR, but only when this script populated it (the pid file, the
# log or one of the MARKER files is there), whatever the state variable points at.
cmd_stop() {
    [ -d "$DIR" ] || return 0
    local pid marker populated=""
    if pid="$(running_pid)"; then
        log "stopping pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do
            running_pid >/dev/null || break
            sleep 0.1
        done
        if running_pid >/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        for _ in $(seq 1 50); do
            [ -e "/proc/$pid" ] || break
            sleep 0.1
        done
    fi
    for marker in "$PID_FILE" "$LOG" "$@"; do
        [ -f "$marker" ] && populated=1
    done
    if [ -n "$populated" ]; then
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
        echo "$SERVER running (pid $pid, state $DIR)"
    else
        echo "$SERVER not running (state $DIR)"
        exit 1
    fi
}
