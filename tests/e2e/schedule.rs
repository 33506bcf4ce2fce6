//! Issue 7: retention (`pgdr prune`), `pgdr status`, schedules (`pgdr schedule`) and the
//! daemon with its metrics and webhooks.

use std::path::{Path, PathBuf};

use crate::common::*;

fn local_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

/// A config file beside the world (the database itself comes from --source).
fn config(w: &World, name: &str, body: &str) -> PathBuf {
    let p = w.dir.path().join(name);
    std::fs::write(
        &p,
        format!("{body}\n[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n"),
    )
    .unwrap();
    p
}

fn with_config(w: &World, cfg: &Path, args: &[&str]) -> Run {
    let mut c = w.pgdr(args);
    c.arg("--config").arg(cfg);
    run(c)
}

fn write_manifest(path: &Path, mut v: serde_json::Value) {
    v.as_object_mut().unwrap().remove("checksum");
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&v).unwrap()));
    v["checksum"] = sum.into();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn id_of(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// 400 daily backups 2025-01-01 .. 2026-02-04 at 02:00 UTC, copies of one real manifest,
/// every 10th with a passed verification record. The real backup is removed.
fn synthetic_catalog(w: &World) -> Vec<String> {
    let root = local_root(w);
    let real = w.backup();
    let real_id = real["id"].as_str().unwrap().to_string();
    let template: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("app").join(&real_id).join("manifest.json")).unwrap(),
    )
    .unwrap();
    std::fs::remove_dir_all(root.join("app").join(&real_id)).unwrap();
    let start: chrono::DateTime<chrono::Utc> = "2025-01-01T02:00:00Z".parse().unwrap();
    let mut ids = Vec::new();
    for i in 0..400 {
        let t = start + chrono::Duration::days(i);
        let id = id_of(t);
        let mut m = template.clone();
        m["id"] = id.clone().into();
        m["snapshot"]["time"] = t.to_rfc3339().into();
        m["started_at"] = t.to_rfc3339().into();
        m["finished_at"] = (t + chrono::Duration::seconds(3)).to_rfc3339().into();
        write_manifest(&root.join("app").join(&id).join("manifest.json"), m);
        if i % 10 == 0 {
            let vt = t + chrono::Duration::hours(1);
            let rec = serde_json::json!({
                "format_version": 1, "pgdr_version": "0.1.0", "database": "app",
                "backup_id": id, "mode": "quick", "outcome": "passed",
                "started_at": vt.to_rfc3339(), "finished_at": vt.to_rfc3339(),
                "phases": [], "differences": [], "error": null, "scratch": null, "host": "t",
            });
            let p = root
                .join("app")
                .join(&id)
                .join("verifications")
                .join(format!("{}.json", id_of(vt)));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, serde_json::to_vec(&rec).unwrap()).unwrap();
        }
        ids.push(id);
    }
    ids
}

/// The same expectation as `schedule::retention::tests::DAILY_KEPT`, worked out by hand from
/// the calendar: daily 7 (01-29..02-04), weekly 4 (W06 02-04, W05 02-01, W04 01-25,
/// W03 01-18), monthly 12 (02-04, 01-31, then the last day of 2025-12 back to 2025-03),
/// yearly (02-04, 2025-12-31), and the two newest verified backups (01-26, 01-16).
const DAILY_KEPT: [&str; 21] = [
    "2025-03-31",
    "2025-04-30",
    "2025-05-31",
    "2025-06-30",
    "2025-07-31",
    "2025-08-31",
    "2025-09-30",
    "2025-10-31",
    "2025-11-30",
    "2025-12-31",
    "2026-01-16",
    "2026-01-18",
    "2026-01-25",
    "2026-01-26",
    "2026-01-29",
    "2026-01-30",
    "2026-01-31",
    "2026-02-01",
    "2026-02-02",
    "2026-02-03",
    "2026-02-04",
];

const POLICY: &str = "[retention]\nkeep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 12\nkeep_yearly = 3\n";

#[test]
fn prune_keeps_exactly_the_policy_set_of_400_daily_backups() {
    let w = World::local();
    let ids = synthetic_catalog(&w);
    // The catalog ends in 2026-02: by the clock, backups have stopped. Prune holds.
    let cfg = config(&w, "held.toml", POLICY);
    let r = with_config(&w, &cfg, &["prune", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains("held: the newest backup 20260204T020000.000Z is "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("would delete 0"), "{}", r.stdout);
    let r = with_config(&w, &cfg, &["prune"]).ok();
    assert!(r.stdout.contains("deleted 0 backup(s)"), "{}", r.stdout);
    assert_eq!(w.list().len(), 400);

    // As if backups were still running (max_backup_age far away): the rules apply.
    let cfg = config(
        &w,
        "policy.toml",
        &format!("{POLICY}max_backup_age = \"100000h\"\n"),
    );
    let r = with_config(&w, &cfg, &["prune", "--dry-run", "--json"]).ok();
    let plan = r.json();
    let backups = plan["plan"]["databases"][0]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 400);
    let kept: Vec<String> = backups
        .iter()
        .filter(|b| b["keep"].as_bool().unwrap())
        .map(|b| b["id"].as_str().unwrap()[..8].to_string())
        .collect();
    let want: Vec<String> = DAILY_KEPT.iter().map(|d| d.replace('-', "")).collect();
    assert_eq!(kept, want);
    // Every backup names the rule that decided it.
    assert!(backups
        .iter()
        .all(|b| !b["reasons"].as_array().unwrap().is_empty()));
    let newest_verified = backups
        .iter()
        .find(|b| b["id"] == "20260126T020000.000Z")
        .unwrap();
    assert_eq!(
        newest_verified["reasons"],
        serde_json::json!(["proof: newest verified 1/2"])
    );
    assert_eq!(w.list().len(), 400, "a dry run changes nothing");

    let text = with_config(&w, &cfg, &["prune", "--dry-run"]).ok().stdout;
    assert!(
        text.contains("DELETE 20250101T020000.000Z  2025-01-01 02:00  no rule keeps it"),
        "{text}"
    );
    assert!(
        text.contains("keep   20251231T020000.000Z  2025-12-31 02:00  monthly 3/12 (2025-12); yearly 2/3 (2025)"),
        "{text}"
    );

    let r = with_config(&w, &cfg, &["prune"]).ok();
    assert!(r.stdout.contains("deleted 379 backup(s)"), "{}", r.stdout);
    let left: Vec<String> = w
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap()[..8].to_string())
        .collect();
    assert_eq!(left, want);
    // Deleted backups leave no folders behind (their verification records went with them).
    let root = local_root(&w);
    let folders = std::fs::read_dir(root.join("app")).unwrap().count();
    assert_eq!(folders, 21);
    assert!(!root.join("app").join(&ids[0]).exists());
}

#[test]
fn prune_removes_leftovers_of_interrupted_backups() {
    let w = World::local();
    let m = w.backup();
    let root = local_root(&w);
    // A partial object and a backup folder without a manifest, both two days old, and a
    // fresh partial (a backup running right now).
    let old_id = id_of(chrono::Utc::now() - chrono::Duration::days(2));
    let dir = root.join("app").join(&old_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dump.zst.age"), b"half a dump").unwrap();
    std::fs::write(dir.join("globals.sql.zst.age.partial-999"), b"half").unwrap();
    let two_days = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
    for f in ["dump.zst.age", "globals.sql.zst.age.partial-999"] {
        std::fs::File::options()
            .write(true)
            .open(dir.join(f))
            .unwrap()
            .set_modified(two_days)
            .unwrap();
    }
    let live = root
        .join("app")
        .join(m["id"].as_str().unwrap())
        .join("next.partial-1");
    std::fs::write(&live, b"being written").unwrap();

    let r = w.run(&["prune", "--dry-run"]).ok();
    assert!(
        r.stdout.contains(&format!(
            "DELETE partial file of app/{old_id}/globals.sql.zst.age, 4 B"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "DELETE uncommitted backup folder app/{old_id} (1 object(s)"
        )),
        "{}",
        r.stdout
    );
    // No keep_* rule: the one backup stays, and says why.
    assert!(
        r.stdout.contains("no keep_* rule is configured"),
        "{}",
        r.stdout
    );
    let r = w.run(&["prune"]).ok();
    assert!(
        r.stdout
            .contains("deleted 0 backup(s), 1 leftover(s), 1 uncommitted folder(s)"),
        "{}",
        r.stdout
    );
    assert!(!dir.exists());
    assert!(live.exists(), "a fresh partial file is left alone");
    assert_eq!(w.list().len(), 1);
}

#[test]
fn status_exit_codes() {
    let w = World::local();
    // An empty repository: a problem, not an error.
    std::fs::create_dir_all(local_root(&w)).unwrap();
    let r = w.run(&["status"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("problem: database 'app': no backup in the repository"),
        "{}",
        r.stdout
    );
    // A fresh, verified backup: healthy.
    let m = w.backup();
    let id = m["id"].as_str().unwrap();
    w.run(&["verify", id, "--quick"]).ok();
    let r = w.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("newest backup    {id}")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("passed (quick)"), "{}", r.stdout);
    let j = w.run(&["status", "--json"]).ok().json();
    assert_eq!(j["healthy"], true);
    assert_eq!(j["databases"][0]["newest_backup"]["id"], id);
    // A tighter max_backup_age: the same backup is now too old.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let cfg = config(&w, "tight.toml", "[retention]\nmax_backup_age = \"1s\"\n");
    let r = with_config(&w, &cfg, &["status", "--quiet"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "problem: database 'app': the newest backup {id} is "
        )) && lines[0].ends_with("old (max_backup_age 1s)"),
        "{}",
        r.stdout
    );
    // Could not look: the repository is not there.
    let mut c = pgdr_cmd();
    c.args([
        "status",
        "--database",
        "app",
        "--repo",
        "/nonexistent/pgdr-repo",
    ]);
    let r = run(c);
    assert_eq!(r.code, 2, "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// The daemon. Schedules fire at a chosen second: `[daemon] cron_seconds = true` (documented
// as test-only) lets a cron expression carry a seconds field.

/// A running `pgdr daemon`, its stderr in a file; killed if the test forgets it.
struct Daemon {
    child: std::process::Child,
    log: PathBuf,
}

impl Daemon {
    fn start(mut c: std::process::Command, dir: &Path, name: &str) -> Daemon {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        c.stdout(std::process::Stdio::null()).stderr(f);
        Daemon {
            child: c.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `what` (panics with the log after `secs`).
    #[track_caller]
    fn wait_for(&self, what: &str, secs: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if self.log().contains(what) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("'{what}' not logged within {secs}s:\n{}", self.log());
    }

    /// SIGTERM, then the exit code (within `secs`).
    fn term(mut self, secs: u64) -> i32 {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                std::time::Instant::now() < until,
                "the daemon did not exit within {secs}s of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 6-field cron expression (UTC) for the second `secs` from now, and that moment.
fn in_seconds(secs: i64) -> (String, chrono::DateTime<chrono::Utc>) {
    use chrono::Timelike;
    let t = chrono::Utc::now() + chrono::Duration::seconds(secs);
    (
        format!("{} {} {} * * *", t.second(), t.minute(), t.hour()),
        t.with_nanosecond(0).unwrap(),
    )
}

/// Config for a daemon that backs up `app` once, at `cron`; nothing else runs.
fn daemon_config(w: &World, name: &str, cron: &str, extra: &str) -> PathBuf {
    config(
        w,
        name,
        &format!(
            "[daemon]\ncron_seconds = true\ngrace_period = \"0s\"\n[schedule]\nbackup = \"{cron}\"\nverify = \"off\"\ndrill = \"off\"\nprune = \"off\"\ncatch_up = false\n{extra}"
        ),
    )
}

fn daemon_cmd(w: &World, cfg: &Path) -> std::process::Command {
    let mut c = w.pgdr(&["daemon"]);
    c.arg("--config").arg(cfg);
    c
}

fn wait_until(t: chrono::DateTime<chrono::Utc>) {
    if let Ok(d) = (t - chrono::Utc::now()).to_std() {
        std::thread::sleep(d);
    }
}

#[test]
fn two_daemons_run_one_backup_between_them() {
    let w = World::local();
    let (cron, at) = in_seconds(6);
    let cfg = daemon_config(&w, "d.toml", &cron, "");
    let a = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "a");
    let b = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "b");
    a.wait_for("daemon started", 10);
    b.wait_for("daemon started", 10);
    assert!(
        chrono::Utc::now() < at,
        "the daemons started too late for the test's schedule"
    );
    wait_until(at);
    // One runs it; the other finds the lock held (or the slot already done) and skips.
    let done = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (la, lb) = (a.log(), b.log());
        let ran = [&la, &lb]
            .iter()
            .filter(|l| l.contains("job succeeded"))
            .count();
        let skipped = [&la, &lb]
            .iter()
            .filter(|l| l.contains("job run skipped"))
            .count();
        if ran + skipped == 2 {
            assert_eq!((ran, skipped), (1, 1), "a:\n{la}\nb:\n{lb}");
            break;
        }
        assert!(
            std::time::Instant::now() < done,
            "no outcome within 30s:\na:\n{la}\nb:\n{lb}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let skipper = if a.log().contains("job run skipped") {
        a.log()
    } else {
        b.log()
    };
    assert!(
        skipper.contains("another pgdr holds the backup lock") || skipper.contains("already done"),
        "{skipper}"
    );
    assert_eq!(a.term(20), 0);
    assert_eq!(b.term(20), 0);
    assert_eq!(w.list().len(), 1, "exactly one backup between them");
}

#[test]
fn sigterm_during_a_backup_leaves_nothing_and_exits_0() {
    let w = World::local();
    // A session holding an exclusive lock on a plain table makes pg_dump wait (pgdr's own
    // catalog reads do not lock it): the dump is surely running when the signal comes.
    w.pg.psql(
        "app",
        "CREATE TABLE public.zz_plain (x int); INSERT INTO public.zz_plain VALUES (1)",
    );
    let mut holder = std::process::Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "app"])
        .arg("-p")
        .arg(w.pg.port.to_string())
        .args([
            "-c",
            "BEGIN; LOCK TABLE public.zz_plain IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);",
        ])
        .env("PGPASSWORD", PG_PASSWORD)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = || {
        w.pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE public.zz_plain IN ACCESS SHARE MODE%'",
        )
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.pg.psql("app", "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'public.zz_plain'::regclass") != "1" {
        assert!(std::time::Instant::now() < until, "the lock holder did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (cron, _) = in_seconds(5);
    let cfg = daemon_config(&w, "d.toml", &cron, "");
    let d = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "d");
    d.wait_for("job started", 15);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while waiting() == "0" {
        assert!(
            std::time::Instant::now() < until,
            "pg_dump never waited on the lock ({}):\n{}",
            w.pg.psql("postgres", "SELECT string_agg(application_name || ': ' || left(query, 200), ' | ') FROM pg_stat_activity WHERE wait_event_type = 'Lock'"),
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = d.log.clone();
    assert_eq!(d.term(30), 0, "{}", std::fs::read_to_string(&log).unwrap());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("job cancelled by the shutdown"), "{log}");
    w.pg.psql(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'BEGIN; LOCK TABLE public.zz_plain%'",
    );
    let _ = holder.kill();
    let _ = holder.wait();
    // Nothing of the backup is listed or left on disk; only the job record remains.
    assert!(w.list().is_empty());
    let files: Vec<String> = files_under(&local_root(&w))
        .into_iter()
        .filter(|f| !f.starts_with("app/jobs/"))
        .collect();
    assert!(files.is_empty(), "left behind: {files:?}");
    let job: serde_json::Value = serde_json::from_slice(
        &std::fs::read(local_root(&w).join("app/jobs/backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(job["last_run"]["outcome"], "cancelled");
    // pg_dump was ended: its session goes once the lock it waited for is released.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE public.zz_plain%'",
    ) != "0"
    {
        assert!(
            std::time::Instant::now() < until,
            "pg_dump's session lingers"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// GET a path from the daemon's listener: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{database=\"app\"}} ")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn scheduled_backup_shows_in_metrics_and_schedule() {
    let w = World::local();
    let port = free_port();
    let (cron, at) = in_seconds(5);
    let cfg = config(
        &w,
        "d.toml",
        &format!(
            "[daemon]\ncron_seconds = true\ngrace_period = \"30s\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n[schedule]\nbackup = \"{cron}\"\nverify = \"quick\"\ndrill = \"off\"\nprune = \"0 30 5 * * *\"\ncatch_up = false\n"
        ),
    );
    let d = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "d");
    d.wait_for("serving /metrics and /healthz", 10);
    let (status, body) = http_get(port, "/healthz");
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(body, "ok\n");
    let (_, text) = http_get(port, "/metrics");
    assert!(metric(&text, "pgdr_backup_last_success_timestamp_seconds").is_none());
    let next = text
        .lines()
        .find(|l| {
            l.starts_with("pgdr_job_next_run_timestamp_seconds{database=\"app\",job=\"backup\"}")
        })
        .unwrap_or_else(|| panic!("{text}"));
    assert!(next.ends_with(&format!(" {}", at.timestamp())), "{next}");
    wait_until(at);
    d.wait_for("job succeeded", 30);
    let (_, text) = http_get(port, "/metrics");
    let list = w.list();
    assert_eq!(list.len(), 1);
    let b = &list[0];
    let started: chrono::DateTime<chrono::Utc> = b["started_at"].as_str().unwrap().parse().unwrap();
    let finished =
        started.timestamp_millis() as f64 / 1000.0 + b["duration_seconds"].as_f64().unwrap();
    let ts = metric(&text, "pgdr_backup_last_success_timestamp_seconds").unwrap();
    assert!((ts - finished).abs() < 0.01, "{ts} vs {finished}\n{text}");
    assert_eq!(
        metric(&text, "pgdr_backup_last_size_bytes").unwrap(),
        b["stored_bytes"].as_f64().unwrap()
    );
    assert!(metric(&text, "pgdr_backup_last_duration_seconds").unwrap() > 0.0);
    assert_eq!(
        metric(&text, "pgdr_verify_last_passed"),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("pgdr_job_runs_total{database=\"app\",job=\"backup\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains(b["id"].as_str().unwrap()),
        "no backup id in labels"
    );

    // `pgdr schedule`: every job, its next runs, its last result from the repository.
    let c = w.pgdr_config(&cfg, &["schedule"]);
    let s = run(c).ok().stdout;
    assert!(s.contains(&format!("app backup: {cron} (UTC)")), "{s}");
    assert!(s.contains("app verify: after each backup (quick)"), "{s}");
    assert!(s.contains("app prune: 0 30 5 * * * (UTC)"), "{s}");
    assert!(
        s.contains("  last  succeeded")
            && s.contains(&format!("backup {}", b["id"].as_str().unwrap())),
        "{s}"
    );
    assert!(s.contains("[daemon record]"), "{s}");
    let prune_next = s
        .lines()
        .skip_while(|l| !l.starts_with("app prune"))
        .nth(1)
        .unwrap();
    assert_eq!(
        prune_next.matches("05:30:00").count() + prune_next.matches("05:30 UTC").count(),
        3,
        "{prune_next}"
    );
    assert_eq!(d.term(30), 0);
}

#[test]
fn webhook_receiver_gets_the_failure() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempdir();
    let (_, recipient) = keypair(dir.path());
    // The receiver: accepts POSTs on 127.0.0.1, answers 200, hands the bodies over.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<(String, serde_json::Value)>();
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got).to_string();
                        let Some(h) = text.find("\r\n\r\n") else { continue };
                        let len: usize = text[..h]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if got.len() < h + 4 + len {
                            continue;
                        }
                        let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                        let body = serde_json::from_str(&text[h + 4..h + 4 + len]).unwrap();
                        let _ = tx.send((path, body));
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                            .await;
                        return;
                    }
                });
            }
        })
    });
    // A source nobody listens on: the backup fails at once.
    let (cron, at) = in_seconds(5);
    let cfg = dir.path().join("d.toml");
    std::fs::write(
        &cfg,
        format!(
            "[daemon]\ncron_seconds = true\n[schedule]\nbackup = \"{cron}\"\nverify = \"off\"\ndrill = \"off\"\nprune = \"off\"\ncatch_up = false\n\
             [[webhook]]\nurl = \"http://127.0.0.1:{port}/generic\"\n\
             [[webhook]]\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\n\
             [[database]]\nname = \"app\"\nurl = \"postgres://postgres@127.0.0.1:{}/app\"\n",
            free_port()
        ),
    )
    .unwrap();
    let repo = dir.path().join("repo");
    let mut c = pgdr_cmd();
    c.arg("daemon")
        .arg("--config")
        .arg(&cfg)
        .arg("--repo")
        .arg(&repo);
    c.arg("--recipient").arg(&recipient);
    let d = Daemon::start(c, dir.path(), "d");
    d.wait_for("daemon started", 10);
    wait_until(at);
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 2 {
        let (path, body) = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no notification within 30s:\n{}", d.log()));
        got.insert(path, body);
    }
    let g = &got["/generic"];
    assert_eq!(g["database"], "app");
    assert_eq!(g["job"], "backup");
    assert_eq!(g["outcome"], "failed");
    assert!(
        g["error"].as_str().unwrap().contains("database 'app'"),
        "{g}"
    );
    assert!(g["duration_seconds"].as_f64().unwrap() >= 0.0);
    let s = &got["/slack"];
    assert!(
        s["text"]
            .as_str()
            .unwrap()
            .starts_with(":red_circle: pgdr backup of 'app' failed on "),
        "{s}"
    );
    assert_eq!(d.term(20), 0);
    // The failure is remembered in the repository, so `status` reports it.
    let mut c = pgdr_cmd();
    c.arg("status")
        .arg("--config")
        .arg(&cfg)
        .arg("--repo")
        .arg(&repo);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("problem: database 'app': the last scheduled backup ("),
        "{}",
        r.stdout
    );
}

#[test]
fn missed_jobs_run_once_at_start_up() {
    let w = World::local();
    let m = w.backup();
    // The backup is fresh (not missed); the drill and prune never ran (missed).
    let cfg = config(
        &w,
        "d.toml",
        "[daemon]\ngrace_period = \"60s\"\n[schedule]\nbackup = \"0 2 * * *\"\nverify = \"off\"\ndrill = \"0 4 1 * *\"\nprune = \"30 5 * * *\"\n[retention]\nkeep_last = 5\n",
    );
    let d = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "d");
    d.wait_for("daemon started", 10);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while d.log().matches("job succeeded").count() < 2 {
        assert!(
            std::time::Instant::now() < until && !d.log().contains("job failed"),
            "{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = d.log();
    assert_eq!(log.matches("\"catch-up\"").count(), 2, "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("job started") && l.contains("\"backup\"")),
        "{log}"
    );
    assert_eq!(d.term(30), 0);
    let root = local_root(&w);
    for job in ["drill", "prune"] {
        let j: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(format!("app/jobs/{job}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(j["last_run"]["outcome"], "succeeded", "{job}: {j}");
    }
    assert!(
        !root.join("app/jobs/drill.lease").exists(),
        "the lease is released"
    );
    let list = w.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], m["id"]);
    // Started again: nothing is missed any more, so nothing runs.
    let d = Daemon::start(daemon_cmd(&w, &cfg), w.dir.path(), "d2");
    d.wait_for("daemon started", 10);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!d.log().contains("job started"), "{}", d.log());
    assert_eq!(d.term(20), 0);
}

/// On S3 the leftovers of an interrupted backup are incomplete multipart uploads: listed by
/// `Store::leftovers` once older than the cutoff, and aborted by `remove_leftover`.
#[tokio::test(flavor = "multi_thread")]
async fn s3_incomplete_multipart_uploads_are_leftovers() {
    use pgdr::store::{ByteStream, Store};
    use std::sync::Arc;
    use std::time::Duration;
    let store = Arc::new(crate::common::garage::garage().store("leftovers").await);
    // A put that goes on for a while (1 MiB every 50 ms): its upload is in progress.
    let body: ByteStream = Box::pin(futures::stream::unfold(0u32, |i| async move {
        if i >= 400 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok(bytes::Bytes::from(vec![i as u8; 1 << 20])), i + 1))
    }));
    let put = tokio::spawn({
        let s = store.clone();
        async move { s.put("app/20261126T020000.000Z/dump.zst.age", body).await }
    });
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let future_cutoff = || chrono::Utc::now() + chrono::Duration::minutes(1);
    let found = loop {
        let l = store.leftovers(future_cutoff()).await.unwrap();
        if !l.is_empty() {
            break l;
        }
        assert!(
            std::time::Instant::now() < until,
            "no multipart upload started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "app/20261126T020000.000Z/dump.zst.age");
    assert_eq!(found[0].what, "multipart upload");
    // Younger than the cutoff: not a leftover (it may be a running backup).
    let old_cutoff = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(store.leftovers(old_cutoff).await.unwrap().is_empty());
    store.remove_leftover(&found[0]).await.unwrap();
    assert!(
        put.await.unwrap().is_err(),
        "the put loses its aborted upload"
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !store.leftovers(future_cutoff()).await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < until, "upload still listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.list("").await.unwrap().is_empty());
}
