//! What a repository or a command line must not be able to inject: names that become paths
//! or connection strings, symbolic links in the repository tree; and what pgdr leaves
//! readable: modes of repository files and of `cat --out`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn local_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

/// Rewrite a manifest with a valid self-checksum: the checksum is unkeyed, so whoever can
/// write the repository can do this.
fn rewrite_manifest(w: &World, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = local_root(w).join("app").join(id).join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    edit(&mut v);
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&v).unwrap()));
    v["checksum"] = sum.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Run under umask 022, the usual default, so modes are not private by luck.
fn with_umask_022(mut c: Command) -> Command {
    // SAFETY: umask is async-signal-safe; nothing else runs in the child before exec.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    c
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn user_tables(pg: &Pg, db: &str) -> i64 {
    pg.psql(
        db,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .parse()
    .unwrap()
}

#[test]
fn a_manifest_whose_database_is_a_connection_string_restores_nothing_anywhere() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    // The attacker's server, with an empty database ready to receive the decrypted dump
    // (and the roles it names, so a restore there would run to the end).
    let attacker = Pg::start();
    attacker.create_db("loot");
    attacker.psql(
        "postgres",
        "CREATE ROLE anon; CREATE ROLE authenticated; CREATE ROLE service_role; CREATE ROLE app_owner",
    );
    let conninfo = format!(
        "postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{}/loot",
        attacker.port
    );
    rewrite_manifest(&w, &id, |v| {
        v["source"]["database"] = conninfo.clone().into()
    });
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "verify.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", tmp.display()),
    );
    let r = run(w.pgdr_config(&cfg, &["verify", &id]));
    assert_eq!(
        user_tables(&attacker, "loot"),
        0,
        "the dump reached the attacker: {r:?}"
    );
    assert_ne!(r.code, 0, "{r:?}");
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("source.database") && out.contains("not a libpq connection string"),
        "{out}"
    );
    // The quick verify (no restore) and list name the same refusal.
    let r = w.run(&["list"]);
    assert!(r.stdout.contains("source.database"), "{r:?}");
}

#[test]
fn database_names_that_are_not_plain_are_refused_before_anything_runs() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    for bad in ["/etc", "../etc", "a/b", "..", ".hidden", "app/../.."] {
        for via_env in [false, true] {
            let mut c = pgdr_cmd();
            c.arg("list").arg("--repo").arg(&repo);
            if via_env {
                c.env("PGDR_DATABASE", bad);
            } else {
                c.arg("--database").arg(bad);
            }
            let r = run(c);
            // Rejected by argument parsing: a usage error.
            assert_eq!(r.code, 64, "{bad}: {r:?}");
            assert!(
                r.stderr
                    .contains(&format!("'{bad}' is not an allowed name"))
                    && r.stderr.contains("letters, digits, '_', '-' or '.'"),
                "{bad}: {}",
                r.stderr
            );
            assert!(r.stdout.is_empty(), "{bad}: {}", r.stdout);
        }
    }
    // The same for a command that deletes.
    let mut c = pgdr_cmd();
    c.args(["prune", "--database", "../etc", "--repo"])
        .arg(&repo);
    let r = run(c);
    assert_eq!(r.code, 64, "{r:?}");
}

#[test]
fn a_database_folder_named_against_the_rule_is_refused_by_name() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let root = local_root(&w);
    std::fs::create_dir_all(root.join("bad name")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(root.join("app").join(&id))
        .arg(root.join("bad name"))
        .status()
        .unwrap();
    assert!(st.success());
    let r = w.run(&["list"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("database folder: 'bad name' is not an allowed name"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_symlinked_database_folder_is_refused_and_what_it_points_to_is_untouched() {
    let w = World::local();
    w.backup();
    w.backup();
    let root = local_root(&w);
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::rename(root.join("app"), outside.join("app")).unwrap();
    std::os::unix::fs::symlink(outside.join("app"), root.join("app")).unwrap();
    let before = files_under(&outside);
    assert!(before.len() >= 6, "{before:?}");

    let cfg = w.config_file("keep1.toml", "[retention]\nkeep_last = 1\n");
    let link = root.join("app").display().to_string();
    for args in [&["prune"][..], &["list"], &["prune", "--dry-run"]] {
        let r = run(w.pgdr_config(&cfg, args));
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(&format!("{link} is a symbolic link")),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(
        files_under(&outside),
        before,
        "files outside the repository changed"
    );
}

#[test]
fn files_and_folders_a_backup_creates_are_private() {
    let w = World::local();
    let r = run(with_umask_022(w.pgdr(&["backup", "--quiet"])));
    assert_eq!(r.code, 0, "{r:?}");
    let id = w.list()[0]["id"].as_str().unwrap().to_string();
    run(with_umask_022(w.pgdr(&["verify", &id, "--quick"]))).ok();
    let root = local_root(&w);
    let mut stack = vec![root.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
                files += 1;
            }
        }
    }
    // dump, globals, manifest and the verification record.
    assert!(files >= 4, "{files}");
}

#[test]
fn cat_out_is_private_and_nothing_is_left_after_a_mismatch() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let out_dir = w.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("dump.pgdump");
    let cat = |out: &Path| {
        run(with_umask_022(w.pgdr(&[
            "cat",
            &id,
            "--out",
            out.to_str().unwrap(),
        ])))
    };
    cat(&out).ok();
    assert_eq!(mode(&out), 0o600);
    assert!(std::fs::read(&out).unwrap().starts_with(b"PGDMP"));

    // Damage the stored dump: cat fails, names the object, leaves no new file and keeps an
    // existing one as it was.
    let stored = local_root(&w).join("app").join(&id).join("dump.zst.age");
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let fresh = out_dir.join("fresh.pgdump");
    let r = cat(&fresh);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("dump.zst.age"), "{}", r.stderr);
    let before = std::fs::read(&out).unwrap();
    let r = cat(&out);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        before,
        "the old file was overwritten"
    );
    let mut left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["dump.pgdump"], "partial or temp files left");
}
