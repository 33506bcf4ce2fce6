#!/usr/bin/env python3
"""Measuring helpers of scripts/bench-capture.sh (public sources only: psql, /proc, the
repository's JSON segment entries on disk). Subcommands:

  cpu DATADIR                  CPU seconds the server has used so far (postmaster, its reaped
                               children, its live children), to diff around a run
  sample --out FILE ...        one JSON line a second until SIGTERM: capture lag (bytes and
                               seconds), pgdr's VmHWM/VmRSS/CPU, the server's CPU
  summary FILE --since T       percentiles and peaks of the samples taken at or after T
  entries DIR                  totals over the segment entries in DIR (JSON)
  find KEY...                  the first value of each KEY anywhere in the JSON on stdin
"""
import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """/proc/PID/stat after the command name (which may hold spaces): field 3 is index 0."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2 :].split()


def server_cpu(datadir):
    """utime+stime of the postmaster, of the children it reaped (cutime+cstime: backends of
    connections that ended), and of its live children. Exited backends land in the
    postmaster's cutime only once reaped, which PostgreSQL does at once."""
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        pm = int(f.readline())
    st = stat_fields(pm)
    ticks = sum(int(x) for x in st[11:15])  # utime stime cutime cstime
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == pm:
            continue
        try:
            st = stat_fields(d)
        except OSError:
            continue
        if int(st[1]) == pm:  # ppid
            ticks += int(st[11]) + int(st[12])
    return ticks / TICK


def proc_status(pid):
    """(VmHWM KiB, VmRSS KiB, CPU seconds) of PID, or None once it is gone."""
    try:
        out = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS"):
                    out[k] = int(v.split()[0])
        st = stat_fields(pid)
        return out.get("VmHWM", 0), out.get("VmRSS", 0), (int(st[11]) + int(st[12])) / TICK
    except (OSError, ValueError, IndexError):
        return None


def parse_time(s):
    """RFC 3339 with up to nanoseconds (pgdr writes 9 digits; Python reads 6)."""
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        s = f"{head}.{rest[:i][:6].ljust(6, '0')}{rest[i:]}"
    return dt.datetime.fromisoformat(s).timestamp()


def read_entry(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None  # being written (pgdr writes objects whole, but be safe)


def sample(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    q = (
        "SELECT (SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots"
        f" WHERE slot_name = '{a.slot}')"
    )
    seen, newest = set(), None
    with open(a.out, "a") as out:
        while not stop:
            t0 = time.time()
            r = subprocess.run(
                ["psql", "-X", "-At", "-h", "127.0.0.1", "-p", a.port, "-U", "postgres",
                 "-d", a.db, "-c", q],
                capture_output=True, text=True,
            )
            lag_b = float(r.stdout.strip()) if r.stdout.strip() else None
            if os.path.isdir(a.segments):
                for n in os.listdir(a.segments):
                    if n.endswith(".json") and n not in seen:
                        e = read_entry(os.path.join(a.segments, n))
                        if e is None:
                            continue
                        seen.add(n)
                        lc = e.get("last_commit")
                        if lc:
                            c = parse_time(lc["time"])
                            newest = c if newest is None else max(newest, c)
            now = time.time()
            rec = {"t": now, "lag_bytes": lag_b, "server_cpu": server_cpu(a.datadir)}
            if a.since:
                # Data at risk: the time since the newest commit durable in the repository,
                # counted from the workload's start (nothing committed before it is at risk).
                rec["lag_s"] = now - max(newest or 0.0, a.since)
            if a.pid:
                p = proc_status(a.pid)
                if p:
                    rec["hwm_kib"], rec["rss_kib"], rec["pgdr_cpu"] = p
            out.write(json.dumps(rec) + "\n")
            out.flush()
            time.sleep(max(0.0, 1.0 - (time.time() - t0)))


def pct(xs, p):
    """Nearest-rank percentile."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(a):
    rows = [json.loads(l) for l in open(a.file) if l.strip()]
    rows = [r for r in rows if r["t"] >= a.since and (not a.until or r["t"] <= a.until)]
    lb = [r["lag_bytes"] for r in rows if r.get("lag_bytes") is not None]
    ls = [r["lag_s"] for r in rows if r.get("lag_s") is not None]
    hwm = [r["hwm_kib"] for r in rows if "hwm_kib" in r]
    rss = [r["rss_kib"] for r in rows if "rss_kib" in r]
    cpu = [r["pgdr_cpu"] for r in rows if "pgdr_cpu" in r]
    print(json.dumps({
        "samples": len(rows),
        "lag_bytes_p50": pct(lb, 50), "lag_bytes_p99": pct(lb, 99), "lag_bytes_max": max(lb, default=0),
        "lag_s_p50": pct(ls, 50), "lag_s_p99": pct(ls, 99), "lag_s_max": max(ls, default=0),
        "hwm_kib": max(hwm, default=0), "rss_kib_max": max(rss, default=0),
        "pgdr_cpu": max(cpu, default=0),
    }))


def entries(a):
    tot = {"entries": 0, "transactions": 0, "stored_bytes": 0, "plain_bytes": 0, "newest_commit": None}
    for n in sorted(os.listdir(a.dir)) if os.path.isdir(a.dir) else []:
        if not n.endswith(".json"):
            continue
        e = read_entry(os.path.join(a.dir, n))
        if e is None:
            continue
        tot["entries"] += 1
        tot["transactions"] += e.get("transactions", 0)
        tot["stored_bytes"] += e["stored"]["bytes"]
        tot["plain_bytes"] += e["plain"]["bytes"]
        if e.get("last_commit"):
            tot["newest_commit"] = e["last_commit"]["time"]
    print(json.dumps(tot))


def find(a):
    try:
        doc = json.load(sys.stdin)
    except ValueError:
        doc = None

    def walk(v, key):
        if isinstance(v, dict):
            if key in v:
                return v[key]
            v = list(v.values())
        if isinstance(v, list):
            for x in v:
                r = walk(x, key)
                if r is not None:
                    return r
        return None

    def show(r):
        return "-" if r is None else r if isinstance(r, str) else json.dumps(r)

    print(" ".join(show(walk(doc, k)) for k in a.keys))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cpu")
    c.add_argument("datadir")
    s = sub.add_parser("sample")
    for k in ("--out", "--port", "--db", "--slot", "--segments", "--datadir"):
        s.add_argument(k, required=True)
    s.add_argument("--pid", type=int, default=0)
    s.add_argument("--since", type=float, default=0.0)
    m = sub.add_parser("summary")
    m.add_argument("file")
    m.add_argument("--since", type=float, default=0.0)
    m.add_argument("--until", type=float, default=0.0)
    e = sub.add_parser("entries")
    e.add_argument("dir")
    f = sub.add_parser("find")
    f.add_argument("keys", nargs="+")
    a = ap.parse_args()
    if a.cmd == "cpu":
        print(f"{server_cpu(a.datadir):.2f}")
    elif a.cmd == "sample":
        sample(a)
    elif a.cmd == "summary":
        summary(a)
    elif a.cmd == "entries":
        entries(a)
    else:
        find(a)


if __name__ == "__main__":
    main()
