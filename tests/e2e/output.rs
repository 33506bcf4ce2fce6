//! Issue 20, one output switch and one table of exit codes: `--json` on every command (its
//! values, not only that it parses), usage errors 64, signals 130/143, `status --nagios`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

fn local_root(w: &World) -> PathBuf {
    let Repo::Local(root) = &w.repo else {
        unreachable!("local only")
    };
    root.clone()
}

#[test]
fn backup_json_names_an_id_show_accepts_and_the_sizes_list_shows() {
    let w = World::local();
    let r = w
        .run(&["backup", "--json", "--label", "before-release"])
        .ok();
    let v = r.json();
    assert_eq!(v["failed"], serde_json::json!([]), "{v:#}");
    assert!(v.get("error").is_none(), "{v:#}");
    let b = &v["backups"][0];
    assert_eq!(v["backups"].as_array().unwrap().len(), 1, "{v:#}");
    let id = b["id"].as_str().unwrap();
    assert_eq!(b["database"], "app");
    assert_eq!(b["label"], "before-release");

    let shown = w.run(&["show", id, "--json"]).ok().json();
    assert_eq!(shown["id"], id);
    let listed = w.list();
    let l = listed.iter().find(|l| l["id"] == id).expect("listed");
    for k in ["raw_bytes", "stored_bytes", "snapshot_time", "started_at"] {
        assert_eq!(b[k], l[k], "{k}: backup {b:#} vs list {l:#}");
    }
    let secs = |x: &serde_json::Value| x["duration_seconds"].as_f64().unwrap();
    assert!((secs(b) - secs(l)).abs() < 1e-6, "{b:#} vs {l:#}");
    assert!(b["raw_bytes"].as_u64().unwrap() > 10_000, "{b:#}");
    // Each object's size is the manifest's, and they add up to the total.
    let objects = b["objects"].as_array().unwrap();
    let stored: u64 = objects
        .iter()
        .map(|o| o["stored_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, b["stored_bytes"].as_u64().unwrap());
    for o in objects {
        let m = shown["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == o["name"])
            .unwrap();
        assert_eq!(m["stored_bytes"], o["stored_bytes"], "{}", o["name"]);
        assert_eq!(m["raw_bytes"], o["raw_bytes"], "{}", o["name"]);
    }
    assert!(
        b["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "dump"),
        "{b:#}"
    );
    // Nothing but the one object on stdout (the text line is not printed).
    assert!(!r.stdout.contains("committed:"), "{}", r.stdout);
}

#[test]
fn keygen_json_recipient_encrypts_a_backup_its_identity_decrypts() {
    let w = World::local();
    let key = w.dir.path().join("new-identity.txt");
    let mut c = pgdr_cmd();
    c.args(["keygen", "--json", "--out"]).arg(&key);
    let k = run(c).ok().json();
    let recipient = k["recipient"].as_str().unwrap().to_string();
    assert_eq!(k["identity_file"], key.display().to_string());
    assert!(recipient.starts_with("age1"), "{k}");

    // A backup encrypted to that recipient only.
    let mut c = pgdr_cmd();
    c.args(["backup", "--json", "--source", &w.pg.url("app")])
        .args(["--recipient", &recipient]);
    w.repo.apply(&mut c);
    let b = run(c).ok().json();
    let id = b["backups"][0]["id"].as_str().unwrap().to_string();

    // Its identity decrypts it (sha256 checked against the manifest); the world's does not.
    let cat = |identity: &Path, out: &Path| {
        let mut c = pgdr_cmd();
        c.args(["cat", &id, "--json", "--out"]).arg(out);
        c.arg("--identity").arg(identity);
        w.repo.apply(&mut c);
        run(c)
    };
    let out = w.dir.path().join("dump.out");
    let r = cat(&key, &out).ok();
    let j = r.json();
    assert_eq!(j["id"], id.as_str());
    assert_eq!(
        j["bytes"].as_u64().unwrap(),
        std::fs::metadata(&out).unwrap().len()
    );
    assert_eq!(j["bytes"], b["backups"][0]["raw_bytes"]);
    let other = w.dir.path().join("other.out");
    let r = cat(&w.identity, &other);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no identity matches the backup's recipients"));

    // --signing: the public key is the one the manifests are checked against.
    let signing = w.dir.path().join("signing.key");
    let mut c = pgdr_cmd();
    c.args(["keygen", "--signing", "--json", "--out"])
        .arg(&signing);
    let s = run(c).ok().json();
    let public = s["public_key"].as_str().unwrap().to_string();
    let mut c = w.pgdr(&["backup", "--json"]);
    c.arg("--signing-key").arg(&signing);
    let signed = run(c).ok().json()["backups"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = w.pgdr(&["show", &signed, "--json"]);
    c.args(["--trust-key", &public]);
    let shown = run(c).ok().json();
    assert_eq!(
        shown["signed_by"]["key_id"], s["key_id"],
        "{:#}",
        shown["signed_by"]
    );
    assert_eq!(
        shown["signed_by"]["trusted"], true,
        "{:#}",
        shown["signed_by"]
    );
}

/// The environment of an S3 repository whose endpoint refuses connections.
fn unreachable_s3(c: &mut Command) {
    c.args(["--repo", "s3://pgdr-test/unreachable", "--database", "app"])
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .env("AWS_REGION", "garage")
        .env("AWS_ACCESS_KEY_ID", "GKtest")
        .env("AWS_SECRET_ACCESS_KEY", "secret");
}

#[test]
fn status_json_is_an_error_object_when_the_repository_is_unreachable() {
    let mut c = pgdr_cmd();
    c.args(["status", "--json"]);
    unreachable_s3(&mut c);
    let r = run(c);
    assert_eq!(r.code, 2, "{r:?}");
    let v = r.json();
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("unreachable"), "{v:#}");
    assert_eq!(v["kind"], "repository");
    // And the same line on stderr, for the person reading the log.
    assert!(
        r.stderr.contains(&format!("pgdr: error: {msg}")),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_exit_64_help_and_version_0() {
    let code = |args: &[&str]| {
        let mut c = pgdr_cmd();
        c.args(args);
        run(c)
    };
    for args in [
        &["list", "--bogus"][..],
        &["backup", "--keep-for"],
        &["restore"],
        &["verify", "--quick", "--latest", "some-id"],
        &["no-such-command"],
        &[],
    ] {
        let r = code(args);
        assert_eq!(r.code, 64, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("Usage:") || r.stderr.contains("try '--help'"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    let r = code(&["list", "--bogus", "--json"]);
    assert_eq!(r.code, 64);
    assert_eq!(r.json()["kind"], "usage");
    assert!(r.json()["error"].as_str().unwrap().contains("--bogus"));
    for args in [&["--help"][..], &["--version"], &["backup", "--help"]] {
        let r = code(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(!r.stdout.is_empty());
    }
    // A check pgdr makes after parsing that could not run stays 2: cat --json without --out.
    let r = code(&["cat", "x", "--json", "--repo", "/nonexistent"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("cat --json"));
}

#[test]
fn config_check_exits_1_on_a_problem_and_2_when_the_config_cannot_be_read() {
    let w = World::local();
    let cfg = w.config_file(
        "check.toml",
        &format!(
            "[encryption]\nrecipients = [\"age1bogus\"]\n[[database]]\nname = \"app\"\nurl = \"{}\"\n",
            w.pg.url("app")
        ),
    );
    let mut c = pgdr_cmd();
    c.args(["config", "check", "--config"]).arg(&cfg);
    w.repo.apply(&mut c);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("FAIL recipients"), "{}", r.stdout);
    assert!(r.stdout.contains("ok   database 'app'"), "{}", r.stdout);

    let bad = w.config_file("bad.toml", "[[database]]\nname = \"app\"\nurll = \"x\"\n");
    let mut c = pgdr_cmd();
    c.args(["config", "check", "--json", "--config"]).arg(&bad);
    let r = run(c);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("urll"));
}

/// `backup` with a pg_dump that stalls halfway: (child, repository root).
fn stalled_backup(w: &World) -> std::process::Child {
    let bin = w.dir.path().join("stall-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = pg_bin();
    let script = format!(
        "#!/bin/bash\nif [ \"$1\" = --version ]; then exec '{0}/pg_dump' --version; fi\n'{0}/pg_dump' \"$@\" | head -c 200000\nsleep 60\n",
        real.display()
    );
    std::fs::write(bin.join("pg_dump"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(real.join("pg_dumpall"), bin.join("pg_dumpall")).unwrap();
    let cfg = w.config_file(
        "stall.toml",
        &format!("[tools]\npg_bin_dir = \"{}\"\n", bin.display()),
    );
    let mut c = w.pgdr_config(&cfg, &["backup", "--json"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let root = local_root(w);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !files_under(&root)
        .iter()
        .any(|f| f.contains("dump.zst.age.partial"))
    {
        assert!(std::time::Instant::now() < deadline, "backup never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child
}

#[test]
fn sigint_mid_backup_exits_130_with_a_json_error_and_leaves_nothing() {
    let w = World::local();
    let child = stalled_backup(&w);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backups"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["failed"][0]["kind"], "interrupted", "{v:#}");
    assert!(w.list().is_empty());
    let left = files_under(&local_root(&w));
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn nagios(w: &World) -> (i32, String) {
    let r = w.run(&["status", "--nagios"]);
    assert_eq!(r.stdout.lines().count(), 1, "one line: {r:?}");
    (r.code, r.stdout.trim().to_string())
}

/// The perfdata value of `label` ("app_backup_age=12s;;93600;0" -> 12).
fn perf(line: &str, label: &str) -> Option<(u64, String)> {
    let (_, perf) = line.split_once(" | ")?;
    let item = perf
        .split(' ')
        .find_map(|p| p.strip_prefix(&format!("{label}=")))?;
    let (value, rest) = item.split_once("s;")?;
    Some((value.parse().ok()?, rest.to_string()))
}

#[test]
fn status_nagios_ok_warning_critical_and_unknown() {
    let w = World::local();
    let id = w.backup()["id"].as_str().unwrap().to_string();
    w.run(&["verify", "--quick"]).ok();
    let (code, line) = nagios(&w);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with("PGDR OK - app: newest backup "), "{line}");
    let (age, thresholds) = perf(&line, "app_backup_age").expect(&line);
    assert!(age < 600, "{line}");
    assert_eq!(
        thresholds, ";93600;0",
        "critical at max_backup_age (26h): {line}"
    );
    assert!(
        perf(&line, "app_verify_age").expect(&line).0 < 600,
        "{line}"
    );
    assert!(
        perf(&line, "app_capture_lag").is_none(),
        "capture is off: {line}"
    );

    // WARNING: a problem that leaves the newest backup restorable (a label not verified).
    w.run(&["backup", "--quiet", "--label", "pre-migration"])
        .ok();
    let (code, line) = nagios(&w);
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("PGDR WARNING - "), "{line}");
    assert!(
        line.contains("'pre-migration'") && line.contains("not verified"),
        "{line}"
    );

    // CRITICAL: the newest backup cannot be read.
    let newest = w.list().last().unwrap()["id"].as_str().unwrap().to_string();
    assert_ne!(newest, id);
    let manifest = local_root(&w)
        .join("app")
        .join(&newest)
        .join("manifest.json");
    std::fs::write(&manifest, "{ damaged").unwrap();
    let (code, line) = nagios(&w);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("PGDR CRITICAL - "), "{line}");
    assert!(line.contains("cannot be read"), "{line}");
    assert!(perf(&line, "app_backup_age").is_some(), "{line}");

    // UNKNOWN: the repository cannot be reached.
    let mut c = pgdr_cmd();
    c.args(["status", "--nagios"]);
    unreachable_s3(&mut c);
    let r = run(c);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stdout
            .starts_with("PGDR UNKNOWN - s3://pgdr-test/unreachable"),
        "{r:?}"
    );
    assert_eq!(r.stdout.lines().count(), 1);
}
