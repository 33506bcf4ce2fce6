//! A drill of a random point (`selection = { random_point_within_days = N }`): the capture
//! runs with a concurrent workload, an anchored backup is taken while it writes, more changes
//! follow; the drill picks a moment in between, restores the anchor into scratch, replays to
//! the moment and records the replay as its own RTO phase with the point and the distance of
//! the last applied commit to it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::common::*;
use crate::drill_capture::{config_app_only, pgdr_repo};
use crate::pitr::{burst, mark, start_runner, wait_covered, world, Runner};

#[test]
fn a_random_point_drill_replays_to_a_moment_and_records_the_replay_phase_and_the_point() {
    let w = Arc::new(world(None));
    w.run(&["capture", "enable"]).ok();
    let _runner = Runner(start_runner(&w));
    let busy = {
        let w = w.clone();
        std::thread::spawn(move || burst(&w, 1))
    };
    std::thread::sleep(Duration::from_millis(300));
    let backup = w.run(&["backup", "--quiet"]);
    busy.join().unwrap();
    backup.ok();
    let before = Utc::now();
    burst(&w, 2);
    std::thread::sleep(Duration::from_millis(300));
    burst(&w, 3);
    mark(&w, "end");
    wait_covered(&w, &["--at-mark", "end"]);

    let file = w.config_file(
        "point.toml",
        "database = \"app\"\nselection = { random_point_within_days = 1 }\n\n[[check]]\nname = \"accounts\"\nsql = \"SELECT * FROM acct\"\nexpect = \"rows >= 20\"\n",
    );
    let cfg = config_app_only(&w);
    let drill = |args: &[&str]| {
        let mut a = vec!["--config", cfg.to_str().unwrap()];
        a.extend_from_slice(args);
        run(pgdr_repo(&w, &a))
    };
    let r = drill(&["drill", "--json", "--drill", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    let h = drill(&["drill", "history", "--json", "--database", "app"])
        .ok()
        .json();
    let rec = h.as_array().unwrap().last().unwrap();
    assert_eq!(rec["outcome"], "passed", "{rec:#}");
    assert_eq!(rec["selection"], "random point within 1 days");
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| {
        phases
            .iter()
            .position(|p| *p == n)
            .unwrap_or_else(|| panic!("{n}: {phases:?}"))
    };
    assert!(
        at("compare") < at("replay") && at("replay") < at("checks"),
        "{phases:?}"
    );
    let rto = rec["rto_seconds"].as_f64().unwrap();
    let before_teardown: f64 = rec["phases"].as_array().unwrap()[..at("teardown")]
        .iter()
        .map(|p| p["seconds"].as_f64().unwrap())
        .sum();
    assert!(
        (rto - before_teardown).abs() < 1e-6,
        "RTO {rto} != {before_teardown}"
    );

    // The point: a time inside the covered window, the last commit at or before it.
    let replay = &rec["replay"];
    let point = replay["point"].as_str().unwrap();
    let t: DateTime<Utc> = point.strip_prefix("time ").unwrap().parse().unwrap();
    let anchor_time: DateTime<Utc> = rec["backup"]["snapshot_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        t >= anchor_time && t <= Utc::now(),
        "{t} outside the window"
    );
    let distance = replay["distance_seconds"].as_f64().unwrap();
    assert!(distance >= 0.0, "{replay:#}");
    if let Some(c) = replay["last_commit"]["time"].as_str() {
        let c: DateTime<Utc> = c.parse().unwrap();
        assert!(c <= t, "last applied commit {c} after the point {t}");
        assert!((distance - (t - c).num_milliseconds() as f64 / 1000.0).abs() < 0.002);
    }
    let acct = replay["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acct")
        .unwrap_or_else(|| panic!("{replay:#}"));
    assert!(acct["rows"].as_u64().unwrap() >= 20 && acct["digest"].is_string());
    assert!(replay["sequences"].is_string());
    if t > before {
        // The point is after the anchored backup's workload: changes were replayed.
        assert!(
            replay["segments"].as_array().is_some_and(|s| !s.is_empty()),
            "{replay:#}"
        );
    }

    // The HTML report shows the replay phase and the point.
    let out = w.dir.path().join("report.html");
    drill(&[
        "drill",
        "report",
        "--out",
        out.to_str().unwrap(),
        "--database",
        "app",
    ])
    .ok();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("<td>replay</td>"),
        "no replay phase in the report"
    );
    assert!(
        html.contains(&format!("Replayed to a point: point {point}")),
        "no point in the report"
    );
}
