//! `pgdr verify`: quick and full proofs, stored records, and every kind of damage.

use std::path::PathBuf;
use std::process::Stdio;

use crate::common::*;

fn dump_object(w: &World, id: &str) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.join("app").join(id).join("dump.zst.age")
}

/// Rewrite a manifest in place with a valid self-checksum (what an attacker or a buggy
/// tool could do); pgdr must still catch what does not match.
fn rewrite_manifest(w: &World, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let path = root.join("app").join(id).join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    edit(&mut v);
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&v).unwrap()));
    v["checksum"] = sum.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn scratch_config(w: &World) -> PathBuf {
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "verify.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", tmp.display()),
    );
    cfg
}

#[test]
fn quick_and_full_verify_pass_and_are_recorded() {
    let w = World::local();
    let m = w.backup();
    let id = m["id"].as_str().unwrap();

    let r = w.run(&["verify", id, "--quick"]).ok();
    assert!(
        r.stdout
            .contains(&format!("backup {id} of 'app': verified (quick)")),
        "{}",
        r.stdout
    );

    let cfg = scratch_config(&w);
    let c = w.pgdr_config(&cfg, &["verify", "--json"]);
    let r = run(c).ok();
    let recs = r.json();
    let rec = &recs[0];
    assert_eq!(rec["outcome"], "passed", "{rec}");
    assert_eq!(rec["mode"], "full");
    assert_eq!(rec["backup_id"], id);
    let phases: Vec<&str> = rec["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["scratch", "globals", "create", "restore", "compare", "teardown"]
    );
    assert!(rec["scratch"]
        .as_str()
        .unwrap()
        .starts_with("ephemeral PostgreSQL"));
    // Nothing of the scratch cluster is left behind.
    assert!(std::fs::read_dir(w.dir.path().join("scratch-tmp"))
        .unwrap()
        .next()
        .is_none());

    // The record is in the repository and shown by list and show.
    let Repo::Local(root) = &w.repo else {
        unreachable!()
    };
    let recs_on_disk = files_under(&root.join("app").join(id).join("verifications"));
    assert_eq!(recs_on_disk.len(), 2, "{recs_on_disk:?}");
    let list = w.list();
    assert_eq!(list[0]["verification"]["outcome"], "passed");
    assert_eq!(list[0]["verification"]["mode"], "full");
    let text = w.run(&["list"]).ok().stdout;
    assert!(text.contains("passed (full, "), "{text}");
    let shown = w.run(&["show", id]).ok().stdout;
    assert!(
        shown.contains("verified           passed (full, "),
        "{shown}"
    );
}

/// The same proof on either backend: quick, then full into an ephemeral cluster, recorded
/// in the repository and shown by list.
fn verify_round(w: &World) {
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let r = w.run(&["verify", &id, "--quick"]).ok();
    assert!(r.stdout.contains("verified (quick)"), "{}", r.stdout);
    let r = w.run(&["verify", "--latest"]).ok();
    assert!(
        r.stdout
            .contains(&format!("backup {id} of 'app': verified (full)")),
        "{}",
        r.stdout
    );
    let l = w.list();
    assert_eq!(l[0]["verification"]["outcome"], "passed");
    assert_eq!(l[0]["verification"]["mode"], "full");
    // --unverified finds nothing more to do.
    let r = w.run(&["verify", "--unverified", "--quick"]).ok();
    assert_eq!(r.stdout.trim(), "nothing to verify");
}

#[test]
fn s3_verify_round() {
    verify_round(&World::s3());
}

#[test]
fn damaged_objects_fail_verification_with_their_names() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let obj = dump_object(&w, &id);
    let good = std::fs::read(&obj).unwrap();

    // One flipped byte.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&obj, &bad).unwrap();
    let r = w.run(&["verify", &id, "--quick"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("FAILED verification (quick), 1 difference(s):"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("object dump.zst.age: sha256 mismatch (stored "),
        "{}",
        r.stdout
    );

    // Truncated.
    std::fs::write(&obj, &good[..good.len() - 100]).unwrap();
    let r = w.run(&["verify", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("object dump.zst.age: sha256 mismatch"),
        "{}",
        r.stdout
    );

    // Missing.
    std::fs::remove_file(&obj).unwrap();
    let r = w.run(&["verify", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("object dump.zst.age: missing from the repository"),
        "{}",
        r.stdout
    );

    // The failures are recorded: list shows the newest.
    assert_eq!(w.list()[0]["verification"]["outcome"], "failed");

    // Restored object: passes again.
    std::fs::write(&obj, &good).unwrap();
    w.run(&["verify", &id, "--quick"]).ok();
    assert_eq!(w.list()[0]["verification"]["outcome"], "passed");
}

#[test]
fn wrong_or_missing_identity_cannot_run() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let (other, other_pub) = keypair(w.dir.path());
    let mut c = pgdr_cmd();
    c.args(["verify", &id, "--quick", "--identity"]).arg(&other);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "no identity matches the backup's recipients (identity public keys: {other_pub})"
        )),
        "{}",
        r.stderr
    );

    let mut c = pgdr_cmd();
    c.args(["verify", &id, "--quick"]);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no identity given to decrypt the backup with"),
        "{}",
        r.stderr
    );
    // Neither attempt was recorded as a verification of the backup.
    assert!(w.list()[0]["verification"].is_null());
}

#[test]
fn manifest_that_lies_about_rows_is_caught() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    rewrite_manifest(&w, &id, |v| {
        for t in v["fingerprint"]["data"]["tables"].as_array_mut().unwrap() {
            if t["name"] == "orders" {
                t["rows"] = 4999.into();
            }
        }
    });
    let r = w.run(&["verify", &id, "--quick"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("public.orders: 4999 rows in backup, 5000 in the stored archive"),
        "{}",
        r.stdout
    );
}

#[test]
fn full_verify_compares_the_restored_rows() {
    // The column list drives the COPY on the restored database only: reordering it makes the
    // restored rows' text differ while the stored archive still matches.
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    rewrite_manifest(&w, &id, |v| {
        for t in v["fingerprint"]["data"]["tables"].as_array_mut().unwrap() {
            if t["name"] == "profiles" {
                t["columns"].as_array_mut().unwrap().reverse();
            }
        }
    });
    w.run(&["verify", &id, "--quick"]).ok();
    let cfg = scratch_config(&w);
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("public.profiles: same row count (2000) but different content after restore"),
        "{}",
        r.stdout
    );
    assert!(std::fs::read_dir(w.dir.path().join("scratch-tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn verify_on_a_named_scratch_server_drops_its_database() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let cfg = w.config_file(
        "named.toml",
        &format!("[scratch]\nurl = \"{}\"\n", w.pg.url("postgres")),
    );
    let c = w.pgdr_config(&cfg, &["verify", &id, "--json"]);
    let r = run(c).ok();
    let rec = &r.json()[0];
    assert_eq!(rec["outcome"], "passed", "{rec}");
    assert!(
        rec["scratch"]
            .as_str()
            .unwrap()
            .starts_with("database pgdr_verify_"),
        "{rec}"
    );
    let left = w.pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgdr_verify_%'",
    );
    assert_eq!(left, "0");
}

#[test]
fn full_verify_compares_the_restored_schema() {
    // A manifest that claims a policy the database never had: only the catalog comparison on
    // the restored copy can notice.
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    rewrite_manifest(&w, &id, |v| {
        let policies = v["fingerprint"]["schema"]["sections"]["policies"]
            .as_object_mut()
            .unwrap();
        let mut extra = policies["public.profiles.profiles_select"].clone();
        extra["command"] = "DELETE".into();
        policies.insert("public.profiles.profiles_purge".into(), extra);
        let f = v["fingerprint"]["schema"]["sections"]["functions"]
            .as_object_mut()
            .unwrap();
        f.get_mut("public.health()").unwrap()["body_sha256"] = "0".repeat(64).into();
    });
    let cfg = scratch_config(&w);
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("FAILED verification (full), 2 difference(s):"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("policy \"profiles_purge\" on public.profiles: missing after restore"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("function public.health(): definition differs"),
        "{}",
        r.stdout
    );
}

#[test]
fn fingerprint_is_stable_and_changes_with_each_kind_of_change() {
    let w = World::local();
    let fp = |m: &serde_json::Value| m["fingerprint"].clone();
    let a = w.backup();
    let b = w.backup();
    assert_eq!(fp(&a), fp(&b), "unchanged database, different fingerprints");

    let schema_diff = |x: &serde_json::Value, y: &serde_json::Value| -> Vec<String> {
        let (xs, ys) = (
            &x["fingerprint"]["schema"]["sections"],
            &y["fingerprint"]["schema"]["sections"],
        );
        let mut out = Vec::new();
        for (section, objs) in xs.as_object().unwrap() {
            for (k, v) in objs.as_object().unwrap() {
                if ys[section][k] != *v {
                    out.push(format!("{section}/{k}"));
                }
            }
        }
        out
    };
    let data_diff = |x: &serde_json::Value, y: &serde_json::Value| -> Vec<String> {
        let ys = y["fingerprint"]["data"]["tables"].as_array().unwrap();
        x["fingerprint"]["data"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                !ys.iter().any(|u| {
                    u["name"] == t["name"] && u["digest"] == t["digest"] && u["rows"] == t["rows"]
                })
            })
            .map(|t| {
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap(),
                    t["name"].as_str().unwrap()
                )
            })
            .collect()
    };

    w.pg.psql(
        "app",
        "UPDATE public.profiles SET bio = 'changed' WHERE username = 'user_5'",
    );
    let c = w.backup();
    assert_eq!(data_diff(&b, &c), ["public.profiles"]);
    assert!(schema_diff(&b, &c).is_empty(), "{:?}", schema_diff(&b, &c));

    w.pg.psql(
        "app",
        "ALTER POLICY profiles_select ON public.profiles USING (true)",
    );
    let d = w.backup();
    assert_eq!(
        schema_diff(&c, &d),
        ["policies/public.profiles.profiles_select"]
    );
    assert!(data_diff(&c, &d).is_empty());

    w.pg.psql("app", "CREATE OR REPLACE FUNCTION public.health() RETURNS text LANGUAGE sql AS $$ SELECT 'ok!' $$");
    let e = w.backup();
    assert_eq!(schema_diff(&d, &e), ["functions/public.health()"]);

    w.pg.psql("app", "SELECT setval('public.orders_id_seq', 9000)");
    let f = w.backup();
    assert_eq!(schema_diff(&e, &f), ["sequences/public.orders_id_seq"]);
}

#[test]
fn scratch_problems_cannot_run_and_leave_nothing() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();

    // Server binaries older than the backup.
    let bin = w.dir.path().join("oldbin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["initdb", "pg_restore", "pg_dump", "pg_dumpall"] {
        let p = bin.join(tool);
        std::fs::write(&p, format!("#!/bin/sh\necho '{tool} (PostgreSQL) 11.22'\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = w.config_file(
        "old.toml",
        &format!("[tools]\npg_bin_dir = \"{}\"\n", bin.display()),
    );
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("scratch cluster: initdb 15 or newer is needed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("found only 11.22"), "{}", r.stderr);

    // No room for the scratch cluster.
    let disk = SmallDisk::mount(w.dir.path().join("tiny"), "1m");
    let mnt = disk.0.clone();
    let cfg = w.config_file(
        "tiny.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", mnt.display()),
    );
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("could not verify: scratch cluster: initdb failed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("No space left on device"), "{}", r.stderr);
    assert!(
        files_under(&mnt).is_empty(),
        "left behind: {:?}",
        files_under(&mnt)
    );
    // A verification that could not run is not recorded against the backup.
    assert!(w.list()[0]["verification"].is_null());

    // An OS user for the cluster that does not exist (only root switches users).
    if unsafe { libc::geteuid() } == 0 {
        let cfg = w.config_file(
            "nouser.toml",
            "[scratch]\nos_user = \"pgdr-no-such-user\"\n",
        );
        let r = run(w.pgdr_config(&cfg, &["verify", &id]));
        assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("scratch cluster: OS user 'pgdr-no-such-user' does not exist"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn missing_extension_on_the_scratch_server_is_named() {
    // An extension the source has and the restore target lacks: a control file installed for
    // the backup, removed before the verification.
    let share = std::process::Command::new(pg_bin().join("pg_config"))
        .arg("--sharedir")
        .output()
        .unwrap();
    let dir = PathBuf::from(String::from_utf8(share.stdout).unwrap().trim()).join("extension");
    let name = format!("pgdr_probe_{}", std::process::id());
    let control = dir.join(format!("{name}.control"));
    let script = dir.join(format!("{name}--1.0.sql"));
    struct Remove(Vec<PathBuf>);
    impl Drop for Remove {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let guard = Remove(vec![control.clone(), script.clone()]);
    std::fs::write(&control, "default_version = '1.0'\nrelocatable = true\n").unwrap();
    std::fs::write(
        &script,
        "CREATE FUNCTION pgdr_probe() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
    )
    .unwrap();

    let w = World::local();
    w.pg.psql("app", &format!("CREATE EXTENSION {name}"));
    let id = w.backup()["id"].as_str().unwrap().to_string();
    drop(guard);

    let cfg = scratch_config(&w);
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "extension \"{name}\" is not installed on the server restored into"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: install the package that provides"),
        "{}",
        r.stderr
    );
    assert!(std::fs::read_dir(w.dir.path().join("scratch-tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn large_tables_are_compared_in_parallel_ranges() {
    // Over 64 MiB of COPY text: the restored copy is read as several ctid ranges at once,
    // whose digests must merge to the whole table's.
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.big AS SELECT i AS id, repeat(md5(i::text), 3) AS payload FROM generate_series(1, 700000) AS i",
    );
    let m = w.backup();
    let big = m["fingerprint"]["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "big")
        .unwrap()
        .clone();
    assert!(big["bytes"].as_u64().unwrap() > 64 << 20, "{big}");
    let id = m["id"].as_str().unwrap().to_string();
    let cfg = scratch_config(&w);
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);

    rewrite_manifest(&w, &id, |v| {
        for t in v["fingerprint"]["data"]["tables"].as_array_mut().unwrap() {
            if t["name"] == "big" {
                t["digest"] = "0".repeat(32).into();
            }
        }
    });
    let c = w.pgdr_config(&cfg, &["verify", &id]);
    let r = run(c);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("public.big: same row count (700000) but different content after restore"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_table_missing_after_restore_is_named() {
    // The manifest names a table the archive never had: the restored database lacks it too,
    // and the re-read reports it missing instead of failing the run.
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    rewrite_manifest(&w, &id, |v| {
        let tables = v["fingerprint"]["data"]["tables"].as_array_mut().unwrap();
        let mut ghost = tables
            .iter()
            .find(|t| t["name"] == "profiles")
            .unwrap()
            .clone();
        ghost["name"] = "ghost".into();
        tables.push(ghost);
    });
    let cfg = scratch_config(&w);
    let r = run(w.pgdr_config(&cfg, &["verify", &id]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("public.ghost: missing after restore"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("public.ghost: missing in the stored archive"),
        "{}",
        r.stdout
    );
}

#[test]
fn one_damaged_manifest_does_not_stop_finding_the_others() {
    // show and --latest read the key listing and then only the manifest they need.
    let w = World::local();
    let a = w.backup()["id"].as_str().unwrap().to_string();
    let b = w.backup()["id"].as_str().unwrap().to_string();
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    std::fs::write(root.join("app").join(&a).join("manifest.json"), b"{ torn").unwrap();
    let shown = w.run(&["show", &b[..b.len() - 3]]).ok().stdout;
    assert!(
        shown.contains(&format!("id                 {b}")),
        "{shown}"
    );
    let r = w.run(&["verify", "--latest", "--quick"]).ok();
    assert!(
        r.stdout
            .contains(&format!("backup {b} of 'app': verified (quick)")),
        "{}",
        r.stdout
    );
    // The damaged one is still named, not hidden.
    let r = w.run(&["show", &a]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("manifest"), "{}", r.stderr);
    let text = w.run(&["list"]).stdout;
    assert!(text.contains(&a) && text.contains(&b), "{text}");
}

#[test]
fn a_scratch_cluster_left_by_a_killed_pgdr_is_removed_by_the_next_run() {
    // SIGKILL leaves no chance to clean up: the server keeps running and its files stay. The
    // next run that starts a scratch cluster in the same place stops and removes it.
    let w = World::local();
    w.pg.psql(
        "app",
        "CREATE TABLE public.bulk AS SELECT i, md5(i::text) AS h FROM generate_series(1, 400000) AS i",
    );
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let cfg = scratch_config(&w);
    let tmp = w.dir.path().join("scratch-tmp");
    let mut c = w.pgdr_config(&cfg, &["verify", &id]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    // Wait for the scratch server to accept connections, then kill pgdr outright.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let orphan = loop {
        let ready = std::fs::read_dir(&tmp).unwrap().flatten().find(|e| {
            std::fs::read_to_string(e.path().join("data/postmaster.pid"))
                .is_ok_and(|p| p.lines().nth(7).is_some_and(|l| l.trim() == "ready"))
        });
        if let Some(e) = ready {
            break e.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scratch server started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let pm: i32 = std::fs::read_to_string(orphan.join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let runs = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.contains("postgres"))
    };
    assert!(runs(pm), "the killed run's server should still be up");

    let r = run(w.pgdr_config(&cfg, &["verify", &id]));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!orphan.exists(), "left behind: {}", orphan.display());
    assert!(!runs(pm), "the orphaned server {pm} still runs");
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "left behind: {:?}",
        files_under(&tmp)
    );
}
