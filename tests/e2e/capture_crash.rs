//! kill -9 of `pgdr capture run` at the two worst moments of a segment commit: after the
//! segment object is stored but before its entry, and after the entry but before the slot is
//! acknowledged. The runner stops dead there through its documented test hook
//! (`PGDR_CAPTURE_PAUSE`, `capture::pause`). After a restart nothing is missing and nothing
//! is doubled; the oracle is the workload's client-side log of committed txids.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture_run::{check, start_runner, stop_runner, stored_xids, workload, world};
use crate::common::*;

fn segment_files(w: &World) -> (Vec<String>, Vec<String>) {
    let dir = w.dir.path().join("repo/app/capture/segments");
    let mut objects = Vec::new();
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(s) = name.strip_suffix(".seg.zst.age") {
            objects.push(s.to_string());
        } else if let Some(s) = name.strip_suffix(".json") {
            entries.push(s.to_string());
        }
    }
    (objects, entries)
}

fn crash_and_restart(point: &str) -> serde_json::Value {
    let w = Arc::new(world());
    w.run(&["capture", "enable"]).ok();
    // Committed before the runner starts: the first segment it stores holds them.
    let (mut committed, _) = workload(&w, 1);
    let marker = w.dir.path().join("paused");
    let mut c = w.pgdr(&[
        "capture",
        "run",
        "--segment-age",
        "1s",
        "--heartbeat",
        "1s",
        "--json",
    ]);
    c.env("PGDR_CAPTURE_PAUSE", point)
        .env("PGDR_CAPTURE_PAUSE_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut paused = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the runner never reached {point}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Exactly the state the hook names.
    let (objects, entries) = segment_files(&w);
    assert_eq!(objects.len(), 1, "{objects:?}");
    match point {
        "after-upload" => assert!(entries.is_empty(), "{entries:?}"),
        _ => {
            assert_eq!(entries, objects);
            let path = w
                .dir
                .path()
                .join(format!("repo/app/capture/segments/{}.json", entries[0]));
            let e: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            assert!(e["transactions"].as_u64().unwrap() > 0, "{e:#}");
            // Not acknowledged: the slot still holds the segment's changes.
            let confirmed = w.pg.psql(
                "app",
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgdr_app'",
            );
            let end = crate::capture_run::lsn(e["end"].as_str().unwrap());
            assert!(
                crate::capture_run::lsn(&confirmed) < end,
                "{confirmed} vs {e:#}"
            );
        }
    }
    paused.kill().unwrap(); // SIGKILL
    paused.wait().unwrap();

    let runner = start_runner(&w);
    let (c2, _) = workload(&w, 2);
    committed.extend(c2);
    let n: usize = committed.iter().map(Vec::len).sum();
    let stored = stored_xids(&w, n);
    let report = stop_runner(runner);

    let (code, check) = check(&w);
    assert_eq!(code, 0, "{check:#}");
    assert!(check["gaps"].as_array().unwrap().is_empty(), "{check:#}");
    crate::capture_run::assert_stored_once_as_logged(&stored, &committed);
    report
}

#[test]
fn kill_9_between_segment_upload_and_entry_loses_and_doubles_nothing() {
    let r = crash_and_restart("after-upload");
    assert!(r["gap"].is_null(), "{r:#}");
}

#[test]
fn kill_9_between_entry_and_acknowledgement_loses_and_doubles_nothing() {
    let r = crash_and_restart("after-entry");
    assert!(r["gap"].is_null(), "{r:#}");
}
