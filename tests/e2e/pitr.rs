//! Point-in-time restore against a real logical cluster: capture running in the background,
//! an anchored backup taken while a concurrent workload runs, marks at moments where the
//! workload is paused. The oracle is the test's own `COPY` of every table, taken with the
//! workload paused, never pgdr's fingerprint code: each restore (to a mark, to a time between
//! two commits, to latest) must hold exactly those rows.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

const TABLES: [(&str, &str); 3] = [("acct", "id"), ("events", "id"), ("tags", "a, b")];

pub(crate) fn world(repo: Option<Repo>) -> World {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE acct (id serial PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
         CREATE TABLE events (id bigserial PRIMARY KEY, acct int, note text, at timestamptz DEFAULT now());
         CREATE TABLE tags (a int, b text);
         ALTER TABLE tags REPLICA IDENTITY FULL;
         INSERT INTO acct (owner, balance) SELECT 'o' || g, 100 FROM generate_series(1, 20) g;
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(balance) AS s FROM acct;",
    );
    World::around_pg(pg, repo)
}

pub(crate) fn start_runner(w: &World) -> Child {
    let mut c = w.pgdr(&[
        "capture",
        "run",
        "--segment-age",
        "1s",
        "--heartbeat",
        "1s",
        "--sequence-sample",
        "1s",
        "--json",
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c.spawn().unwrap()
}

/// The killed runner is reaped, whatever the test's outcome.
pub(crate) struct Runner(pub(crate) Child);
impl Drop for Runner {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("capture run did not stop within 15 s of SIGTERM: killed");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Concurrent writers, each a few transactions of every kind; returns when all committed.
pub(crate) fn burst(w: &Arc<World>, round: u32) {
    let handles: Vec<_> = (0..3)
        .map(|k| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let a = 1 + (round * 7 + k * 3 + i) % 20;
                    let sql = match i % 4 {
                        0 => format!(
                            "INSERT INTO acct (owner, balance) VALUES ('r{round}k{k}i{i}', {i});
                             INSERT INTO events (acct, note) VALUES ({a}, 'open r{round}k{k}i{i}')"
                        ),
                        1 => format!(
                            "BEGIN; UPDATE acct SET balance = balance - 1 WHERE id = {a};
                             INSERT INTO events (acct, note) VALUES ({a}, 'debit');
                             INSERT INTO tags VALUES ({a}, 'r{round}k{k}'); COMMIT"
                        ),
                        2 => format!(
                            "UPDATE tags SET b = b || 'x' WHERE a = {a};
                             DELETE FROM events WHERE id IN (SELECT min(id) FROM events WHERE acct = {a})"
                        ),
                        _ => format!(
                            "BEGIN; INSERT INTO events (acct, note) VALUES ({a}, 'gone'); ROLLBACK;
                             DELETE FROM tags WHERE a = {a} AND b LIKE 'r{round}%' AND ctid = (SELECT min(ctid) FROM tags WHERE a = {a})"
                        ),
                    };
                    w.pg.psql("app", &sql);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The oracle: every table's rows in a fixed order, by COPY.
fn snapshot(pg: &Pg, db: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|(t, order)| {
            pg.psql(
                db,
                &format!("COPY (SELECT * FROM {t} ORDER BY {order}) TO STDOUT"),
            )
        })
        .collect()
}

fn current_sequences(pg: &Pg, db: &str) -> (i64, i64) {
    let out = pg.psql(
        db,
        "SELECT (SELECT last_value FROM acct_id_seq) || ' ' || (SELECT last_value FROM events_id_seq)",
    );
    let v: Vec<i64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1])
}

/// Wait until the stored changes reach the point (the plan stops refusing it as too new).
pub(crate) fn wait_covered(w: &World, point: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = vec!["--dry-run", "--json"];
        args.extend_from_slice(point);
        let r = run(w.restore_cmd(&w.pg, "probe", &args));
        if r.code == 0 {
            return;
        }
        assert!(
            (r.stderr.contains("after the newest stored")
                || r.stderr.contains("no stored changes reach back"))
                && Instant::now() < deadline,
            "{point:?} not reachable: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Restore `point` into a new database `db`; the restore record.
pub(crate) fn restore_to(w: &World, db: &str, point: &[&str]) -> serde_json::Value {
    wait_covered(w, point);
    let mut args = vec!["--yes", "--json"];
    args.extend_from_slice(point);
    let r = run(w.restore_cmd(&w.pg, db, &args));
    assert_eq!(r.code, 0, "restore {point:?}: {}\n{}", r.stdout, r.stderr);
    r.json()
}

/// The restored database holds exactly the oracle's rows, its sequences hand out no used
/// value, its materialized view is refreshed, and the record names what was replayed.
fn assert_restored(
    w: &World,
    db: &str,
    want: &[String],
    seqs: (i64, i64),
    rec: &serde_json::Value,
) {
    let got = snapshot(&w.pg, db);
    for (i, (t, _)) in TABLES.iter().enumerate() {
        assert_eq!(
            got[i], want[i],
            "table {t} of {db} differs from the source at that moment"
        );
    }
    let replay = &rec["replay"];
    assert!(replay["last_commit"]["lsn"].is_string(), "{rec:#}");
    let tables = replay["tables"].as_array().unwrap();
    let acct = tables.iter().find(|t| t["name"] == "acct").unwrap();
    assert_eq!(
        acct["rows"].as_u64().unwrap() as usize,
        want[0].lines().count(),
        "{rec:#}"
    );
    let restored = current_sequences(&w.pg, db);
    let max_acct: i64 =
        w.pg.psql(db, "SELECT max(id) FROM acct")
            .trim()
            .parse()
            .unwrap();
    assert!(
        restored.0 >= max_acct,
        "acct_id_seq {} below max(id) {max_acct}",
        restored.0
    );
    if replay["sequences"]
        .as_str()
        .unwrap()
        .starts_with("from the sample")
    {
        assert!(
            restored.0 >= seqs.0 && restored.1 >= seqs.1,
            "{restored:?} < {seqs:?}"
        );
    }
    let totals = w.pg.psql(db, "SELECT n FROM totals").trim().to_string();
    assert_eq!(
        totals,
        want[0].lines().count().to_string(),
        "matview not refreshed"
    );
}

/// The marks' LSNs, as `pgdr mark --json` reported them.
struct Marks {
    m1: String,
    m2: String,
}

pub(crate) fn mark(w: &World, name: &str) -> String {
    let m = w.run(&["mark", name, "--json"]).ok().json();
    assert_eq!(m["name"], name);
    m["lsn"].as_str().unwrap().to_string()
}

fn scenario(w: World) -> (Arc<World>, Marks, Runner) {
    let w = Arc::new(w);
    w.run(&["capture", "enable"]).ok();
    let runner = Runner(start_runner(&w));
    // An anchored backup while writers run.
    let busy = {
        let w = w.clone();
        std::thread::spawn(move || burst(&w, 1))
    };
    std::thread::sleep(Duration::from_millis(300));
    let backup = w.run(&["backup", "--quiet"]);
    busy.join().unwrap();
    backup.ok();
    let m = w.backup_manifest();
    assert!(m["snapshot"]["cut_lsn"].is_string(), "not anchored: {m:#}");

    burst(&w, 2);
    let at_m1 = (snapshot(&w.pg, "app"), current_sequences(&w.pg, "app"));
    let m1 = mark(&w, "m1");
    burst(&w, 3);
    let at_m2 = (snapshot(&w.pg, "app"), current_sequences(&w.pg, "app"));
    let m2 = mark(&w, "m2");
    // A time between two commits.
    w.pg.psql("app", "UPDATE acct SET balance = 7777 WHERE id = 1");
    std::thread::sleep(Duration::from_millis(600));
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let at_t = (snapshot(&w.pg, "app"), current_sequences(&w.pg, "app"));
    std::thread::sleep(Duration::from_millis(600));
    w.pg.psql("app", "UPDATE acct SET balance = 8888 WHERE id = 1");
    burst(&w, 4);
    let at_end = (snapshot(&w.pg, "app"), current_sequences(&w.pg, "app"));
    // A sequence sample after the last commit, stored before the mark: `latest` sets the
    // sequences from it (without one it can only take the newest before that commit, and a
    // value a rolled-back nextval took after it is unknown: seen once as a flake).
    std::thread::sleep(Duration::from_millis(1500));
    // The latest stored point covers everything once this mark is stored.
    w.run(&["mark", "end"]).ok();
    wait_covered(&w, &["--at-mark", "end"]);

    let list = w.run(&["list"]).ok().stdout;
    assert!(
        list.contains("marks:") && list.contains("m1") && list.contains("m2"),
        "{list}"
    );

    // The plan names the anchor and the segments; the record, what was replayed.
    let dry = run(w.restore_cmd(&w.pg, "probe", &["--dry-run", "--json", "--at-mark", "m1"]))
        .ok()
        .json();
    assert_eq!(dry["point"]["anchor"]["id"], m["id"], "{dry:#}");
    assert_eq!(dry["point"]["anchor"]["cut"], m["snapshot"]["cut_lsn"]);
    assert!(!dry["point"]["segment_starts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(!w.pg.exists("probe"));
    let r1 = restore_to(&w, "r_m1", &["--at-mark", "m1"]);
    assert_eq!(r1["backup_id"], m["id"]);
    assert_eq!(r1["replay"]["anchor_cut_lsn"], m["snapshot"]["cut_lsn"]);
    assert!(r1["replay"]["transactions"].as_u64().unwrap() > 0, "{r1:#}");
    let last: pgdr::source::Lsn = r1["replay"]["last_commit"]["lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last < m1.parse().unwrap(),
        "last commit {last} not before the mark {m1}"
    );
    assert_restored(&w, "r_m1", &at_m1.0, at_m1.1, &r1);
    let r2 = restore_to(&w, "r_m2", &["--at-mark", "m2"]);
    assert_restored(&w, "r_m2", &at_m2.0, at_m2.1, &r2);
    assert_ne!(
        at_m1.0, at_m2.0,
        "the workload changed nothing between the marks"
    );
    let rt = restore_to(&w, "r_t", &["--at", &t]);
    assert_restored(&w, "r_t", &at_t.0, at_t.1, &rt);
    assert!(
        rt["replay"]["distance_seconds"].as_f64().unwrap() > 0.0,
        "{rt:#}"
    );
    // --before still picks a dump, and says the captured changes reach the time.
    let before = run(w.restore_cmd(&w.pg, "probe", &["--dry-run", "--before", &t])).ok();
    assert!(
        before.stdout.contains("restore --at '"),
        "{}",
        before.stdout
    );
    assert!(!before.stdout.contains("  point "), "{}", before.stdout);
    let rl = restore_to(&w, "r_latest", &["--at", "latest"]);
    assert_restored(&w, "r_latest", &at_end.0, at_end.1, &rl);
    (w, Marks { m1, m2 }, runner)
}

impl World {
    fn backup_manifest(&self) -> serde_json::Value {
        let list = self.run(&["list", "--json"]).ok().json();
        let id = list.as_array().unwrap().last().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.run(&["show", &id, "--json"]).ok().json()
    }
}

#[test]
fn restore_to_marks_a_time_and_latest_is_the_source_at_that_moment() {
    let (w, marks, _runner) = scenario(world(None));
    // A pgdr.mark message without a mark object is foreign; the real marks are pgdr's own.
    let bogus =
        w.pg.psql(
            "app",
            "SELECT pg_logical_emit_message(false, 'pgdr.mark', 'nobody')",
        )
        .trim()
        .to_string();
    mark(&w, "after");
    wait_covered(&w, &["--at-mark", "after"]);
    let check = run(w.pgdr(&["capture", "check", "--database", "app", "--json"])).json();
    let foreign = check["foreign_messages"].as_array().unwrap();
    assert_eq!(foreign.len(), 1, "{check:#}");
    assert_eq!(foreign[0]["lsn"], bogus.as_str(), "{check:#}");
    assert_eq!(foreign[0]["prefix"], "pgdr.mark");
    // A recorded gap between the marks (as the capture records a lost slot): points after
    // its start are refused by name, the one before it is still reachable.
    let (from, to): (pgdr::source::Lsn, pgdr::source::Lsn) =
        (marks.m1.parse().unwrap(), marks.m2.parse().unwrap());
    let gap = serde_json::json!({
        "format_version": 1,
        "database": "app",
        "from": pgdr::source::Lsn(from.0 + 1).to_string(),
        "to": to.to_string(),
        "cause": "slot-lost",
        "detail": null,
        "detected_at": "2026-12-05T00:00:00Z",
    });
    let gaps = w.dir.path().join("repo/app/capture/gaps");
    std::fs::create_dir_all(&gaps).unwrap();
    std::fs::write(
        gaps.join(format!("{}.json", pgdr::source::Lsn(from.0 + 1).to_key())),
        serde_json::to_vec_pretty(&gap).unwrap(),
    )
    .unwrap();
    for point in [&["--at-mark", "m2"][..], &["--at", "latest"]] {
        let r = run(w.restore_cmd(&w.pg, "refused", &[&["--dry-run"], point].concat()));
        assert_eq!(r.code, 2, "{point:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("gap from") && r.stderr.contains("slot-lost"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("nearest reachable before it"),
            "{}",
            r.stderr
        );
    }
    assert!(!w.pg.exists("refused"));
    run(w.restore_cmd(&w.pg, "r_ok", &["--dry-run", "--at-mark", "m1"])).ok();
}

#[test]
fn replay_from_s3_restores_the_same_points() {
    let g = garage::garage();
    let repo = Repo::S3 {
        url: format!("s3://{}/{}", g.bucket, garage::unique_prefix("pitr")),
        env: vec![
            ("AWS_ENDPOINT_URL".into(), g.endpoint.clone()),
            ("AWS_REGION".into(), g.region.clone()),
            ("AWS_ACCESS_KEY_ID".into(), g.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), g.secret_key.clone()),
        ],
    };
    scenario(world(Some(repo)));
}

#[test]
fn a_divergent_target_stops_the_replay_naming_the_lsn_and_leaves_no_copy() {
    let w = world(None);
    // A rule that only acts outside the source database (and fires during replay: ALWAYS):
    // on the restored copy a DELETE of tags silently deletes nothing, so the copy is no
    // longer the source's past when the stream deletes that row.
    w.pg.psql(
        "app",
        "INSERT INTO tags VALUES (1, 'keep'), (2, 'drop');
         CREATE RULE not_here AS ON DELETE TO tags WHERE current_database() <> 'app' DO INSTEAD NOTHING;
         ALTER TABLE tags ENABLE ALWAYS RULE not_here;",
    );
    w.run(&["capture", "enable"]).ok();
    let _runner = Runner(start_runner(&w));
    w.run(&["backup", "--quiet"]).ok();
    w.pg.psql("app", "DELETE FROM tags WHERE a = 2");
    mark(&w, "after-delete");
    wait_covered(&w, &["--at-mark", "after-delete"]);
    let r = run(w.restore_cmd(&w.pg, "r_div", &["--yes", "--at-mark", "after-delete"]));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("divergence at LSN") && r.stderr.contains("tags"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("restore FAILED"), "{}", r.stdout);
    assert!(!w.pg.exists("r_div"), "a half-replayed copy was left");
}
