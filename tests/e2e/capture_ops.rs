//! Change capture in operation: the daemon runs it (under the same lease as `capture run`),
//! `status` reports lag, slot, window and gaps, `prune` keeps the segments from the oldest
//! kept anchor, `verify` fails on a gap. Oracles: the workload's own txids (noted after COMMIT
//! returned), the server's own catalog (`pg_replication_slots`, `pg_current_wal_lsn()`), and
//! the repository's files read directly.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

pub(crate) fn world() -> World {
    let pg = Pg::start_logical();
    pg.create_db("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, v text, n int DEFAULT 0);",
    );
    World::around_pg(pg, None)
}

/// A config whose only work is the capture of `app` (the URL comes from --source), with
/// small segments so the settings visibly reach the runner.
pub(crate) fn capture_config(w: &World, extra: &str) -> PathBuf {
    w.config_file(
        "capture.toml",
        &format!(
            "[daemon]\ngrace_period = \"20s\"\n[schedule]\nbackup = \"off\"\nverify = \"off\"\ndrill = \"off\"\nprune = \"off\"\ncatch_up = false\n{extra}\n\
             [[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n\
             [database.capture]\nsegment_age = \"1s\"\nsegment_bytes = \"64KiB\"\nheartbeat = \"1s\"\n"
        ),
    )
}

/// One transaction through psql; its txid is printed only after COMMIT returned.
pub(crate) fn txn(w: &World, body: &str) -> u64 {
    let out = w.pg.psql(
        "app",
        &format!("BEGIN; {body}; SELECT txid_current(); COMMIT;"),
    );
    out.lines()
        .find_map(|l| l.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no txid in {out:?}"))
        & 0xFFFF_FFFF
}

/// The segment entries in the repository, read as files (oldest first).
fn entries(w: &World) -> Vec<serde_json::Value> {
    let dir = w.dir.path().join("repo/app/capture/segments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|f| f.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// The xids `capture check` finds stored, once `want` are there (or the time is up).
pub(crate) fn stored_xids(w: &World, want: &[u64]) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = w.run(&[
            "capture",
            "check",
            "--database",
            "app",
            "--json",
            "--list-transactions",
        ]);
        let xids: Vec<u64> = r.json()["transaction_list"]
            .as_array()
            .map(|a| a.iter().map(|t| t["xid"].as_u64().unwrap()).collect())
            .unwrap_or_default();
        if want.iter().all(|x| xids.contains(x)) || Instant::now() > deadline {
            return xids;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub(crate) fn start_daemon(w: &World, cfg: &Path) -> (Child, PathBuf) {
    let log = w.dir.path().join("daemon.log");
    let mut c = w.pgdr_config(cfg, &["daemon"]);
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    (c.spawn().unwrap(), log)
}

pub(crate) fn wait_log(log: &Path, what: &str, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(what)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "'{what}' not logged within {secs}s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

pub(crate) fn term(mut child: Child, secs: u64) -> i32 {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        assert!(Instant::now() < until, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn daemon_captures_an_enabled_database_and_a_second_runner_is_refused() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let cfg = capture_config(&w, "");
    let (daemon, log) = start_daemon(&w, &cfg);
    wait_log(&log, "capture started", 20);
    let mut want: Vec<u64> = (0..5)
        .map(|i| txn(&w, &format!("INSERT INTO t (v) VALUES ('d{i}')")))
        .collect();
    // ~1 MB in one transaction: beyond segment_bytes = 64KiB of the config, not the 16 MiB
    // default, so a segment closing by size shows the config reached the daemon's runner.
    want.push(txn(
        &w,
        "INSERT INTO t (v) SELECT repeat(md5(g::text), 16) FROM generate_series(1, 2000) g",
    ));
    let stored = stored_xids(&w, &want);
    for x in &want {
        assert_eq!(
            stored.iter().filter(|s| *s == x).count(),
            1,
            "txid {x} stored once: {stored:?}"
        );
    }
    assert!(
        entries(&w).iter().any(|e| e["closed_by"] == "size"),
        "no segment closed by size: the config's segment_bytes did not reach the runner"
    );
    // The daemon holds the lease: `capture run` elsewhere refuses.
    let second = w.run(&["capture", "run"]);
    assert_ne!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );

    // Status while it runs: lag small, the slot reserved, retained WAL as the server says.
    let slot_restart = || {
        lsn(&w.pg.psql(
            "app",
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgdr_app'",
        ))
    };
    let restart_before = slot_restart();
    let st = run(w.pgdr_config(&cfg, &["status", "--json"]));
    let d = &st.json()["databases"][0];
    let c = &d["capture"];
    assert_eq!(d["rpo_source"], "capture", "{d:#}");
    assert!(d["rpo_seconds"].as_f64().unwrap() < 60.0, "{d:#}");
    assert_eq!(c["slot"]["wal_status"], "reserved", "{c:#}");
    let newest_end = entries(&w)
        .iter()
        .map(|e| lsn(e["end"].as_str().unwrap()))
        .max()
        .unwrap();
    assert!(lsn(c["durable"].as_str().unwrap()) <= newest_end, "{c:#}");
    let server_now = lsn(&w.pg.psql("app", "SELECT pg_current_wal_lsn()"));
    let (lag, server) = (
        c["lag_bytes"].as_u64().unwrap(),
        lsn(c["server_lsn"].as_str().unwrap()),
    );
    assert!(server <= server_now, "{c:#}");
    assert_eq!(server - lsn(c["durable"].as_str().unwrap()), lag, "{c:#}");
    // restart_lsn only moves forward: the status's lies between the one read before and after.
    let restart_after = slot_restart();
    let retained = c["slot"]["retained_bytes"].as_u64().unwrap();
    assert!(retained <= server - restart_before, "{c:#}");
    assert!(retained >= server.saturating_sub(restart_after), "{c:#}");
    assert!(c["gaps"].as_array().unwrap().is_empty(), "{c:#}");

    assert_eq!(term(daemon, 60), 0);
    wait_log(&log, "capture stopped", 1);
    // After the daemon: a runner of its own takes over (the lease was released).
    let mut runner = w.pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    runner.stdout(Stdio::null()).stderr(Stdio::piped());
    let runner = runner.spawn().unwrap();
    let after = txn(&w, "INSERT INTO t (v) VALUES ('after')");
    let stored = stored_xids(&w, &[after]);
    unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) };
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored.iter().filter(|s| **s == after).count(), 1);
}

#[test]
fn status_names_a_missing_slot_and_a_gap_and_fails() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    w.run(&["backup", "--quiet"]).ok();
    let mut runner = w.pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    runner.stdout(Stdio::null()).stderr(Stdio::null());
    let mut runner = runner.spawn().unwrap();
    let x = txn(&w, "INSERT INTO t (v) VALUES ('a')");
    assert!(stored_xids(&w, &[x]).contains(&x));
    unsafe { libc::kill(runner.id() as i32, libc::SIGTERM) };
    runner.wait().unwrap();

    let ok = w.run(&["status", "--json"]);
    let d = &ok.json()["databases"][0];
    assert_eq!(ok.code, 0, "{d:#}");
    let c = &d["capture"];
    let manifest_time = w.run(&["list", "--json"]).json()[0]["snapshot_time"].clone();
    assert!(!c["recoverable_from"].is_null(), "{c:#}");
    assert_eq!(
        c["recoverable_from"].as_str().map(|s| s[..19].to_string()),
        manifest_time.as_str().map(|s| s[..19].to_string()),
        "the window starts at the anchored backup: {c:#}"
    );

    let text = w.run(&["status"]);
    assert_eq!(text.code, 0, "{}", text.stdout);
    for want in [
        "RPO (capture)",
        "capture lag",
        "wal_status reserved",
        "recoverable      from ",
        "capture gaps     none",
    ] {
        assert!(text.stdout.contains(want), "{want}: {}", text.stdout);
    }

    w.pg.psql("app", "SELECT pg_drop_replication_slot('pgdr_app')");
    let r = w.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("capture slot 'pgdr_app' is missing"),
        "{}",
        r.stdout
    );
    // The runner records the gap (and goes on from a new slot); status names the gap.
    record_gap(&w);
    let r = w.run(&["status", "--json"]);
    assert_eq!(r.code, 1);
    let j = r.json();
    let problems = j["databases"][0]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("capture gap from")),
        "{problems:?}"
    );
    assert_eq!(
        j["databases"][0]["capture"]["gaps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// With the slot gone: a runner records the gap, replaces the slot, takes an anchor; then it
/// is stopped.
fn record_gap(w: &World) {
    let backups = || w.run(&["list", "--json"]).json().as_array().unwrap().len();
    let before = backups();
    let runner = start_runner(w);
    let gaps = w.dir.path().join("repo/app/capture/gaps");
    let until = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&gaps).map_or(0, |d| d.count()) == 0 || backups() == before {
        assert!(Instant::now() < until, "no gap and anchor recorded");
        std::thread::sleep(Duration::from_millis(300));
    }
    stop_runner(runner);
}

pub(crate) fn start_runner(w: &World) -> Child {
    let mut c = w.pgdr(&["capture", "run", "--segment-age", "1s", "--heartbeat", "1s"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c.spawn().unwrap()
}

pub(crate) fn stop_runner(c: Child) {
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cut of the newest backup, from its manifest file.
fn newest_cut(w: &World) -> u64 {
    let list = w.run(&["list", "--json"]).json();
    let id = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join(format!("repo/app/{id}/manifest.json"))).unwrap(),
    )
    .unwrap();
    lsn(m["snapshot"]["cut_lsn"]
        .as_str()
        .expect("an anchored backup"))
}

#[test]
fn prune_keeps_the_stream_from_the_oldest_kept_anchor() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    let runner = start_runner(&w);
    w.run(&["backup", "--quiet"]).ok();
    let before: Vec<u64> = (0..3)
        .map(|i| {
            let x = txn(&w, &format!("INSERT INTO t (v) VALUES ('a{i}')"));
            std::thread::sleep(Duration::from_millis(1200));
            x
        })
        .collect();
    stored_xids(&w, &before);
    w.run(&["backup", "--quiet"]).ok();
    let cut = newest_cut(&w);
    let after: Vec<u64> = (0..3)
        .map(|i| txn(&w, &format!("INSERT INTO t (v) VALUES ('b{i}')")))
        .collect();
    stored_xids(&w, &after);
    stop_runner(runner);
    let segments_before = entries(&w).len();
    assert!(
        entries(&w)
            .iter()
            .any(|e| lsn(e["end"].as_str().unwrap()) <= cut),
        "the workload before the second backup filled segments before its cut"
    );

    let cfg = w.config_file(
        "prune.toml",
        "[retention]\nkeep_last = 1\nmin_verified = 0\n[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n",
    );
    let r = run(w.pgdr_config(&cfg, &["prune", "--json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let left = entries(&w);
    assert_eq!(
        w.run(&["list", "--json"]).json().as_array().unwrap().len(),
        1
    );
    assert!(left.len() < segments_before, "no segment removed");
    // Nothing wholly before the kept cut stays; the segment holding it does.
    let first = &left[0];
    assert!(lsn(first["start"].as_str().unwrap()) <= cut, "{first}");
    assert!(lsn(first["end"].as_str().unwrap()) > cut, "{first}");
    // Every object without an entry before the kept stream is gone too.
    let dir = w.dir.path().join("repo/app/capture/segments");
    let objects = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|f| {
            !f.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(objects, left.len());
    // What stays is whole: check passes and holds every transaction after the cut.
    let c = w.run(&[
        "capture",
        "check",
        "--database",
        "app",
        "--json",
        "--list-transactions",
    ]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let xids: Vec<u64> = c.json()["transaction_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["xid"].as_u64().unwrap())
        .collect();
    for x in &after {
        assert!(xids.contains(x), "{x} after the kept anchor is gone");
    }
    assert!(!xids.contains(&before[0]), "the oldest segments stayed");
}

#[test]
fn verify_of_a_captured_database_checks_the_stream_and_fails_on_a_gap() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    w.run(&["backup", "--quiet"]).ok();
    let runner = start_runner(&w);
    let x = txn(&w, "INSERT INTO t (v) VALUES ('v')");
    stored_xids(&w, &[x]);
    stop_runner(runner);

    let r = w.run(&["verify", "--quick"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("capture of 'app': complete"),
        "{}",
        r.stdout
    );

    // The slot goes behind pgdr's back; the next run records the gap.
    w.pg.psql("app", "SELECT pg_drop_replication_slot('pgdr_app')");
    record_gap(&w);
    let r = w.run(&["verify", "--quick"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("capture of 'app': NOT COMPLETE"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("GAP ") && r.stdout.contains("slot-missing"),
        "{}",
        r.stdout
    );
    let j = w.run(&["verify", "--quick", "--json"]).json();
    // The backup itself is proven; the gap is the run's finding, not the dump's.
    assert_eq!(j["verifications"][0]["outcome"], "passed", "{j:#}");
    let gaps = j["capture_checks"][0]["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{j:#}");
    let recorded: Vec<PathBuf> = std::fs::read_dir(w.dir.path().join("repo/app/capture/gaps"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    assert_eq!(recorded.len(), 1);
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&recorded[0]).unwrap()).unwrap();
    assert_eq!(gaps[0]["from"], g["from"]);
}

#[test]
fn the_capture_section_reaches_enable_and_a_bad_value_is_named_with_its_fix() {
    let w = world();
    let cfg = w.config_file(
        "enable.toml",
        "[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n\
         [database.capture]\nanchor_timeout = \"7s\"\n",
    );
    run(w.pgdr_config(&cfg, &["capture", "enable"])).ok();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("repo/app/capture/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["anchor_timeout_seconds"], 7, "{state:#}");
    // The flag wins over the file.
    run(w.pgdr_config(&cfg, &["capture", "enable", "--anchor-timeout", "9s"])).ok();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("repo/app/capture/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["anchor_timeout_seconds"], 9, "{state:#}");

    let bad = w.config_file(
        "bad.toml",
        "[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n\
         [database.capture]\nsegment_age = \"3h\"\nadmin_url = \"host=db password=${PGDR_E2E_ADMIN_PW}\"\n",
    );
    let r = run({
        let mut c = w.pgdr_config(&bad, &["capture", "run"]);
        c.env("PGDR_E2E_ADMIN_PW", "s3cret-admin");
        c
    });
    assert_eq!(r.code, 2, "{}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("database[0].capture.segment_age is out of range"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("\"1s\" to \"1h\""), "{}", r.stderr);
    let bad = w.config_file(
        "bad2.toml",
        "[[database]]\nname = \"app\"\nurl = \"postgres://x@127.0.0.1:1/app\"\n\
         [database.capture]\nadmin_url = \"host=db password=${PGDR_E2E_ADMIN_PW}\"\n",
    );
    let r = run({
        let mut c = w.pgdr_config(&bad, &["capture", "run"]);
        c.env("PGDR_E2E_ADMIN_PW", "s3cret-admin");
        c
    });
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("database[0].capture.admin_url is not a postgres:// URL"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("s3cret-admin"),
        "the secret leaked: {}",
        r.stderr
    );
}
