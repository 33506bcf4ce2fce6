//! Drills of a database whose change capture is enabled: the RPO they record is the data at
//! risk at the drill's start (time since the newest change durable in the repository), as
//! `status` says it, marked as the capture's; a database without capture in the same drill
//! keeps the backup's RPO (drill start minus the snapshot time).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::capture_run::{start_runner, stop_runner, stored_xids, txn, world};
use crate::common::*;

fn time(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap() as f64 / 1e6
}

/// Both databases configured, the scratch cluster under the test's folder; `app`'s segment
/// age is the runner's (a segment of heartbeats only proves "covered" up to its entry's
/// time minus that age).
fn config(w: &World) -> PathBuf {
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    w.config_file(
        "drill-capture.toml",
        &format!(
            "[scratch]\ntemp_dir = \"{}\"\n\n[[database]]\nname = \"app\"\nurl = \"{}\"\nrpo_target = \"1h\"\n\n[database.capture]\nsegment_age = \"1s\"\n\n[[database]]\nname = \"other\"\nurl = \"{}\"\nrpo_target = \"1h\"\n",
            tmp.display(),
            w.pg.url("app"),
            w.pg.url("other")
        ),
    )
}

/// pgdr with the repository and keys (as PGDR_* variables: each command reads those of
/// the flags it takes), no --source: the config names the databases.
pub(crate) fn pgdr_repo(w: &World, args: &[&str]) -> std::process::Command {
    let mut c = pgdr_cmd();
    c.args(args);
    w.repo.apply_env(&mut c);
    c.env("PGDR_RECIPIENT", &w.recipient);
    c.env("PGDR_IDENTITY", &w.identity);
    c
}

#[test]
fn with_capture_the_drill_rpo_is_the_data_at_risk_and_without_it_the_backups_age() {
    let w = world();
    w.pg.create_db("other");
    w.pg.psql(
        "other",
        "CREATE TABLE o (id int PRIMARY KEY); INSERT INTO o VALUES (1)",
    );
    w.run(&["capture", "enable"]).ok();
    w.run(&["backup", "--quiet"]).ok();
    let url = w.pg.url("other");
    run(pgdr_repo(&w, &["backup", "--quiet", "--source", &url])).ok();
    // The backups get older than anything the capture stores after them.
    std::thread::sleep(Duration::from_secs(8));
    let runner = start_runner(&w);
    let before_commit = Utc::now();
    txn(
        &w,
        "INSERT INTO t (v) VALUES ('after the backup')",
        "COMMIT",
    );
    assert_eq!(stored_xids(&w, 1).len(), 1, "the commit is stored");
    stop_runner(runner);

    let cfg = config(&w);
    let r = run(pgdr_repo(
        &w,
        &["drill", "--json", "--config", cfg.to_str().unwrap()],
    ));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let recs = r.json();
    let rec = |db: &str| {
        recs.as_array()
            .unwrap()
            .iter()
            .find(|x| x["database"] == db)
            .unwrap_or_else(|| panic!("no drill of {db}: {recs:#}"))
            .clone()
    };

    // With capture: at most the time since the stored commit (plus one segment age when the
    // newest segment holds heartbeats only), well below the backup's age.
    let app = rec("app");
    assert_eq!(app["outcome"], "passed", "{app:#}");
    assert_eq!(app["rpo_source"], "capture", "{app:#}");
    let started = time(&app["started_at"]);
    let rpo = app["rpo_seconds"].as_f64().unwrap();
    let since_commit = secs(started - before_commit);
    let backup_age = secs(started - time(&app["backup"]["snapshot_time"]));
    assert!(
        rpo >= 0.0 && rpo <= since_commit + 1.5,
        "RPO {rpo} s, the commit was at most {since_commit} s before the drill"
    );
    assert!(
        rpo + 4.0 < backup_age,
        "RPO {rpo} s is the capture's, not the backup's age {backup_age} s"
    );
    assert_eq!(app["targets"]["rpo_met"], true, "{app:#}");

    // Without capture: drill start minus the snapshot time, as before.
    let o = rec("other");
    assert_eq!(o["outcome"], "passed", "{o:#}");
    assert_eq!(o["rpo_source"], "backup", "{o:#}");
    let want = secs(time(&o["started_at"]) - time(&o["backup"]["snapshot_time"]));
    let got = o["rpo_seconds"].as_f64().unwrap();
    assert!((got - want).abs() < 0.01, "RPO {got} vs {want}");
    assert!(got >= 8.0, "{got}");

    // The HTML report marks the capture's RPO in the history.
    let out = w.dir.path().join("report.html");
    run(pgdr_repo(
        &w,
        &[
            "drill",
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ))
    .ok();
    let report = std::fs::read_to_string(&out).unwrap();
    assert!(report.contains(" (capture)</td>"), "{report}");
}

/// A drill of a point needs the database's change capture: without it the drill is refused
/// before anything runs, naming the selection and the database, and nothing is recorded (a
/// half drill in the history would claim a rehearsal that did not happen).
#[test]
fn a_random_point_drill_without_capture_is_refused_by_name_and_records_nothing() {
    let w = world();
    w.run(&["backup", "--quiet"]).ok();
    let file = w.config_file(
        "point.toml",
        "database = \"app\"\nselection = { random_point_within_days = 7 }\n",
    );
    let cfg = config_app_only(&w);
    let r = run(pgdr_repo(
        &w,
        &[
            "drill",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            "--drill",
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "random_point_within_days = 7 } needs change capture, and database 'app' has none"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("pgdr capture enable"), "{}", r.stderr);
    let Repo::Local(root) = &w.repo else {
        unreachable!("local")
    };
    assert!(files_under(&root.join("app/drills")).is_empty());
    assert!(files_under(&w.dir.path().join("scratch-tmp")).is_empty());
}

pub(crate) fn config_app_only(w: &World) -> PathBuf {
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    w.config_file(
        "drill-app.toml",
        &format!(
            "[scratch]\ntemp_dir = \"{}\"\n\n[[database]]\nname = \"app\"\nurl = \"{}\"\n",
            tmp.display(),
            w.pg.url("app")
        ),
    )
}
