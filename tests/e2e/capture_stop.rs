//! SIGTERM stops `pgdr capture run` whenever it comes, also while the run is still starting
//! (lease, recovery, connecting). The run once went on after SIGTERM: the process's own signal
//! handler took the signal, and the runner's second handler, installed only when its loop
//! first ran, never saw it. The test hook `PGDR_CAPTURE_PAUSE=before-stream` holds the run
//! just before its loop until the marker file is deleted, so the signal lands in that window
//! every time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::capture_run::{stored_xids, txn, world};

#[test]
fn sigterm_while_the_capture_is_starting_stops_it() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let before = txn(&w, "INSERT INTO t (v) VALUES ('before')", "COMMIT");
    let marker = w.dir.path().join("starting");
    let mut c = w.pgdr(&["capture", "run", "--segment-age", "1s", "--json"]);
    c.env("PGDR_CAPTURE_PAUSE", "before-stream")
        .env("PGDR_CAPTURE_PAUSE_MARKER", &marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the run never got to its loop");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // Let the signal be handled before the run goes on.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&marker).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture run went on for 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A clean stop before any change was read: the report says so, nothing is stored.
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        report["segments"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    // The lease was released: the next run starts at once and stores the transaction.
    let next = crate::capture_run::start_runner(&w);
    let stored = stored_xids(&w, 1);
    assert_eq!(stored, vec![before & 0xFFFF_FFFF]);
    crate::capture_run::stop_runner(next);
}
