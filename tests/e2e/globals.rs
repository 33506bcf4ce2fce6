//! The globals object (pg_dumpall's roles SQL) runs as superuser: only pg_dumpall's shapes
//! are accepted, and a forged object is refused by name before any statement runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Replace a backup's globals object with `sql`, compressed and encrypted as pgdr does (zstd,
/// then age to the test recipient), and fix the manifest's record of it (sizes, sha256s, the
/// manifest's self-checksum): what someone who can write the repository can do today.
pub fn forge_globals(w: &World, id: &str, sql: &str) {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    let dir = root.join("app").join(id);
    let plain = w.dir.path().join("forged.sql");
    std::fs::write(&plain, sql).unwrap();
    let zst = w.dir.path().join("forged.sql.zst");
    let st = Command::new("zstd")
        .args(["-q", "-f", "-o"])
        .arg(&zst)
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    let object = dir.join("globals.sql.zst.age");
    let st = Command::new("age")
        .args(["-r", &w.recipient, "-o"])
        .arg(&object)
        .arg(&zst)
        .status()
        .unwrap();
    assert!(st.success());
    let sha = |p: &Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    };
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    let path = dir.join("manifest.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("checksum");
    for o in v["objects"].as_array_mut().unwrap() {
        if o["name"] == "globals" {
            o["raw_bytes"] = len(&plain).into();
            o["compressed_bytes"] = len(&zst).into();
            o["stored_bytes"] = len(&object).into();
            o["sha256_plain"] = sha(&plain).into();
            o["sha256_stored"] = sha(&object).into();
        }
    }
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&v).unwrap()));
    v["checksum"] = sum.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A folder the server's OS user may write into, for the evidence an attack leaves.
fn drop_dir(w: &World) -> PathBuf {
    let d = w.dir.path().join("dropzone");
    std::fs::create_dir_all(&d).unwrap();
    let st = Command::new("chmod").arg("0777").arg(&d).status().unwrap();
    assert!(st.success());
    d
}

#[test]
fn a_forged_globals_object_is_refused_by_name_and_nothing_of_it_runs() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    let real = std::fs::read_to_string(w.cat(&id, "globals")).unwrap();
    let drop = drop_dir(&w);
    let lo = drop.join("lo_export");
    let prog = drop.join("program");
    // The first would pass a substring test for set_config; each runs as superuser if sent.
    let evil = format!(
        "{real}\nCREATE ROLE pgdr_forged_role;\n\
         SELECT lo_export(lo_from_bytea(0, 'pwned'::bytea), '{}') -- set_config\n;\n\
         COPY (SELECT 1) TO PROGRAM 'touch {}';\n",
        lo.display(),
        prog.display()
    );
    forge_globals(&w, &id, &evil);
    let no_role = |w: &World| {
        assert_eq!(
            w.pg.psql(
                "postgres",
                "SELECT count(*) FROM pg_roles WHERE rolname = 'pgdr_forged_role'"
            ),
            "0"
        );
    };

    // Quick verify reads the object and names the statement: a finding.
    let r = w.run(&["verify", &id, "--quick"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(
        out.contains("holds a statement pg_dumpall does not emit")
            && out.contains("SELECT lo_export("),
        "{out}"
    );

    // Full verify on a scratch cluster: refused before any statement, a finding (exit 1).
    let tmp = w.dir.path().join("scratch-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = w.config_file(
        "verify.toml",
        &format!("[scratch]\ntemp_dir = \"{}\"\n", tmp.display()),
    );
    let r = run(w.pgdr_config(&cfg, &["verify", &id]));
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(out.contains("SELECT lo_export("), "{out}");

    // Restore into the real server: refused before the target is touched.
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--target"])
        .arg(w.pg.url("app_forged"));
    w.repo.apply(&mut c);
    c.arg("--identity").arg(&w.identity);
    let r = run(c);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        // The error is one line (a warning about the unsigned backup may come before it).
        r.stderr
            .lines()
            .find(|l| l.starts_with("pgdr: error:"))
            .map(|l| l.contains("SELECT lo_export(")),
        Some(true),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("pg_dumpall does not emit"),
        "{}",
        r.stderr
    );
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'app_forged'"
        ),
        "0"
    );
    no_role(&w);
    assert!(!lo.exists(), "lo_export ran");
    assert!(!prog.exists(), "COPY TO PROGRAM ran");
}

#[test]
fn real_globals_with_settings_comments_and_memberships_restore() {
    let w = World::local();
    w.pg.psql(
        "postgres",
        "CREATE ROLE pgdr_g1 LOGIN PASSWORD 'x''y' CONNECTION LIMIT 3 VALID UNTIL '2031-01-01 00:00:00+00';
         ALTER ROLE pgdr_g1 SET \"app.settings.k\" = 'a\\b''c';
         ALTER ROLE pgdr_g1 SET search_path = \"$user\", public;
         COMMENT ON ROLE pgdr_g1 IS 'it''s g1';
         GRANT anon TO pgdr_g1 WITH ADMIN OPTION;",
    );
    let id = w.backup()["id"].as_str().unwrap().to_string();
    w.pg.psql("postgres", "DROP ROLE pgdr_g1");
    let mut c = pgdr_cmd();
    c.args(["restore", "--yes", "--target"])
        .arg(w.pg.url("app_g"));
    w.repo.apply(&mut c);
    c.arg("--identity").arg(&w.identity);
    let r = run(c).ok();
    assert!(r.stdout.contains("pgdr_g1"), "{}", r.stdout);
    let _ = id;
    assert_eq!(
        w.pg.psql(
            "postgres",
            "SELECT rolconnlimit || ' ' || (rolvaliduntil AT TIME ZONE 'UTC') || ' ' || array_to_string(rolconfig, '|') \
               || ' ' || shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'pgdr_g1'"
        ),
        "3 2031-01-01 00:00:00 app.settings.k=a\\b'c|search_path=\"$user\", public it's g1"
    );
}
