//! libpq's environment for the source (PGHOST, PGPORT, PGDATABASE, PGUSER, PGSERVICE), kept
//! away from restore targets and the scratch cluster; plain stderr when it is not a terminal.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A database of its own on the world's cluster, so a backup of it cannot be `app` by luck.
fn make_envdb(pg: &Pg) {
    pg.create_db("envdb");
    pg.psql(
        "envdb",
        "CREATE TABLE marker (v int); INSERT INTO marker SELECT generate_series(1, 42)",
    );
}

/// pgdr with the repository and recipient but no --source: the source is the environment.
fn without_source(w: &World, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = pgdr_cmd();
    c.args(args);
    w.repo.apply(&mut c);
    // As variables: each command reads only those of the flags it takes.
    c.env("PGDR_RECIPIENT", &w.recipient);
    c.env("PGDR_IDENTITY", &w.identity);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The one backup of `db`: its manifest as `show --json` prints it.
fn only_backup(w: &World, db: &str) -> serde_json::Value {
    let list = run(without_source(w, &["list", "--json"], &[])).ok().json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["database"] == db)
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{list}");
    run(without_source(w, &["show", ids[0], "--json"], &[]))
        .ok()
        .json()
}

fn marker_rows(m: &serde_json::Value) -> u64 {
    m["fingerprint"]["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "marker")
        .unwrap_or_else(|| panic!("marker not in the fingerprint: {m}"))["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn backup_with_only_the_pg_environment() {
    let w = World::local();
    make_envdb(&w.pg);
    let env = [
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", w.pg.port.to_string()),
        ("PGDATABASE", "envdb".to_string()),
        ("PGUSER", "postgres".to_string()),
        ("PGPASSWORD", PG_PASSWORD.to_string()),
    ];
    let r = run(without_source(&w, &["backup", "-v"], &env)).ok();
    // Logs went to a pipe: plain text, no colour codes (and there were log lines to colour).
    assert!(r.stderr.contains("INFO"), "{}", r.stderr);
    assert!(!r.stderr.contains("\x1b["), "{:?}", r.stderr);
    let m = only_backup(&w, "envdb");
    assert_eq!(m["source"]["database"], "envdb");
    assert_eq!(marker_rows(&m), 42);
}

fn service_file(dir: &Path, port: u16) -> std::path::PathBuf {
    let f = dir.join("pg_service.conf");
    std::fs::write(
        &f,
        format!(
            "# test services\n[other]\nhost=192.0.2.1\n\n[pgdrtest]\nhost=127.0.0.1\nport={port}\ndbname=envdb\nuser=postgres\n"
        ),
    )
    .unwrap();
    f
}

#[test]
fn backup_through_pgservice_and_a_bad_service_name() {
    let w = World::local();
    make_envdb(&w.pg);
    let file = service_file(w.dir.path(), w.pg.port);
    let env = |service: &str| {
        vec![
            ("PGSERVICE", service.to_string()),
            ("PGSERVICEFILE", file.display().to_string()),
            ("PGPASSWORD", PG_PASSWORD.to_string()),
            // The service's port and host win over the environment's, as in libpq.
            ("PGPORT", "1".to_string()),
        ]
    };
    run(without_source(&w, &["backup", "--quiet"], &env("pgdrtest"))).ok();
    let m = only_backup(&w, "envdb");
    assert_eq!(marker_rows(&m), 42);

    let r = run(without_source(&w, &["backup"], &env("nosuch")));
    assert_eq!(r.code, 2, "{r:?}");
    let first = r.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("pgdr: error: PGSERVICE: service 'nosuch' is not defined in ")
            && first.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{}",
        r.stderr
    );
    // Nothing more was written: still the one backup.
    only_backup(&w, "envdb");
}

/// The lines a cluster started with log_connections logged after `from` bytes of its log.
fn connections_since(pg: &Pg, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap();
    log[from..]
        .lines()
        .filter(|l| l.contains("connection received") || l.contains("connection authorized"))
        .map(str::to_string)
        .collect()
}

#[test]
fn restore_and_verify_never_follow_the_callers_pg_environment() {
    let w = World::local();
    w.backup();
    // Another cluster the caller's PG* variables point at, with an `app` of its own.
    let other = Pg::start_with("-c log_connections=on");
    other.create_db("app");
    other.psql(
        "app",
        "CREATE TABLE mine (v int); INSERT INTO mine VALUES (7)",
    );
    let mark = std::fs::read_to_string(other.dir.path().join("log"))
        .unwrap()
        .len();
    let hostile = [
        ("PGHOST", "127.0.0.1".to_string()),
        ("PGPORT", other.port.to_string()),
        ("PGDATABASE", "app".to_string()),
        ("PGUSER", "postgres".to_string()),
        ("PGPASSWORD", PG_PASSWORD.to_string()),
        (
            "PGOPTIONS",
            "-c default_transaction_read_only=on".to_string(),
        ),
    ];

    let mut c = w.restore_cmd(&w.pg, "app_copy", &["--yes"]);
    for (k, v) in &hostile {
        c.env(k, v);
    }
    run(c).ok();
    assert_eq!(
        w.pg.psql("app_copy", "SELECT count(*) FROM public.orders"),
        "5000"
    );

    let recs = run(without_source(&w, &["verify", "--json"], &hostile))
        .ok()
        .json();
    assert_eq!(recs[0]["outcome"], "passed", "{recs}");
    assert_eq!(recs[0]["mode"], "full", "{recs}");

    assert_eq!(connections_since(&other, mark), Vec::<String>::new());
    assert!(!other.exists("app_copy"));
    assert_eq!(
        other.psql(
            "app",
            "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'"
        ),
        "mine"
    );
}
