//! The anchored dump's exact cut against a commit that is in WAL but not yet visible: a
//! synchronous standby that does not exist holds a COMMIT, a backup starts while it hangs
//! (the anchor slot waits for it), then the setting is reloaded and the commit released. The
//! oracle is the test's own: the held row counted in a restore of the dump, and the held xid
//! (from `pg_stat_activity` while it waited) among the stored transactions at or after the
//! cut. It must be found exactly once, in one or the other.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::capture_run::{check, start_runner, stop_runner, txn, world};
use crate::common::*;

/// Poll `sql` on `app` until it returns a non-empty answer.
fn wait_for(w: &World, sql: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = w.pg.psql("app", sql);
        if !out.is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lsn(s: &str) -> u64 {
    crate::capture_run::lsn(s)
}

#[test]
fn a_commit_held_by_a_missing_standby_is_found_once_in_the_dump_or_the_stream() {
    let w = world();
    w.run(&["capture", "enable"]).ok();
    w.pg.psql("app", "INSERT INTO t (v) VALUES ('before')");
    w.pg.psql(
        "app",
        "ALTER SYSTEM SET synchronous_standby_names = 'missing'",
    );
    w.pg.psql("app", "SELECT pg_reload_conf()");

    // The held commit: in WAL, waiting for the standby, not yet visible to anyone.
    let mut held = Command::new(pg_bin().join("psql"))
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "app"])
        .arg("-p")
        .arg(w.pg.port.to_string())
        .args(["-c", "INSERT INTO t (v) VALUES ('held')"])
        .env("PGPASSWORD", PG_PASSWORD)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let xid: u64 = wait_for(
        &w,
        "SELECT backend_xid FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        "the held commit's wait",
    )
    .parse()
    .unwrap();
    assert_eq!(
        w.pg.psql("app", "SELECT count(*) FROM t WHERE v = 'held'"),
        "0",
        "the held row is not visible yet"
    );

    // The backup starts while the commit hangs; its anchor slot waits for the held xid.
    let backup = {
        let c = w.pgdr(&["backup", "--quiet"]);
        std::thread::spawn(move || run(c))
    };
    wait_for(
        &w,
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pgdr\\_anchor%'",
        "the anchor slot's session",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !backup.is_finished(),
        "the backup did not wait for the held commit"
    );

    // Release: without a synchronous standby named, waiting commits return.
    w.pg.psql("app", "ALTER SYSTEM RESET synchronous_standby_names");
    w.pg.psql("app", "SELECT pg_reload_conf()");
    assert!(held.wait().unwrap().success());
    backup.join().unwrap().ok();
    let list = w.list();
    let id = list.last().unwrap()["id"].as_str().unwrap().to_string();
    let m = w.run(&["show", &id, "--json"]).ok().json();
    assert_eq!(m["snapshot"]["method"], "replication_slot", "{m:#}");
    let cut = lsn(m["snapshot"]["cut_lsn"].as_str().unwrap());

    // In the dump: restore it and count with the test's own query.
    run(w.restore_cmd(&w.pg, "restored", &["--yes", "--backup", &id])).ok();
    let in_dump: u64 =
        w.pg.psql("restored", "SELECT count(*) FROM t WHERE v = 'held'")
            .parse()
            .unwrap();
    assert_eq!(
        w.pg.psql("restored", "SELECT count(*) FROM t WHERE v = 'before'"),
        "1"
    );

    // In the stream: every stored transaction, until one committed after the release is there.
    let after = txn(&w, "INSERT INTO t (v) VALUES ('after')", "COMMIT");
    let runner = start_runner(&w);
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let (_, j) = check(&w);
        let list: Vec<(u64, u64)> = j["transaction_list"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        (
                            t["xid"].as_u64().unwrap(),
                            lsn(t["commit_lsn"].as_str().unwrap()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if list.iter().any(|t| t.0 == after) || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    stop_runner(runner);
    assert!(stored.iter().any(|t| t.0 == after), "{stored:?}");
    let held_stored: Vec<_> = stored.iter().filter(|t| t.0 == xid).collect();
    assert_eq!(held_stored.len(), 1, "xid {xid} in {stored:?}");
    let in_stream = held_stored.iter().filter(|t| t.1 >= cut).count() as u64;
    assert_eq!(
        in_dump + in_stream,
        1,
        "xid {xid}: {in_dump} in the dump, {in_stream} in the stream after the cut {cut:x}; stored {stored:?}"
    );
}
