//! A managed restore killed while it holds the platform's triggers disabled (issue 15): the
//! states were recorded in the repository first, and the next run puts each back exactly.
//! Assertions are the test's own catalog queries.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::managed::{managed_target_with, restore_as_admin, restore_as_admin_cmd, source_world};

/// Every user trigger of auth.users and its `tgenabled`.
const STATES: &str = "SELECT tgname, tgenabled FROM pg_trigger
                       WHERE tgrelid = 'auth.users'::regclass AND NOT tgisinternal
                         AND tgname <> 'on_auth_user_created' ORDER BY 1";

#[test]
fn triggers_held_disabled_by_a_killed_restore_are_put_back_by_the_next_run() {
    let w = source_world();
    // No session_replication_role: the admin disables the triggers as the table's owner.
    let t = managed_target_with("GRANT platform_auth TO admin;");
    t.psql(
        "app",
        "SET ROLE platform_auth;
         CREATE FUNCTION auth.noop() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN INSERT INTO auth.audit_log (user_id) VALUES (NULL); RETURN new; END $$;
         CREATE TRIGGER users_noop AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.noop();
         CREATE TRIGGER users_always AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.noop();
         CREATE TRIGGER users_replica AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION auth.noop();
         ALTER TABLE auth.users DISABLE TRIGGER users_noop;
         ALTER TABLE auth.users ENABLE ALWAYS TRIGGER users_always;
         ALTER TABLE auth.users ENABLE REPLICA TRIGGER users_replica;
         RESET ROLE;",
    );
    let before = t.psql("app", STATES);
    assert_eq!(
        before,
        "users_always|A\nusers_audit|O\nusers_noop|D\nusers_replica|R"
    );

    let marker = w.dir.path().join("paused");
    let mut c = restore_as_admin_cmd(&w, &t, "app", &["--yes"]);
    c.env("PGDR_RESTORE_PAUSE", "after-triggers-disabled")
        .env("PGDR_RESTORE_PAUSE_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut paused = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the restore never disabled the triggers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    paused.kill().unwrap(); // SIGKILL
    paused.wait().unwrap();
    // Killed with every trigger disabled; the repository holds their states before.
    assert_eq!(
        t.psql("app", STATES),
        "users_always|D\nusers_audit|D\nusers_noop|D\nusers_replica|D"
    );
    let held = held_records(&w);
    assert_eq!(held.len(), 1, "{held:?}");
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&held[0]).unwrap()).unwrap();
    assert_eq!(rec["database"], "app", "{rec:#}");
    assert_eq!(rec["triggers"].as_array().unwrap().len(), 4, "{rec:#}");

    // The next run notices, puts each back as it was, says so, then restores.
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("triggers held disabled by an interrupted restore (by admin on")
            && r.stdout.contains(
                "put back as they were: auth.users (users_always) A, auth.users (users_audit) O, \
                 auth.users (users_noop) D, auth.users (users_replica) R"
            ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert_eq!(t.psql("app", STATES), before);
    assert!(held_records(&w).is_empty());
    // The restored rows fired no platform trigger (the second run disabled them again).
    assert_eq!(t.psql("app", "SELECT count(*) FROM auth.audit_log"), "0");
}

/// The held-trigger records in the world's local repository.
fn held_records(w: &World) -> Vec<std::path::PathBuf> {
    let dir = w.dir.path().join("repo/app/restores/triggers");
    match std::fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `GRANT ... ON PARAMETER` of the backup's globals needs a superuser: on a managed target it
/// is a named item of the plan, the summary and the record, not a warning.
#[test]
fn parameter_grants_are_named_skipped_on_a_managed_target() {
    let w = crate::managed::world_from(
        "GRANT SET ON PARAMETER work_mem TO app_owner;
         CREATE TABLE public.notes (id int PRIMARY KEY, body text);
         INSERT INTO public.notes VALUES (1, 'keep');",
    );
    let t =
        crate::managed::admin_server("GRANT SET ON PARAMETER session_replication_role TO admin;");
    let item =
        "skipped: GRANT SET ON PARAMETER work_mem TO app_owner: needs superuser (admin is not one";
    let r = restore_as_admin(&w, &t, &["--dry-run"]).ok();
    assert!(r.stdout.contains(item), "{}", r.stdout);
    let r = restore_as_admin(&w, &t, &["--yes"]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(r.stdout.contains(item), "{}", r.stdout);
    assert!(!r.stdout.contains("roles warning"), "{}", r.stdout);
    assert!(!r.stderr.contains("ON PARAMETER"), "{}", r.stderr);
    let records = w.dir.path().join("repo/app/restores");
    let rec = std::fs::read_dir(records)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a restore record");
    let rec = std::fs::read_to_string(rec).unwrap();
    assert!(rec.contains(item), "{rec}");
    // Not granted on the target: the test's own catalog query.
    assert_eq!(
        t.psql(
            "postgres",
            "SELECT count(*) FROM pg_parameter_acl WHERE parname = 'work_mem'"
        ),
        "0"
    );
}
