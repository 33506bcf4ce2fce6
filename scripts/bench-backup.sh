#!/usr/bin/env bash
# Backup throughput and memory, measured side by side in one run:
#   pg_dump -Fc -Z0 > /dev/null          (the ceiling of any logical backup)
#   pgdr backup into a local repository  (pg_dump + zstd + age + fsync'd files)
# Prints the throughput ratio pgdr/pg_dump (target >= 0.90) and pgdr's peak RSS (target
# <= 64 MiB), medians over --runs alternating runs. pg_dump and pg_restore are separate
# processes; the RSS is pgdr's own.
#
#   scripts/bench-backup.sh [--scale 70] [--dataset a|b] [--runs 3] [--level N]
# Dataset a: pgbench as generated (compresses ~100:1). Dataset b: the same rows with 84
# random hex characters of filler (compresses ~2:1), the hard case for compression.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"

scale=70 dataset=a runs=3 level=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --dataset) dataset="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --level) level="$2"; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--dataset a|b] [--runs N] [--level N]" >&2; exit 2 ;;
  esac
done

pgdr_install_deps
cargo build --release --locked -q
PGDR="$PGDR_ROOT/target/release/pgdr"
BIN="$(pgdr_pg_bin)"

work="$(mktemp -d /tmp/pgdr-bench-XXXXXX)"
chmod 755 "$work"
trap 'pgdr_pg_stop "$work/pg"; rm -rf "$work"' EXIT
pgdr_pg_start "$work/pg"

echo "== preparing pgbench scale $scale, dataset $dataset"
"$BIN/createdb" bench
"$BIN/pgbench" -i -q -s "$scale" bench >/dev/null 2>&1
if [ "$dataset" = b ]; then
  "$BIN/psql" -X -q -d bench -c "UPDATE pgbench_accounts SET filler = substr(md5(aid::text) || md5((aid * 7)::text) || md5((aid * 13)::text), 1, 84)" \
    -c "VACUUM FULL pgbench_accounts" >/dev/null
fi
"$BIN/psql" -X -q -d bench -c "CHECKPOINT" >/dev/null
size="$("$BIN/psql" -X -At -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")"
echo "   database size: $size"

recipient="$("$PGDR" keygen --out "$work/identity.txt" 2>/dev/null)"
cfg="$work/pgdr.toml"
{
  echo "[compression]"
  [ -n "$level" ] && echo "level = $level"
} >"$cfg"

# time_run OUT CMD...: wall seconds and peak RSS (KiB) of CMD via /usr/bin/time.
time_run() {
  local out="$1"; shift
  /usr/bin/time -f "%e %M" -o "$out" "$@"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

dump_t=() pgdr_t=() pgdr_rss=() ratios=()
# Warm the cache once, uncounted.
"$BIN/pg_dump" -Fc -Z0 -d bench >/dev/null
for i in $(seq 1 "$runs"); do
  time_run "$work/t.dump" sh -c "'$BIN/pg_dump' -Fc -Z0 -d bench > /dev/null"
  rm -rf "$work/repo"
  time_run "$work/t.pgdr" "$PGDR" --quiet --config "$cfg" backup \
    --source "postgres://postgres@127.0.0.1:$PGPORT/bench" --repo "$work/repo" --recipient "$recipient"
  read -r dw _ <"$work/t.dump"
  read -r pw prss <"$work/t.pgdr"
  dump_t+=("$dw"); pgdr_t+=("$pw"); pgdr_rss+=("$prss")
  ratios+=("$(awk -v a="$dw" -v b="$pw" 'BEGIN {printf "%.3f", a / b}')")
  echo "   run $i: pg_dump ${dw}s, pgdr ${pw}s, pgdr peak RSS $((prss / 1024)) MiB"
done

raw="$("$PGDR" --quiet list --json --repo "$work/repo" | python3 -c 'import json,sys; l=json.load(sys.stdin)[-1]; print(l["raw_bytes"], l["stored_bytes"])')"
read -r raw_b stored_b <<<"$raw"
echo
echo "dataset $dataset, scale $scale ($size; archive $((raw_b / 1048576)) MiB, stored $((stored_b / 1048576)) MiB, ratio $(awk -v a="$raw_b" -v b="$stored_b" 'BEGIN {printf "%.1f", a / b}'):1)"
echo "pg_dump -Fc -Z0 > /dev/null   median $(printf '%s\n' "${dump_t[@]}" | median)s"
echo "pgdr backup                   median $(printf '%s\n' "${pgdr_t[@]}" | median)s"
echo "throughput ratio pgdr/pg_dump median $(printf '%s\n' "${ratios[@]}" | median)  (target >= 0.90)"
echo "pgdr peak RSS                 median $(( $(printf '%s\n' "${pgdr_rss[@]}" | median | cut -d. -f1) / 1024 )) MiB  (target <= 64 MiB)"
