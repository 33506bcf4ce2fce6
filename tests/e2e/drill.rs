//! `pgdr drill`: timed rehearsals of an emergency restore, their records, history and report.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::common::*;

fn repo_root(w: &World) -> &Path {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root
}

/// A config with the scratch cluster under the test's folder (so leftovers are visible) and
/// `[[database]] app` with `extra` lines (targets).
fn drill_config(w: &World, extra: &str) -> PathBuf {
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        &format!("drill-{}.toml", free_port()),
        &format!(
            "[scratch]\ntemp_dir = \"{}\"\n\n[[database]]\nname = \"app\"\nurl = \"{}\"\n{extra}\n",
            tmp.display(),
            w.pg.url("app")
        ),
    );
    cfg
}

fn monthly() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drills/monthly.toml")
}

fn drill(w: &World, cfg: &Path, args: &[&str]) -> Run {
    let mut c = w.pgdr(&["drill"]);
    c.args(args).arg("--config").arg(cfg);
    run(c)
}

fn time(v: &serde_json::Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_microseconds().unwrap() as f64 / 1e6
}

fn phase_names(rec: &serde_json::Value) -> Vec<String> {
    rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

/// The record as stored in the repository: `<db>/drills/<start>.json`.
fn stored_record(w: &World, rec: &serde_json::Value) -> serde_json::Value {
    let file = format!(
        "{}.json",
        time(&rec["started_at"]).format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = repo_root(w).join("app/drills").join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; drills: {:?}",
            path.display(),
            files_under(&repo_root(w).join("app/drills"))
        )
    }))
    .unwrap()
}

fn scratch_left(w: &World) -> Vec<String> {
    files_under(&w.dir.path().join("scratch-tmp"))
}

#[test]
fn drill_on_the_demo_database_passes_with_timed_phases_rto_and_rpo() {
    let w = World::local();
    w.backup();
    let listed = w.list();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let snapshot = time(&listed[0]["snapshot_time"]);

    // The config's target is overridden by the drill file's (15m).
    let cfg = drill_config(&w, "rto_target = \"10m\"\nrpo_target = \"1h\"");
    let before = Utc::now();
    let r = drill(
        &w,
        &cfg,
        &["--drill", monthly().to_str().unwrap(), "--json"],
    );
    let after = Utc::now();
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rec = r.json()[0].clone();
    assert_eq!(rec["outcome"], "passed", "{rec:#}");
    assert_eq!(rec["database"], "app");
    assert_eq!(rec["drill"], "monthly");
    assert_eq!(rec["selection"], "newest");
    assert_eq!(rec["backup"]["id"], id.as_str());
    assert_eq!(time(&rec["backup"]["snapshot_time"]), snapshot);

    // Every phase of an emergency restore, back to back; those before teardown are the RTO.
    assert_eq!(
        phase_names(&rec),
        ["select", "scratch", "globals", "create", "restore", "compare", "checks", "teardown"]
    );
    let phases = rec["phases"].as_array().unwrap();
    assert!(phases.iter().all(|p| p["seconds"].as_f64().unwrap() >= 0.0));
    assert!(
        phases[4]["seconds"].as_f64().unwrap() > 0.0,
        "restore took time"
    );
    let before_teardown: f64 = phases[..7]
        .iter()
        .map(|p| p["seconds"].as_f64().unwrap())
        .sum();
    let rto = rec["rto_seconds"].as_f64().unwrap();
    assert!(
        (before_teardown - rto).abs() <= 0.5_f64.max(rto * 0.05),
        "phases {before_teardown} vs RTO {rto}"
    );
    // ... and the RTO is real wall time: within what the test itself measured.
    assert!(rto > 0.0 && rto <= secs(after - before), "{rto}");
    assert!((rec["elapsed_seconds"].as_f64().unwrap() - rto).abs() < 0.05);

    // RPO = drill start - the snapshot time `list` shows, with the start inside the run.
    let started = time(&rec["started_at"]);
    assert!(before <= started && started <= after);
    let rpo = rec["rpo_seconds"].as_f64().unwrap();
    assert!((rpo - secs(started - snapshot)).abs() < 0.002, "{rpo}");
    assert!(rpo >= secs(before - snapshot) && rpo <= secs(after - snapshot));
    // One backup: the worst RPO of 30 days is its age at the drill.
    assert_eq!(rec["worst_rpo"]["from_backup"], id.as_str());
    assert!(rec["worst_rpo"]["to_backup"].is_null());
    assert!((rec["worst_rpo"]["seconds"].as_f64().unwrap() - rpo).abs() < 0.002);
    assert_eq!(rec["worst_rpo"]["window_days"], 30);

    // Targets: the drill file's beat the config's.
    let t = &rec["targets"];
    assert_eq!(t["rto_seconds"], 900.0);
    assert_eq!(t["rto_from"], "drill file");
    assert_eq!(t["rpo_seconds"], 300.0);
    assert_eq!(
        (t["rto_met"].as_bool(), t["rpo_met"].as_bool()),
        (Some(true), Some(true))
    );

    // Every smoke check of drills/monthly.toml ran and passed, with what it saw.
    let checks = rec["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 6);
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["message"].is_null());
    }
    let by_name = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(by_name("anon sees no private profile (RLS)")["rows"], 0);
    assert_eq!(by_name("health() says ok")["value"], "ok");
    assert_eq!(
        by_name("is_admin() works for authenticated (SECURITY DEFINER)")["value"],
        "true"
    );
    assert!(rec["failures"].as_array().unwrap().is_empty());
    assert!(rec["differences"].as_array().unwrap().is_empty());
    assert!(rec["scratch"]
        .as_str()
        .unwrap()
        .starts_with("ephemeral PostgreSQL"));
    assert!(rec["scratch_server_version"].as_str().is_some());
    assert_eq!(rec["pgdr_version"], env!("CARGO_PKG_VERSION"));
    assert!(!rec["host"].as_str().unwrap().is_empty());

    // Stored in the repository, as printed; the scratch cluster is gone; the backup is
    // listed as verified by the drill; the catalog still lists exactly one backup.
    assert_eq!(stored_record(&w, &rec), rec);
    assert!(scratch_left(&w).is_empty(), "{:?}", scratch_left(&w));
    let listed = w.list();
    assert_eq!(listed.len(), 1, "drill records are not backups: {listed:?}");
    assert_eq!(listed[0]["verification"]["outcome"], "passed");

    // The human output says the same.
    let r = drill(&w, &cfg, &["--drill", monthly().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("drill 'monthly' of 'app': PASSED\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("  backup        {id} (newest; snapshot ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("check         ok    health() says ok: equals 'ok' ('ok')"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("  recorded      app/drills/"),
        "{}",
        r.stdout
    );
}

#[test]
fn failing_smoke_check_fails_the_drill_and_is_recorded_with_its_message() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let spec = w.dir.path().join("failing.toml");
    std::fs::write(
        &spec,
        r#"
name = "failing"
database = "app"

[[check]]
name = "anon sees no private profile"
sql = "SET ROLE anon; SELECT id FROM public.profiles WHERE is_private"
expect = "no rows"

[[check]]
name = "the role was reset"
sql = "SELECT current_user"
expect = "equals 'postgres'"

[[check]]
name = "private profiles hidden (wrong role)"
sql = "SELECT id FROM public.profiles WHERE is_private"
expect = "no rows"

[[check]]
name = "a check cannot change the copy"
sql = "DELETE FROM public.orders; SELECT 1"
expect = "rows = 1"

[[check]]
name = "orders are still there"
sql = "SELECT id FROM public.orders"
expect = "rows = 5000"

[[check]]
name = "missing table"
sql = "SELECT * FROM public.no_such_table"
expect = "rows > 0"
"#,
    )
    .unwrap();
    // On the named scratch server this time: a database pgdr_drill_<id>, dropped afterwards.
    let cfg = w.config_file(
        "named.toml",
        &format!("[scratch]\nurl = \"{}\"\n", w.pg.url("postgres")),
    );
    let r = drill(&w, &cfg, &["--drill", spec.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let rec = r.json()[0].clone();
    assert_eq!(rec["outcome"], "failed");
    assert_eq!(rec["backup"]["id"], id.as_str());
    // Not restored-and-proven-and-checked: no RTO, though the time spent is kept.
    assert!(rec["rto_seconds"].is_null());
    assert!(rec["elapsed_seconds"].as_f64().unwrap() > 0.0);
    assert!(rec["targets"]["rto_met"].is_null());
    assert!(rec["scratch"].as_str().unwrap().starts_with(&format!(
        "database pgdr_drill_{}",
        id.to_lowercase().replace('.', "_")
    )));

    let checks = rec["checks"].as_array().unwrap();
    let passed: Vec<bool> = checks
        .iter()
        .map(|c| c["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(
        passed,
        [true, true, false, true, true, false],
        "{checks:#?}"
    );
    assert_eq!(checks[2]["rows"], 666);
    assert_eq!(checks[2]["message"], "expected no rows, got 666 rows");
    assert_eq!(
        checks[5]["message"],
        "error: relation \"public.no_such_table\" does not exist"
    );
    assert_eq!(
        rec["failures"],
        serde_json::json!([
            "smoke check 'private profiles hidden (wrong role)': expected no rows, got 666 rows",
            "smoke check 'missing table': error: relation \"public.no_such_table\" does not exist"
        ])
    );
    // Recorded in the repository; the backup itself proved fine (fingerprint equal).
    assert_eq!(stored_record(&w, &rec), rec);
    assert_eq!(w.list()[0]["verification"]["outcome"], "passed");
    let left = w.pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgdr_drill_%'",
    );
    assert_eq!(left, "0");

    // The human output names the failed checks.
    let r = drill(&w, &cfg, &["--drill", spec.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(
            "check         FAIL  private profiles hidden (wrong role): expected no rows, got 666 rows"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn drill_on_a_corrupted_backup_fails_names_the_cause_and_is_recorded() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let obj = repo_root(&w).join("app").join(&id).join("dump.zst.age");
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&obj, &bytes).unwrap();

    let cfg = drill_config(&w, "");
    let r = drill(
        &w,
        &cfg,
        &["--drill", monthly().to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let rec = r.json()[0].clone();
    assert_eq!(rec["outcome"], "failed");
    assert_eq!(rec["backup"]["id"], id.as_str());
    let failures = rec["failures"].as_array().unwrap();
    let first = failures[0].as_str().unwrap();
    assert!(first.starts_with("restore failed: "), "{first}");
    assert!(
        first.contains("dump.zst.age"),
        "the cause names the object: {first}"
    );
    // ... and the damage itself: the stored object no longer matches its checksum.
    let second = failures[1].as_str().unwrap();
    assert!(
        second.starts_with("object dump.zst.age: sha256 mismatch (manifest "),
        "{second}"
    );
    assert!(rec["rto_seconds"].is_null());
    let names = phase_names(&rec);
    assert_eq!(names.last().unwrap(), "teardown");
    assert!(names.contains(&"failed".to_string()), "{names:?}");
    assert!(!names.contains(&"checks".to_string()));
    for c in rec["checks"].as_array().unwrap() {
        assert_eq!(c["passed"], false);
        assert_eq!(c["message"], "not run: the restore failed");
    }
    assert_eq!(stored_record(&w, &rec), rec);
    assert!(scratch_left(&w).is_empty(), "{:?}", scratch_left(&w));
    // What the drill learnt about the backup is kept beside it: known bad.
    let l = w.list();
    assert_eq!(l[0]["verification"]["outcome"], "failed", "{l:?}");
}

#[test]
fn drill_without_backups_fails_and_is_recorded() {
    let w = World::local();
    std::fs::create_dir_all(repo_root(&w)).unwrap(); // an empty repository
    let cfg = drill_config(&w, "rto_target = \"10m\"");
    let r = drill(&w, &cfg, &["--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let rec = r.json()[0].clone();
    assert_eq!(rec["outcome"], "failed");
    assert!(rec["backup"].is_null());
    assert!(rec["rpo_seconds"].is_null());
    assert!(rec["worst_rpo"].is_null());
    assert_eq!(phase_names(&rec), ["select"]);
    assert_eq!(
        rec["failures"][0],
        format!(
            "no backup of database 'app' in {}: nothing to restore",
            repo_root(&w).display()
        )
    );
    // Targets: the config's RTO, the default RPO.
    assert_eq!(rec["targets"]["rto_seconds"], 600.0);
    assert_eq!(rec["targets"]["rto_from"], "config");
    assert_eq!(rec["targets"]["rpo_seconds"], 300.0);
    assert_eq!(rec["targets"]["rpo_from"], "default");
    assert_eq!(stored_record(&w, &rec), rec);
    // Still no backup listed; history shows the failed drill.
    assert!(w.list().is_empty());
    let c = w.pgdr_config(&cfg, &["drill", "history"]);
    let h = run(c).ok().stdout;
    let row = h.lines().nth(1).unwrap();
    assert!(row.contains(" app ") && row.contains("FAILED"), "{h}");
}

#[test]
fn history_is_newest_first_and_the_report_shows_charts_rows_and_the_schedule() {
    let w = World::local();
    let first = w.backup()["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = w.backup()["id"].as_str().unwrap().to_string();
    let cfg = drill_config(&w, "");

    // 1: the older backup, given by id: passes (no smoke checks, default targets).
    let r = drill(&w, &cfg, &["--backup", &first, "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let d1 = r.json()[0].clone();
    assert_eq!(d1["selection"], "given");
    // The worst RPO of the window is the age of the newest backup or the gap between the two.
    let w1 = d1["worst_rpo"]["seconds"].as_f64().unwrap();
    assert!(w1 >= 1.5, "{w1}");

    // 2: the newest, with an RPO target no backup schedule meets: fails on the target.
    let spec = w.dir.path().join("tight.toml");
    std::fs::write(&spec, "name = \"tight\"\nrpo_target = \"1s\"\n").unwrap();
    let r = drill(&w, &cfg, &["--drill", spec.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let d2 = r.json()[0].clone();
    assert_eq!(d2["backup"]["id"], second.as_str());
    assert_eq!(d2["targets"]["rpo_met"], false);
    assert_eq!(d2["targets"]["rto_met"], true);
    assert!(
        d2["rto_seconds"].as_f64().is_some(),
        "restored and proven: the RTO is measured"
    );
    let why = d2["failures"][0].as_str().unwrap();
    assert!(
        why.starts_with("RPO ") && why.contains("exceeds the target 1.0s"),
        "{why}"
    );

    // History: newest first, in JSON and as a table.
    let c = w.pgdr_config(&cfg, &["drill", "history", "--json"]);
    let h = run(c).ok().json();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["started_at"], d2["started_at"]);
    assert_eq!(h[1]["started_at"], d1["started_at"]);
    let c = w.pgdr_config(&cfg, &["drill", "history"]);
    let t = run(c).ok().stdout;
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("STARTED (UTC)"), "{t}");
    assert!(
        lines[1].contains(&second) && lines[1].contains("tight") && lines[1].contains("FAILED"),
        "{t}"
    );
    assert!(
        lines[2].contains(&first) && lines[2].contains("passed"),
        "{t}"
    );

    // The HTML report: self-contained, two SVG charts, the rows, and the schedule sentence.
    let out = w.dir.path().join("report.html");
    let c = w.pgdr_config(&cfg, &["drill", "report", "--out", out.to_str().unwrap()]);
    run(c).ok();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg ").count(), 2, "two charts");
    assert!(html.contains("<h3>RTO over time</h3>") && html.contains("\nRTO over time\n</text>"));
    assert!(html.contains("<h3>RPO over time</h3>") && html.contains("\nRPO over time\n</text>"));
    assert!(
        html.contains("target 15m 00s"),
        "the RTO target line is labelled"
    );
    assert!(
        html.contains("target 1.0s"),
        "the RPO target line is labelled"
    );
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src=\"http"));
    let rows: Vec<&str> = html
        .lines()
        .filter(|l| l.starts_with("<tr class=\"drill\">"))
        .collect();
    assert_eq!(rows.len(), 2, "{html}");
    assert!(
        rows[0].contains(&second) && rows[0].contains(">FAILED<"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains(&first) && rows[1].contains(">passed<"),
        "{}",
        rows[1]
    );
    // The latest drill's phase breakdown.
    assert!(html.contains("<h3>Latest drill: phases</h3>"));
    for p in [
        "select", "scratch", "globals", "create", "restore", "compare", "checks",
    ] {
        assert!(html.contains(&format!("<tr><td>{p}</td>")), "phase {p}");
    }
    // Backups ~1.5 s apart against a 1 s target: the schedule cannot meet it, said plainly.
    assert!(
        html.contains("The RPO target of 1.0s cannot be met by the backup schedule: backups are taken about every"),
        "{html}"
    );
    assert!(html.contains("continuous archiving"));

    // Markdown and JSON carry the same rows.
    let md = w.dir.path().join("report.md");
    let c = w.pgdr_config(
        &cfg,
        &[
            "drill",
            "report",
            "--format",
            "md",
            "--out",
            md.to_str().unwrap(),
        ],
    );
    run(c).ok();
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| started (UTC) |") && md.contains(&first) && md.contains(&second));
    assert!(md.contains("cannot be met by the backup schedule"));
    let js = w.dir.path().join("report.json");
    let c = w.pgdr_config(
        &cfg,
        &[
            "drill",
            "report",
            "--format",
            "json",
            "--out",
            js.to_str().unwrap(),
        ],
    );
    run(c).ok();
    let js: serde_json::Value = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
    let db = &js["databases"][0];
    assert_eq!(db["database"], "app");
    assert_eq!(db["history"].as_array().unwrap().len(), 2);
    assert_eq!(db["latest"]["started_at"], d2["started_at"]);
    assert_eq!(db["schedule"]["meets_target"], false);
    assert_eq!(db["backups"], 2);
}

#[test]
fn s3_drill_is_recorded_and_listed() {
    let w = World::s3();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let cfg = drill_config(&w, "");
    let r = drill(
        &w,
        &cfg,
        &["--drill", monthly().to_str().unwrap(), "--json"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()[0]["outcome"], "passed");
    let c = w.pgdr_config(&cfg, &["drill", "history", "--json"]);
    let h = run(c).ok().json();
    assert_eq!(h.as_array().unwrap().len(), 1);
    assert_eq!(h[0]["backup"]["id"], id.as_str());
    // Drill records beside the backups do not disturb the catalog.
    assert_eq!(w.list().len(), 1);
}

#[test]
fn a_check_over_its_timeout_fails_and_names_the_limit() {
    let w = World::local();
    w.backup();
    let spec = w.dir.path().join("slow.toml");
    std::fs::write(
        &spec,
        "name = \"slow\"\ndatabase = \"app\"\n\n[[check]]\nname = \"slow\"\n\
         sql = \"SELECT pg_sleep(3)\"\nexpect = \"rows = 1\"\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let cfg = w.config_file(
        "named.toml",
        &format!("[scratch]\nurl = \"{}\"\n", w.pg.url("postgres")),
    );
    let r = drill(&w, &cfg, &["--drill", spec.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // Told apart by SQLSTATE 57014, not by the server's words; the words stay as they were.
    let m = r.json()[0]["checks"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        m.starts_with("error: canceling statement due to statement timeout (timeout "),
        "{m}"
    );
}
