//! A schema change mid-workload: the segment closes with the schema-change marker, the capture
//! takes an anchored backup promptly (a task beside the stream), and the window from the
//! change to that anchor's cut is recorded as not replayable, with its reason.

use std::time::{Duration, Instant};

use crate::capture_run::{lsn, manifests, start_runner, stop_runner, stored_xids, txn, world};
use crate::common::*;

fn windows(w: &World) -> Vec<serde_json::Value> {
    let dir = w.dir.path().join("repo/app/capture/not-replayable");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_schema_change_closes_the_segment_takes_an_anchor_and_records_the_window() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    let mut committed = vec![txn(&w, "INSERT INTO t (v) VALUES ('before')", "COMMIT")];
    assert_eq!(stored_xids(&w, 1).len(), 1);
    assert!(manifests(&w).is_empty(), "no backup before the change");
    w.pg.psql("app", "ALTER TABLE t ADD COLUMN extra int DEFAULT 7");
    for i in 0..3 {
        committed.push(txn(
            &w,
            &format!("INSERT INTO t (v) VALUES ('after{i}')"),
            "COMMIT",
        ));
    }
    // Promptly: the window closes at a new anchor within the minute, while the stream runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let window = loop {
        if let Some(x) = windows(&w).into_iter().find(|x| !x["to"].is_null()) {
            break x;
        }
        assert!(
            Instant::now() < deadline,
            "no closed window: {:?}",
            windows(&w)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let more = txn(&w, "INSERT INTO t (v) VALUES ('later')", "COMMIT");
    committed.push(more);
    let stored = stored_xids(&w, committed.len());
    let report = stop_runner(runner);

    assert_eq!(window["reason"], "schema-change", "{window:#}");
    assert_eq!(window["detail"], "public.t", "{window:#}");
    let (from, to) = (
        lsn(window["from"].as_str().unwrap()),
        lsn(window["to"].as_str().unwrap()),
    );
    assert!(to >= from, "{window:#}");
    // The segment that carries the marker names the same position.
    let segs = w.dir.path().join("repo/app/capture/segments");
    let marked: Vec<serde_json::Value> = std::fs::read_dir(segs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .filter(|e: &serde_json::Value| !e["schema_change"].is_null())
        .collect();
    assert_eq!(marked.len(), 1, "{marked:#?}");
    assert_eq!(marked[0]["schema_change"]["name"], "t");
    assert_eq!(
        lsn(marked[0]["schema_change"]["lsn"].as_str().unwrap()),
        from
    );
    // The anchor is a real anchored backup in the repository, its cut the window's end.
    let m = manifests(&w);
    let anchor = m
        .iter()
        .find(|m| m["id"] == window["anchor_backup"])
        .unwrap_or_else(|| panic!("no manifest {} in {m:#?}", window["anchor_backup"]));
    assert_eq!(lsn(anchor["snapshot"]["cut_lsn"].as_str().unwrap()), to);
    assert_eq!(report["anchors"].as_array().unwrap().len(), 1, "{report:#}");
    // The capture went on through it: every committed transaction stored once.
    let mut want: Vec<u64> = committed.iter().map(|x| x & 0xFFFF_FFFF).collect();
    want.sort();
    let mut got = stored.clone();
    got.sort();
    assert_eq!(got, want);
}
