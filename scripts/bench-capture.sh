#!/usr/bin/env bash
# pgdr's change capture (issue 16) and replay (issue 17) under a steady pgbench load, measured
# with public tools only (pgbench, psql, /usr/bin/time, /proc, the repository's JSON entries):
#   baseline: pgbench --rate R for --minutes without capture: the server's CPU per transaction
#   capture:  capture enable, an anchored pgdr backup, then pgdr capture run while the same
#             pgbench runs; every second: lag in bytes (pg_current_wal_lsn() - the slot's
#             confirmed_flush_lsn) and in seconds (now - the newest commit durable in the
#             repository), pgdr's VmHWM/VmRSS, the server's CPU.
#             Targets: lag p99 < 30 s, pgdr peak RSS <= 64 MiB; also stored bytes per committed
#             row and the extra server CPU (walsender decoding) against the baseline.
#   replay:   pgdr restore --at latest from the anchor into a new database against a plain
#             restore of the same anchor: replay rate in txn/s and rows/s / the workload's rate
#             (target >= 3x), the RTO of "yesterday's anchor + a day of changes", pgdr's peak
#             RSS. Skipped while pgdr restore has no --at.
#   big:      one INSERT ... SELECT generate_series of --big-mb MiB of 1 KiB rows, captured by
#             a fresh runner: time from COMMIT to durable, pgdr's peak RSS.
# Figures are from one run on a possibly shared machine: the script prints the load average
# before and after; read lag and RSS as absolute, CPU as the ratio of two runs side by side.
#
#   scripts/bench-capture.sh [--minutes 10 | --seconds S] [--rate TPS] [--big-mb 1024] [--scale 10]
#                            [--clients 4] [--replay-only] [--compare OLD_PGDR] [--rounds 1]
#                            [--only bigtxn]
# --replay-only skips the baseline and the big transaction (capture runs: replay needs its
# segments). --compare OLD_PGDR replays the same segments with another pgdr binary too (a
# release build of the code before a change), alternating old and new --rounds times: the
# paired ratio holds on a shared machine where absolute rates drift.
# --only bigtxn runs the big transaction alone (capture enable, no pgbench load, no replay):
# the memory figure in minutes instead of the whole run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"

minutes=10 secs="" rate=500 big_mb=1024 scale=10 clients=4 replay_only="" old_pgdr="" rounds=1 only=""
usage="usage: $0 [--minutes 10 | --seconds S] [--rate TPS] [--big-mb 1024] [--scale 10] [--clients 4] [--replay-only] [--compare OLD_PGDR] [--rounds 1] [--only bigtxn]"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --seconds) secs="$2"; shift 2 ;;
    --replay-only) replay_only=1; shift ;;
    --only)
      [ "${2:-}" = bigtxn ] || { echo "--only takes 'bigtxn' (the big transaction alone); $usage" >&2; exit 64; }
      only=bigtxn; shift 2 ;;
    --compare) old_pgdr="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --big-mb) big_mb="$2"; shift 2 ;;
    --scale) scale="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 64 ;;
  esac
done
if [ -n "$only" ] && [ -n "$replay_only" ]; then
  echo "--only bigtxn and --replay-only exclude each other (the replay needs the load's segments)" >&2
  exit 64
fi
if [ -n "$old_pgdr" ] && [ ! -x "$old_pgdr" ]; then
  echo "--compare $old_pgdr: not an executable pgdr binary; build the older code with cargo build --release and copy the binary it built" >&2
  exit 64
fi

pgdr_install_deps
PGDR="$(pgdr_release_bin)"
BIN="$(pgdr_pg_bin)"
export PATH="$BIN:$PATH"
HELPER="$PGDR_ROOT/scripts/bench_capture.py"
helper() { python3 "$HELPER" "$@"; }

work="$(mktemp -d /tmp/pgdr-bench-capture-XXXXXX)"
chmod 755 "$work"
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pgdr_pg_stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT
pgdr_pg_start "$work/pg" "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
data="$work/pg/data"
src="postgres://postgres@127.0.0.1:$PGPORT/bench"
repo="$work/repo"
slot=pgdr_bench
segments="$repo/bench/capture/segments"
sql() { psql -X -At -q -d bench -c "$1"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
declare -a summary=()
summary+=("machine  $(nproc) cores, load average at start $(loadavg) (shared: other jobs may run beside this one)")

echo "== preparing pgbench scale $scale"
createdb bench
pgbench -i -q -s "$scale" bench >/dev/null 2>&1
# pgbench_history has no key: without a replica identity capture would leave it out. Inserts
# only, so FULL costs nothing. The big transaction's table exists before the publication.
sql "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"
sql "CREATE TABLE big (id bigint PRIMARY KEY, payload text)"
sql "VACUUM ANALYZE"
sql "CHECKPOINT"
echo "   database size: $(sql "SELECT pg_size_pretty(pg_database_size('bench'))")"

secs="${secs:-$((minutes * 60))}"
# run_load NAME PGDR_PID SINCE_VAR: pgbench at the steady rate with the sampler beside it;
# leaves $work/NAME.pgbench (pgbench's output) and $work/NAME.samples.
run_load() {
  local name="$1" pid="$2" t0
  t0="$(date +%s.%N)"
  python3 "$HELPER" sample --out "$work/$name.samples" --port "$PGPORT" --db bench --slot "$slot" \
    --segments "$segments" --datadir "$data" --pid "$pid" --since "$t0" &
  sampler=$!; bg_pids+=("$sampler")
  cpu0="$(helper cpu "$data")"
  load_start="$t0"
  pgbench -n -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -R "$rate" -T "$secs" bench >"$work/$name.pgbench" 2>&1
  load_end="$(date +%s.%N)"
}
stop_sampler() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
txns_of() { awk '/number of transactions actually processed/ {print $NF}' "$1" | cut -d/ -f1; }
tps_of() { awk '/^tps = / {printf "%.1f", $3; exit}' "$1"; }

# ---------------------------------------------------------------- baseline (no capture)
if [ -z "$replay_only" ] && [ -z "$only" ]; then
  echo "== baseline: pgbench --rate $rate for ${secs} s, no capture"
  run_load base 0
  cpu1="$(helper cpu "$data")"
  stop_sampler
  base_cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')"
  base_txns="$(txns_of "$work/base.pgbench")"
  echo "   $base_txns transactions at $(tps_of "$work/base.pgbench") tps; server CPU ${base_cpu}s"
fi

# ---------------------------------------------------------------- capture
echo "== capture enable and an anchored backup"
recipient="$("$PGDR" keygen --out "$work/identity.txt" 2>/dev/null)"
# As PGDR_* variables: each subcommand reads those of the flags it takes (capture enable
# takes no keys, capture run no identity).
P=(env PGDR_SOURCE="$src" PGDR_REPO="$repo" PGDR_RECIPIENT="$recipient" PGDR_IDENTITY="$work/identity.txt" "$PGDR" --quiet)
"${P[@]}" capture enable >/dev/null
if [ -z "$only" ]; then
"${P[@]}" backup
anchor="$("$PGDR" --quiet list --json --repo "$repo" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')"
cut="$("$PGDR" --quiet show "$anchor" --json --repo "$repo" | helper find cut_lsn)"
[ "$cut" != "-" ] || { echo "the backup $anchor is not anchored (no snapshot.cut_lsn)" >&2; exit 2; }
echo "   anchor $anchor at $cut"

echo "== capture: pgbench --rate $rate for ${secs} s with pgdr capture run"
"${P[@]}" capture run --json >"$work/run1.json" 2>"$work/run1.err" &
pgdr_pid=$!; bg_pids+=("$pgdr_pid")
sleep 2
run_load cap "$pgdr_pid"
end_lsn="$(sql "SELECT pg_current_wal_lsn()")"
# Caught up: the slot's durable position passes the WAL the load wrote (a segment closes on
# its age, or a heartbeat follows when nothing else comes).
caught=""
for _ in $(seq 1 600); do
  if [ "$(sql "SELECT confirmed_flush_lsn >= '$end_lsn' FROM pg_replication_slots WHERE slot_name = '$slot'")" = t ]; then
    caught="$(awk -v a="$load_end" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"; break
  fi
  sleep 0.5
done
cpu1="$(helper cpu "$data")"
stop_sampler
kill -TERM "$pgdr_pid"; wait "$pgdr_pid" || { echo "pgdr capture run failed:" >&2; cat "$work/run1.err" >&2; exit 2; }
cap_cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')"
cap_txns="$(txns_of "$work/cap.pgbench")"
cap_tps="$(tps_of "$work/cap.pgbench")"
source_state="$(sql "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)")"
read -r lb50 lb99 ls50 ls99 lsmax hwm pcpu n < <(helper summary "$work/cap.samples" --since "$load_start" --until "$load_end" |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print(*(s[k] for k in ("lag_bytes_p50","lag_bytes_p99","lag_s_p50","lag_s_p99","lag_s_max","hwm_kib","pgdr_cpu","samples")))')
read -r seg_n seg_txns stored plain < <(helper entries "$segments" |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["entries"], s["transactions"], s["stored_bytes"], s["plain_bytes"])')
# Whole-run pgdr figures: the samples cover the catch-up too.
read -r hwm_all pcpu_all < <(helper summary "$work/cap.samples" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["hwm_kib"], s["pgdr_cpu"])')
rows=$((cap_txns * 4))
extra="-"
[ -n "$replay_only" ] || extra="$(awk -v c="$cap_cpu" -v ct="$cap_txns" -v b="$base_cpu" -v bt="$base_txns" 'BEGIN {printf "%+.1f", ((c / ct) / (b / bt) - 1) * 100}')"
echo "   $cap_txns transactions at $cap_tps tps; caught up ${caught:-NOT within 300}s after the load; $seg_n segments, $seg_txns transactions stored"
summary+=("workload pgbench scale $scale, $clients clients, --rate $rate, $secs s: $cap_tps tps achieved, $cap_txns transactions of 4 rows (3 UPDATE, 1 INSERT)")
summary+=("capture  lag under load p50 $(printf %.1f "$ls50") s, p99 $(printf %.1f "$ls99") s, max $(printf %.1f "$lsmax") s (target p99 < 30 s; segment age 10 s); bytes p50 $(mib "$(awk -v b="$lb50" 'BEGIN {print b / 1024}')") MiB, p99 $(mib "$(awk -v b="$lb99" 'BEGIN {print b / 1024}')") MiB; $n samples")
summary+=("capture  caught up ${caught:-NOT within 300}s after the load stopped; $seg_n segments, $seg_txns transactions stored (pgbench counted $cap_txns)")
summary+=("capture  pgdr peak RSS $(mib "$hwm_all") MiB (target <= 64 MiB); pgdr CPU $(printf %.1f "$pcpu_all") s = $(awk -v c="$pcpu_all" -v t="$cap_txns" 'BEGIN {printf "%.2f", c / t * 1e6}') CPU-us per transaction")
summary+=("capture  stored $(ratio "$stored" "$rows") bytes per committed row ($(ratio "$plain" "$rows") plain; $(mib "$((stored / 1024))") MiB stored of $(mib "$((plain / 1024))") MiB plain)")
[ -n "$replay_only" ] || summary+=("capture  extra server CPU per transaction $extra% (${cap_cpu}s for $cap_txns txns with capture vs ${base_cpu}s for $base_txns without)")

# time_run OUT CMD...: wall seconds and the peak RSS (KiB) of CMD's own process (its VmHWM
# sampled every 0.5 s, as in bench-backup.sh: /usr/bin/time would report its children too).
time_run() {
  local out="$1"; shift
  sync
  /usr/bin/time -f "%e" -o "$out.wall" "$@" >"$out.stdout" 2>"$out.stderr" &
  local tpid=$! pid="" hwm=0 k v _ rc=0
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$pid" ] || pid="$(pgrep -P "$tpid" | head -n 1 || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      while read -r k v _; do
        [ "$k" = "VmHWM:" ] && [ "$v" -gt "$hwm" ] && hwm="$v"
      done <"/proc/$pid/status" 2>/dev/null || true
    fi
    sleep 0.5
  done
  wait "$tpid" || rc=$?
  echo "$(tail -n 1 "$out.wall") $hwm $rc" >"$out"
}

# ---------------------------------------------------------------- replay
target() { echo "postgres://postgres@127.0.0.1:$PGPORT/$1"; }
# replay_once LABEL PGDR_BIN: restore --at latest with that binary into a new database; the
# rate from its replay record (else the walls' difference), the result against the source.
# Sets r_tps for the caller and adds summary lines.
replay_once() {
  local label="$1" bin="$2" db="bench_at_$RANDOM" t_at at_hwm rc_at r_txns r_rows r_secs how got same r_rps x day_h rto_h
  time_run "$work/t.at" "$bin" --quiet restore --at latest --database bench --target "$(target "$db")" \
    --yes --no-verify --json --repo "$repo" --identity "$work/identity.txt"
  read -r t_at at_hwm rc_at <"$work/t.at"
  if [ "$rc_at" != 0 ]; then
    echo "   restore --at ($label) failed, exit $rc_at:" >&2
    cat "$work/t.at.stderr" >&2
    summary+=("replay   $label FAILED (restore --at exit $rc_at)")
    r_tps=0; dropdb --if-exists "$db"; return
  fi
  # The replay record (`replayed`: transactions, rows, replay_seconds); else the difference
  # of the walls and the counts the segment entries and pgbench give.
  read -r r_txns r_rows r_secs < <(helper find transactions rows replay_seconds <"$work/t.at.stdout")
  if [ "$r_secs" = - ] || [ "$r_txns" = - ] || [ "$r_rows" = - ]; then
    r_secs="$(awk -v a="$t_at" -v b="$t_plain" 'BEGIN {print a - b}')"; r_txns="$seg_txns"; r_rows="$rows"
    how="wall of restore --at minus wall of the plain restore; counts from the segment entries"
  else
    how="the restore record's replay figures"
  fi
  got="$(psql -X -At -q -d "$db" -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)")"
  same="equal to the source"; [ "$got" = "$source_state" ] || same="DIFFERENT from the source ($got vs $source_state)"
  r_tps="$(ratio "$r_txns" "$r_secs")"; r_rps="$(ratio "$r_rows" "$r_secs")"
  x="$(ratio "$r_tps" "$cap_tps")"
  day_h="$(awk -v w="$cap_tps" -v r="$r_tps" 'BEGIN {printf "%.1f", (r > 0) ? w * 86400 / r / 3600 : 0}')"
  rto_h="$(awk -v d="$day_h" -v p="$t_plain" 'BEGIN {printf "%.1f", d + p / 3600}')"
  echo "   $label: $r_tps txn/s = ${x}x the workload, result $same"
  summary+=("replay   $label: $r_txns transactions, $r_rows rows in $(printf %.1f "$r_secs") s ($how): $r_tps txn/s, $r_rps rows/s; result $same")
  summary+=("replay   $label: $x x the workload's $cap_tps txn/s (target >= 3); plain restore of the anchor ${t_plain}s, restore --at ${t_at}s")
  summary+=("replay   $label: RTO for yesterday's anchor + a day at $cap_tps txn/s: ${rto_h} h (anchor restore ${t_plain}s at this size + ${day_h} h of replay; target replay < 8 h)")
  summary+=("replay   $label: pgdr peak RSS $(mib "$at_hwm") MiB (target <= 64 MiB)")
  dropdb --if-exists "$db"
}

if "$PGDR" restore --help 2>/dev/null | grep -q -- '--at '; then
  echo "== replay: pgdr restore --at latest vs a plain restore of the same anchor"
  time_run "$work/t.plain" "$PGDR" --quiet restore --backup "$anchor" --target "$(target bench_anchor)" \
    --yes --no-verify --repo "$repo" --identity "$work/identity.txt"
  read -r t_plain _ rc_plain <"$work/t.plain"
  dropdb --if-exists bench_anchor
  if [ "$rc_plain" != 0 ]; then
    echo "   plain restore failed (exit $rc_plain):" >&2
    cat "$work/t.plain.stderr" >&2
    summary+=("replay   FAILED (plain restore exit $rc_plain)")
  elif [ -z "$old_pgdr" ]; then
    replay_once new "$PGDR"
  else
    # Paired: old and new alternate on the same segments; the ratio of their rates per round.
    for round in $(seq 1 "$rounds"); do
      replay_once "old#$round" "$old_pgdr"; old_tps="$r_tps"
      replay_once "new#$round" "$PGDR"
      summary+=("replay   round $round: new / old = $(ratio "$r_tps" "$old_tps") ($r_tps vs $old_tps txn/s)")
    done
  fi
else
  echo "replay: skipped (pgdr restore --at not available)"
  summary+=("replay   skipped (pgdr restore --at not available)")
fi

fi # not --only bigtxn

if [ -n "$replay_only" ]; then
  summary+=("machine  load average at end $(loadavg)")
  echo
  printf '%s\n' "${summary[@]}"
  exit 0
fi

# ---------------------------------------------------------------- big transaction
echo "== big transaction: $big_mb MiB of 1 KiB rows in one INSERT, a fresh capture runner"
"${P[@]}" capture run --json >"$work/run2.json" 2>"$work/run2.err" &
pgdr_pid=$!; bg_pids+=("$pgdr_pid")
python3 "$HELPER" sample --out "$work/big.samples" --port "$PGPORT" --db bench --slot "$slot" \
  --segments "$segments" --datadir "$data" --pid "$pgdr_pid" &
sampler=$!; bg_pids+=("$sampler")
sleep 2
before="$(sql "SELECT pg_current_wal_lsn()")"
t0="$(date +%s.%N)"
# 32 md5s = 1024 characters a row: under the TOAST threshold, so the WAL holds the bytes.
sql "INSERT INTO big SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, $((big_mb * 1024))) g"
t_commit="$(date +%s.%N)"
after="$(sql "SELECT pg_current_wal_lsn()")"
wal_mib="$(sql "SELECT round((pg_wal_lsn_diff('$after', '$before') / 1048576)::numeric, 1)")"
durable=""
for _ in $(seq 1 3600); do
  if [ "$(sql "SELECT confirmed_flush_lsn >= '$after' FROM pg_replication_slots WHERE slot_name = '$slot'")" = t ]; then
    durable="$(awk -v a="$t_commit" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"; break
  fi
  sleep 0.5
done
stop_sampler
kill -TERM "$pgdr_pid"; wait "$pgdr_pid" || { echo "pgdr capture run failed:" >&2; cat "$work/run2.err" >&2; exit 2; }
read -r big_hwm big_cpu < <(helper summary "$work/big.samples" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["hwm_kib"], s["pgdr_cpu"])')
ins="$(awk -v a="$t0" -v b="$t_commit" 'BEGIN {printf "%.1f", b - a}')"
summary+=("big txn  $((big_mb * 1024)) rows, $wal_mib MiB of WAL: INSERT took ${ins}s; durable ${durable:-NOT within 1800}s after COMMIT ($(awk -v m="$wal_mib" -v s="${durable:-0}" 'BEGIN {printf "%.1f", (s > 0) ? m / s : 0}') MiB WAL/s); pgdr peak RSS $(mib "$big_hwm") MiB (target <= 64 MiB), CPU $(printf %.1f "$big_cpu") s")
summary+=("machine  load average at end $(loadavg)")

echo
printf '%s\n' "${summary[@]}"
