//! A slot moved past pgdr's durable position behind its back (`pg_replication_slot_advance`):
//! the changes it skipped are lost, so the restart records a `slot-ahead` gap, replaces the
//! slot, takes an anchor and goes on; it never resumes silently from the advanced slot.

use std::time::Duration;

use crate::capture_run::{check, lsn, start_runner, stop_runner, stored_xids, txn, world};

#[test]
fn a_slot_advanced_behind_pgdrs_back_is_a_slot_ahead_gap_and_capture_goes_on() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    let first = txn(&w, "INSERT INTO t (v) VALUES ('kept')", "COMMIT");
    assert_eq!(stored_xids(&w, 1), vec![first & 0xFFFF_FFFF]);
    stop_runner(runner);
    let skipped = txn(&w, "INSERT INTO t (v) VALUES ('skipped')", "COMMIT");
    w.pg.psql(
        "app",
        "SELECT pg_replication_slot_advance('pgdr_app', pg_current_wal_lsn())",
    );
    let runner = start_runner(&w);
    std::thread::sleep(Duration::from_secs(2));
    let after = txn(&w, "INSERT INTO t (v) VALUES ('after')", "COMMIT");
    let stored = stored_xids(&w, 2);
    let report = stop_runner(runner);
    assert_eq!(report["gap"]["cause"], "slot-ahead", "{report:#}");
    assert!(
        lsn(report["gap"]["to"].as_str().unwrap()) > lsn(report["gap"]["from"].as_str().unwrap())
    );
    assert!(report["anchors"][0]["backup_id"].is_string(), "{report:#}");
    assert_eq!(stored, vec![first & 0xFFFF_FFFF, after & 0xFFFF_FFFF]);
    assert!(!stored.contains(&(skipped & 0xFFFF_FFFF)));
    let (code, c) = check(&w);
    assert_eq!(code, 1, "{c:#}");
    assert_eq!(c["gaps"][0]["cause"], "slot-ahead", "{c:#}");
}
