//! A transaction many times the segment size streams through `capture run` without being
//! held in memory: 40 MB of rows in one transaction, 1 MiB segments, and pgdr's peak resident
//! memory (VmHWM from /proc) must stay far below the transaction's size. To a local directory
//! and to S3 (Garage), where the segments go through multipart uploads.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::capture_run::{stop_runner, stored_xids, txn};
use crate::common::*;

/// The peak resident set of a process so far, in kB.
fn vm_hwm(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {s}"))
}

fn logical_world(repo: Option<Repo>) -> World {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, v text, n int DEFAULT 0)",
    );
    World::around_pg(pg, repo)
}

fn runner(w: &World) -> Child {
    let mut c = w.pgdr(&[
        "capture",
        "run",
        "--segment-age",
        "1s",
        "--segment-bytes",
        "1048576",
        "--json",
    ]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

/// Transaction size, and what pgdr's peak may grow by while capturing it.
const TXN_MB: u64 = 40;
const BOUND_MB: u64 = 30;

fn a_big_transaction_streams_without_growing_memory(w: World) {
    w.run(&["capture", "enable"]).ok();
    let child = runner(&w);
    let pid = child.id();
    let small = txn(&w, "INSERT INTO t (v) VALUES ('warm up')", "COMMIT");
    assert_eq!(stored_xids(&w, 1), vec![small & 0xFFFF_FFFF]);
    let baseline = vm_hwm(pid);
    // ~40 MB of row data in one transaction (1 kB values, below the TOAST threshold).
    let rows = TXN_MB * 1024;
    let big = txn(
        &w,
        &format!(
            "INSERT INTO t (v) SELECT repeat(md5(g::text), 32) FROM generate_series(1, {rows}) g"
        ),
        "COMMIT",
    );
    let stored = stored_xids(&w, 2);
    assert!(stored.contains(&(big & 0xFFFF_FFFF)), "{stored:?}");
    let peak = vm_hwm(pid);
    std::thread::sleep(Duration::from_millis(200));
    let report = stop_runner(child);
    let grew_mb = peak.saturating_sub(baseline) / 1024;
    eprintln!(
        "capture of a {TXN_MB} MB transaction: peak grew by {grew_mb} MB ({baseline} -> {peak} kB)"
    );
    assert!(
        grew_mb < BOUND_MB,
        "pgdr's peak memory grew by {grew_mb} MB capturing a {TXN_MB} MB transaction (baseline {baseline} kB, peak {peak} kB)"
    );
    // It really was one transaction spread over many segments, held only up to a segment.
    let (code, check) = crate::capture_run::check(&w);
    assert_eq!(code, 0, "{check:#}");
    let segs: Vec<&serde_json::Value> = report["segments"].as_array().unwrap().iter().collect();
    let plain: u64 = segs
        .iter()
        .map(|s| s["stored_bytes"].as_u64().unwrap())
        .sum();
    assert!(segs.len() >= 2, "{report:#}");
    assert!(plain > 0);
    assert!(
        report["peak_buffered"].as_u64().unwrap() <= 2 * 1048576,
        "{report:#}"
    );
    let biggest = check["transaction_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["xid"].as_u64() == Some(big & 0xFFFF_FFFF))
        .cloned()
        .unwrap();
    assert!(
        biggest["changes"].as_u64().unwrap_or(rows) >= rows,
        "{biggest}"
    );
}

#[test]
fn a_transaction_40_times_the_segment_size_streams_to_a_local_repository() {
    a_big_transaction_streams_without_growing_memory(logical_world(None));
}

#[test]
fn a_transaction_40_times_the_segment_size_streams_to_s3() {
    let g = garage::garage();
    let repo = Repo::S3 {
        url: format!("s3://{}/{}", g.bucket, garage::unique_prefix("capture")),
        env: vec![
            ("AWS_ENDPOINT_URL".into(), g.endpoint.clone()),
            ("AWS_REGION".into(), g.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), g.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), g.secret_key.clone()),
        ],
    };
    a_big_transaction_streams_without_growing_memory(logical_world(Some(repo)));
}
