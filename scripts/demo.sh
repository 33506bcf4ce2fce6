#!/usr/bin/env bash
# pgdr in one command: installs what is missing, starts a throwaway PostgreSQL with a small
# Supabase-like schema, creates a key, backs up into a repository under a temp dir, lists
# the backup and proves it by restoring it into a throwaway cluster. `--s3` uses a local S3
# server (Garage, via scripts/s3-server.sh) instead.
# Everything it starts is stopped at the end; `--keep` leaves the temp dir for a look.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"

use_s3=0 keep=0
for a in "$@"; do
  case "$a" in
    --s3) use_s3=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: scripts/demo.sh [--s3] [--keep]" >&2; exit 2 ;;
  esac
done

pgdr_install_deps
echo "== building pgdr (release)"
PGDR="$(pgdr_release_bin)"

work="$(mktemp -d /tmp/pgdr-demo-XXXXXX)"
chmod 755 "$work"
cleanup() {
  pgdr_pg_stop "$work/pg"
  [ "$use_s3" = 1 ] && PGDR_GARAGE_DIR="$work/garage" scripts/s3-server.sh stop >/dev/null 2>&1 || true
  if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== starting a throwaway PostgreSQL in $work/pg"
pgdr_pg_start "$work/pg"
"$(pgdr_pg_bin)/createdb" app
"$(pgdr_pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -d app -f tests/fixtures/schema.sql
echo "   loaded tests/fixtures/schema.sql into database 'app' (port $PGPORT)"

echo "== generating an age identity"
recipient="$("$PGDR" keygen --out "$work/identity.txt")"
echo "   recipient: $recipient"

if [ "$use_s3" = 1 ]; then
  command -v garage >/dev/null || cargo install garage --locked
  eval "$(PGDR_GARAGE_DIR="$work/garage" scripts/s3-server.sh start)"
  repo="s3://$PGDR_S3_BUCKET/demo"
else
  repo="$work/repo"
fi

export PGDR_SOURCE="postgres://postgres@127.0.0.1:$PGPORT/app"
export PGDR_REPO="$repo" PGDR_RECIPIENT="$recipient" PGDR_IDENTITY="$work/identity.txt"

echo "== pgdr backup  (repository: $repo)"
"$PGDR" backup
echo "== pgdr list"
"$PGDR" list
id="$("$PGDR" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')"
echo "== pgdr show $id"
"$PGDR" show "$id"
echo "== pgdr verify $id  (restores into a throwaway cluster and compares the fingerprint)"
"$PGDR" verify "$id"
echo "== the stored dump, decrypted with the identity, read by pg_restore --list (first lines)"
"$PGDR" cat "$id" --out "$work/dump.pgdump"
"$(pgdr_pg_bin)/pg_restore" --list "$work/dump.pgdump" | grep -E 'TABLE DATA|POLICY' | head -8
echo "== done"
