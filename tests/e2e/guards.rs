//! Guards: what verify, prune, backup and restore must refuse or report rather than pass
//! over (issue 12, "restore and prune that never destroy what they weren't asked to").

use std::process::Command;

use crate::common::*;

/// pgdr with the repository and the identity but no --source: no database is configured, so
/// repository-wide commands look at every database the repository holds.
fn bare(w: &World, args: &[&str]) -> Command {
    let mut c = pgdr_cmd();
    c.args(args);
    // As variables: `list` takes no --identity, `verify` does.
    w.repo.apply_env(&mut c);
    c.env("PGDR_IDENTITY", &w.identity);
    c
}

fn backup_of(w: &World, db: &str) -> String {
    let mut c = pgdr_cmd();
    c.args(["backup", "--quiet", "--source"]).arg(w.pg.url(db));
    w.repo.apply(&mut c);
    c.arg("--recipient").arg(&w.recipient);
    run(c).ok();
    let c = bare(w, &["list", "--json", "--database", db]);
    run(c).ok().json().as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn manifest_path(w: &World, db: &str, id: &str) -> std::path::PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.join(db).join(id).join("manifest.json")
}

#[test]
fn verify_latest_takes_each_database_once_when_their_backups_interleave() {
    let w = World::local();
    w.pg.sample_db("other");
    backup_of(&w, "app");
    let other = backup_of(&w, "other");
    let app = backup_of(&w, "app");
    let r = run(bare(&w, &["verify", "--quick", "--json"])).ok();
    let mut got: Vec<(String, String)> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["database"].as_str().unwrap().to_string(),
                v["backup_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![("app".into(), app), ("other".into(), other)]);
}

#[test]
fn a_damaged_newest_manifest_is_a_finding_not_passed_over() {
    let w = World::local();
    let old = w.backup()["id"].as_str().unwrap().to_string();
    let new = w.backup()["id"].as_str().unwrap().to_string();
    std::fs::write(manifest_path(&w, "app", &new), b"{ torn").unwrap();
    for args in [
        &["verify", "--quick"][..],
        &["verify", "--unverified", "--quick"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(&format!("backup {new} of 'app': FAILED"))
                && r.stdout
                    .contains(&format!("manifest app/{new}/manifest.json: cannot be read")),
            "{args:?}: {}",
            r.stdout
        );
        assert!(
            !r.stdout.contains("nothing to verify"),
            "{args:?}: {}",
            r.stdout
        );
    }
    // The older, readable backup was verified by --unverified, not instead of the newest.
    let r = w.run(&["verify", "--unverified", "--quick"]);
    assert!(
        !r.stdout.contains(&format!("{old} of 'app': verified")),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_of_an_empty_repository_could_not_run() {
    let w = World::local();
    // An existing, empty repository (a missing folder is a different error).
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    std::fs::create_dir_all(root).unwrap();
    for args in [
        &["verify", "--quick"][..],
        &["verify", "--unverified", "--quick"][..],
    ] {
        let r = run(bare(&w, args));
        assert_eq!(r.code, 2, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("no backup"), "{args:?}: {}", r.stderr);
    }
}

/// `pgdr restore --target <url of db>` on the test's own cluster.
fn restore(w: &World, db: &str, args: &[&str]) -> Command {
    w.restore_cmd(&w.pg, db, args)
}

fn exists(pg: &Pg, db: &str) -> bool {
    pg.exists(db)
}

fn orders(pg: &Pg, db: &str) -> String {
    pg.psql(db, "SELECT count(*) FROM public.orders")
}

#[test]
fn a_target_without_tables_but_with_other_objects_is_not_empty() {
    let w = World::local();
    w.backup();
    for (db, sql, kind) in [
        ("only_schema", "CREATE SCHEMA keep_me", "1 schemas"),
        (
            "only_function",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "1 functions or procedures",
        ),
        ("only_sequence", "CREATE SEQUENCE public.s", "1 sequences"),
        (
            "only_type",
            "CREATE TYPE public.mood AS ENUM ('ok')",
            "1 types or domains",
        ),
        (
            "only_lo",
            "SELECT lo_from_bytea(0, 'data')",
            "1 large objects",
        ),
    ] {
        w.pg.create_db(db);
        w.pg.psql(db, sql);
        let r = run(restore(&w, db, &["--yes"]));
        assert_eq!(r.code, 2, "{db}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!("target database '{db}'"))
                && r.stderr.contains("is not empty")
                && r.stderr.contains(kind),
            "{db}: {}",
            r.stderr
        );
        // Untouched: the object is still there.
        let left = w.pg.psql(
            db,
            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'keep_me')
                  + (SELECT count(*) FROM pg_proc WHERE proname = 'f')
                  + (SELECT count(*) FROM pg_class WHERE relname = 's')
                  + (SELECT count(*) FROM pg_type WHERE typname = 'mood')
                  + (SELECT count(*) FROM pg_largeobject_metadata)",
        );
        assert_eq!(left, "1", "{db}");
    }
}

#[test]
fn clean_with_a_damaged_dump_leaves_the_original_in_place() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    w.pg.psql("app", "DELETE FROM public.orders WHERE id > 4000");
    let before = orders(&w.pg, "app");
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let dump = root.join("app").join(&id).join("dump.zst.age");
    let mut bytes = std::fs::read(&dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&dump, bytes).unwrap();

    let r = run(restore(&w, "app", &["--clean", "--terminate", "--yes"]));
    assert_ne!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(orders(&w.pg, "app"), before, "the original must stay");
    assert!(!exists(&w.pg, "app_restoring"), "{}", r.stdout);
    assert!(
        !r.stdout.contains("nothing is in its place"),
        "{}",
        r.stdout
    );
}

#[test]
fn swap_and_clean_refuse_a_restoring_database_pgdr_did_not_make() {
    let w = World::local();
    w.backup();
    w.pg.create_db("app_restoring");
    w.pg.psql(
        "app_restoring",
        "CREATE TABLE precious AS SELECT 42 AS answer",
    );
    for mode in ["--swap", "--clean"] {
        for extra in [&["--dry-run"][..], &["--yes", "--terminate"][..]] {
            let mut args = vec![mode];
            args.extend_from_slice(extra);
            let r = run(restore(&w, "app", &args));
            assert_eq!(r.code, 2, "{args:?}\n{}\n{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("database 'app_restoring' exists")
                    && r.stderr.contains("will not drop"),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    assert_eq!(
        w.pg.psql("app_restoring", "SELECT answer FROM precious"),
        "42"
    );
}

fn wait_for(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn prune_keeps_a_backup_that_a_running_verify_reads_and_names_the_reader() {
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 300000) AS i",
    );
    let old = w.backup()["id"].as_str().unwrap().to_string();
    let new = w.backup()["id"].as_str().unwrap().to_string();
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "prune.toml",
        &format!(
            "[scratch]\ntemp_dir = \"{}\"\n[retention]\nkeep_last = 1\nmin_verified = 0\n",
            tmp.display()
        ),
    );
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let marks = root.join("app").join("in-use").join(&old);
    let mut c = w.pgdr_config(&cfg, &["verify", &old]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let verify = c.spawn().unwrap();
    let pid = verify.id();
    wait_for("the verify marks the backup in use", 30, || {
        std::fs::read_dir(&marks).is_ok_and(|mut d| d.next().is_some())
    });

    let r = run(w.pgdr_config(&cfg, &["prune", "--dry-run"])).ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(&old))
        .unwrap_or_else(|| panic!("{}", r.stdout))
        .to_string();
    assert!(
        line.contains("keep")
            && line.contains("kept: in use by verify on host ")
            && line.contains(&format!(" pid {pid} since ")),
        "{}",
        r.stdout
    );
    let r = run(w.pgdr_config(&cfg, &["prune"])).ok();
    assert!(r.stdout.contains("kept: in use by verify"), "{}", r.stdout);
    assert!(root.join("app").join(&old).join("manifest.json").exists());

    let out = verify.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("backup {old} of 'app': verified (full)")),
        "{stdout}"
    );
    // Released: the next prune deletes it by the policy.
    assert!(!marks.exists() || std::fs::read_dir(&marks).unwrap().next().is_none());
    run(w.pgdr_config(&cfg, &["prune"])).ok();
    let left: Vec<String> = w
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![new]);
}

/// A pg_dump that waits before running the real one: a backup that holds its lock a while.
fn slow_pg_dump(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("slow-dump-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = pg_bin();
    let script = format!(
        "#!/bin/bash\nif [ \"$1\" = --version ]; then exec '{0}/pg_dump' --version; fi\nsleep 6\nexec '{0}/pg_dump' \"$@\"\n",
        real.display()
    );
    let p = bin.join("pg_dump");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(real.join("pg_dumpall"), bin.join("pg_dumpall")).unwrap();
    bin
}

#[test]
fn two_cli_backups_of_one_database_do_not_both_run() {
    let w = World::local();
    let cfg = w.config_file(
        "slow.toml",
        &format!(
            "[tools]\npg_bin_dir = \"{}\"\n",
            slow_pg_dump(w.dir.path()).display()
        ),
    );
    let mut c = w.pgdr_config(&cfg, &["backup", "--quiet"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let first = c.spawn().unwrap();
    let pid = first.id();
    wait_for("the first backup holds its lock", 30, || {
        w.pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
        ) != "0"
    });
    let r = w.run(&["backup"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("database 'app': another backup of it is running")
            && r.stderr.contains("pgdr backup lock: host ")
            && r.stderr.contains(&format!(" pid {pid}, for ")),
        "{}",
        r.stderr
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.list().len(), 1, "only the first backup ran");
    // Released: the next backup runs.
    w.run(&["backup", "--quiet"]).ok();
    assert_eq!(w.list().len(), 2);
}
