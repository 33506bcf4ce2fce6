//! `pgdr restore`: the emergency restore against a real cluster, asserting content.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `pgdr restore --target <url of db>` on the test's own cluster.
fn restore(w: &World, db: &str, args: &[&str]) -> Command {
    w.restore_cmd(&w.pg, db, args)
}

/// Row counts of the sample's main tables, "users,profiles,orders,events".
fn counts(pg: &Pg, db: &str) -> String {
    pg.psql(
        db,
        "SELECT (SELECT count(*) FROM auth.users) || ',' || (SELECT count(*) FROM public.profiles) \
         || ',' || (SELECT count(*) FROM public.orders) || ',' || (SELECT count(*) FROM public.events)",
    )
}

fn databases(pg: &Pg) -> Vec<String> {
    pg.psql(
        "postgres",
        "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1",
    )
    .lines()
    .map(String::from)
    .collect()
}

fn exists(pg: &Pg, db: &str) -> bool {
    pg.exists(db)
}

fn restore_records(w: &World) -> Vec<serde_json::Value> {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let dir = root.join("app").join("restores");
    files_under(&dir)
        .iter()
        // Records only, not the marks of restores in progress (restores/in-progress/).
        .filter(|f| !f.contains('/'))
        .map(|f| serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap())
        .collect()
}

fn snapshot_text(m: &serde_json::Value) -> String {
    let t: chrono::DateTime<chrono::Utc> = m["snapshot"]["time"].as_str().unwrap().parse().unwrap();
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[test]
fn restore_into_a_new_database_is_proven_and_recorded() {
    let w = World::local();
    let m = w.backup();
    let id = m["id"].as_str().unwrap();
    let r = run(restore(&w, "app_copy", &["--yes"])).ok();
    assert!(
        r.stdout.contains(&format!(
            "restored and proven: backup {id} of 'app' into postgres@127.0.0.1:{}/app_copy",
            w.pg.port
        )),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("fingerprint equal: "), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("snapshot (RPO)   {}", snapshot_text(&m))),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("total (RTO)"), "{}", r.stdout);
    // The plan came first and named the data-loss point.
    assert!(r.stdout.starts_with("restore plan"), "{}", r.stdout);
    assert!(r.stdout.contains("the data-loss point"), "{}", r.stdout);
    assert_eq!(counts(&w.pg, "app_copy"), counts(&w.pg, "app"));

    // Database-level properties came back although pg_restore ran without --create.
    assert_eq!(
        w.pg.psql("app_copy", "SHOW app.settings.environment"),
        "demo"
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'app_copy'"
        ),
        "pgdr sample database"
    );

    // The record is in the repository, without the password.
    let recs = restore_records(&w);
    assert_eq!(recs.len(), 1);
    let rec = &recs[0];
    assert_eq!(rec["outcome"], "restored", "{rec}");
    assert_eq!(rec["mode"], "create");
    assert_eq!(rec["backup_id"], id);
    assert_eq!(rec["jobs"], 1);
    assert_eq!(
        rec["target"],
        format!("postgres@127.0.0.1:{}/app_copy", w.pg.port)
    );
    assert_eq!(rec["snapshot_time"], m["snapshot"]["time"]);
    assert!(rec["total_seconds"].as_f64().unwrap() > 0.0);
    assert!(rec["rpo_seconds"].as_f64().unwrap() > 0.0);
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["globals", "create", "restore", "properties", "verify"]
    );
    assert!(!rec.to_string().contains(PG_PASSWORD));
    assert!(!r.stdout.contains(PG_PASSWORD) && !r.stderr.contains(PG_PASSWORD));
    // Records are not backups.
    assert_eq!(w.list().len(), 1);
}

#[test]
fn non_empty_target_without_a_mode_is_refused_and_untouched() {
    let w = World::local();
    w.backup();
    w.pg.psql("app", "DELETE FROM public.orders WHERE id > 4000");
    let before = counts(&w.pg, "app");
    let r = run(restore(&w, "app", &["--yes"]));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "pgdr: error: target database 'app' on postgres@127.0.0.1:{} is not empty (",
            w.pg.port
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--swap") && r.stderr.contains("--clean"),
        "{}",
        r.stderr
    );
    assert_eq!(counts(&w.pg, "app"), before);
    assert!(before.contains(",4000,"), "{before}");
    assert!(!exists(&w.pg, "app_restoring"));
    assert!(restore_records(&w).is_empty());
}

#[test]
fn swap_puts_the_backup_in_place_and_keeps_the_old_database() {
    let w = World::local();
    w.backup();
    let backed_up = counts(&w.pg, "app");
    w.pg.psql(
        "app",
        "DELETE FROM public.orders WHERE id > 4000; CREATE TABLE public.after_backup (x int)",
    );
    let changed = counts(&w.pg, "app");
    assert_ne!(changed, backed_up);

    // `app` is the configured source (--source): its name must be confirmed.
    let mut c = w.pgdr(&["restore", "--swap", "--yes"]);
    c.arg("--target").arg(w.pg.url("app"));
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--confirm app"), "{}", r.stderr);
    assert_eq!(counts(&w.pg, "app"), changed);

    let mut c = w.pgdr(&["restore", "--swap", "--yes", "--confirm", "app"]);
    c.arg("--target").arg(w.pg.url("app"));
    let r = run(c).ok();
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert!(
        r.stdout.contains("kept as database app_pre_restore_"),
        "{}",
        r.stdout
    );

    // The backup's data is in `app`; the changed database is kept under the pre-restore name.
    assert_eq!(counts(&w.pg, "app"), backed_up);
    let kept: Vec<String> = databases(&w.pg)
        .into_iter()
        .filter(|d| d.starts_with("app_pre_restore_"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", databases(&w.pg));
    assert_eq!(kept[0].len(), "app_pre_restore_".len() + 14);
    assert_eq!(counts(&w.pg, &kept[0]), changed);
    assert_eq!(
        w.pg.psql(&kept[0], "SELECT count(*) FROM public.after_backup"),
        "0"
    );
    assert!(!exists(&w.pg, "app_restoring"));
    // Database-level settings moved with the renamed copy.
    assert_eq!(w.pg.psql("app", "SHOW app.settings.environment"), "demo");

    let rec = &restore_records(&w)[0];
    assert_eq!(rec["mode"], "swap");
    assert_eq!(rec["outcome"], "restored");
    assert_eq!(rec["previous_kept_as"], kept[0].as_str());
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "globals",
            "create",
            "restore",
            "properties",
            "verify",
            "swap"
        ]
    );
}

/// A session held open on a database until dropped.
struct Session(std::process::Child);

impl Session {
    fn open(pg: &Pg, db: &str) -> Session {
        let child = Command::new(pg_bin().join("psql"))
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &pg.port.to_string(), "-d", db])
            .args(["-c", "SELECT pg_sleep(120)"])
            .env("PGPASSWORD", PG_PASSWORD)
            .env("PGAPPNAME", "busy-app")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'busy-app'",
        ) != "1"
        {
            assert!(Instant::now() < deadline, "the session never connected");
            std::thread::sleep(Duration::from_millis(50));
        }
        Session(child)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn clean_drops_and_restores_in_place() {
    let w = World::local();
    w.backup();
    let backed_up = counts(&w.pg, "app");
    w.pg.psql(
        "app",
        "DELETE FROM public.orders WHERE id > 4000; CREATE TABLE public.after_backup (x int)",
    );
    let changed = counts(&w.pg, "app");

    // Another application is connected: without --terminate the drop is refused, naming it.
    let _busy = Session::open(&w.pg, "app");
    let r = run(restore(&w, "app", &["--clean", "--yes"]));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("busy-app"), "{}", r.stderr);
    assert!(r.stderr.contains("--terminate"), "{}", r.stderr);
    assert_eq!(counts(&w.pg, "app"), changed);

    let r = run(restore(&w, "app", &["--clean", "--terminate", "--yes"])).ok();
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert_eq!(counts(&w.pg, "app"), backed_up);
    assert_eq!(
        w.pg.psql(
            "app",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'after_backup'"
        ),
        "0"
    );
    assert!(!databases(&w.pg).iter().any(|d| d.contains("pre_restore")));
    let recs = restore_records(&w);
    let last = recs.last().unwrap();
    assert_eq!(last["mode"], "clean");
    assert_eq!(last["outcome"], "restored");
}

#[test]
fn before_picks_the_newest_backup_at_or_before_the_time() {
    let w = World::local();
    w.backup(); // 5000 orders
    w.pg.psql("app", "DELETE FROM public.orders WHERE id > 4900");
    w.backup(); // 4900
    w.pg.psql("app", "DELETE FROM public.orders WHERE id > 4800");
    w.backup(); // 4800
    let list = w.list();
    assert_eq!(list.len(), 3);
    let times: Vec<chrono::DateTime<chrono::Utc>> = list
        .iter()
        .map(|l| l["snapshot_time"].as_str().unwrap().parse().unwrap())
        .collect();
    let ids: Vec<&str> = list.iter().map(|l| l["id"].as_str().unwrap()).collect();

    // Between the second and the third snapshot: the second backup.
    let between = times[1] + (times[2] - times[1]) / 2;
    let r = run(restore(
        &w,
        "app_before",
        &["--before", &between.to_rfc3339(), "--yes"],
    ))
    .ok();
    assert!(r.stdout.contains(ids[1]), "{}", r.stdout);
    assert_eq!(
        w.pg.psql("app_before", "SELECT count(*) FROM public.orders"),
        "4900"
    );
    assert_eq!(restore_records(&w)[0]["backup_id"], ids[1]);

    // Exactly the first snapshot's time: that backup ("at or before").
    let r = run(restore(
        &w,
        "app_first",
        &["--before", &times[0].to_rfc3339(), "--dry-run", "--json"],
    ))
    .ok();
    assert_eq!(r.json()["backup_id"], ids[0]);

    // The 'YYYY-MM-DD HH:MM:SS' form in UTC, a second after the third snapshot.
    let later = (times[2] + chrono::Duration::seconds(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let r = run(restore(
        &w,
        "app_x",
        &["--before", &later, "--dry-run", "--json"],
    ))
    .ok();
    assert_eq!(r.json()["backup_id"], ids[2]);

    // Before every backup: a clear error naming the oldest.
    let early = (times[0] - chrono::Duration::hours(1)).to_rfc3339();
    let r = run(restore(&w, "app_early", &["--before", &early, "--yes"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "no backup of 'app' has a snapshot at or before {}; the oldest is {}",
            (times[0] - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S UTC"),
            ids[0]
        )),
        "{}",
        r.stderr
    );
    assert!(!exists(&w.pg, "app_early"));
}

/// Row counts of every user table, exactly.
fn all_counts(pg: &Pg, db: &str) -> String {
    let tables = pg.psql(
        db,
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| format!("{t}={}", pg.psql(db, &format!("SELECT count(*) FROM {t}"))))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn parallel_restore_matches_streaming() {
    let w = World::local();
    w.backup();
    let spool = w.dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let r = run(restore(&w, "app_stream", &["--yes", "--json"])).ok();
    assert_eq!(r.json()["outcome"], "restored");
    let r = run(restore(
        &w,
        "app_par",
        &[
            "--yes",
            "--json",
            "--jobs",
            "2",
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    ))
    .ok();
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored", "{rec}");
    assert_eq!(rec["jobs"], 2);
    assert!(rec["differences"].as_array().unwrap().is_empty());
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "globals",
            "create",
            "fetch",
            "restore",
            "properties",
            "verify"
        ]
    );
    // The plan went to stderr with --json.
    assert!(r.stderr.contains("pg_restore -j 2"), "{}", r.stderr);
    let streamed = all_counts(&w.pg, "app_stream");
    assert!(streamed.contains("public.orders=5000"), "{streamed}");
    assert_eq!(all_counts(&w.pg, "app_par"), streamed);
    assert_eq!(all_counts(&w.pg, "app"), streamed);
    // The spool file is gone.
    assert!(files_under(&spool).is_empty(), "{:?}", files_under(&spool));
}

#[test]
fn spool_without_room_is_refused_before_anything_changes() {
    let w = World::local();
    w.backup();
    let disk = SmallDisk::mount(w.dir.path().join("small"), "64k");
    let mnt = disk.0.clone();
    let r = run(restore(
        &w,
        "app_small",
        &["--yes", "--jobs", "2", "--spool-dir", mnt.to_str().unwrap()],
    ));
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "pgdr: error: not enough free space for the spool in {}: ",
            mnt.display()
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("needed") && r.stderr.contains("free"),
        "{}",
        r.stderr
    );
    assert!(!exists(&w.pg, "app_small"));
    assert!(restore_records(&w).is_empty());
    assert!(files_under(&mnt).is_empty());
}

/// A pg_restore that waits before running the real one: a window to interrupt pgdr in.
fn slow_pg_restore(dir: &Path) -> PathBuf {
    let bin = dir.join("slow-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = pg_bin();
    let script = format!(
        "#!/bin/bash\nif [ \"$1\" = --version ]; then exec '{0}/pg_restore' --version; fi\nsleep 20\nexec '{0}/pg_restore' \"$@\"\n",
        real.display()
    );
    let p = bin.join("pg_restore");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Start a --swap restore over `app` with the slow pg_restore, in its own process group, and
/// wait until it is restoring into app_restoring.
fn start_slow_swap(w: &World, cfg: &Path) -> std::process::Child {
    let mut c = restore(w, "app", &["--swap", "--yes"]);
    c.arg("--config")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    c.process_group(0);
    let child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exists(&w.pg, "app_restoring") {
        assert!(Instant::now() < deadline, "the restore never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The database exists; pg_restore is (about to be) sleeping.
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

#[test]
fn interrupted_swap_leaves_the_original_untouched_and_in_place() {
    let w = World::local();
    w.backup();
    let backed_up = counts(&w.pg, "app");
    w.pg.psql("app", "DELETE FROM public.orders WHERE id > 4000");
    let changed = counts(&w.pg, "app");
    let cfg = w.config_file(
        "slow.toml",
        &format!(
            "[tools]\npg_bin_dir = \"{}\"\n",
            slow_pg_restore(w.dir.path()).display()
        ),
    );

    // SIGTERM: a graceful interrupt removes the unfinished copy.
    let mut child = start_slow_swap(&w, &cfg);
    let pgid = child.id() as i32;
    unsafe { libc::kill(pgid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let err = stderr_of(&mut child);
    unsafe { libc::kill(-pgid, libc::SIGKILL) }; // the sleeping wrapper
    assert_eq!(status.code(), Some(143), "{err}"); // SIGTERM: 128 + 15
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(counts(&w.pg, "app"), changed);
    assert!(!exists(&w.pg, "app_restoring"), "{err}");
    assert!(!databases(&w.pg).iter().any(|d| d.contains("pre_restore")));
    let recs = restore_records(&w);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["outcome"], "interrupted");

    // SIGKILL: no chance to clean up; the original is still untouched and in place.
    let mut child = start_slow_swap(&w, &cfg);
    let pgid = child.id() as i32;
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None);
    assert_eq!(counts(&w.pg, "app"), changed);
    assert!(!databases(&w.pg).iter().any(|d| d.contains("pre_restore")));

    // The plan says the stale copy (marked by pgdr) is dropped; the next restore does it.
    let r = run(restore(&w, "app", &["--swap", "--dry-run"])).ok();
    assert!(
        r.stdout
            .contains("DROP DATABASE app_restoring: left by an interrupted pgdr restore"),
        "{}",
        r.stdout
    );
    let r = run(restore(&w, "app", &["--swap", "--yes"])).ok();
    assert!(r.stdout.contains("restored and proven"), "{}", r.stdout);
    assert_eq!(counts(&w.pg, "app"), backed_up);
    assert!(!exists(&w.pg, "app_restoring"));
}

#[test]
fn restore_from_a_bare_directory_with_only_identity_and_repository() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    // A fresh host: an empty working directory and HOME, the identity file copied in, no
    // config, no PG* or PGDR_* variables but the password.
    let host = tempdir();
    let home = host.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let work = host.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(&w.identity, work.join("identity.txt")).unwrap();
    let mut c = pgdr_cmd();
    c.current_dir(&work)
        .env("HOME", &home)
        .env("PGPASSWORD", PG_PASSWORD)
        .args(["restore", "--yes", "--identity", "identity.txt", "--target"])
        .arg(w.pg.url_nopw("app_fresh"));
    w.repo.apply(&mut c);
    let r = run(c).ok();
    assert!(
        r.stdout
            .contains(&format!("restored and proven: backup {id} of 'app'")),
        "{}",
        r.stdout
    );
    assert_eq!(counts(&w.pg, "app_fresh"), counts(&w.pg, "app"));
    assert_eq!(restore_records(&w).len(), 1);
    // Nothing was written on the "host".
    assert_eq!(files_under(&work), vec!["identity.txt".to_string()]);
    assert!(files_under(&home).is_empty());
}

#[test]
fn dry_run_touches_nothing_and_no_yes_without_a_tty_is_refused() {
    let w = World::local();
    w.backup();
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    let dbs = databases(&w.pg);
    let files = files_under(root);
    let before = counts(&w.pg, "app");

    let r = run(restore(&w, "app", &["--clean", "--dry-run"])).ok();
    assert!(
        r.stdout
            .contains("restore plan (nothing has been changed yet)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("DROP DATABASE app"), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("dry run: nothing was changed\n"),
        "{}",
        r.stdout
    );
    let r = run(restore(&w, "app_new", &["--dry-run", "--json"])).ok();
    assert_eq!(r.json()["mode"], "create");
    assert_eq!(databases(&w.pg), dbs);
    assert_eq!(files_under(root), files);
    assert_eq!(counts(&w.pg, "app"), before);

    // stdin is not a terminal (the harness gives /dev/null) and no --yes: refused.
    let r = run(restore(&w, "app_new", &[]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("refusing to restore without confirmation: stdin is not a terminal"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(databases(&w.pg), dbs);
    assert_eq!(files_under(root), files);
}

#[test]
fn existing_roles_keep_their_attributes_unless_overwrite() {
    let w = World::local();
    w.pg.psql(
        "postgres",
        "CREATE ROLE pgdr_gone LOGIN; GRANT anon TO pgdr_gone",
    );
    w.backup();
    // After the backup: an existing role changes, another disappears.
    w.pg.psql(
        "postgres",
        "ALTER ROLE anon CONNECTION LIMIT 7; DROP ROLE pgdr_gone",
    );
    let r = run(restore(&w, "app_roles", &["--yes"])).ok();
    assert!(
        r.stdout.contains(
            "role 'anon' exists: attributes (CONNECTION LIMIT -1 in the backup, 7 on the target): kept (--roles=merge)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("roles created    pgdr_gone"),
        "{}",
        r.stdout
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'anon'"
        ),
        "7"
    );
    // The missing role and its membership are back.
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid \
             JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'pgdr_gone'"
        ),
        "anon"
    );
    let rec = &restore_records(&w)[0];
    assert_eq!(rec["outcome"], "restored", "{rec}");
    assert_eq!(rec["roles_created"], serde_json::json!(["pgdr_gone"]));

    // --roles=overwrite puts the backup's attributes back.
    run(restore(&w, "app_roles2", &["--yes", "--roles=overwrite"])).ok();
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'anon'"
        ),
        "-1"
    );
}

#[test]
fn bad_inputs_fail_with_one_line_and_change_nothing() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let dbs = databases(&w.pg);

    // Unknown id: the nearest ones are listed.
    let r = run(restore(
        &w,
        "app_x",
        &["--backup", "20200101T000000", "--yes"],
    ));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no backup with id '20200101T000000'"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!("nearest: {id}")), "{}", r.stderr);

    // Wrong identity.
    let (other, _) = keypair(w.dir.path());
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--target"])
        .arg(w.pg.url("app_x"))
        .arg("--identity")
        .arg(&other);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no identity matches"), "{}", r.stderr);

    // Unreachable target.
    let url = format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/app_x",
        free_port()
    );
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--target", &url, "--identity"])
        .arg(&w.identity);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    assert!(!r.stderr.contains(PG_PASSWORD), "{}", r.stderr);

    // Wrong password: named, never shown.
    let url = format!(
        "postgres://postgres:not-the-pw@127.0.0.1:{}/app_x",
        w.pg.port
    );
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--target", &url, "--identity"])
        .arg(&w.identity);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not-the-pw"), "{}", r.stderr);

    assert_eq!(databases(&w.pg), dbs);
    assert!(restore_records(&w).is_empty());
}

#[test]
fn s3_restore_streaming_and_parallel() {
    // The same restore from the S3 repository: streamed, then spooled for pg_restore -j 2.
    let w = World::s3();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let r = run(restore(&w, "app_s3", &["--yes"])).ok();
    assert!(
        r.stdout
            .contains(&format!("restored and proven: backup {id} of 'app'")),
        "{}",
        r.stdout
    );
    assert_eq!(counts(&w.pg, "app_s3"), counts(&w.pg, "app"));
    let spool = w.dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let r = run(restore(
        &w,
        "app_s3_jobs",
        &[
            "--yes",
            "--jobs",
            "2",
            "--spool-dir",
            spool.to_str().unwrap(),
        ],
    ))
    .ok();
    assert!(r.stdout.contains("fingerprint equal: "), "{}", r.stdout);
    assert_eq!(counts(&w.pg, "app_s3_jobs"), counts(&w.pg, "app"));
    assert!(files_under(&spool).is_empty(), "spool left behind");
    assert_eq!(
        w.pg.psql("app_s3_jobs", "SHOW app.settings.environment"),
        "demo"
    );
}
