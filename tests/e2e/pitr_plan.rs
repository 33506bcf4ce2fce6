//! The point plan's counts and estimate: `restore --at ... --dry-run` shows the transactions
//! and rows it will replay (the workload's own numbers, counted here, not by pgdr) and the
//! replay time at the last recorded replay rate, or says there is none yet.

use crate::common::*;
use crate::pitr::{mark, restore_to, start_runner, wait_covered, world, Runner};

/// A workload of known size after the anchor: (transactions, rows changed).
fn workload(pg: &Pg) -> (u64, u64) {
    pg.psql(
        "app",
        "INSERT INTO events (acct, note) SELECT 1, 'n' || g FROM generate_series(1, 50) g",
    );
    for i in 1..=10 {
        pg.psql(
            "app",
            &format!("UPDATE acct SET balance = balance + 1 WHERE id = {i}"),
        );
    }
    pg.psql("app", "DELETE FROM events WHERE id <= 5");
    // Rolled back: nothing to replay.
    pg.psql(
        "app",
        "BEGIN; INSERT INTO tags VALUES (1, 'gone'); ROLLBACK",
    );
    (1 + 10 + 1, 50 + 10 + 5)
}

#[test]
fn the_plan_counts_what_the_workload_did_and_estimates_from_the_last_replay() {
    let w = world(None);
    w.run(&["capture", "enable"]).ok();
    let _runner = Runner(start_runner(&w));
    w.run(&["backup", "--quiet"]).ok();
    let (txns, rows) = workload(&w.pg);
    mark(&w, "end");
    wait_covered(&w, &["--at-mark", "end"]);

    let dry = |point: &[&str]| {
        let mut args = vec!["--dry-run", "--json"];
        args.extend_from_slice(point);
        run(w.restore_cmd(&w.pg, "probe", &args)).ok().json()
    };
    let p = &dry(&["--at", "latest"])["point"];
    assert_eq!(p["transactions_at_most"].as_u64(), Some(txns), "{p:#}");
    assert_eq!(p["rows_at_most"].as_u64(), Some(rows), "{p:#}");
    assert!(p["replay_rate"].is_null() && p["estimated_replay_seconds"].is_null());
    let text = run(w.restore_cmd(&w.pg, "probe", &["--dry-run", "--at", "latest"])).ok();
    assert!(
        text.stdout.contains("no replay rate recorded yet")
            && text.stdout.contains(&format!("at most {rows} row(s)")),
        "{}",
        text.stdout
    );

    // A real replay records its rate; the next plan estimates from it.
    let r = restore_to(&w, "r_latest", &["--at", "latest"]);
    assert_eq!(r["replay"]["transactions"].as_u64(), Some(txns), "{r:#}");
    assert_eq!(r["replay"]["rows"].as_u64(), Some(rows), "{r:#}");
    let p = &dry(&["--at-mark", "end"])["point"];
    let rate = &p["replay_rate"];
    assert!(rate["rows_per_second"].as_f64().unwrap() > 0.0, "{p:#}");
    assert!(
        rate["record"].as_str().unwrap().contains("/restores/"),
        "{p:#}"
    );
    let est = p["estimated_replay_seconds"].as_f64().unwrap();
    let want = rows as f64 / rate["rows_per_second"].as_f64().unwrap();
    assert!((est - want).abs() < 1e-6, "{est} != {want}");
    let text = run(w.restore_cmd(&w.pg, "probe", &["--dry-run", "--at-mark", "end"])).ok();
    assert!(text.stdout.contains("rows/s"), "{}", text.stdout);
    assert!(!w.pg.exists("probe"));
}
