# Shared shell helpers for pgdr's scripts: installing what is missing, and a throwaway
# PostgreSQL cluster on loopback. Source it; do not run it.

PGDR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

# Install the system packages pgdr's scripts and tests need, only when missing.
pgdr_install_deps() {
  local need=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
  command -v age >/dev/null || need+=(age)
  command -v zstd >/dev/null || need+=(zstd)
  [ -x /usr/bin/time ] || need+=(time)
  command -v runuser >/dev/null || need+=(util-linux)
  command -v pgrep >/dev/null || need+=(procps)
  command -v python3 >/dev/null || need+=(python3)
  # moto's S3 server (Object Lock tests) goes into a venv: scripts/s3-lock-server.sh.
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  command -v openssl >/dev/null || need+=(openssl)
  command -v minisign >/dev/null || need+=(minisign)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need[@]}" >&2
  fi
}

# pgdr_release_bin: build pgdr with --release and print the binary's path as cargo itself
# reports it (so CARGO_TARGET_DIR, a build.target-dir in a cargo config, or a cross target
# are honoured: never assume target/release under the checkout).
pgdr_release_bin() {
  (cd "$PGDR_ROOT" && cargo build --release --locked -q --bin pgdr --message-format=json) |
    python3 -c 'import json, sys
exe = [m["executable"] for m in map(json.loads, sys.stdin)
       if m.get("reason") == "compiler-artifact" and m.get("executable")
       and m["target"]["name"] == "pgdr"]
if not exe:
    sys.exit("cargo reported no pgdr binary")
print(exe[-1])'
}

pgdr_pg_bin() {
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

# as_pg CMD...: run a server program as the postgres OS user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pgdr_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pgdr_pg_start DIR [OPTIONS]: initdb (trust on loopback) and start a cluster in DIR/data,
# with extra server OPTIONS ("-c name=value ..."); sets PGPORT and PGHOST for the caller.
# Stop it with pgdr_pg_stop DIR.
pgdr_pg_start() {
  local dir="$1" extra="${2:-}" bin
  bin="$(pgdr_pg_bin)"
  mkdir -p "$dir"
  chmod 755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale -A trust --no-sync >"$dir/initdb.log" 2>&1
  PGPORT="$(pgdr_free_port)"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PGPORT -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB $extra" start >/dev/null
  export PGPORT PGHOST=127.0.0.1 PGUSER=postgres
}

pgdr_pg_stop() {
  local dir="$1"
  [ -d "$dir/data" ] && as_pg "$(pgdr_pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
