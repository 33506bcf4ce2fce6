#!/usr/bin/env bash
# pgdr's speed and memory against the plain PostgreSQL tools, measured side by side in one
# run (alternating, medians over --runs; these machines are noisy, so read the ratios):
#   backup:  pg_dump -Fc -Z0 > /dev/null  vs  pgdr backup into a local repository
#            (throughput ratio pgdr/pg_dump, target >= 0.90; pgdr peak RSS, target <= 64 MiB)
#   verify:  pg_restore of the same dump from a local file into a fresh database  vs
#            pgdr verify --quick and full pgdr verify (target: full <= 1.5x);
#            age -d | zstd -d > /dev/null vs verify --quick isolates the archive parse
#   restore: pg_restore -j 2 from a local file  vs  pgdr restore --jobs 2 (target <= 1.3x)
#   s3:      pgdr backup and restore against a local S3 server (Garage) vs the local store
# pg_dump and pg_restore are separate processes; the RSS figures are pgdr's own.
#
#   scripts/bench-backup.sh [--scale 70] [--dataset a|b] [--runs 3] [--level N] [--only LIST] [--profile]
# --profile: one more backup under `perf record`, its CPU time split by stage (zstd, sha256,
# age, the archive parse and fingerprint, copies, kernel, pg_dump): where pgdr's CPU goes per MB.
# Dataset a: pgbench as generated (compresses ~100:1). Dataset b: the same rows with 84
# random characters of filler (compresses 2.1:1, as PERF.md's), the hard case for compression.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PGDR_ROOT"

scale=70 dataset=a runs=3 level="" only="backup,verify,restore,s3" profile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --dataset) dataset="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --level) level="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --profile) profile=1; shift ;;
    *) echo "usage: $0 [--scale N] [--dataset a|b] [--runs N] [--level N] [--only backup,verify,restore,s3] [--profile]" >&2; exit 2 ;;
  esac
done

pgdr_install_deps
PGDR="$(pgdr_release_bin)"
BIN="$(pgdr_pg_bin)"

work="$(mktemp -d /tmp/pgdr-bench-XXXXXX)"
chmod 755 "$work"
trap 'pgdr_pg_stop "$work/pg"; rm -rf "$work"' EXIT
pgdr_pg_start "$work/pg"

echo "== preparing pgbench scale $scale, dataset $dataset"
"$BIN/createdb" bench
"$BIN/pgbench" -i -q -s "$scale" bench >/dev/null 2>&1
if [ "$dataset" = b ]; then
  # 84 random characters: 5 of base64 and 79 of hex. Hex alone compressed 2.27:1 at pgdr's
  # level 1, gentler than PERF.md's 2.1:1; the five base64 characters bring it to 2.1:1.
  "$BIN/psql" -X -q -d bench -c "UPDATE pgbench_accounts SET filler = substr(rtrim(encode(decode(md5(random()::text), 'hex'), 'base64'), '='), 1, 5) || substr(md5(random()::text) || md5(random()::text) || md5(random()::text), 1, 79)" \
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

# time_run OUT CMD...: wall seconds (/usr/bin/time) and peak RSS (KiB) of CMD's own process.
# The RSS is CMD's VmHWM sampled every 0.5 s (it only grows): /usr/bin/time's figure would be the largest of
# CMD and the children it reaped, and pgdr's scratch server is such a child.
time_run() {
  local out="$1"; shift
  # Flush the previous command's dirty pages first, so no run pays for another's writeback.
  sync
  /usr/bin/time -f "%e" -o "$out.wall" "$@" &
  local tpid=$! pid="" hwm=0 k v _
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$pid" ] || pid="$(pgrep -P "$tpid" | head -n 1 || true)"
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      while read -r k v _; do
        [ "$k" = "VmHWM:" ] && [ "$v" -gt "$hwm" ] && hwm="$v"
      done <"/proc/$pid/status" 2>/dev/null || true
    fi
    sleep 0.5
  done
  wait "$tpid"
  echo "$(cat "$out.wall") $hwm" >"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

want() { case ",$only," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
src="postgres://postgres@127.0.0.1:$PGPORT/bench"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
med() { printf '%s\n' "$@" | median; }
declare -a summary=()

# ---------------------------------------------------------------- backup
# Warm the cache once, uncounted.
"$BIN/pg_dump" -Fc -Z0 -d bench >/dev/null
rm -rf "$work/repo"
"$PGDR" --quiet --config "$cfg" backup --source "$src" --repo "$work/repo" --recipient "$recipient"
if want backup; then
  echo "== backup"
  dump_t=() pgdr_t=() pgdr_rss=() ratios=() times=() pre=()
  for i in $(seq 1 "$runs"); do
    time_run "$work/t.dump" sh -c "'$BIN/pg_dump' -Fc -Z0 -d bench > /dev/null"
    rm -rf "$work/repo"
    time_run "$work/t.pgdr" "$PGDR" --quiet --config "$cfg" backup --source "$src" --repo "$work/repo" --recipient "$recipient"
    read -r dw _ <"$work/t.dump"
    read -r pw prss <"$work/t.pgdr"
    dump_t+=("$dw"); pgdr_t+=("$pw"); pgdr_rss+=("$prss"); ratios+=("$(ratio "$dw" "$pw")"); times+=("$(ratio "$pw" "$dw")")
    # The backup's own phases from its manifest: what ran before the dump is the fixed cost.
    phases="$(python3 - "$work/repo/bench" <<'PY'
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, sorted(os.listdir(d))[-1], "manifest.json")))
ph = {p["name"]: p["seconds"] for p in m["phases"]}
print(f'{ph.get("connect", 0) + ph.get("snapshot", 0):.3f}', ", ".join(f"{k} {v:.2f}s" for k, v in ph.items()))
PY
)"
    pre+=("${phases%% *}")
    echo "          phases: ${phases#* }"
    echo "   run $i: pg_dump ${dw}s, pgdr backup ${pw}s, pgdr peak RSS $((prss / 1024)) MiB"
  done
  raw="$("$PGDR" --quiet list --json --repo "$work/repo" | python3 -c 'import json,sys; l=json.load(sys.stdin)[-1]; print(l["raw_bytes"], l["stored_bytes"])')"
  read -r raw_b stored_b <<<"$raw"
  summary+=("dataset $dataset, scale $scale ($size; archive $((raw_b / 1048576)) MiB, stored $((stored_b / 1048576)) MiB, $(ratio "$raw_b" "$stored_b"):1)")
  summary+=("backup   pg_dump -Fc -Z0 >/dev/null median $(med "${dump_t[@]}")s; pgdr backup median $(med "${pgdr_t[@]}")s")
  summary+=("backup   throughput ratio pgdr/pg_dump median $(med "${ratios[@]}")  (target >= 0.90)")
  summary+=("backup   time ratio pgdr/pg_dump median $(med "${times[@]}")  (targets: <= 1.30 dataset b; a: <= 1.03 at scale 60, <= 1.10 at scale 20)")
  summary+=("backup   before the dump (connect + snapshot) median $(med "${pre[@]}")s  (fixed cost target < 0.1 s; schema and globals run beside the dump)")
  summary+=("backup   pgdr peak RSS median $(( $(med "${pgdr_rss[@]}" | cut -d. -f1) / 1024 )) MiB  (target <= 64 MiB)")
  if [ -n "$profile" ] && command -v perf >/dev/null; then
    rm -rf "$work/repo"
    perf record -q -F 999 -o "$work/perf.data" "$PGDR" --quiet --config "$cfg" backup --source "$src" --repo "$work/repo" --recipient "$recipient" >/dev/null 2>&1
    echo "== backup CPU by stage (perf, one run; pgdr and its pg_dump, not the server)"
    perf report -i "$work/perf.data" --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null | python3 -c '
import re, sys
stages = [("zstd", r"ZSTD|HUF_|HIST_|FSE_|ZSTDMT|POOL_"), ("sha256", r"sha2::|sha256"),
          ("age (chacha20-poly1305)", r"chacha|poly1305"), ("fingerprint + archive parse", r"fingerprint|archive|memchr|xxh"),
          ("copies (memmove)", r"memmove|memcpy"), ("kernel (pipes, files)", r"\[k\]")]
tot, by = 0.0, {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(.*)", line)
    if not m: continue
    pct, comm, rest = float(m.group(1)), m.group(2), m.group(3)
    tot += pct
    name = "pg_dump (client)" if comm.startswith("pg_dump") else next((n for n, rx in stages if re.search(rx, rest)), "other pgdr")
    by[name] = by.get(name, 0) + pct
for n, v in sorted(by.items(), key=lambda x: -x[1]):
    print(f"   {n:30s} {v:5.1f}%")
'
  fi
fi

id="$("$PGDR" --quiet list --json --repo "$work/repo" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')"
"$BIN/pg_dump" -Fc -Z0 -d bench -f "$work/plain.dump"
plain_restore() { # DB JOBS
  "$BIN/dropdb" --if-exists "$1"; "$BIN/createdb" "$1"
  "$BIN/pg_restore" -j "$2" -d "$1" "$work/plain.dump"
}

# ---------------------------------------------------------------- verify
if want verify; then
  echo "== verify"
  pr_t=() q_t=() f_t=() dec_t=() qr=() fr=() pr=() f_rss=()
  obj="$work/repo/bench/$id/dump.zst.age"
  for i in $(seq 1 "$runs"); do
    time_run "$work/t.pr" bash -c "$(declare -f plain_restore); BIN='$BIN' work='$work'; plain_restore bench_plain 1"
    # Gone before the next timed command, so autovacuum on it competes with nothing.
    "$BIN/dropdb" bench_plain
    time_run "$work/t.dec" bash -c "age -d -i '$work/identity.txt' '$obj' | zstd -d -q > /dev/null"
    time_run "$work/t.q" "$PGDR" --quiet verify "$id" --quick --repo "$work/repo" --identity "$work/identity.txt"
    time_run "$work/t.f" "$PGDR" --quiet verify "$id" --repo "$work/repo" --identity "$work/identity.txt"
    read -r p _ <"$work/t.pr"; read -r d _ <"$work/t.dec"; read -r q _ <"$work/t.q"; read -r f frss <"$work/t.f"
    pr_t+=("$p"); dec_t+=("$d"); q_t+=("$q"); f_t+=("$f"); f_rss+=("$frss")
    qr+=("$(ratio "$q" "$p")"); fr+=("$(ratio "$f" "$p")"); pr+=("$(ratio "$q" "$d")")
    echo "   run $i: pg_restore ${p}s, age|zstd ${d}s, verify --quick ${q}s, verify ${f}s (RSS $((frss / 1024)) MiB)"
    # Where the full verify's time went, from its record in the repository.
    python3 - "$work/repo/bench/$id/verifications" <<'PY'
import json, os, sys
d = sys.argv[1]
recs = [json.load(open(os.path.join(d, f))) for f in sorted(os.listdir(d))]
full = [r for r in recs if r.get("mode") == "full"][-1]
print("          phases: " + ", ".join(f"{p['name']} {p['seconds']:.2f}s" for p in full["phases"]))
PY
  done
  "$BIN/dropdb" --if-exists bench_plain
  summary+=("verify   pg_restore (1 job) median $(med "${pr_t[@]}")s; verify --quick $(med "${q_t[@]}")s; full verify $(med "${f_t[@]}")s")
  summary+=("verify   full verify / pg_restore median $(med "${fr[@]}")  (target <= 1.5); quick / pg_restore $(med "${qr[@]}")")
  summary+=("verify   verify --quick / (age -d | zstd -d) median $(med "${pr[@]}")  (the archive parse and checks on top of decoding)")
  summary+=("verify   pgdr peak RSS (full) median $(( $(med "${f_rss[@]}" | cut -d. -f1) / 1024 )) MiB")
fi

# ---------------------------------------------------------------- restore
if want restore && "$PGDR" restore --help >/dev/null 2>&1; then
  echo "== restore"
  p_t=() r_t=() rr=() r_rss=()
  for i in $(seq 1 "$runs"); do
    time_run "$work/t.p" bash -c "$(declare -f plain_restore); BIN='$BIN' work='$work'; plain_restore bench_plain 2"
    "$BIN/dropdb" bench_plain
    "$BIN/dropdb" --if-exists bench_restored
    time_run "$work/t.r" "$PGDR" --quiet restore --backup "$id" --target "postgres://postgres@127.0.0.1:$PGPORT/bench_restored" \
      --jobs 2 --spool-dir "$work" --yes --no-verify --repo "$work/repo" --identity "$work/identity.txt"
    "$BIN/dropdb" bench_restored
    read -r p _ <"$work/t.p"; read -r r rrss <"$work/t.r"
    p_t+=("$p"); r_t+=("$r"); r_rss+=("$rrss"); rr+=("$(ratio "$r" "$p")")
    echo "   run $i: pg_restore -j 2 ${p}s, pgdr restore --jobs 2 ${r}s (RSS $((rrss / 1024)) MiB)"
  done
  "$BIN/dropdb" --if-exists bench_plain; "$BIN/dropdb" --if-exists bench_restored
  summary+=("restore  pg_restore -j 2 median $(med "${p_t[@]}")s; pgdr restore --jobs 2 median $(med "${r_t[@]}")s")
  summary+=("restore  pgdr restore --jobs 2 / pg_restore -j 2 median $(med "${rr[@]}")  (target <= 1.3); pgdr peak RSS $(( $(med "${r_rss[@]}" | cut -d. -f1) / 1024 )) MiB")
fi

# ---------------------------------------------------------------- s3
if want s3; then
  echo "== s3 (local Garage)"
  command -v garage >/dev/null || cargo install garage --locked
  eval "$(PGDR_GARAGE_DIR="$work/garage" scripts/s3-server.sh start)"
  trap 'PGDR_GARAGE_DIR="$work/garage" scripts/s3-server.sh stop >/dev/null 2>&1; pgdr_pg_stop "$work/pg"; rm -rf "$work"' EXIT
  l_t=() s_t=() sr=() s_rss=() lq=() sq=() qr=()
  for i in $(seq 1 "$runs"); do
    rm -rf "$work/repo2"
    time_run "$work/t.l" "$PGDR" --quiet --config "$cfg" backup --source "$src" --repo "$work/repo2" --recipient "$recipient"
    time_run "$work/t.s" "$PGDR" --quiet --config "$cfg" backup --source "$src" --repo "s3://$PGDR_S3_BUCKET/bench$i" --recipient "$recipient"
    sid="$("$PGDR" --quiet list --json --repo "s3://$PGDR_S3_BUCKET/bench$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')"
    lid="$("$PGDR" --quiet list --json --repo "$work/repo2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')"
    time_run "$work/t.lq" "$PGDR" --quiet verify "$lid" --quick --repo "$work/repo2" --identity "$work/identity.txt"
    time_run "$work/t.sq" "$PGDR" --quiet verify "$sid" --quick --repo "s3://$PGDR_S3_BUCKET/bench$i" --identity "$work/identity.txt"
    read -r l _ <"$work/t.l"; read -r s srss <"$work/t.s"; read -r a _ <"$work/t.lq"; read -r b _ <"$work/t.sq"
    l_t+=("$l"); s_t+=("$s"); s_rss+=("$srss"); sr+=("$(ratio "$l" "$s")"); lq+=("$a"); sq+=("$b"); qr+=("$(ratio "$a" "$b")")
    echo "   run $i: backup local ${l}s, S3 ${s}s (RSS $((srss / 1024)) MiB); read back (verify --quick) local ${a}s, S3 ${b}s"
  done
  summary+=("s3       backup throughput S3/local median $(med "${sr[@]}"); read-back (verify --quick) throughput S3/local median $(med "${qr[@]}")")
  summary+=("s3       pgdr peak RSS backing up to S3 median $(( $(med "${s_rss[@]}" | cut -d. -f1) / 1024 )) MiB")
fi

echo
printf '%s\n' "${summary[@]}"
