//! `pgdr capture run` and `pgdr capture check` against a real logical cluster. The oracle is
//! the workload's own client-side log (each committed transaction's `txid_current()`, noted
//! after COMMIT returned), never pgdr's decoder: every logged transaction must be stored
//! exactly once, rolled-back ones never, across a stop and a restart of the runner.

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

pub fn world() -> World {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, v text, n int DEFAULT 0);
         CREATE TABLE full_ri (a int, b text);
         ALTER TABLE full_ri REPLICA IDENTITY FULL;",
    );
    World::around_pg(pg, None)
}

pub fn start_runner(w: &World) -> Child {
    start_runner_with(w, &[])
}

/// As [`start_runner`], with more flags.
pub fn start_runner_with(w: &World, extra: &[&str]) -> Child {
    let mut c = w.pgdr(&[
        "capture",
        "run",
        "--segment-age",
        "1s",
        "--segment-bytes",
        "65536",
        "--heartbeat",
        "1s",
        "--json",
    ]);
    c.args(extra);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// SIGTERM, then the runner's report.
pub fn stop_runner(child: Child) -> serde_json::Value {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "capture run failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// One transaction through psql; its txid is printed only after COMMIT returned.
pub fn txn(w: &World, body: &str, end: &str) -> u64 {
    let out = w.pg.psql(
        "app",
        &format!("BEGIN; {body}; SELECT txid_current(); {end};"),
    );
    out.lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no txid in {out:?}"))
}

/// Concurrent writers; returns (committed, rolled back) txids as the clients saw them.
pub fn workload(w: &Arc<World>, round: u32) -> (Vec<Vec<u64>>, Vec<u64>) {
    let rolled = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..3)
        .map(|k| {
            let w = w.clone();
            let rolled = rolled.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..12 {
                    let v = format!("r{round}w{k}i{i}");
                    let body = match i % 4 {
                        0 => format!("INSERT INTO t (v) VALUES ('{v}'), ('{v}b')"),
                        1 => format!(
                            "INSERT INTO full_ri VALUES ({i}, '{v}'); SAVEPOINT s; \
                             INSERT INTO t (v) VALUES ('gone'); ROLLBACK TO s; \
                             UPDATE full_ri SET b = b || 'x' WHERE a = {i}"
                        ),
                        2 => format!("UPDATE t SET n = n + 1 WHERE v LIKE 'r{round}w{k}%'"),
                        // The row inserted three transactions ago: every transaction changes
                        // something (PostgreSQL 15 sends no empty transactions).
                        _ => format!("DELETE FROM t WHERE v = 'r{round}w{k}i{}'", i - 3),
                    };
                    mine.push(txn(&w, &body, "COMMIT"));
                    if i == 5 {
                        let x = txn(&w, "INSERT INTO t (v) VALUES ('never')", "ROLLBACK");
                        rolled.lock().unwrap().push(x);
                    }
                }
                mine
            })
        })
        .collect();
    let committed = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let rolled = rolled.lock().unwrap().clone();
    (committed, rolled)
}

pub fn check(w: &World) -> (i32, serde_json::Value) {
    // `capture check` runs while the runner writes; it answers with a report (exit 0 or 1).
    // It once exited 2 here: listing the repository failed on a `.partial` file the runner
    // renamed in between (store::fs now leaves out what vanished). No retry: exit 2 is a bug.
    let r = run(w.pgdr(&[
        "capture",
        "check",
        "--database",
        "app",
        "--json",
        "--list-transactions",
    ]));
    assert!(
        !matches!(r.code, 2 | 101),
        "capture check could not run: {}",
        r.stderr
    );
    (r.code, r.json())
}

/// The stored xids in stream order, once every logged one is there (or the time is up).
pub fn stored_xids(w: &World, want: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, j) = check(w);
        let xids: Vec<u64> = j["transaction_list"]
            .as_array()
            .map(|a| a.iter().map(|t| t["xid"].as_u64().unwrap()).collect())
            .unwrap_or_default();
        if xids.len() >= want || Instant::now() > deadline {
            return xids;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn every_committed_transaction_is_stored_once_in_commit_order_across_a_restart() {
    let w = Arc::new(world());
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    // Idle long enough for a heartbeat (1 s after the last message: the first sequence sample).
    std::thread::sleep(Duration::from_secs(3));
    // A second runner refuses while the first holds the lease.
    let second = w.run(&["capture", "run"]);
    assert_ne!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );

    let (mut committed, mut rolled) = workload(&w, 1);
    // A transaction several times the segment size (64 KiB): ~1 MB of rows.
    let big = txn(
        &w,
        "INSERT INTO t (v) SELECT repeat(md5(g::text), 16) FROM generate_series(1, 2000) g",
        "COMMIT",
    );
    committed.push(vec![big]);
    let n1: usize = committed.iter().map(Vec::len).sum();
    assert_eq!(stored_xids(&w, n1).len(), n1);
    let first = stop_runner(runner);
    let closed: Vec<&str> = first["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["closed_by"].as_str().unwrap())
        .collect();
    assert!(
        closed.contains(&"size"),
        "the big transaction closes by size: {first}"
    );
    assert!(
        first["peak_buffered"].as_u64().unwrap() < 200_000,
        "{first}"
    );
    assert!(first["heartbeats"].as_u64().unwrap() >= 1, "{first}");
    // Each heartbeat came back at the position pg_logical_emit_message returned: pgdr's own.
    assert_eq!(first["foreign_messages"], serde_json::json!([]), "{first}");

    // Changes while no runner runs, then a restart: resumed, nothing lost or doubled.
    let (c2, r2) = workload(&w, 2);
    committed.extend(c2);
    rolled.extend(r2);
    let runner = start_runner(&w);
    let (c3, r3) = workload(&w, 3);
    committed.extend(c3);
    rolled.extend(r3);
    let n: usize = committed.iter().map(Vec::len).sum();
    let stored = stored_xids(&w, n);
    stop_runner(runner);

    // The oracle: exactly the logged commits, each once; no rolled-back transaction.
    let (code, report) = check(&w);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["gaps"].as_array().unwrap().is_empty());
    assert!(report["problems"].as_array().unwrap().is_empty());
    assert_eq!(report["foreign_messages"], serde_json::json!([]));
    let stored: Vec<u64> = stored.into_iter().collect();
    assert_stored_once_as_logged(&stored, &committed);
    for r in &rolled {
        assert!(
            !stored.contains(&(r & 0xFFFF_FFFF)),
            "rolled back {r} stored"
        );
    }
    // Commit order: each client's own transactions appear in the order it committed them.
    for client in &committed {
        let pos: Vec<usize> = client
            .iter()
            .map(|x| stored.iter().position(|s| *s == x & 0xFFFF_FFFF).unwrap())
            .collect();
        assert!(pos.windows(2).all(|p| p[0] < p[1]), "out of order: {pos:?}");
    }
    // The stored segments are age-encrypted zstd: no row text in clear.
    let segs = w.dir.path().join("repo/app/capture/segments");
    let mut heartbeats_seen = 0;
    for f in std::fs::read_dir(&segs).unwrap() {
        let path = f.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(5).any(|x| x == b"r1w0i"));
        if path.extension().is_some_and(|e| e == "json") {
            let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            heartbeats_seen += e["pgdr_messages"].as_array().unwrap().len();
        }
    }
    assert!(heartbeats_seen >= 1, "no heartbeat came back as pgdr's own");
}

/// "X/Y" as a number, to compare LSNs.
pub fn lsn(s: &str) -> u64 {
    let (hi, lo) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {s}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The manifests of the local repository's backups of `app`.
pub fn manifests(w: &World) -> Vec<serde_json::Value> {
    let dir = w.dir.path().join("repo/app");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let m = e.unwrap().path().join("manifest.json");
        if let Ok(b) = std::fs::read(&m) {
            out.push(serde_json::from_slice(&b).unwrap());
        }
    }
    out
}

#[test]
fn a_slot_dropped_behind_pgdrs_back_is_a_recorded_gap_then_a_new_slot_and_anchor() {
    let w = Arc::new(world());
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    let before = txn(&w, "INSERT INTO t (v) VALUES ('a')", "COMMIT");
    assert_eq!(stored_xids(&w, 1).len(), 1);
    // A writer keeps committing while the slot disappears and the capture comes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (w, stop) = (w.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut log = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                log.push(txn(&w, "INSERT INTO t (v) VALUES ('during')", "COMMIT"));
            }
            log
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // Behind pgdr's back: end its walsender and drop the slot (the runner fails on it).
    w.pg.psql(
        "app",
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active_pid IS NOT NULL",
    );
    w.pg.psql(
        "app",
        "DO $$ BEGIN FOR i IN 1..100 LOOP BEGIN
           PERFORM pg_drop_replication_slot('pgdr_app'); RETURN;
         EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.1); END; END LOOP; END $$",
    );
    let out = runner.wait_with_output().unwrap();
    assert!(!out.status.success(), "the runner went on without its slot");
    let runner = start_runner(&w);
    // The gap is recorded before the run streams again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.dir.path().join("repo/app/capture/gaps").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after: Vec<u64> = (0..5)
        .map(|i| {
            txn(
                &w,
                &format!("INSERT INTO t (v) VALUES ('after{i}')"),
                "COMMIT",
            )
        })
        .collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let during = writer.join().unwrap();
    let stored = stored_xids(&w, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stored = stored;
    while !after.iter().all(|x| stored.contains(&(x & 0xFFFF_FFFF))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        stored = stored_xids(&w, 0);
    }
    let report = stop_runner(runner);

    // Recorded with its cause, ending where the new slot starts.
    let gap = &report["gap"];
    assert_eq!(gap["cause"], "slot-missing", "{report:#}");
    assert!(lsn(gap["to"].as_str().unwrap()) > lsn(gap["from"].as_str().unwrap()));
    // Capture went on: every transaction after the gap is stored, each once, and every stored
    // one is in the client's log.
    for x in &after {
        assert!(
            stored.contains(&(x & 0xFFFF_FFFF)),
            "{x} after the gap not stored"
        );
    }
    let mut all: Vec<u64> = during
        .iter()
        .chain(&after)
        .map(|x| x & 0xFFFF_FFFF)
        .collect();
    all.push(before & 0xFFFF_FFFF);
    let mut dedup = stored.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), stored.len(), "a transaction stored twice");
    assert!(
        stored.iter().all(|x| all.contains(x)),
        "{stored:?} vs {all:?}"
    );
    // A new anchored backup whose cut is at or after the gap's end.
    let anchor = &report["anchors"][0];
    assert!(anchor["error"].is_null(), "{report:#}");
    let cut = lsn(anchor["cut_lsn"].as_str().unwrap());
    assert!(cut >= lsn(gap["to"].as_str().unwrap()), "{report:#}");
    let m = manifests(&w);
    assert!(
        m.iter().any(|m| m["id"] == anchor["backup_id"]
            && m["snapshot"]["cut_lsn"].as_str().map(lsn) == Some(cut)),
        "no manifest of {anchor} in {m:#?}"
    );
    // The slot is back, and check lists the gap and fails.
    let slot = w.pg.psql(
        "app",
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgdr_app'",
    );
    assert!(slot.contains('1'), "{slot}");
    let (code, check) = check(&w);
    assert_eq!(code, 1, "{check:#}");
    assert_eq!(check["gaps"][0]["cause"], "slot-missing", "{check:#}");
    assert_eq!(check["gaps"].as_array().unwrap().len(), 1, "{check:#}");
    let text = run(w.pgdr(&["capture", "check", "--database", "app"]));
    assert!(text.stdout.contains("GAP "), "{}", text.stdout);
    // A restart goes on from the new slot: no second gap.
    let again = start_runner(&w);
    std::thread::sleep(Duration::from_secs(2));
    let r = stop_runner(again);
    assert!(r["gap"].is_null(), "{r:#}");
}

/// Every transaction the client logged as committed is stored exactly once, and nothing else
/// (xids compared modulo 2^32, as pgoutput carries them).
pub fn assert_stored_once_as_logged(stored: &[u64], committed: &[Vec<u64>]) {
    let mut sorted = stored.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), stored.len(), "a transaction stored twice");
    let mut want: Vec<u64> = committed
        .iter()
        .flatten()
        .map(|x| x & 0xFFFF_FFFF)
        .collect();
    want.sort();
    assert_eq!(
        sorted, want,
        "stored transactions differ from the client's log"
    );
}
